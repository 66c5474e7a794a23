"""What the gateways and the state store exchange, typed once and below both.

Gateways read `KeyGrant`s (the keys they admit, by hash, with limits and usage) and write `LoadReport`s
(load per service and cluster, for the autoscaler, and LLM tokens served, for showback), `KeyLoad`s
(load per inference key, for anomaly detection), `FlagCount`s (feature flag evaluations per variant,
for the dashboard's shares) and `RevisionCounts` (cumulative attempts per service
revision with a latency histogram over `LATENCY_BOUNDS_MS`, for judging canaries). Route tables travel
as `polycloud.gateway.routes`, built from the store's own records by the gateway's store adapter.
Neither side keeps a copy of these: the gateway's request path produces them and the store persists
them as they are.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime

from polycloud.errors import UserError


def _require_name(value: str, what: str) -> None:
    if not value or not value.strip():
        raise UserError(f"{what} must not be empty")


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise UserError(f"{what} must be timezone-aware (UTC), got {value.isoformat()}")


LOAD_REPORT_INTERVAL_S = 1.0
"""How long one gateway's load-report window lasts: a report's token counts over this are tokens/s."""

LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.25 * 1.25**k, 3) for k in range(56))
"""Upper bounds of the latency histogram's buckets (0.25 ms … about 60 s, 25 % apart); a last
bucket past the end holds everything slower. 25 % steps keep a p99 read from it within 25 %."""


def bucket_of(elapsed_ms: float) -> int:
    """The histogram bucket of one answer time."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, elapsed_ms)


def empty_buckets() -> list[int]:
    return [0] * (len(LATENCY_BOUNDS_MS) + 1)


def quantile_ms(buckets: list[int] | tuple[int, ...], q: float) -> float:
    """The `q`-quantile of a histogram: the upper bound of the bucket holding it (0 when empty)."""
    total = sum(buckets)
    if total <= 0:
        return 0.0
    rank = math.ceil(q * total)
    running = 0
    for index, count in enumerate(buckets):
        running += count
        if running >= rank:
            return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


@dataclass(frozen=True)
class RevisionCounts:
    """One gateway's cumulative attempts on one (service, revision) since it started."""

    service: str
    revision: int
    attempts: int
    failures: int
    buckets: tuple[int, ...]
    """Attempts per latency bucket (`LATENCY_BOUNDS_MS` plus one overflow bucket)."""
    gateway_id: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LoadReport:
    """One gateway's load on one (service, cluster) over its last report window.

    Written with `Store.report_load`, which sets `gateway_id` and `updated_at`; read back with
    `Store.load`, where both are filled in.
    """

    service: str
    cluster: str
    in_flight: float
    """Requests in flight at the moment of the report."""
    in_flight_mean: float
    """Mean requests in flight over the window: what autoscaling acts on."""
    rps: float
    """Answers per second over the window."""
    error_rate: float
    """Share of the window's answers that were 5xx, in [0, 1]."""
    p99_ms: float
    """99th percentile of answer times over the window; 0 when there were none."""
    p50_ms: float = 0.0
    """Median answer time over the window; 0 when there were none."""
    gateway_id: str = ""
    updated_at: datetime | None = None
    prompt_tokens: int = 0
    """Prompt tokens of the LLM answers of the window (a count, not a rate: the store adds them up)."""
    completion_tokens: int = 0
    """Completion tokens of the LLM answers of the window."""
    inter_token_ms: float = 0.0
    """Mean time between streamed tokens (after each stream's first) over the window; 0 when none."""

    def __post_init__(self) -> None:
        _require_name(self.service, "load report service")
        _require_name(self.cluster, "load report cluster")
        for what in ("in_flight", "in_flight_mean", "rps", "p99_ms", "p50_ms", "inter_token_ms"):
            value = getattr(self, what)
            if not math.isfinite(value) or value < 0:
                raise UserError(f"load report {what} must be a finite number >= 0, not {value!r}")
        for what in ("prompt_tokens", "completion_tokens"):
            if getattr(self, what) < 0:
                raise UserError(f"load report {what} must be >= 0, not {getattr(self, what)!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise UserError(f"load report error_rate must be within [0, 1], not {self.error_rate!r}")
        _require_aware(self.updated_at, "load report updated_at")


@dataclass(frozen=True)
class KeyGrant:
    """What a gateway needs to admit requests with one live key: its hash, limits and usage so far."""

    id: int
    service: str
    key_hash: str
    rps: float
    burst: int
    monthly_quota: int | None
    used: int
    """Requests counted in `month` by every gateway, as flushed to the store."""
    month: str
    revoked: bool = False
    """A revoked key admits nothing, but still marks its service as one that needs a key."""
    tokens_per_minute: int | None = None
    """LLM tokens (prompt and completion) per sliding minute; None for no limit."""
    monthly_tokens: int | None = None
    """LLM tokens per calendar month (UTC); None for no quota."""
    tokens_used: int = 0
    """Tokens counted in `month` by every gateway, as flushed to the store."""


@dataclass(frozen=True)
class KeyLoad:
    """One gateway's figures for one inference key over its last report window (no secret, only the id)."""

    key_id: int
    service: str
    rps: float
    error_rate: float
    p99_ms: float
    mean_ms: float
    gateway_id: str = ""


@dataclass(frozen=True)
class FlagCount:
    """How many times one gateway evaluated one flag to one outcome over its last report window(s).

    An outcome is a variant (`variant`, `error` empty), no variant (both empty: a disabled flag, or no
    default variant and no rule matched: the caller's code default) or an error (`error`: its OFREP
    code, `variant` empty). A count, not a rate: the store adds counts up per minute.
    """

    flag: str
    variant: str
    error: str
    count: int
    gateway_id: str = ""

    def __post_init__(self) -> None:
        _require_name(self.flag, "flag count flag")
        if self.count < 0:
            raise UserError(f"flag count must be >= 0, not {self.count!r}")
        if self.variant and self.error:
            raise UserError(f"flag count of {self.flag!r} has a variant and an error: one or the other")
