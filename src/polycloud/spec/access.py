"""Access declared as documents: RoleBinding's spec (docs/identity.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from polycloud import names
from polycloud.spec.base import Strict


class Subject(Strict):
    """One person (`user`: the value of the username claim, e.g. an email) or a directory `group`."""

    user: str | None = Field(default=None, min_length=1, max_length=253)
    group: str | None = Field(default=None, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _one(self) -> Subject:
        if (self.user is None) == (self.group is None):
            raise ValueError("give exactly one of user and group")
        return self


class RoleBindingSpec(Strict):
    """Gives people of the company's OpenID Provider a role, fleet-wide or in one project."""

    role: Literal["viewer", "deployer", "admin"]
    project: str | None = Field(default=None, description="Absent: every project.")
    subjects: list[Subject] = Field(min_length=1)

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        if v is not None and not names.is_project(v):
            raise ValueError(f"project {v!r} must be {names.PROJECT_RULE}")
        return v
