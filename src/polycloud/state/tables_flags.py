"""The table of feature flag versions. Migrations must match it exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.tables import NAME, Base


class FlagRevisionRow(Base):
    """One version of a FeatureFlag: what its `documents` row held after a change (append-only).

    Numbers are 1, 2, 3... per flag without gaps; a deletion is a version too (`deleted`), so a flag
    applied again after it continues its numbering and a rollback may restore any version.
    """

    __tablename__ = "flag_revisions"
    __table_args__ = (CheckConstraint("number >= 1", name="number_positive"),)

    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    spec: Mapped[dict[str, Any]]
    """The whole normalised FeatureFlag document."""
    content_hash: Mapped[str] = mapped_column(String(64))
    deleted: Mapped[bool]
    author: Mapped[str] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
