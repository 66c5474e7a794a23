"""Per-inference-key load reports: each gateway replaces its own rows; readers see fresh ones; anomalies
keep the key's id and name."""

from __future__ import annotations

import pytest

from polycloud.errors import UserError
from polycloud.exchange import KeyLoad
from polycloud.state import Store
from polycloud.state.obs_records import AnomalyInput

from .support import FakeClock


def test_key_reports_replace_only_that_gateways_rows_and_age_out(store: Store, clock: FakeClock) -> None:
    store.report_key_loads(
        "gw-a", [KeyLoad(1, "m", 5.0, 0.0, 10.0, 4.0), KeyLoad(2, "m", 1.0, 0.5, 2.5, 2.0)]
    )
    store.report_key_loads("gw-b", [KeyLoad(1, "m", 3.0, 0.0, 25.0, 9.0)])
    assert [(r.key_id, r.gateway_id, r.rps) for r in store.key_loads(5)] == [
        (1, "gw-a", 5.0),
        (1, "gw-b", 3.0),
        (2, "gw-a", 1.0),
    ]
    assert store.key_loads(5)[2] == KeyLoad(2, "m", 1.0, 0.5, 2.5, 2.0, "gw-a")
    clock.advance(4)
    store.report_key_loads("gw-a", [KeyLoad(1, "m", 7.0, 0.0, 10.0, 4.0)])
    assert [(r.key_id, r.gateway_id, r.rps) for r in store.key_loads(3)] == [(1, "gw-a", 7.0)]


def test_bad_key_reports_are_refused(store: Store) -> None:
    with pytest.raises(UserError, match="gateway_id"):
        store.report_key_loads(" ", [])
    with pytest.raises(UserError, match="one row per inference key"):
        store.report_key_loads("gw", [KeyLoad(1, "m", 1, 0, 1, 1), KeyLoad(1, "m", 2, 0, 1, 1)])


def test_anomalies_keep_their_key(store: Store) -> None:
    store.add_anomalies(
        [
            AnomalyInput(
                "m", "*", "rps", 90.0, 5.0, 40.0, "rps of m for key #3 (ci)", key_id=3, key_name="ci"
            ),
            AnomalyInput("m", "east", "latency", 90.0, 5.0, 40.0, "latency of m in east"),
        ]
    )
    by_cluster = {a.cluster: a for a in store.anomalies(60)}
    assert by_cluster["*"].to_json()["key"] == {"id": 3, "name": "ci"}
    assert by_cluster["east"].key_id is None and "key" not in by_cluster["east"].to_json()
