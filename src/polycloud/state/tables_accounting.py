"""Tables of accounting and observation: the cost ledger (and its cursor), budget alerts, LLM tokens
served per hour, per-minute SLI series, incidents with their events, anomalies, and the gateways'
per-inference-key load reports. Migrations must match these exactly."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.tables import NAME, Base, in_list

LEDGER_CATEGORIES = ("compute", "egress")
LEDGER_SOURCES = ("replicas", "dataset-reads", "job-attempts", "job-datasets", "checkpoints")


class LedgerRow(Base):
    """Cost accrued in one UTC hour by one (workload, revision, cluster, category, source).

    The accountant adds to the row of the current hour on each pass, so the table grows by a few rows
    per workload and hour, never by one per request or per pass (see `polycloud.state.ledger`).
    """

    __tablename__ = "cost_ledger"
    __table_args__ = (
        UniqueConstraint("hour", "workload", "revision", "cluster", "category", "source"),
        CheckConstraint(in_list("category", LEDGER_CATEGORIES), name="category"),
        CheckConstraint(in_list("source", LEDGER_SOURCES), name="source"),
        Index(None, "hour"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    hour: Mapped[datetime]
    """Start of the UTC hour the cost accrued in."""
    workload: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int]
    cluster: Mapped[str] = mapped_column(String(NAME))
    provider: Mapped[str] = mapped_column(String(NAME))
    category: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    labels: Mapped[str] = mapped_column(Text)
    """The revision's `metadata.labels` as canonical JSON (text, so that it can be grouped on)."""
    project: Mapped[str | None] = mapped_column(String(NAME))
    quantity: Mapped[float] = mapped_column(Float)
    """Replica-seconds (services), node-seconds (jobs) or GB (egress)."""
    usd: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class LedgerCursorRow(Base):
    """Until when time-based costs have been accrued; shared by every accountant of the database."""

    __tablename__ = "cost_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    accrued_until: Mapped[datetime]


class BudgetAlertRow(Base):
    """A budget threshold crossed in a month: recorded once, with its BudgetAlert event."""

    __tablename__ = "budget_alerts"

    policy: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    label: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    value: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    """"YYYY-MM" (UTC)."""
    threshold: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    """50, 80 or 100 (% of the budget)."""
    spend_usd: Mapped[float] = mapped_column(Float)
    limit_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]


class TokenUsageRow(Base):
    """LLM tokens served by one (service, cluster) in one UTC hour, summed over every gateway's load
    reports (each report adds the tokens of its window), for cost per 1M tokens."""

    __tablename__ = "token_usage"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    """Start of the UTC hour (the store clock's) the reports were written in."""
    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class SliMinuteRow(Base):
    """Requests, errors and p99 of one (service, cluster, source) in one UTC minute, written by the
    control plane's observer from the gateways' load reports ("traffic") and synthetic probes ("probe")."""

    __tablename__ = "sli_minutes"
    __table_args__ = (CheckConstraint("source IN ('traffic', 'probe')", name="source"), Index(None, "minute"))

    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    requests: Mapped[float] = mapped_column(Float)
    errors: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)


class IncidentRow(Base):
    """An incident opened by a failover, a rollback, an SLO alert or a budget alert."""

    __tablename__ = "incidents"
    __table_args__ = (CheckConstraint("state IN ('open', 'resolved')", name="state"), Index(None, "state"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(NAME))
    cluster: Mapped[str | None] = mapped_column(String(NAME))
    state: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class IncidentEventRow(Base):
    """An event on an incident's timeline."""

    __tablename__ = "incident_events"
    __table_args__ = (
        ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        ForeignKeyConstraint(["event_id"], ["events.id"]),
    )

    incident_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class AnomalyRow(Base):
    """A signal of one (service, cluster) that left its robust baseline."""

    __tablename__ = "anomalies"
    __table_args__ = (Index(None, "time"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(NAME))
    cluster: Mapped[str] = mapped_column(String(NAME))
    signal: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    key_id: Mapped[int | None]
    """The inference key of a per-key anomaly (cluster "*"); None for a cluster's."""
    key_name: Mapped[str | None] = mapped_column(String(NAME))


class KeyLoadRow(Base):
    """One gateway's latest figures for one inference key (id only, never the key); replaced every report."""

    __tablename__ = "key_loads"
    __table_args__ = (Index(None, "updated_at"),)

    gateway_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    key_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    service: Mapped[str] = mapped_column(String(NAME))
    rps: Mapped[float] = mapped_column(Float)
    error_rate: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    mean_ms: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]
