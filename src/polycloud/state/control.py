"""Control-plane operations on an open session: the leader lease with its fencing epoch, members'
heartbeats, and settings every server must share.

The lease is one row per name. Taking it over bumps `epoch`; a leader's writes are fenced by checking,
inside their own transaction and under a shared row lock, that the row still names it with its epoch
(`check_fence`). A takeover needs the row's exclusive lock, so it waits for fenced writes in flight and
every later fenced write of the old holder sees the new epoch and is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, select, text
from sqlalchemy.orm import Session

from polycloud.errors import FencedError
from polycloud.state.tables_control import CertificateRow, ControlSettingRow, LeaseRow, MemberRow

LEADER = "leader"
"""The lease whose holder runs the loops that act on the world."""
MEMBER_FORGET_AFTER_S = 3600.0
"""Members silent this long are deleted by any heartbeat (their ids carry a pid; they will not return)."""


@dataclass(frozen=True)
class Lease:
    """A lease as its row has it, with the database's clock at the time of reading."""

    name: str
    holder: str
    epoch: int
    expires_at: float
    now: float

    @property
    def remaining_s(self) -> float:
        """Seconds until it expires (negative once expired), by the database's clock."""
        return self.expires_at - self.now


@dataclass(frozen=True)
class MemberInput:
    """What a live server or gateway says about itself in each heartbeat."""

    id: str
    role: str
    url: str
    host: str
    pid: int
    routes: Mapping[str, Sequence[int]] | None = None
    """A gateway's: the revisions of each service it routes to a ready replica (None for servers)."""


@dataclass(frozen=True)
class MemberRecord:
    """A member as the store last heard of it."""

    id: str
    role: str
    url: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    routes: dict[str, list[int]] | None = None


def db_seconds(session: Session) -> float:
    """Now, in seconds since the epoch, by the database's clock (SQLite is one machine: its clock)."""
    if session.get_bind().dialect.name == "postgresql":
        return float(session.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
    return time.time()


def _lease_row(name: str) -> Select[LeaseRow]:
    return select(LeaseRow).where(LeaseRow.name == name)


def _as_lease(row: LeaseRow, now: float) -> Lease:
    return Lease(row.name, row.holder, row.epoch, row.expires_at, now)


def acquire(session: Session, name: str, holder: str, ttl_s: float) -> Lease:
    """Take or renew lease `name` for `holder`; returns the lease as it now stands (maybe another's).

    `holder` keeps the lease it holds (renewal, same epoch) and takes one that expired or was released
    (next epoch). A live lease of someone else is returned unchanged.
    """
    row = session.execute(
        select(LeaseRow).where(LeaseRow.name == name).with_for_update()
    ).scalar_one_or_none()
    now = db_seconds(session)
    if row is None:
        row = LeaseRow(name=name, holder=holder, epoch=1, expires_at=now + ttl_s, acquired_at=now)
        session.add(row)
    elif row.holder == holder and row.expires_at > now:
        row.expires_at = now + ttl_s
    elif row.expires_at <= now:
        row.holder, row.epoch = holder, row.epoch + 1
        row.expires_at, row.acquired_at = now + ttl_s, now
    session.flush()
    return _as_lease(row, now)


def release(session: Session, name: str, holder: str, epoch: int) -> None:
    """Give lease `name` up at once if `holder` still holds it at `epoch`, so a successor need not wait."""
    row = session.execute(
        select(LeaseRow).where(LeaseRow.name == name).with_for_update()
    ).scalar_one_or_none()
    if row is not None and row.holder == holder and row.epoch == epoch:
        row.expires_at = 0.0


def read(session: Session, name: str) -> Lease | None:
    """Lease `name`, or None when no one ever took it."""
    row = session.get(LeaseRow, name)
    return None if row is None else _as_lease(row, db_seconds(session))


def check_fence(session: Session, name: str, holder: str, epoch: int) -> None:
    """Refuse this transaction unless `holder` still holds lease `name` at `epoch`.

    Takes the row's shared lock (PostgreSQL), so no takeover can commit before this transaction ends.

    Raises:
        FencedError: Another holder or a newer epoch owns the lease.
    """
    row = session.execute(
        select(LeaseRow).where(LeaseRow.name == name).with_for_update(read=True)
    ).scalar_one_or_none()
    if row is None or row.holder != holder or row.epoch != epoch:
        now_held = "no one" if row is None else f"{row.holder} (epoch {row.epoch})"
        raise FencedError(f"{holder} no longer holds the {name} lease at epoch {epoch}: {now_held} does")


def heartbeat(session: Session, member: MemberInput, now: datetime) -> None:
    """Record that `member` is alive now (its first heartbeat sets `started_at`)."""
    row = session.get(MemberRow, member.id)
    routes = None if member.routes is None else json.dumps({k: list(v) for k, v in member.routes.items()})
    if row is None:
        session.add(
            MemberRow(
                id=member.id,
                role=member.role,
                url=member.url,
                host=member.host,
                pid=member.pid,
                started_at=now,
                last_seen=now,
                routes=routes,
            )
        )
    else:
        row.role, row.url, row.host, row.pid, row.last_seen, row.routes = (
            member.role,
            member.url,
            member.host,
            member.pid,
            now,
            routes,
        )
    horizon = now - timedelta(seconds=MEMBER_FORGET_AFTER_S)
    session.execute(delete(MemberRow).where(MemberRow.last_seen < horizon))


def members(session: Session, since: datetime) -> list[MemberRecord]:
    """Members heard from at or after `since`, by (role, id)."""
    rows = session.execute(
        select(MemberRow).where(MemberRow.last_seen >= since).order_by(MemberRow.role, MemberRow.id)
    ).scalars()
    return [
        MemberRecord(
            r.id, r.role, r.url, r.host, r.pid, r.started_at, r.last_seen, json.loads(r.routes or "null")
        )
        for r in rows
    ]


def leave(session: Session, member_id: str) -> None:
    """Forget a member that stops on purpose."""
    session.execute(delete(MemberRow).where(MemberRow.id == member_id))


def setting(session: Session, name: str) -> str | None:
    """A shared setting's value, or None when unset."""
    row = session.get(ControlSettingRow, name)
    return None if row is None else row.value


def setting_once(session: Session, name: str, value: str) -> str:
    """Set `name` to `value` unless it is set already; returns the value that stands."""
    row = session.get(ControlSettingRow, name)
    if row is None:
        session.add(ControlSettingRow(name=name, value=value))
        return value
    return row.value


def settings_like(session: Session, prefix: str) -> dict[str, str]:
    """Every shared setting whose name starts with `prefix`, by name."""
    rows = session.execute(select(ControlSettingRow).where(ControlSettingRow.name.startswith(prefix)))
    return {r.name: r.value for r in rows.scalars()}


def request_certificate(session: Session, holder: str, request: str, now: datetime) -> None:
    """Ask for a certificate for `holder` (replacing an earlier request; its grant is kept until the
    new one is granted, so the holder is never without one)."""
    row = session.get(CertificateRow, holder)
    if row is None:
        session.add(CertificateRow(holder=holder, request=request, requested_at=now))
    elif row.request != request:
        row.request, row.requested_at = request, now


def pending_certificates(session: Session) -> list[tuple[str, str]]:
    """(holder, request) of requests not granted since they were made."""
    rows = session.execute(select(CertificateRow)).scalars()
    return [
        (r.holder, r.request)
        for r in rows
        if r.granted_at is None or _aware(r.granted_at) < _aware(r.requested_at)
    ]


def grant_certificate(session: Session, holder: str, request: str, certificate: str, now: datetime) -> None:
    """Record the certificate for `holder`'s request (ignored when the request changed meanwhile)."""
    row = session.get(CertificateRow, holder)
    if row is not None and row.request == request:
        row.certificate, row.granted_at = certificate, now


def granted_certificate(session: Session, holder: str) -> tuple[str, str | None] | None:
    """(request, certificate) of `holder`, None when it never asked."""
    row = session.get(CertificateRow, holder)
    return None if row is None else (row.request, row.certificate)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
