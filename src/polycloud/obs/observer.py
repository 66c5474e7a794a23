"""The observer: a control-plane thread that turns load reports, probes and events into SLI minutes,
SLO alerts, anomalies and incidents.

Every `interval_s` (1 s) it reads the gateways' fresh load reports into the current minute. Every
`tick_every` passes it scores each (service, cluster)'s rate, error rate and p99 against its robust
baseline, does the same per inference key (from the gateways' per-key reports, every cluster
together) and writes the minutes so far. Every `slo_every_s` it evaluates the SLOs (burn-rate alerts
and exhausted budgets become events) and reads new events into incidents. Probes and drift checks run
at their own intervals. Alerts (anomalies, incidents, burn alerts) go to the webhook when one is set.
One failing part is logged and retried next time; it never stops the others.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from polycloud.errors import PolycloudError, UserError
from polycloud.loops import Gate, Loop, always
from polycloud.obs.detect import RobustDetector, Score
from polycloud.obs.drift import DriftWatch
from polycloud.obs.incidents import IncidentTracker
from polycloud.obs.metrics import ObserverMetrics
from polycloud.obs.probes import PROBE_TIMEOUT_S, Prober
from polycloud.obs.report import slo_report
from polycloud.obs.series import KeyTicks, MinuteSeries, TickValues
from polycloud.obs.webhook import Webhook
from polycloud.state import EventInput
from polycloud.state.obs_records import AnomalyInput
from polycloud.state.repositories_runtime import ObserverStore

log = logging.getLogger(__name__)
DRIFT_PSI = 0.25
"""A PSI at or above this is drift (0.1-0.25 is a moderate shift, by the usual rule of thumb)."""


@dataclass(frozen=True)
class ObserverSettings:
    """How often the observer does what (seconds)."""

    interval_s: float = 1.0
    tick_every: int = 5
    slo_every_s: float = 10.0
    probe_every_s: float = 30.0
    drift_every_s: float = 60.0
    retention_days: float = 35.0
    load_max_age_s: float = 3.0


def _detectors() -> dict[str, RobustDetector]:
    return {
        "latency": RobustDetector(direction="up", min_scale=2.0, relative_scale=0.1),
        "error_rate": RobustDetector(direction="up", min_scale=0.02, relative_scale=0.0),
        "rps": RobustDetector(direction="both", min_scale=1.0, relative_scale=0.1),
    }


class Observer:
    """See the module's doc. `start` runs it in a thread; `stop` ends it."""

    def __init__(
        self,
        store: ObserverStore,
        settings: ObserverSettings | None = None,
        *,
        webhook: Webhook | None = None,
        prober: Prober | None = None,
        drift: DriftWatch | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        gate: Gate = always,
    ) -> None:
        """Observe `store`'s fleet; passes run only while `gate` is open (the leader observes)."""
        self.store = store
        self.settings = settings or ObserverSettings()
        self.metrics = ObserverMetrics()
        self.webhook = webhook
        self.prober = prober or Prober()
        self.drift = drift or DriftWatch()
        self.series = MinuteSeries()
        self.key_ticks = KeyTicks()
        self._key_names: dict[int, str] = {}
        self.incidents = IncidentTracker(store)
        self._now = now
        self._cursor = store.last_event_id()
        self._detectors: dict[tuple[str, str], dict[str, RobustDetector]] = {}
        self._key_detectors: dict[int, dict[str, RobustDetector]] = {}
        self._anomalous: set[tuple[str, str, str]] = set()
        self._alerting: dict[str, set[str]] = {}
        self._exhausted: set[str] = set()
        self._due: dict[str, float] = {}
        self._passes = 0
        self._last = time.monotonic()
        interval = self.settings.interval_s
        self.loop = Loop("observer", self.step, interval_s=interval, gate=gate, first_delay_s=interval)

    def start(self) -> None:
        """Observe in a thread of its own until `stop()`."""
        self.loop.start()

    def stop(self) -> None:
        """Stop after the current pass (waits for it)."""
        self.loop.stop()

    def close(self) -> None:
        """Let go of HTTP clients and the webhook's thread."""
        self.prober.close()
        self.drift.close()
        if self.webhook is not None:
            self.webhook.close()

    def step(self) -> None:
        """One pass: load, and whatever is due."""
        mono, now = time.monotonic(), self._now()
        dt, self._last = min(mono - self._last, 5.0), mono
        self._guard(
            "load", lambda: self.series.add_load(self.store.load(self.settings.load_max_age_s), now, dt)
        )
        self._guard(
            "key load", lambda: self.key_ticks.add(self.store.key_loads(self.settings.load_max_age_s), dt)
        )
        self._passes += 1
        if self._passes % self.settings.tick_every == 0:
            self._guard("anomalies", lambda: self.detect(self.series.close_tick(), now))
            self._guard("key anomalies", lambda: self.detect_keys(self.key_ticks.close(), now))
            self._guard("minutes", lambda: self._write_minutes(now))
        if self._is_due("slo", self.settings.slo_every_s, mono):
            self._guard("slo", lambda: self.evaluate(now))
            self._guard("incidents", lambda: self.read_events(now))
        if self._is_due("probe", self.settings.probe_every_s, mono):
            self._guard("probes", lambda: self.probe(now))
        if self._is_due("drift", self.settings.drift_every_s, mono):
            self._guard("drift", self.check_drift)
        if self._is_due("forget", 3600.0, mono):
            self._guard(
                "retention", lambda: self.store.forget_observations(self.settings.retention_days * 86400)
            )

    def _write_minutes(self, now: datetime) -> None:
        rows = self.series.flush(now)
        if rows:  # no traffic, no probes: no write transaction
            self.store.put_sli_minutes(rows)

    def _is_due(self, what: str, every_s: float, mono: float) -> bool:
        if mono < self._due.get(what, 0.0):
            return False
        self._due[what] = mono + every_s
        return True

    def _guard(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except PolycloudError as e:
            log.warning("observer: %s failed: %s", what, e)

    # -- parts ------------------------------------------------------------------------------
    def detect(self, ticks: dict[tuple[str, str], TickValues], now: datetime) -> list[AnomalyInput]:
        """Score one tick per (service, cluster); record and alert the anomalies that start now."""
        found = []
        for key, values in sorted(ticks.items()):
            detectors = self._detectors.setdefault(key, _detectors())
            for signal, value, score in self._starting(detectors, values, key):
                message = (
                    f"{signal} of {key[0]} in {key[1]} is {value:.4g}, "
                    f"baseline {score.baseline:.4g} (score {score.score:.1f})"
                )
                found.append(
                    AnomalyInput(key[0], key[1], signal, value, score.baseline, score.score, message, now)
                )
        self._record(found)
        return found

    def detect_keys(self, ticks: dict[tuple[str, int], TickValues], now: datetime) -> list[AnomalyInput]:
        """Score one tick per inference key (every cluster together); record and alert the anomalies
        that start now. They name the key by id and name, never by anything secret."""
        found = []
        live = {key_id for _, key_id in ticks}
        self._key_detectors = {k: d for k, d in self._key_detectors.items() if k in live}
        for (service, key_id), values in sorted(ticks.items()):
            detectors = self._key_detectors.setdefault(key_id, _detectors())
            for signal, value, score in self._starting(detectors, values, (service, f"key:{key_id}")):
                name = self._key_name(key_id)
                message = (
                    f"{signal} of {service} for key #{key_id} ({name}) is {value:.4g}, "
                    f"baseline {score.baseline:.4g} (score {score.score:.1f})"
                )
                found.append(
                    AnomalyInput(
                        service, "*", signal, value, score.baseline, score.score, message, now, key_id, name
                    )
                )
        self._record(found)
        return found

    def _starting(
        self, detectors: dict[str, RobustDetector], values: TickValues, mark: tuple[str, str]
    ) -> list[tuple[str, float, Score]]:
        """Feed one tick to `detectors`; the (signal, value, score) of episodes that start now."""
        signals = {"rps": values.rps}
        if values.rps > 0:
            signals |= {"latency": values.p99_ms, "error_rate": values.error_rate}
        starting = []
        for signal, value in signals.items():
            score = detectors[signal].update(value)
            episode = (*mark, signal)
            if not score.anomalous:
                self._anomalous.discard(episode)
            elif episode not in self._anomalous:
                self._anomalous.add(episode)
                starting.append((signal, value, score))
        return starting

    def _key_name(self, key_id: int) -> str:
        """The key's name (read again from the store when unknown; "?" when it cannot be read)."""
        if key_id not in self._key_names:
            try:
                self._key_names = {k.id: k.name for k in self.store.inference_keys()}
            except PolycloudError as e:
                log.warning("observer: cannot read inference key names: %s", e)
        return self._key_names.get(key_id, "?")

    def _record(self, anomalies: list[AnomalyInput]) -> None:
        if not anomalies:
            return
        self.store.add_anomalies(anomalies)
        for a in anomalies:
            self.metrics.anomalies.labels(a.service, a.cluster, a.signal).inc()
            self._alert(
                "anomaly",
                a.message,
                {
                    "service": a.service,
                    "cluster": a.cluster,
                    "signal": a.signal,
                    "value": a.value,
                    "baseline": a.baseline,
                    "score": a.score,
                    **({"key": {"id": a.key_id, "name": a.key_name}} if a.key_id is not None else {}),
                },
            )

    def evaluate(self, now: datetime) -> dict[str, Any]:
        """Evaluate every SLO; start and end burn alerts and budget breaches as events."""
        report = slo_report(self.store, now)
        self.metrics.slo(report)
        events = []
        for service in report["services"]:
            name, overall = service["service"], service["overall"]
            firing, before = set(overall["alerts"]), self._alerting.get(name, set())
            if firing - before:
                rates = ", ".join(f"{w} {r:g}×" for w, r in overall["burnRates"].items())
                message = f"{name} burns its error budget ({'/'.join(sorted(firing))}): {rates}"
                events.append(EventInput("warning", "SloBurnAlert", message, workload=name))
                self._alert("slo-burn", message, {"service": name, **overall})
            elif before and not firing:
                events.append(
                    EventInput(
                        "info", "SloBurnResolved", f"{name} is back within its burn rates", workload=name
                    )
                )
            self._alerting[name] = firing
            if overall["budgetLeft"] <= 0 and name not in self._exhausted:
                self._exhausted.add(name)
                message = f"{name} has spent its error budget ({overall['availability']:.5f} available)"
                events.append(EventInput("error", "SloBudgetExhausted", message, workload=name))
            elif overall["budgetLeft"] > 0:
                self._exhausted.discard(name)
        if events:
            self.store.add_events(events)
        return report

    def read_events(self, now: datetime) -> None:
        """Feed new events to the incident tracker; alert the incidents it opened."""
        events = self.store.events_after(self._cursor)
        if not events:
            return
        self._cursor = events[-1].id
        self.incidents.feed(events, now)
        if self.incidents.opened:
            for incident in self.store.incidents(state="open", limit=50):
                if incident.id in self.incidents.opened:
                    self._alert("incident", incident.title, incident.to_json())
        self.metrics.incidents_open.set(len(self.store.incidents(state="open", limit=500)))

    def probe(self, now: datetime) -> None:
        """Probe every (service, cluster) with a ready replica."""
        for replica in self.prober.targets(self.store.replicas()):
            result = self.prober.probe(replica)
            self.series.add_probe(result.service, result.cluster, result.ok, result.ms, now)
            self.metrics.probes.labels(result.service, result.cluster, "ok" if result.ok else "failed").inc()
            self.metrics.probe_time.labels(result.service, result.cluster).observe(result.ms / 1000.0)
            mark = (result.service, result.cluster, "probe")
            if result.ok:
                self._anomalous.discard(mark)
            elif mark not in self._anomalous:
                self._anomalous.add(mark)
                where = f"{result.service} in {result.cluster} ({result.replica})"
                message = f"probe of {where} failed: {result.detail}"
                self._record([AnomalyInput(*mark, 1.0, 0.0, 0.0, message, now)])

    def check_drift(self) -> None:
        """Compare recent predictions with their reference; a PSI of `DRIFT_PSI` or more is an anomaly."""
        anomalies = []
        for r in self.drift.read(self.store.replicas()):
            self.metrics.drift.labels(r.service, r.cluster, str(r.revision)).set(r.psi)
            if r.psi >= DRIFT_PSI:
                message = f"predictions of {r.service} r{r.revision} in {r.cluster} drifted: PSI {r.psi:.3f}"
                anomalies.append(AnomalyInput(r.service, r.cluster, "drift", r.psi, 0.0, r.psi, message))
        self._record(anomalies)

    def _alert(self, kind: str, summary: str, detail: dict[str, Any]) -> None:
        if self.webhook is not None:
            self.webhook.send(kind, summary, detail)


def start_observer(
    store: ObserverStore,
    *,
    webhook_url: str | None,
    probe_every_s: float,
    gate: Gate = always,
    tls: ssl.SSLContext | None = None,
) -> Observer:
    """An observer of `store` running in its own thread; `stop()` it, then `close()` it. With `tls`
    (the server's fleet client context) it probes and samples replicas over mutual TLS.

    Raises:
        UserError: `webhook_url` is not an http(s) URL.
    """
    try:
        webhook = Webhook(webhook_url) if webhook_url else None
    except ValueError as e:
        raise UserError(str(e)) from e
    verify: ssl.SSLContext | bool = tls if tls is not None else True
    observer = Observer(
        store,
        ObserverSettings(probe_every_s=probe_every_s),
        webhook=webhook,
        prober=Prober(httpx.Client(timeout=PROBE_TIMEOUT_S, verify=verify)),
        drift=DriftWatch(httpx.Client(timeout=3.0, verify=verify)),
        gate=gate,
    )
    observer.start()
    return observer
