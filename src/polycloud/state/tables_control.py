"""Tables of the control plane itself: the leader lease, the live members (servers and gateways) and the
fleet-wide settings every server must agree on (the master key's check value). Migrations must match."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.tables import NAME, Base, in_list

MEMBER_ROLES = ("server", "gateway")


class LeaseRow(Base):
    """A named lease. `epoch` only grows: each new holder gets the next one, which fences the old holder.

    `expires_at` is in seconds of the database's clock (PostgreSQL's `clock_timestamp()`), so servers on
    machines whose clocks disagree still agree on who holds it.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(NAME))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)
    acquired_at: Mapped[float] = mapped_column(Float)


class MemberRow(Base):
    """One live control-plane process, refreshed by its own heartbeat; rows age out when it stops."""

    __tablename__ = "members"
    __table_args__ = (CheckConstraint(in_list("role", MEMBER_ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(NAME))
    pid: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime]
    last_seen: Mapped[datetime]


class ControlSettingRow(Base):
    """A value every server of the fleet must share (e.g. the master key's check value)."""

    __tablename__ = "control_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
