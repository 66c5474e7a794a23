"""What the API shows of the observer's work: SLOs, incidents and anomalies, as a token may see them.

A project token sees its project's services only (`governance.own_workloads`); a fleet-wide token sees
every service. The figures come from the observer (`polycloud.obs`) through the state store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from polycloud.obs.report import slo_report
from polycloud.services import governance
from polycloud.state import TokenRecord
from polycloud.state.repositories_runtime import SloReader
from polycloud.state.repositories_services import ObservationReader

MAX_INCIDENTS = 500
MAX_ANOMALIES = 1000
MAX_ANOMALY_MINUTES = 60 * 24 * 35


def slo(store: SloReader, caller: TokenRecord) -> dict[str, Any]:
    """Each service's SLO (availability, error budget left, burn rates, alerts) that `caller` may see."""
    report = slo_report(store, datetime.now(UTC))
    names = governance.own_workloads(store, caller)
    if names is None:
        return report
    services = [s for s in report["services"] if s["service"] in names]
    alerts = [a for a in report["alerts"] if a["service"] in names]
    return {**report, "services": services, "alerts": alerts}


def incidents(
    store: ObservationReader, caller: TokenRecord, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest incidents (`limit` clamped to 1..500), each with its timeline, that `caller` may see."""
    found = store.incidents(state=state, limit=min(max(limit, 1), MAX_INCIDENTS))
    names = governance.own_workloads(store, caller)
    return [i.to_json() for i in found if names is None or i.service in names]


def anomalies(
    store: ObservationReader, caller: TokenRecord, minutes: int, limit: int
) -> list[dict[str, Any]]:
    """Anomalies of the last `minutes` (clamped to 35 days), newest first, that `caller` may see."""
    window_s = min(max(minutes, 1), MAX_ANOMALY_MINUTES) * 60.0
    found = store.anomalies(window_s, limit=min(max(limit, 1), MAX_ANOMALIES))
    names = governance.own_workloads(store, caller)
    return [a.to_json() for a in found if names is None or a.service in names]
