"""Inference keys at the gateway: who may call a service, how fast, and how much per month.

A service that has (or ever had) an inference key needs one on every `/v2/models/{name}/...` request
(and every OpenAI request naming it as its `model`), as `Authorization: Bearer <key>` or
`x-api-key: <key>`; a service that never had a key stays open.
For each key the gateway keeps, in its own memory:

- a token bucket (`rps` tokens per second, at most `burst`): an empty bucket answers 429 with
  `Retry-After` the time until the next token;
- a monthly request count (UTC calendar month): what the store had at the last sync plus what this
  gateway counted since; at `monthly_quota` it answers 429 with `Retry-After` until the month ends;
- for LLM services, tokens (prompt and completion, from the replica's `usage`), counted by
  `spend_tokens` once each answer has been relayed: a monthly token count kept like the request count
  (429 at `monthly_tokens`, `Retry-After` until the month ends), and the tokens of the last minute
  (`MinuteWindow`; 429 at `tokens_per_minute`, `Retry-After` until enough of the minute has passed).

Token limits admit a request while the budget is not exhausted: the answer's size is known only at its
end, so the last request admitted may overshoot by its own size. So that concurrent streams do not all
slip through while none has ended, each admitted request of a key with token limits counts the key's
mean answer size until its tokens are spent, and then its actual tokens, in the minute it was admitted
(`TokenUse`): under steady load the tokens of the requests a key gets admitted in any minute stay within
a few percent of its limit (tested within 5 %).

`KeyGuard.check` runs on the request path and does no I/O. `KeyGuard.run` syncs in the background:
it adds this gateway's counts to the store (`KeySource.flush`) and reads keys and totals back
(`KeySource.snapshot`) in a worker thread. Several gateways thus share one quota (of requests or of
tokens), each seeing the others' usage within a sync interval (a quota may be overshot by that much,
never by more). The rate limit and the tokens per minute are each gateway's own, in its memory.
Credentials are stripped before a request is forwarded: replicas never see the keys. The admitted key's id
is left in the ASGI scope (`polycloud.gateway.keyload.KEY_ID_SCOPE`) for per-key load reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from polycloud.errors import PolycloudError
from polycloud.exchange import KeyGrant
from polycloud.gateway.keyload import KEY_ID_SCOPE

log = logging.getLogger(__name__)

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
MINUTE_S = 60.0
"""The span of a tokens-per-minute limit."""
SLOT_S = 0.25
"""Tokens of the last minute are kept per slot of this many seconds (at most 241 slots per key). A slot
leaves the window once its *end* is a minute old, so tokens count for 60 to 60.25 s: never less."""
RESERVATION_S = 300.0
"""A reservation whose request never spent tokens (its answer failed, or it was no LLM answer) lapses
after this long."""
MEAN_WEIGHT = 0.02
"""Weight of the newest answer in a key's mean answer size: an exponentially weighted mean over about
the last 50 answers (a plain mean of the first 50). The error of the estimates adds up over the
requests in flight, so the mean is kept steady rather than quick."""
REQUESTS, TOKENS = "requests", "tokens"


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

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        """Add this gateway's request counts and LLM token counts per key id to `month`."""
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
        elif name == b"x-api-key" and (text := value.decode("latin-1").strip()):
            api_key = text  # stripped as text: bytes.strip() keeps \x1c-\x1f, which str.strip() drops
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


class MinuteWindow:
    """Tokens of the requests admitted over the last minute, in slots of `SLOT_S` seconds (bounded
    memory, whatever the traffic)."""

    __slots__ = ("slots", "total")

    def __init__(self) -> None:
        self.slots: deque[list[float]] = deque()
        """[slot start, tokens] pairs, oldest first."""
        self.total = 0.0

    def _expire(self, now: float) -> None:
        slots = self.slots
        while slots and slots[0][0] + SLOT_S + MINUTE_S <= now:
            self.total -= slots.popleft()[1]
        if not slots:
            self.total = 0.0  # no drift from float sums

    def add(self, now: float, tokens: float, at: float | None = None) -> None:
        """Count `tokens` (an estimate, or a correction of one: fractional or negative) in the slot of
        `at` (default `now`), or in the current slot when `at`'s has left the window already."""
        self._expire(now)
        moment = now if at is None else at
        start = moment - moment % SLOT_S
        if start + SLOT_S + MINUTE_S <= now:
            start = now - now % SLOT_S
        slots = self.slots
        index = len(slots)
        while index and slots[index - 1][0] > start:  # from the newest: almost always found at once
            index -= 1
        if index and slots[index - 1][0] == start:
            slots[index - 1][1] += tokens
        else:
            slots.insert(index, [start, tokens])
        self.total += tokens

    def used(self, now: float) -> float:
        """Tokens within the last minute (and at most `SLOT_S` more)."""
        self._expire(now)
        return self.total

    def wait(self, now: float, below: float) -> float:
        """Seconds from `now` until the window holds fewer than `below` tokens (0 if it does already)."""
        self._expire(now)
        left = self.total
        if left < below:
            return 0.0
        for start, tokens in self.slots:
            left -= tokens
            if left < below:
                return max(0.0, start + SLOT_S + MINUTE_S - now)
        return MINUTE_S + SLOT_S


class Reservation:
    """The estimate an admitted request counts in its key's minute until it spends its tokens."""

    __slots__ = ("admitted", "estimate", "open")

    def __init__(self, admitted: float, estimate: float) -> None:
        self.admitted, self.estimate, self.open = admitted, estimate, True


class TokenUse:
    """One key's tokens at this gateway: those of the requests it admitted in the last minute (spent,
    or estimated for the ones still in flight), and the estimates outstanding.

    Each request admitted counts the key's mean answer size at its admission (a `Reservation`; before
    the key's first answer, a provisional size: a second's worth of its tokens per minute); when its
    answer's tokens are spent, they replace the estimate, in the slot of the admission. So an answer's
    tokens count in the minute its request was admitted, the minute's count includes what streams in
    flight will spend, and concurrent requests cannot all slip through while none has ended. A
    reservation never spent (the answer failed) lapses after `RESERVATION_S`.
    """

    __slots__ = ("answers", "mean", "outstanding", "provisional", "reservations", "window")

    def __init__(self, provisional: float = 0.0) -> None:
        """Start with no tokens; until the key's first answer, requests count `provisional` tokens each."""
        self.window = MinuteWindow()
        self.provisional = provisional
        self.mean: float | None = None
        """The key's mean answer size in tokens (None until its first answer)."""
        self.answers = 0
        self.reservations: deque[Reservation] = deque()
        """Reservations in order of admission; spent ones are dropped once they reach the front."""
        self.outstanding = 0.0
        """The sum of the open reservations' estimates."""

    def _lapse(self, now: float) -> None:
        reservations = self.reservations
        while reservations and (not reservations[0].open or reservations[0].admitted + RESERVATION_S <= now):
            lapsed = reservations.popleft()
            if lapsed.open:
                lapsed.open = False
                self.outstanding -= lapsed.estimate
        if not reservations:
            self.outstanding = 0.0  # no drift from float sums

    def reserve(self, now: float) -> Reservation | None:
        """Count the mean answer size (or the provisional one) for a request just admitted."""
        self._lapse(now)
        estimate = self.provisional if self.mean is None else self.mean
        if estimate <= 0:
            return None
        reservation = Reservation(now, estimate)
        self.reservations.append(reservation)
        self.outstanding += reservation.estimate
        self.window.add(now, reservation.estimate)
        return reservation

    def spend(self, now: float, tokens: int, reservation: Reservation | None = None) -> None:
        """Count an answer's tokens in place of its request's reservation (the oldest open one when
        that is unknown or lapsed)."""
        self._lapse(now)
        if reservation is None or not reservation.open:
            reservation = next((r for r in self.reservations if r.open), None)
        if reservation is None:
            self.window.add(now, tokens)
        else:
            reservation.open = False
            self.outstanding -= reservation.estimate
            self.window.add(now, tokens - reservation.estimate, at=reservation.admitted)
        if tokens > 0:  # an answer with no tokens (it failed before any) says nothing of their size
            self.answers += 1
            weight = max(MEAN_WEIGHT, 1.0 / self.answers)
            self.mean = tokens if self.mean is None else self.mean + weight * (tokens - self.mean)

    def held(self, now: float) -> float:
        """Tokens estimated for the requests in flight."""
        self._lapse(now)
        return max(0.0, self.outstanding)


_RESERVED: ContextVar[tuple[TokenUse, Reservation] | None] = ContextVar(
    "polycloud_key_reservation", default=None
)
"""The key's `TokenUse` and the reservation of the request the current task admitted: each ASGI request
runs in a task of its own, so `spend_tokens` finds its own request's reservation without being told."""


def _retry_after(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


class KeyGuard:
    """Admits requests by inference key, rate, monthly quota and token limits; one per gateway, on its
    event loop."""

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
        self._by_hash: dict[str, KeyGrant] = {}
        """Every key of every service, for endpoints of the whole fleet (`identify`)."""
        self._buckets: dict[int, TokenBucket] = {}
        self._tokens: dict[int, TokenUse] = {}
        # Counts by (month, key id, REQUESTS or TOKENS): not yet sent, being sent, sent and not yet
        # read back in the store's totals.
        self._pending: Counter[tuple[str, int, str]] = Counter()
        self._flushing: Counter[tuple[str, int, str]] = Counter()
        self._unseen: Counter[tuple[str, int, str]] = Counter()
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
        """Count the tokens an LLM answer admitted with key `key_id` used (prompt and completion).

        Called once per relayed answer (request path: no I/O): the tokens go to the month's count that
        the next sync adds to the store, and, for a key with token limits, to its last minute.
        """
        use = self._tokens.get(key_id)
        if use is not None:
            reserved = _RESERVED.get()
            mine = reserved[1] if reserved is not None and reserved[0] is use else None
            _RESERVED.set(None)
            use.spend(self._clock(), max(0, tokens), mine)
        if tokens > 0:
            self._pending[(utc_month(self._wall()), key_id, TOKENS)] += tokens

    def may_use(self, service: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """Whether the request's key (if any) may call `service`, without counting anything (listings)."""
        keys = self._keys.get(service)
        if not keys:
            return self.loaded
        key = presented_key(headers)
        grant = keys.get(hash_key(key)) if key is not None else None
        return grant is not None and not grant.revoked

    def identify(self, headers: Sequence[tuple[bytes, bytes]]) -> tuple[Denial | None, KeyGrant | None]:
        """Admit a request to an endpoint of the whole fleet (OFREP): open while no service has (or
        had) a key, else any live key of any service, uncounted. Returns the refusal, or the key's grant
        (None when open)."""
        if not self.loaded:
            return Denial(503, "inference keys are not loaded yet; retry shortly", [_retry_after(1)]), None
        if not self._by_hash:
            return None, None
        key = presented_key(headers)
        if key is None:
            message = "this fleet needs an inference key: Authorization: Bearer <key>, or X-API-Key"
            return Denial(401, message, [(b"www-authenticate", b'Bearer realm="polycloud"')]), None
        grant = self._by_hash.get(hash_key(key))
        if grant is None or grant.revoked:
            return Denial(401, "unknown or revoked inference key", []), None
        return None, grant

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
        use = None
        if limits.tokens_per_minute is not None or limits.monthly_tokens is not None:
            use = self._tokens.get(limits.id)
            if use is None:
                per_second = (limits.tokens_per_minute or 0) / MINUTE_S
                use = self._tokens[limits.id] = TokenUse(per_second)
            denial = self._token_denial(limits, use, month, now)
            if denial is not None:
                return denial
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
        if use is not None and (reservation := use.reserve(now)) is not None:
            _RESERVED.set((use, reservation))
        self._pending[(month, limits.id, REQUESTS)] += 1
        return None

    def _token_denial(self, limits: KeyGrant, use: TokenUse, month: str, now: float) -> Denial | None:
        """429 when the key's token budget (of the month, or of the last minute) is exhausted, counting
        the requests in flight at the key's mean answer size."""
        quota = limits.monthly_tokens
        if quota is not None and self.tokens_used(limits, month) + use.held(now) >= quota:
            wait = seconds_to_next_month(self._wall())
            message = (
                f"key #{limits.id} used its monthly token quota of {quota} tokens; "
                "it renews with the next month (UTC)"
            )
            return Denial(429, message, [_retry_after(wait)])
        per_minute = limits.tokens_per_minute
        if per_minute is not None and use.window.used(now) >= per_minute:
            delay = use.window.wait(now, per_minute)
            message = (
                f"key #{limits.id} is over its limit of {per_minute} tokens per minute "
                f"({use.window.used(now):.0f} in the last minute, requests in flight included); "
                f"retry in {delay:.1f} s"
            )
            return Denial(429, message, [_retry_after(delay)])
        return None

    def _count(self, key_id: int, month: str, kind: str) -> int:
        key = (month, key_id, kind)
        return self._pending[key] + self._flushing[key] + self._unseen[key]

    def used(self, limits: KeyGrant, month: str) -> int:
        """Requests of `limits`' key in `month`: the store's total plus what this gateway has not synced."""
        stored = limits.used if limits.month == month else 0
        return stored + self._count(limits.id, month, REQUESTS)

    def tokens_used(self, limits: KeyGrant, month: str) -> int:
        """LLM tokens of `limits`' key in `month`: the store's total plus what this gateway has not synced."""
        stored = limits.tokens_used if limits.month == month else 0
        return stored + self._count(limits.id, month, TOKENS)

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
        self._tokens = {i: u for i, u in self._tokens.items() if i in live}
        self._keys = table
        self._by_hash = {k.key_hash: k for k in keys}
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

    def _flush(self, counts: dict[tuple[str, int, str], int]) -> None:
        batches: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        for (month, key_id, kind), count in counts.items():
            requests, tokens = batches.setdefault(month, ({}, {}))
            (requests if kind == REQUESTS else tokens)[key_id] = count
        for month, (requests, tokens) in sorted(batches.items()):
            self._source.flush(month, requests, tokens)

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
