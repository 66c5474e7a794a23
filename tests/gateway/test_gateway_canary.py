"""Canary traffic split through real HTTP: the canary's share, fall-back when a revision has no replica,
and per-revision attempt counts that catch a failing canary even though clients never see it fail."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import httpx

from polycloud.exchange import quantile_ms
from polycloud.gateway import StaticRouteSource
from polycloud.gateway.routes import RouteTable

from .support import INFER_BODY, MakeGateway, MakeStub, ServerThread, replica, table


def canary_table(stable: ServerThread, canary: ServerThread, weight: int) -> RouteTable:
    """Service "m": revision 1 on `stable`, revision 2 on `canary`, which gets `weight` percent."""
    base = replace(replica(stable, "use1"), revision=1)
    new = replace(replica(canary, "use1"), revision=2)
    service = table([base, new]).services["m"]
    return RouteTable.of([replace(service, canary=(2, weight))])


def served(client: httpx.Client, url: str, n: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    for _ in range(n):
        answer = client.post(f"{url}/v2/models/m/infer", json=INFER_BODY)
        assert answer.status_code == 200, answer.text
        seen[int(answer.json()["cluster"] == "canary")] += 1
    return seen


def test_the_canary_gets_its_share_of_first_attempts(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stable, canary = make_stub("stable"), make_stub("canary")
    gateway = make_gateway(StaticRouteSource(canary_table(stable.server, canary.server, 25)))

    seen = served(client, gateway.url, 400)

    assert 60 <= seen[1] <= 140, seen  # 25 % of 400 = 100, binomial sd ≈ 8.7
    counts = {r.revision: r for r in gateway.app.proxy.revisions.rows()}
    assert counts[1].attempts + counts[2].attempts == 400
    assert counts[2].attempts == seen[1] and counts[2].failures == 0
    assert quantile_ms(counts[2].buckets, 0.99) > 0


def test_at_full_weight_everything_goes_to_the_canary_and_back_when_it_is_gone(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stable, canary = make_stub("stable"), make_stub("canary")
    source = StaticRouteSource(canary_table(stable.server, canary.server, 100))
    gateway = make_gateway(source)

    assert served(client, gateway.url, 50) == {1: 50}
    canary.stop(force=True)
    assert served(client, gateway.url, 50)[0] == 50  # retried on, then routed to, the baseline


def test_a_failing_canary_is_counted_while_clients_get_answers(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stable, canary = make_stub("stable"), make_stub("canary")
    canary.replica.infer_status = 500
    gateway = make_gateway(StaticRouteSource(canary_table(stable.server, canary.server, 50)))

    seen = served(client, gateway.url, 100)

    assert seen == {0: 100}
    counts = {r.revision: r for r in gateway.app.proxy.revisions.rows()}
    assert counts[2].failures == counts[2].attempts > 0
    assert counts[1].failures == 0
