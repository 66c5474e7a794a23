"""The gateway's on-disk copy (`polycloud.gateway.snapshot`): atomic, versioned JSON; the saving sources."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from polycloud.errors import TransientError
from polycloud.exchange import KeyGrant
from polycloud.gateway.keys import hash_key
from polycloud.gateway.routes import ClusterRoute, ReplicaRoute, RouteTable, ServiceRoutes, StaticRouteSource
from polycloud.gateway.snapshot import (
    FORMAT,
    SavingKeySource,
    SavingRouteSource,
    saved_keys,
    saved_routes,
    write_atomically,
)

TABLE = RouteTable.of(
    [
        ServiceRoutes(
            "fraud",
            "active-passive",
            (
                ReplicaRoute("f-0", "aws", "active", "http://127.0.0.1:1234", "ready", 3),
                ReplicaRoute("f-1", "gcp", "standby", None, "starting", 4),
            ),
            canary=(4, 10),
            hedge=95.0,
        )
    ],
    [ClusterRoute("aws", "aws", "us-east-1", 38.9, -77.0), ClusterRoute("gcp")],
)
KEY = KeyGrant(7, "fraud", hash_key("secret-key"), 5.0, 10, 1000, 42, "2025-01", revoked=False)


class FlakySource:
    """A route source that answers `table`, or fails while `failing`; counts its calls."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.failing = False
        self.calls = 0

    def snapshot(self) -> RouteTable:
        self.calls += 1
        if self.failing:
            raise TransientError("the store is down")
        return self.table


class Keys:
    """A key source over a list; records flushes."""

    def __init__(self, keys: list[KeyGrant]) -> None:
        self.keys = keys
        self.flushed: list[tuple[str, dict[int, int]]] = []
        self.tokens: list[tuple[str, dict[int, int]]] = []
        self.calls = 0

    def snapshot(self) -> Sequence[KeyGrant]:
        self.calls += 1
        return self.keys

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        self.flushed.append((month, counts))
        self.tokens.append((month, tokens))


def test_routes_round_trip_with_format_and_mode_0600(tmp_path: Path) -> None:
    saved = saved_routes(tmp_path)
    source = SavingRouteSource(FlakySource(TABLE), saved)
    assert source.snapshot() == TABLE  # nothing saved yet: asks the store, saves its answer
    document = json.loads(saved.path.read_text())
    assert document["format"] == FORMAT and "saved_at" in document
    assert document["services"][0]["canary"] == [4, 10]
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    loaded = saved_routes(tmp_path).load()
    assert loaded is not None and loaded[0].table() == TABLE
    assert [p.name for p in saved.path.parent.iterdir()] == ["routes.json"]  # no temporary file left


def test_first_snapshot_is_the_saved_copy_without_asking_the_store(tmp_path: Path) -> None:
    SavingRouteSource(StaticRouteSource(TABLE), saved_routes(tmp_path)).snapshot()
    inner = FlakySource(RouteTable())
    inner.failing = True
    restarted = SavingRouteSource(inner, saved_routes(tmp_path))
    assert restarted.snapshot() == TABLE and inner.calls == 0
    with pytest.raises(TransientError):
        restarted.snapshot()  # later failures go through: the refresher keeps its last table
    inner.failing = False
    assert restarted.snapshot() == RouteTable()
    loaded = saved_routes(tmp_path).load()
    assert loaded is not None and loaded[0].table() == RouteTable()


def test_a_copy_is_written_only_when_it_changes(tmp_path: Path) -> None:
    saved = saved_routes(tmp_path)
    inner = FlakySource(TABLE)
    source = SavingRouteSource(inner, saved)
    source.snapshot()
    first = saved.path.stat().st_mtime_ns, saved.path.read_text()
    source.snapshot()
    assert (saved.path.stat().st_mtime_ns, saved.path.read_text()) == first
    inner.table = RouteTable.of([ServiceRoutes("other")])
    source.snapshot()
    assert "other" in saved.path.read_text()


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"format": 99, "saved_at": "2025-01-01T00:00:00+00:00", "services": []}', b"[]"],
    ids=["corrupt", "newer-format", "not-an-object"],
)
def test_an_unusable_copy_is_ignored_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    write_atomically(saved_routes(tmp_path).path, content)
    inner = FlakySource(TABLE)
    with caplog.at_level(logging.WARNING):
        assert SavingRouteSource(inner, saved_routes(tmp_path)).snapshot() == TABLE
    assert inner.calls == 1 and "ignoring the saved routes" in caplog.text


def test_a_copy_with_wrong_fields_is_ignored(tmp_path: Path) -> None:
    document = {"format": FORMAT, "saved_at": "2025-01-01T00:00:00+00:00", "services": [{"name": 3}]}
    write_atomically(saved_routes(tmp_path).path, json.dumps(document).encode())
    assert saved_routes(tmp_path).load() is None


def test_an_unwritable_copy_does_not_stop_the_routes(tmp_path: Path) -> None:
    (tmp_path / "gateway").write_text("a file where the folder should be")
    assert SavingRouteSource(StaticRouteSource(TABLE), saved_routes(tmp_path)).snapshot() == TABLE


def test_keys_survive_as_hashes_only_in_a_0600_file(tmp_path: Path) -> None:
    inner = Keys([KEY])
    source = SavingKeySource(inner, saved_keys(tmp_path))
    assert list(source.snapshot()) == [KEY]
    path = saved_keys(tmp_path).path
    text = path.read_text()
    assert "secret-key" not in text and KEY.key_hash in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted_inner = Keys([])
    restarted = SavingKeySource(restarted_inner, saved_keys(tmp_path))
    assert list(restarted.snapshot()) == [KEY] and restarted_inner.calls == 0
    restarted.flush("2025-01", {7: 3}, {7: 120})
    assert restarted_inner.flushed == [("2025-01", {7: 3})]
    assert restarted_inner.tokens == [("2025-01", {7: 120})]


def test_token_limits_are_saved_and_a_copy_saved_before_them_still_loads(tmp_path: Path) -> None:
    tokened = KeyGrant(8, "chat", hash_key("k2"), 5.0, 10, None, 0, "2025-01", False, 6000, 10**9, 1234)
    SavingKeySource(Keys([KEY, tokened]), saved_keys(tmp_path)).snapshot()
    restarted = SavingKeySource(Keys([]), saved_keys(tmp_path))
    assert list(restarted.snapshot()) == [KEY, tokened]

    path = saved_keys(tmp_path).path
    document = json.loads(path.read_text())
    for grant in document["keys"]:  # as a gateway without token limits wrote it
        for field in ("tokens_per_minute", "monthly_tokens", "tokens_used"):
            del grant[field]
    path.write_text(json.dumps(document))
    old = list(SavingKeySource(Keys([]), saved_keys(tmp_path)).snapshot())
    assert old[1].tokens_per_minute is None and old[1].monthly_tokens is None and old[1].tokens_used == 0
    assert old[0] == KEY
