"""Tables of the control plane itself: the leader lease, the live members (servers and gateways), the
fleet-wide settings every server must agree on (the master key's check value) and injected faults.
Migrations must match."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.tables import NAME, Base, in_list

MEMBER_ROLES = ("server", "gateway")
FAULT_KINDS = ("kill", "down", "latency", "errors", "freeze")


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
    routes: Mapped[str | None] = mapped_column(Text)
    """A gateway's routes as JSON (service -> revisions it routes to a ready replica); None for servers."""


class ControlSettingRow(Base):
    """A value every server of the fleet must share (e.g. the master key's check value)."""

    __tablename__ = "control_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class FaultRow(Base):
    """A fault injected into a cluster (a drill or a test), until cleared or `until` passes.

    The API records it; the leader's reconciler applies it through the cluster's driver and stamps
    `applied_at`, and takes it back (`released_at`) once cleared or expired. Any server takes the
    request, and a fault with an end outlives the server that started it: whichever leader runs then
    ends it on time.
    """

    __tablename__ = "faults"
    __table_args__ = (CheckConstraint(in_list("kind", FAULT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    cluster: Mapped[str] = mapped_column(String(NAME), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    replica_id: Mapped[str | None] = mapped_column(String(NAME))
    delay_ms: Mapped[float] = mapped_column(Float)
    error_rate: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    until: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]


class CertificateRow(Base):
    """A holder's certificate request and the certificate the leader granted for it (gateways ask this
    way: their private key never leaves them)."""

    __tablename__ = "certificates"

    holder: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    """The SPIFFE identity asked for."""
    request: Mapped[str] = mapped_column(Text)
    """PEM certificate signing request."""
    requested_at: Mapped[datetime]
    certificate: Mapped[str | None] = mapped_column(Text)
    """PEM certificate for the request's key; None until granted."""
    granted_at: Mapped[datetime | None]
