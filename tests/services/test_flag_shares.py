"""Where each variant of a flag sends the services it routes: another service, or a revision of the
same service (an integer target), as `GET /api/v1/flags` reports it with the shares."""

from __future__ import annotations

from datetime import UTC, datetime

from polycloud.exchange import FlagCount
from polycloud.services.flag_shares import routing_of, shares
from polycloud.state.records import WorkloadState


def service(name: str, variants: dict[str, str | int]) -> WorkloadState:
    spec = {"kind": "Service", "spec": {"routing": {"flag": "ranking", "variants": variants}}}
    return WorkloadState(name, "Service", 3, spec, [], "hash", "web", datetime.now(UTC))


def test_a_revision_target_is_named_as_a_revision_not_a_service() -> None:
    routes = routing_of([service("ranker", {"next": "ranker-v2", "old": 1})], None)
    assert routes == {"ranking": [{"service": "ranker", "variants": {"next": "ranker-v2", "old": 1}}]}
    counts = [FlagCount("ranking", "next", "", 3), FlagCount("ranking", "old", "", 1)]
    answer = shares("ranking", ["next", "old", "stay"], counts, routes["ranking"], 900)
    assert [(s["variant"], s["routesTo"]) for s in answer["shares"]] == [
        ("next", [{"service": "ranker", "to": "ranker-v2", "revision": None}]),
        ("old", [{"service": "ranker", "to": "ranker", "revision": 1}]),
        ("stay", [{"service": "ranker", "to": "ranker", "revision": None}]),
    ]
    assert answer["total"] == 4
