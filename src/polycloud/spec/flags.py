"""Feature flags declared as documents: FeatureFlag's spec, in flagd's format (docs/flags.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from polycloud.spec import flagd
from polycloud.spec.base import Strict


class FeatureFlagSpec(Strict):
    """A flag in flagd's flag-definition format, so that definitions move between flagd and polycloud
    unchanged (docs/flags.md); evaluated at the gateways over OFREP."""

    state: Literal["ENABLED", "DISABLED"] = Field(
        description="DISABLED is the kill switch: every evaluation answers reason DISABLED and callers "
        "use their code default."
    )
    variants: dict[str, Any] = Field(
        min_length=1,
        description="Variant name → value; values of one type: boolean, string, number or object.",
    )
    defaultVariant: str | None = Field(
        description="The variant answered when targeting matches nothing (null: the caller's code default)."
    )
    targeting: dict[str, Any] | None = Field(
        default=None,
        description="JsonLogic answering a variant name, with flagd's fractional, starts_with, ends_with and "
        "sem_ver; its data is the evaluation context (targetingKey, region, cluster, project, ...).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Strings, numbers or booleans returned with every evaluation."
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _named_by_strings(cls, v: Any) -> Any:
        for name in v if isinstance(v, dict) else ():
            if not isinstance(name, str):  # YAML reads on/off/yes/no as booleans
                raise ValueError(
                    f"variant name {name!r} is not a string: YAML reads unquoted on, off, yes, no, true "
                    'and false as booleans; quote the name (e.g. "on")'
                )
        return v

    @field_validator("variants")
    @classmethod
    def _one_type(cls, v: dict[str, Any]) -> dict[str, Any]:
        flagd.flag_type(v)
        return v

    @field_validator("defaultVariant")
    @classmethod
    def _known_default(cls, v: str | None, info: ValidationInfo) -> str | None:
        variants = info.data.get("variants")
        if v is not None and variants is not None and v not in variants:
            raise ValueError(f"defaultVariant {v!r} is not one of the variants: {', '.join(variants)}")
        return v

    @field_validator("targeting")
    @classmethod
    def _sound_targeting(cls, v: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        variants = info.data.get("variants")
        if v is not None and variants is not None:
            problems = flagd.targeting_problems(v, variants)
            if problems:
                raise ValueError("; ".join(problems))
        return v

    @field_validator("metadata")
    @classmethod
    def _scalar_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if value is None or isinstance(value, dict | list):
                raise ValueError(f"metadata {key!r} must be a string, number or boolean")
            flagd.json_type(value)  # no dates, no NaN
        return v

    @property
    def flag_type(self) -> str:
        """boolean, string, integer, float or object: the type of every variant."""
        return flagd.flag_type(self.variants)
