"""Gateway inference keys on an open session: creation (the key is shown once), limits, usage counts.

Gateways never write on their request path: they count requests and LLM tokens in memory and
`add_usage` adds each gateway's counts per (key, month) now and then, so several gateways share one
monthly quota of requests and one of tokens.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError, UserError
from polycloud.exchange import KeyGrant
from polycloud.state.records import InferenceKeyRecord
from polycloud.state.tables_governance import InferenceKeyRow, KeyUsageRow

KEY_PREFIX = "pk_"
"""Every inference key starts with this (API tokens start with "pc_")."""
SHOWN = 10
"""Characters of a key kept in the clear to tell keys apart ("pk_" and 7 random ones)."""


def hash_key(key: str) -> str:
    """The sha256 hex digest under which an inference key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def month_of(now: datetime) -> str:
    """The calendar month (UTC) that quotas count in, as "YYYY-MM"."""
    return f"{now.year:04d}-{now.month:02d}"


MAX_TOKENS = 10**15
"""No token limit is larger than this (the columns hold 64-bit integers)."""


def _check_limits(
    rps: float,
    burst: int,
    monthly_quota: int | None,
    tokens_per_minute: int | None,
    monthly_tokens: int | None,
) -> None:
    if not (math.isfinite(rps) and rps > 0):
        raise UserError(f"rate limit must be a positive number of requests per second, not {rps!r}")
    if burst < 1:
        raise UserError(f"burst must be at least 1 request, not {burst}")
    if monthly_quota is not None and monthly_quota < 1:
        raise UserError(f"monthly quota must be at least 1 request, not {monthly_quota}")
    for what, value in (("tokens per minute", tokens_per_minute), ("monthly token quota", monthly_tokens)):
        if value is not None and not 1 <= value <= MAX_TOKENS:
            raise UserError(
                f"{what} must be a whole number of tokens from 1 to {MAX_TOKENS:.0e}, not {value}"
            )


def _record(row: InferenceKeyRow, used: tuple[int, int]) -> InferenceKeyRecord:
    return InferenceKeyRecord(
        id=row.id,
        service=row.service,
        name=row.name,
        prefix=row.prefix,
        rps=row.rps,
        burst=row.burst,
        monthly_quota=row.monthly_quota,
        created_at=row.created_at,
        revoked=row.revoked,
        used_this_month=used[0],
        tokens_per_minute=row.tokens_per_minute,
        monthly_tokens=row.monthly_tokens,
        tokens_this_month=used[1],
    )


def _usage(session: Session, month: str) -> dict[int, tuple[int, int]]:
    """(requests, tokens) per key id in `month`."""
    query = select(KeyUsageRow.key_id, KeyUsageRow.requests, KeyUsageRow.tokens).where(
        KeyUsageRow.month == month
    )
    return {key_id: (requests, tokens) for key_id, requests, tokens in session.execute(query)}


def create_key(
    session: Session,
    *,
    service: str,
    name: str,
    rps: float,
    burst: int,
    monthly_quota: int | None,
    now: datetime,
    tokens_per_minute: int | None = None,
    monthly_tokens: int | None = None,
) -> tuple[str, InferenceKeyRecord]:
    """Insert a new key of `service` and return it (the only time it exists in the clear) with its record."""
    if not service.strip() or not name.strip():
        raise UserError("an inference key needs a service and a name")
    _check_limits(rps, burst, monthly_quota, tokens_per_minute, monthly_tokens)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = InferenceKeyRow(
        service=service,
        name=name,
        key_hash=hash_key(key),
        prefix=key[:SHOWN],
        rps=float(rps),
        burst=burst,
        monthly_quota=monthly_quota,
        created_at=now,
        revoked=False,
        tokens_per_minute=tokens_per_minute,
        monthly_tokens=monthly_tokens,
    )
    session.add(row)
    session.flush()
    return key, _record(row, (0, 0))


def list_keys(session: Session, service: str | None, now: datetime) -> list[InferenceKeyRecord]:
    """Keys (revoked ones too) with this month's usage, oldest first, optionally of one service."""
    query = select(InferenceKeyRow).order_by(InferenceKeyRow.id)
    if service is not None:
        query = query.where(InferenceKeyRow.service == service)
    used = _usage(session, month_of(now))
    return [_record(row, used.get(row.id, (0, 0))) for row in session.scalars(query)]


def revoke_key(session: Session, key_id: int) -> InferenceKeyRecord:
    """Revoke key `key_id` for good (NotFoundError when there is none)."""
    row = session.get(InferenceKeyRow, key_id)
    if row is None:
        raise NotFoundError(f"no inference key with id {key_id}")
    row.revoked = True
    return _record(row, (0, 0))


def grants(session: Session, now: datetime) -> list[KeyGrant]:
    """Every key with its limits and this month's usage (what a gateway enforces), revoked ones too."""
    month = month_of(now)
    used = _usage(session, month)
    query = select(InferenceKeyRow).order_by(InferenceKeyRow.id)
    grants = []
    for row in session.scalars(query):
        requests, tokens = used.get(row.id, (0, 0))
        grants.append(
            KeyGrant(
                id=row.id,
                service=row.service,
                key_hash=row.key_hash,
                rps=row.rps,
                burst=row.burst,
                monthly_quota=row.monthly_quota,
                used=requests,
                month=month,
                revoked=row.revoked,
                tokens_per_minute=row.tokens_per_minute,
                monthly_tokens=row.monthly_tokens,
                tokens_used=tokens,
            )
        )
    return grants


def add_usage(
    session: Session, month: str, counts: dict[int, int], now: datetime, tokens: dict[int, int] | None = None
) -> None:
    """Add request counts and LLM token counts per key to `month`; counts of keys that no longer exist
    are dropped. The caller holds the "key_usage" lock, so concurrent gateways' additions never collide."""
    spent = tokens or {}
    ids = sorted(set(counts) | set(spent))
    live = set(session.scalars(select(InferenceKeyRow.id).where(InferenceKeyRow.id.in_(ids))))
    for key_id in ids:
        count, used = max(0, counts.get(key_id, 0)), max(0, spent.get(key_id, 0))
        if key_id not in live or not (count or used):
            continue
        row = session.get(KeyUsageRow, (key_id, month))
        if row is None:
            session.add(KeyUsageRow(key_id=key_id, month=month, requests=count, tokens=used, updated_at=now))
        else:
            row.requests += count
            row.tokens += used
            row.updated_at = now
