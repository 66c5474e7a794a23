"""Running one drill: real open-loop load through the gateway while a fault is injected and cleared
through the control-plane API on schedule, then the timeline folded into a `DrillReport`.

The pieces it composes: `target` (what to aim at, and a request that fits the model), `load` (the
open-loop scheduler and the HTTP sender) and `timeline` (the figures, defined there precisely). It
prints nothing: the CLI shows the report.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from polycloud.drills.load import HttpSender, LoopClock, OpenLoop
from polycloud.drills.target import Target, encode, infer_body, resolve_target
from polycloud.drills.timeline import DrillReport, FaultWindow, summarize
from polycloud.errors import PolycloudError, TransientError, UserError

DrillKind = Literal["outage", "brownout", "errors", "blackhole"]
FAULT_KIND: dict[DrillKind, str] = {
    "outage": "down",
    "brownout": "latency",
    "errors": "errors",
    "blackhole": "freeze",
}
"""The API's fault kind for each drill: a blackhole freezes the replicas (they keep their sockets)."""
FAULT_GRACE_S = 10.0
"""A drill's fault ends by itself this long after the drill meant to clear it."""
LEAD_S = 0.05
"""The first arrival is this far in the future, so setting up tasks does not make it late."""


class DrillApi(Protocol):
    """What a drill needs from the control plane (`polycloud.client.http.ApiClient` fits)."""

    def status(self) -> dict[str, Any]:
        """The fleet's status (DESIGN.md §5)."""
        ...

    def inject_fault(self, cluster: str, kind: str, **fields: Any) -> None:
        """Inject a fault of `kind` into `cluster`."""
        ...

    def clear_faults(self, cluster: str) -> None:
        """Clear every fault of `cluster`."""
        ...


@dataclass(frozen=True)
class DrillPlan:
    """One valid drill (construction checks it); `create` fills in the default fault times."""

    kind: DrillKind
    cluster: str
    rps: float
    duration_s: float
    fault_at_s: float
    clear_at_s: float
    service: str | None = None
    """Default: the first service with replicas on the cluster."""
    latency_ms: float = 0.0
    """brownout: delay added to every answer of the cluster."""
    error_rate: float = 0.0
    """errors: fraction of inference requests the cluster answers with 500."""
    max_in_flight: int = 512
    request_timeout_s: float = 10.0

    @classmethod
    def create(
        cls,
        kind: DrillKind,
        cluster: str,
        *,
        rps: float = 100.0,
        duration_s: float = 10.0,
        fault_at_s: float | None = None,
        clear_at_s: float | None = None,
        **options: Any,
    ) -> DrillPlan:
        """A plan whose fault starts after a third of the duration and clears after two thirds,
        unless told otherwise. `options` are the other fields.

        Raises:
            UserError: see `__post_init__`.
        """
        fault_at = duration_s / 3 if fault_at_s is None else fault_at_s
        clear_at = duration_s * 2 / 3 if clear_at_s is None else clear_at_s
        return cls(kind, cluster, rps, duration_s, fault_at, clear_at, **options)

    def __post_init__(self) -> None:
        """Raises `UserError` for a rate, duration or fault parameter out of range, or times out of order."""
        if self.rps <= 0 or self.duration_s <= 0:
            raise UserError(
                f"--rps and --duration must be positive (got {self.rps:g} and {self.duration_s:g})"
            )
        if not 0 <= self.fault_at_s < self.clear_at_s <= self.duration_s:
            raise UserError(
                f"need 0 ≤ --fault-at < --clear-at ≤ --duration (got {self.fault_at_s:g}, "
                f"{self.clear_at_s:g}, {self.duration_s:g})"
            )
        if self.kind == "brownout" and self.latency_ms <= 0:
            raise UserError("brownout needs --latency-ms greater than 0")
        if self.kind == "errors" and not 0 < self.error_rate <= 1:
            raise UserError(f"errors needs --rate in (0, 1] (got {self.error_rate:g})")

    def fault_fields(self) -> dict[str, Any]:
        """The API's fields for this drill's fault. The drill clears it itself at `clear_at_s`; the fault
        also carries an end a little later, so that it ends even if this client or its server dies."""
        ends = {"forSeconds": round(self.clear_at_s - self.fault_at_s + FAULT_GRACE_S, 3)}
        if self.kind == "brownout":
            return {"delayMs": self.latency_ms, **ends}
        if self.kind == "errors":
            return {"errorRate": self.error_rate, **ends}
        return ends


def drill(plan: DrillPlan, api: DrillApi) -> DrillReport:
    """Check `plan` against the running fleet and run it to its end (blocking).

    Raises:
        UserError: bad input (see `resolve_target`) or a model the gateway does
            not serve.
        TransientError: the gateway does not answer.
    """
    status = api.status()
    target = resolve_target(status, plan.cluster, plan.service)
    return asyncio.run(run_drill(plan, target, str(status["gateway"]["url"]), api))


async def run_drill(plan: DrillPlan, target: Target, gateway_url: str, api: DrillApi) -> DrillReport:
    """Run `plan` against `target` through the gateway at `gateway_url`."""
    base = gateway_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=plan.max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        body = encode(infer_body(await _metadata(session, base, target.service)))
        url = f"{base}/v2/models/{target.service}/infer"
        sender = HttpSender(session, url, body, plan.request_timeout_s)
        clock = LoopClock()
        load = OpenLoop(plan.rps, plan.duration_s, max_in_flight=plan.max_in_flight, clock=clock)
        start = clock.now() + LEAD_S
        traffic = asyncio.create_task(load.run(sender, start))
        try:
            window = await _faults_on_schedule(plan, target.cluster, api, clock, start)
        except BaseException:
            traffic.cancel()
            raise
        samples = await traffic
    return summarize(
        samples, window, kind=plan.kind, service=target.service, rps=plan.rps, duration_s=plan.duration_s
    )


async def _metadata(session: aiohttp.ClientSession, base: str, service: str) -> dict[str, Any]:
    """The model's metadata as the gateway serves it."""
    url = f"{base}/v2/models/{service}"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status == 404:
                raise UserError(f"the gateway at {base} does not serve a model named {service}")
            if response.status != 200:
                raise TransientError(f"{url} answered {response.status}: {(await response.text())[:200]}")
            data: dict[str, Any] = await response.json()
            return data
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"the gateway at {base} does not answer: {e}") from e


async def _faults_on_schedule(
    plan: DrillPlan, cluster: str, api: DrillApi, clock: LoopClock, start: float
) -> FaultWindow:
    """Inject the fault at `fault_at_s` and clear it at `clear_at_s` (seconds after `start`); the
    fault is cleared even when the drill is interrupted. Times are taken when each call is issued."""
    await clock.sleep_until(start + plan.fault_at_s)
    fault_at = clock.now() - start
    pending = True
    try:
        await asyncio.to_thread(api.inject_fault, cluster, FAULT_KIND[plan.kind], **plan.fault_fields())
        inject_call = clock.now() - start - fault_at
        await clock.sleep_until(start + plan.clear_at_s)
        cleared_at = clock.now() - start
        await asyncio.to_thread(api.clear_faults, cluster)
        pending = False
    finally:
        if pending:
            _clear_quietly(api, cluster)
    return FaultWindow(cluster, fault_at_s=fault_at, cleared_at_s=cleared_at, inject_call_s=inject_call)


def _clear_quietly(api: DrillApi, cluster: str) -> None:
    """Best-effort clear on the way out of a failed or interrupted drill: the error already under way
    is the one to report, so a failing clear must not replace it."""
    with contextlib.suppress(PolycloudError):
        api.clear_faults(cluster)
