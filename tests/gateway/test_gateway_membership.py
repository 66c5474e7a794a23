"""A gateway's place in the fleet: its home's lock and run file (`presence`), and its heartbeats into the
store's members (`StoreLoadSink` as a `MemberSink`), which stop on a failing store and resume after it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polycloud.errors import ConflictError
from polycloud.exchange import LoadReport
from polycloud.gateway.locality import Locator
from polycloud.gateway.presence import GatewayInfo, Presence, locked, read_info, running_gateway
from polycloud.gateway.reporting import LoadReporter, LoadWindow
from polycloud.gateway.sourcing import StoreLoadSink
from polycloud.gateway.upstreams import UpstreamRegistry
from polycloud.state import MemberInput, Store

ME = GatewayInfo(pid=os.getpid(), id="gw-test-8080", addr="127.0.0.1:8080", url="http://127.0.0.1:8080")
MEMBER = MemberInput(id="gw-test-8080", role="gateway", url=ME.url, host="test", pid=os.getpid())


def test_one_gateway_per_home_and_its_run_file(tmp_path: Path) -> None:
    assert running_gateway(tmp_path) is None and not locked(tmp_path)
    first = Presence(tmp_path)
    first.acquire()
    first.publish(ME)
    try:
        assert locked(tmp_path) and running_gateway(tmp_path) == ME
        with pytest.raises(ConflictError, match=f"a gateway already runs for .*pid {os.getpid()}"):
            Presence(tmp_path).acquire(wait_s=0.1)
    finally:
        first.release()
    assert not (tmp_path / "gateway.json").exists() and running_gateway(tmp_path) is None
    second = Presence(tmp_path)
    second.acquire(wait_s=0.1)  # free again
    second.release()


def test_a_run_file_naming_a_dead_process_is_no_gateway(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    presence = Presence(tmp_path)
    presence.publish(GatewayInfo(pid, "gw-x-1", "127.0.0.1:1", "http://127.0.0.1:1"))
    assert read_info(tmp_path) is None and running_gateway(tmp_path) is None


def test_heartbeats_and_leaving(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        sink = StoreLoadSink(store, MEMBER)
        sink.heartbeat({"m": [1]})
        [member] = store.members(max_age_s=60)
        assert (member.id, member.role, member.url, member.pid) == (
            "gw-test-8080",
            "gateway",
            ME.url,
            os.getpid(),
        )
        sink.leave()
        assert store.members(max_age_s=60) == []
        StoreLoadSink(store).heartbeat({})  # no member: no membership
        assert store.members(max_age_s=60) == []


def test_reports_and_heartbeats_resume_when_the_store_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    attached = Store.attach(url)  # as the gateway: no connection, no migration, no tables yet
    sink, window = StoreLoadSink(attached, MEMBER), LoadWindow()
    reporter = LoadReporter(sink, UpstreamRegistry(Locator(None), None), window, "gw-test-8080/1")
    try:
        assert not asyncio.run(reporter.report())  # the schema is not there: transient, logged, dropped
        with Store.open(url) as store:  # `polycloud server init` / `up` migrates it
            window.answered("m", "east", 200, 0.01)
            assert asyncio.run(reporter.report())
            assert [m.id for m in store.members(max_age_s=60)] == ["gw-test-8080"]
            assert [(r.gateway_id, r.service) for r in store.load(max_age_s=60)] == [("gw-test-8080/1", "m")]
    finally:
        reporter.close()
        attached.close()


def test_store_load_sink_still_reports_load(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        StoreLoadSink(store, MEMBER).report("gw-1", [LoadReport("m", "east", 1.0, 1.0, 2.0, 0.0, 3.0)])
        assert [r.gateway_id for r in store.load(max_age_s=60)] == ["gw-1"]
