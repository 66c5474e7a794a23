"""The tables of feature flag versions and of flag evaluations per minute. Migrations must match them
exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text
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


class FlagEvaluationRow(Base):
    """Evaluations of one flag to one outcome by one gateway in one UTC minute (`polycloud.state.
    flag_counts`): each gateway report adds its window's counts to the row of the current minute."""

    __tablename__ = "flag_evaluations"
    __table_args__ = (
        CheckConstraint("evaluations >= 0", name="evaluations_not_negative"),
        Index(None, "minute"),
    )

    gateway_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    flag: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    """The variant answered; empty for an answer without one or for an error."""
    error: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The OFREP error code; empty for an answer."""
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    """Start of the UTC minute (the store clock's) the reports were written in."""
    evaluations: Mapped[int] = mapped_column(BigInteger)
