"""Inference keys at the gateway: who may call a service, how fast, and how much per month.

A service that has (or ever had) an inference key needs one on every `/v2/models/{name}/...` request,
as `Authorization: Bearer <key>` or `x-api-key: <key>`; a service that never had a key stays open.
For each key the gateway keeps, in its own memory:

- a token bucket (`rps` tokens per second, at most `burst`): an empty bucket answers 429 with
  `Retry-After` the time until the next token;
- a monthly request count (UTC calendar month): what the store had at the last sync plus what this
  gateway counted since; at `monthly_quota` it answers 429 with `Retry-After` until the month ends.

`KeyGuard.check` runs on the request path and does no I/O. `KeyGuard.run` syncs in the background:
it adds this gateway's counts to the store (`KeySource.flush`) and reads keys and totals back
(`KeySource.snapshot`) in a worker thread. Several gateways thus share one quota, each seeing the
others' requests within a sync interval (a quota may be overshot by that much, never by more).
Credentials are stripped before a request is forwarded: replicas never see the keys. The admitted key's id
is left in the ASGI scope (`polycloud.gateway.keyload.KEY_ID_SCOPE`) for per-key load reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from polycloud.errors import PolycloudError
from polycloud.exchange import KeyGrant
from polycloud.gateway.keyload import KEY_ID_SCOPE

log = logging.getLogger(__name__)

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is refused, as an HTTP answer."""

    status: int
    message: str
    headers: list[tuple[bytes, bytes]]


class KeySource(Protocol):
    """Where keys and usage totals come from and counts go to; called from a worker thread only."""

    def snapshot(self) -> Sequence[KeyGrant]:
        """Every key (revoked ones marked), with its month's usage so far."""
        ...

    def flush(self, month: str, counts: dict[int, int]) -> None:
        """Add this gateway's request counts per key id to `month`."""
        ...


def hash_key(key: str) -> str:
    """The sha256 hex digest keys are stored and compared under."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def utc_month(now: float | None = None) -> str:
    """The UTC calendar month of `now` (epoch seconds; the current time by default) as "YYYY-MM"."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def seconds_to_next_month(now: float | None = None) -> int:
    """Whole seconds until the next UTC calendar month starts (at least 1)."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    start = datetime(year, month, 1, tzinfo=UTC)
    return max(1, math.ceil((start - moment).total_seconds()))


def presented_key(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY`, else `x-api-key: KEY`."""
    api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            api_key = value.decode("latin-1").strip()
    return api_key


def without_credentials(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` minus the ones that carry keys, so that replicas never see them."""
    return [(n, v) for n, v in headers if n not in CREDENTIAL_HEADERS]


class TokenBucket:
    """`rate` tokens per second up to `capacity`; a request takes one."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.last = float(capacity), now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there will be."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0 - 1e-9:  # a token refilled over exactly 1/rate s may read 0.999...
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _retry_after(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


class KeyGuard:
    """Admits requests by inference key, rate and monthly quota; one per gateway, on its event loop."""

    def __init__(
        self,
        source: KeySource,
        *,
        sync_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Guard with keys from `source`, synced every `sync_interval_s`; `clock` times the buckets."""
        self._source = source
        self._interval = sync_interval_s
        self._clock, self._wall = clock, wall
        self._keys: dict[str, dict[str, KeyGrant]] = {}
        self._buckets: dict[int, TokenBucket] = {}
        self._pending: Counter[tuple[str, int]] = Counter()
        self._flushing: Counter[tuple[str, int]] = Counter()
        self._unseen: Counter[tuple[str, int]] = Counter()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-keys")
        self._last_error: str | None = None
        self.loaded = False
        """False until the first snapshot: every keyed request gets 503 rather than an open door."""

    def guard(self, service: str, scope: MutableMapping[str, Any]) -> Denial | None:
        """Check an ASGI request: None lets it through, its credentials removed; else the refusal."""
        denial, key_id = self._verdict(service, scope["headers"])
        if denial is None and service in self._keys:
            scope["headers"] = without_credentials(scope["headers"])
            scope[KEY_ID_SCOPE] = key_id  # for per-key load reports, without a second lookup
        return denial

    def spend_tokens(self, key_id: int, service: str, tokens: int) -> None:
        """Count the tokens an LLM answer admitted with key `key_id` used (prompt and completion)."""

    def may_use(self, service: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """Whether the request's key (if any) may call `service`, without counting anything (listings)."""
        keys = self._keys.get(service)
        if not keys:
            return self.loaded
        key = presented_key(headers)
        grant = keys.get(hash_key(key)) if key is not None else None
        return grant is not None and not grant.revoked

    def check(self, service: str, headers: Sequence[tuple[bytes, bytes]]) -> Denial | None:
        """None to let the request through (and count it); else the answer that refuses it."""
        return self._verdict(service, headers)[0]

    def _verdict(
        self, service: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[Denial | None, int | None]:
        """`check`'s answer, and the id of the key that was admitted (None for an open service)."""
        if not self.loaded:
            return Denial(503, "inference keys are not loaded yet; retry shortly", [_retry_after(1)]), None
        keys = self._keys.get(service)
        if not keys:
            return None, None
        key = presented_key(headers)
        if key is None:
            message = f"service {service!r} needs an inference key: Authorization: Bearer <key>, or x-api-key"
            return Denial(401, message, [(b"www-authenticate", b'Bearer realm="polycloud"')]), None
        limits = keys.get(hash_key(key))
        if limits is None or limits.revoked:
            return Denial(401, f"unknown or revoked inference key for service {service!r}", []), None
        return self._admit(limits), limits.id

    def _admit(self, limits: KeyGrant) -> Denial | None:
        month = utc_month(self._wall())
        quota = limits.monthly_quota
        if quota is not None and self.used(limits, month) >= quota:
            wait = seconds_to_next_month(self._wall())
            message = (
                f"key #{limits.id} used its monthly quota of {quota} requests; "
                "it renews with the next month (UTC)"
            )
            return Denial(429, message, [_retry_after(wait)])
        now = self._clock()
        bucket = self._buckets.get(limits.id)
        if bucket is None:
            bucket = TokenBucket(limits.rps, limits.burst, now)
            self._buckets[limits.id] = bucket
        delay = bucket.take(now)
        if delay > 0:
            message = (
                f"key #{limits.id} is over its rate limit of {limits.rps:g} requests/s "
                f"(burst {limits.burst}); retry in {delay:.2f} s"
            )
            return Denial(429, message, [_retry_after(delay)])
        self._pending[(month, limits.id)] += 1
        return None

    def used(self, limits: KeyGrant, month: str) -> int:
        """Requests of `limits`' key in `month`: the store's total plus what this gateway has not synced."""
        stored = limits.used if limits.month == month else 0
        key = (month, limits.id)
        return stored + self._pending[key] + self._flushing[key] + self._unseen[key]

    def apply(self, keys: Sequence[KeyGrant]) -> None:
        """Replace the key table; buckets of keys whose limits changed start full again."""
        table: dict[str, dict[str, KeyGrant]] = {}
        for limits in keys:
            table.setdefault(limits.service, {})[limits.key_hash] = limits
            bucket = self._buckets.get(limits.id)
            if bucket is not None and (bucket.rate, bucket.capacity) != (limits.rps, limits.burst):
                del self._buckets[limits.id]
        live = {k.id for k in keys if not k.revoked}
        self._buckets = {i: b for i, b in self._buckets.items() if i in live}
        self._keys = table
        self.loaded = True

    async def sync(self) -> bool:
        """Flush this gateway's counts, then read keys and totals back; False when the source failed."""
        loop = asyncio.get_running_loop()
        self._flushing, self._pending = self._flushing + self._pending, Counter()
        try:
            await loop.run_in_executor(self._executor, self._flush, dict(self._flushing))
        except PolycloudError as e:
            self._pending += self._flushing  # not flushed: counted again at the next sync
            self._flushing = Counter()
            self._failed(str(e))
            return False
        try:
            keys = await loop.run_in_executor(self._executor, self._source.snapshot)
        except PolycloudError as e:
            self._unseen += self._flushing  # flushed, not read back: still counted, never re-sent
            self._flushing = Counter()
            self._failed(str(e))
            return False
        self._flushing, self._unseen = Counter(), Counter()
        self._last_error = None
        self.apply(keys)
        return True

    def _flush(self, counts: dict[tuple[str, int], int]) -> None:
        batches: dict[str, dict[int, int]] = {}
        for (month, key_id), count in counts.items():
            batches.setdefault(month, {})[key_id] = count
        for month, batch in sorted(batches.items()):
            self._source.flush(month, batch)

    def _failed(self, message: str) -> None:
        if message != self._last_error:
            log.warning("cannot sync inference keys (keeping the last ones): %s", message)
            self._last_error = message

    async def run(self) -> None:
        """Sync forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.sync()

    def close(self) -> None:
        """Let go of the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
