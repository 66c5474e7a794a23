"""Observability operations on an open session: SLI minutes, incidents with timelines, anomalies.

The control plane's observer (`polycloud.obs.observer`) is the writer: it replaces the current
minute's SLI rows on each pass (so a reader sees the minute so far), opens and resolves incidents, and
appends anomalies. Readers are the API's `/slo`, `/incidents` and `/status`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError, UserError
from polycloud.state.obs_records import (
    INCIDENT_STATES,
    SLI_SOURCES,
    AnomalyInput,
    AnomalyRecord,
    IncidentRecord,
    SliMinute,
)
from polycloud.state.records import EventRecord, stored
from polycloud.state.tables import EventRow
from polycloud.state.tables_accounting import AnomalyRow, IncidentEventRow, IncidentRow, SliMinuteRow


def put_sli_minutes(session: Session, rows: list[SliMinute]) -> None:
    """Insert or replace the rows (keyed by service, cluster, source and minute)."""
    for r in rows:
        if r.source not in SLI_SOURCES:
            raise UserError(f"SLI source must be one of {', '.join(SLI_SOURCES)}, not {r.source!r}")
        if r.minute.second or r.minute.microsecond:
            raise UserError(f"an SLI minute must start on a whole minute, not {r.minute.isoformat()}")
        if r.requests < 0 or r.errors < 0 or r.errors > r.requests + 1e-9:
            raise UserError(f"0 <= errors <= requests, not {r.errors} of {r.requests}")
        session.merge(
            SliMinuteRow(
                service=r.service,
                cluster=r.cluster,
                source=r.source,
                minute=r.minute,
                requests=r.requests,
                errors=r.errors,
                p99_ms=r.p99_ms,
            )
        )


def sli_minutes(session: Session, since: datetime) -> list[SliMinute]:
    """Rows of minutes at or after `since`, sorted by (service, cluster, source, minute)."""
    query = (
        select(SliMinuteRow)
        .where(SliMinuteRow.minute >= since)
        .order_by(SliMinuteRow.service, SliMinuteRow.cluster, SliMinuteRow.source, SliMinuteRow.minute)
    )
    return [
        SliMinute(
            row.service,
            row.cluster,
            stored(row.source, SLI_SOURCES, "SLI source"),
            row.minute,
            row.requests,
            row.errors,
            row.p99_ms,
        )
        for row in session.scalars(query)
    ]


def forget_before(session: Session, before: datetime) -> None:
    """Delete SLI minutes and anomalies older than `before` (incidents are kept)."""
    session.execute(delete(SliMinuteRow).where(SliMinuteRow.minute < before))
    session.execute(delete(AnomalyRow).where(AnomalyRow.time < before))


def events_after(session: Session, after_id: int, limit: int) -> list[EventRecord]:
    """Events with an id above `after_id`, oldest first, at most `limit`."""
    query = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
    return [row.to_record() for row in session.scalars(query)]


def last_event_id(session: Session) -> int:
    """The highest event id (0 without events)."""
    return int(session.scalar(select(func.max(EventRow.id))) or 0)


def open_incident(
    session: Session, kind: str, service: str | None, cluster: str | None, title: str, now: datetime
) -> int:
    """Open an incident; returns its id."""
    if not kind or not title:
        raise UserError("an incident needs a kind and a title")
    row = IncidentRow(
        kind=kind,
        service=service,
        cluster=cluster,
        state="open",
        title=title,
        opened_at=now,
        updated_at=now,
        resolved_at=None,
    )
    session.add(row)
    session.flush()
    return row.id


def attach_events(session: Session, incident_id: int, event_ids: list[int], now: datetime) -> None:
    """Add events to an incident's timeline (ones already on it are skipped)."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFoundError(f"no incident {incident_id}")
    have = set(
        session.scalars(select(IncidentEventRow.event_id).where(IncidentEventRow.incident_id == incident_id))
    )
    session.add_all(IncidentEventRow(incident_id=incident_id, event_id=e) for e in set(event_ids) - have)
    row.updated_at = now


def resolve_incident(session: Session, incident_id: int, now: datetime) -> None:
    """Mark an incident resolved (a resolved one stays as it was)."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFoundError(f"no incident {incident_id}")
    if row.state == "open":
        row.state, row.resolved_at, row.updated_at = "resolved", now, now


def incidents(session: Session, *, state: str | None, limit: int) -> list[IncidentRecord]:
    """The newest `limit` incidents (optionally only open or resolved ones), with their timelines."""
    if limit < 1:
        raise UserError("limit must be at least 1")
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
    if state is not None:
        stored(state, INCIDENT_STATES, "incident state")
        query = query.where(IncidentRow.state == state)
    rows = list(session.scalars(query))
    timelines: dict[int, list[EventRecord]] = defaultdict(list)
    if rows:
        linked = (
            select(IncidentEventRow.incident_id, EventRow)
            .join(EventRow, EventRow.id == IncidentEventRow.event_id)
            .where(IncidentEventRow.incident_id.in_([r.id for r in rows]))
            .order_by(EventRow.id)
        )
        for incident_id, event in session.execute(linked):
            timelines[incident_id].append(event.to_record())
    return [
        IncidentRecord(
            id=r.id,
            kind=r.kind,
            service=r.service,
            cluster=r.cluster,
            state=stored(r.state, INCIDENT_STATES, "incident state"),
            title=r.title,
            opened_at=r.opened_at,
            updated_at=r.updated_at,
            resolved_at=r.resolved_at,
            timeline=timelines[r.id],
        )
        for r in rows
    ]


def add_anomalies(session: Session, anomalies: list[AnomalyInput], now: datetime) -> None:
    """Append anomalies; one without a time gets `now`."""
    session.add_all(
        AnomalyRow(
            time=a.time or now,
            service=a.service,
            cluster=a.cluster,
            signal=a.signal,
            value=a.value,
            baseline=a.baseline,
            score=a.score,
            message=a.message,
            key_id=a.key_id,
            key_name=a.key_name,
        )
        for a in anomalies
    )


def anomalies(session: Session, since: datetime, limit: int) -> list[AnomalyRecord]:
    """Anomalies at or after `since`, newest first, at most `limit`."""
    query = select(AnomalyRow).where(AnomalyRow.time >= since).order_by(AnomalyRow.id.desc()).limit(limit)
    return [
        AnomalyRecord(
            service=r.service,
            cluster=r.cluster,
            signal=r.signal,
            value=r.value,
            baseline=r.baseline,
            score=r.score,
            message=r.message,
            time=r.time,
            key_id=r.key_id,
            key_name=r.key_name,
            id=r.id,
        )
        for r in session.scalars(query)
    ]


def sli_totals(
    session: Session, since: datetime, objectives: dict[str, float]
) -> list[tuple[str, str, str, float, float, float]]:
    """Per (service, cluster, source) since `since`: requests, errors, and requests in minutes whose
    p99 met the service's latency objective in `objectives` (all of them for a service without one)."""
    met = (
        case(
            *[
                (and_(SliMinuteRow.service == name, SliMinuteRow.p99_ms > objective), 0.0)
                for name, objective in objectives.items()
            ],
            else_=SliMinuteRow.requests,
        )
        if objectives
        else SliMinuteRow.requests
    )
    query = (
        select(
            SliMinuteRow.service,
            SliMinuteRow.cluster,
            SliMinuteRow.source,
            func.sum(SliMinuteRow.requests),
            func.sum(SliMinuteRow.errors),
            func.sum(met),
        )
        .where(SliMinuteRow.minute >= since)
        .group_by(SliMinuteRow.service, SliMinuteRow.cluster, SliMinuteRow.source)
        .order_by(SliMinuteRow.service, SliMinuteRow.cluster, SliMinuteRow.source)
    )
    return [
        (service, cluster, source, float(requests or 0), float(errors or 0), float(good or 0))
        for service, cluster, source, requests, errors, good in session.execute(query)
    ]
