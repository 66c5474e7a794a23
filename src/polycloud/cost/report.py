"""Showback and chargeback: accrued cost lines grouped by a label, cluster, provider or service.

A `CostLine` is what the ledger accrued for one (workload, revision, cluster, category, source) over a
period. Reports sum lines exactly and round each figure to a millionth of a dollar only when shown, so
rows add up to the total within rounding.

For LLM services, `token_report` sets the tokens a (service, cluster) served over the same period (a
`TokenLine`, from the gateways' load reports) against the replica cost it accrued there: cost per 1M
tokens = replica cost / tokens × 1e6.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from polycloud.errors import UserError

BUILTIN_KEYS = ("service", "cluster", "provider")
UNLABELLED = "(none)"
TEAM = "team"
"""The label whose value names a service's team in the token rows."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class CostLine:
    """Cost accrued by one workload on one cluster, of one category (compute or egress)."""

    workload: str
    kind: str
    cluster: str
    provider: str
    category: str
    usd: float
    quantity: float = 0.0
    source: str = "replicas"
    revision: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    project: str | None = None


@dataclass(frozen=True)
class CostRow:
    """One row of `polycloud cost`: a key and its compute, egress and total cost."""

    key: str
    computeUSD: float
    egressUSD: float
    totalUSD: float

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "computeUSD": self.computeUSD,
            "egressUSD": self.egressUSD,
            "totalUSD": self.totalUSD,
        }


def money(x: float) -> float:
    """Dollars as reported: rounded to a millionth."""
    return round(x, 6)


def key_of(line: CostLine, by: str) -> str:
    """The value of `line` that `--by` groups on: service (workload) name, cluster, provider, or a label."""
    if by == "service":
        return line.workload
    if by == "cluster":
        return line.cluster
    if by == "provider":
        return line.provider
    return line.labels.get(by, UNLABELLED)


def check_by(by: str) -> str:
    """`by` when it can group lines: a built-in key or a label key."""
    if by in BUILTIN_KEYS or re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?", by):
        return by
    raise UserError(f"--by must be service, cluster, provider or a label key such as team, not {by!r}")


def group(lines: Iterable[CostLine], by: str) -> list[CostRow]:
    """Rows per key of `by`, dearest first (ties by key)."""
    check_by(by)
    sums: dict[str, list[float]] = {}
    for line in lines:
        figures = sums.setdefault(key_of(line, by), [0.0, 0.0])
        figures[0 if line.category == "compute" else 1] += line.usd
    rows = [CostRow(k, money(c), money(e), money(c + e)) for k, (c, e) in sums.items()]
    return sorted(rows, key=lambda r: (-r.totalUSD, r.key))


def report(lines: Iterable[CostLine], by: str) -> dict[str, Any]:
    """`{"rows": [{"key", "computeUSD", "egressUSD", "totalUSD"}], "totalUSD"}`."""
    kept = list(lines)
    return {"rows": [r.to_json() for r in group(kept, by)], "totalUSD": money(sum(line.usd for line in kept))}


def chargeback(lines: Iterable[CostLine], label: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One row per (label value, workload, cluster) with compute, egress, total and the period."""
    sums: dict[tuple[str, str, str, str], list[float]] = {}
    for line in lines:
        key = (line.labels.get(label, UNLABELLED), line.workload, line.cluster, line.provider)
        figures = sums.setdefault(key, [0.0, 0.0])
        figures[0 if line.category == "compute" else 1] += line.usd
    period = {"periodStart": start.isoformat(), "periodEnd": end.isoformat()}
    return [
        {
            label: value,
            "workload": workload,
            "cluster": cluster,
            "provider": provider,
            "computeUSD": money(c),
            "egressUSD": money(e),
            "totalUSD": money(c + e),
            **period,
        }
        for (value, workload, cluster, provider), (c, e) in sorted(sums.items())
    ]


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """The start of a window: "30m", "12h", "7d", "2w" before `now`, or an ISO date or time (UTC)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    found = _DURATION.match(value)
    if found:
        return now - timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"--since must be a duration like 30m, 12h, 7d or 2w, or a date like 2026-11-01, not {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class TokenLine:
    """LLM tokens one service served on one cluster over a period, every gateway's."""

    service: str
    cluster: str
    prompt: int
    completion: int
    labels: dict[str, str] = field(default_factory=dict)
    """The service's labels, used when the ledger has no line of it to take them from."""

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def per_million(usd: float, tokens: int) -> float | None:
    """Dollars per 1M tokens, rounded to a millionth; None without tokens."""
    return money(usd / tokens * 1e6) if tokens > 0 else None


def _token_figures(prompt: int, completion: int, usd: float) -> dict[str, Any]:
    return {
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": prompt + completion,
        "replicaUSD": money(usd),
        "usdPerMillionTokens": per_million(usd, prompt + completion),
    }


def token_report(lines: Iterable[CostLine], served: Iterable[TokenLine], by: str) -> dict[str, Any] | None:
    """Tokens served and cost per 1M tokens of the services that served tokens; None when none did.

    `{"rows": [{"key", "promptTokens", "completionTokens", "totalTokens", "replicaUSD",
    "usdPerMillionTokens"}], "services": [{"team", "service", "cluster", "provider", ...the same}],
    ...the same figures for the whole}`. `services` has one row per (service, cluster) where such a
    service served tokens or accrued replica cost (a standby cluster serves none and still costs:
    its cost per 1M tokens is None); `rows` groups them by `by` as `report` does, most tokens first.
    The replica cost is the ledger's `replicas` source: compute of the service's replicas there.
    """
    check_by(by)
    tokens: dict[tuple[str, str], list[int]] = {}
    fallback: dict[str, dict[str, str]] = {}
    for t in served:
        if t.total <= 0:
            continue
        figures = tokens.setdefault((t.service, t.cluster), [0, 0])
        figures[0] += t.prompt
        figures[1] += t.completion
        fallback.setdefault(t.service, t.labels)
    if not tokens:
        return None
    services = {service for service, _ in tokens}
    usd: dict[tuple[str, str], float] = {}
    providers: dict[tuple[str, str], str] = {}
    labelled: dict[str, tuple[int, dict[str, str]]] = {}
    for line in lines:
        if line.workload not in services or line.kind != "Service" or line.source != "replicas":
            continue
        pair = (line.workload, line.cluster)
        usd[pair] = usd.get(pair, 0.0) + line.usd
        providers[pair] = line.provider
        if line.workload not in labelled or line.revision >= labelled[line.workload][0]:
            labelled[line.workload] = (line.revision, line.labels)
    labels = {s: labelled[s][1] if s in labelled else fallback.get(s, {}) for s in services}
    detail = []
    groups: dict[str, list[float]] = {}
    for pair in set(tokens) | set(usd):
        service, cluster = pair
        prompt, completion = tokens.get(pair, (0, 0))
        cost = usd.get(pair, 0.0)
        provider = providers.get(pair, UNLABELLED)
        line = CostLine(service, "Service", cluster, provider, "compute", cost, labels=labels[service])
        detail.append(
            {
                "team": labels[service].get(TEAM, UNLABELLED),
                "service": service,
                "cluster": cluster,
                "provider": provider,
                **_token_figures(prompt, completion, cost),
            }
        )
        group = groups.setdefault(key_of(line, by), [0, 0, 0.0])
        group[0] += prompt
        group[1] += completion
        group[2] += cost
    rows = [{"key": key, **_token_figures(int(p), int(c), u)} for key, (p, c, u) in groups.items()]
    rows.sort(key=lambda r: (-r["totalTokens"], r["key"]))
    detail.sort(key=lambda r: (r["team"], r["service"], r["cluster"]))
    prompt = sum(p for p, _ in tokens.values())
    completion = sum(c for _, c in tokens.values())
    return {"rows": rows, "services": detail, **_token_figures(prompt, completion, sum(usd.values()))}
