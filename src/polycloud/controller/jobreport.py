"""The `polycloud jobs status --json` document, from the recorded runs (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polycloud.state import WorkloadState
from polycloud.state.job_records import AttemptRecord, JobRunRecord


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _attempt(a: AttemptRecord) -> dict[str, Any]:
    return {
        "cluster": a.cluster,
        "pid": a.pid,
        "state": a.state,
        "startedAt": _time(a.started_at),
        "endedAt": _time(a.ended_at),
    }


def job_entry(run: JobRunRecord, now: datetime) -> dict[str, Any]:
    """One job as `jobs status --json` shows it (its latest run)."""
    return {
        "name": run.job,
        "state": run.state,
        "cluster": run.cluster,
        "attempts": [_attempt(a) for a in run.attempts],
        "checkpointBytesMoved": run.bytes_moved,
        "costUSD": round(run.cost_usd(now), 6),
    }


def pending_entry(workload: WorkloadState) -> dict[str, Any]:
    """A declared job the controller has not picked up yet."""
    cluster = str(workload.placement[0]["cluster"]) if workload.placement else None
    return {
        "name": workload.name,
        "state": "pending",
        "cluster": cluster,
        "attempts": [],
        "checkpointBytesMoved": 0,
        "costUSD": 0.0,
    }


def jobs_document(runs: list[JobRunRecord], declared: list[WorkloadState], now: datetime) -> dict[str, Any]:
    """`{"jobs": [...]}`: the latest run of every job that ever ran, and declared jobs not yet run."""
    latest: dict[str, JobRunRecord] = {}
    for record in runs:  # sorted by (job, revision): the last one wins
        latest[record.job] = record
    current = {w.name: w for w in declared}
    entries = []
    for name in sorted(latest.keys() | current.keys()):
        run = latest.get(name)
        workload = current.get(name)
        if workload is not None and (run is None or run.revision < workload.number):
            entries.append(pending_entry(workload))
        elif run is not None:
            entries.append(job_entry(run, now))
    return {"jobs": entries}
