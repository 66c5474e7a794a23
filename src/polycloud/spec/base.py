"""The base of every spec model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors, numbers are finite, booleans are booleans
    (`spot: 0` or `spot: "yes"` is an error, not a lax guess), values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
