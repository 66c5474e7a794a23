"""Unit tests of the local driver's parts that need no replica process."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.drivers.base import Fault, SupportsFaults
from polycloud.drivers.local import LocalDriver
from polycloud.drivers.local.faultstate import FaultState, FaultStore
from polycloud.drivers.local.processes import parse_command, server_command
from polycloud.drivers.local.records import RecordStore, ReplicaRecord
from polycloud.drivers.local.spawning import last_log_line, replica_command, replica_env
from polycloud.errors import NotFoundError, PermanentError, UserError

from .support import make_spec


def _record(replica_id: str = "r-0", pid: int | None = 42) -> ReplicaRecord:
    return ReplicaRecord(
        id=replica_id,
        service="svc",
        cluster="c1",
        revision=3,
        role="standby",
        spec_hash="abc",
        port=40000,
        base_delay_ms=5.0,
        created_at=1.0,
        pid=pid,
    )


def test_command_line_round_trips() -> None:
    options = {"model": "/m.onnx", "name": "svc", "port": "4321", "fd": "7", "delay-ms": "2.5"}
    options |= {"replica-id": "svc-0", "cluster": "c1", "revision": "3", "spec-hash": "h", "home": "/h"}
    command = server_command("/usr/bin/python3", options)
    parsed = parse_command(10, 1.5, command)
    assert parsed is not None
    assert (parsed.replica_id, parsed.cluster, parsed.home, parsed.service) == ("svc-0", "c1", "/h", "svc")
    assert (parsed.revision, parsed.spec_hash, parsed.port, parsed.delay_ms) == (3, "h", 4321, 2.5)
    assert parsed.endpoint == "http://127.0.0.1:4321"
    assert parsed.key == (10, 1.5)


@pytest.mark.parametrize(
    "cmdline",
    [
        ["python", "-m", "other", "--home", "/h", "--cluster", "c", "--replica-id", "r"],
        ["python", "polycloud.serving", "--home", "/h", "--cluster", "c", "--replica-id", "r"],
        ["python", "-m", "polycloud.serving", "--home", "/h", "--cluster", "c"],
        ["vim", "notes.txt"],
    ],
)
def test_other_processes_are_not_replicas(cmdline: list[str]) -> None:
    assert parse_command(1, 0.0, cmdline) is None


def test_equals_form_and_bad_numbers_are_tolerated() -> None:
    cmdline = ["py", "-m", "polycloud.serving", "--home=/h", "--cluster=c", "--replica-id=r", "--port=x"]
    parsed = parse_command(1, 0.0, cmdline)
    assert parsed is not None
    assert (parsed.home, parsed.port, parsed.endpoint) == ("/h", None, None)


def test_records_round_trip_and_transactions(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, "c1")
    with store.transaction() as txn:
        txn.put(_record())
    assert store.get("r-0") == _record()
    assert store.load_all() == {"r-0": _record()}
    store.path("bad").write_text("{not json")
    assert set(store.load_all()) == {"r-0"}
    assert store.delete_if("r-0", lambda r: r.pid == 7) is False
    assert store.delete_if("r-0", lambda r: r.pid == 42) is True
    assert store.get("r-0") is None


def test_record_rejects_incomplete_json() -> None:
    assert ReplicaRecord.from_json({"id": "x"}) is None
    assert ReplicaRecord.from_json({**_record().to_json(), "port": "80"}) is None
    assert ReplicaRecord.from_json({**_record().to_json(), "future": 1}) == _record()


def test_exit_notes_belong_to_one_pid(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, "c1")
    store.note_exit("r-0", 42, -9, "killed by injected fault")
    store.note_exit("r-0", 42, -9)  # the reaper comes second: the note stays
    note = store.exit_of("r-0", 42)
    assert note is not None and (note.code, note.note) == (-9, "killed by injected fault")
    assert store.exit_of("r-0", 43) is None


def test_fault_state_is_shared_through_the_file(tmp_path: Path) -> None:
    FaultStore(tmp_path, "c1").update(lambda s: FaultState(down=True, delay_ms=50.0))
    assert FaultStore(tmp_path, "c1").load() == FaultState(down=True, delay_ms=50.0)
    assert FaultStore(tmp_path, "c2").load() == FaultState()
    FaultStore(tmp_path, "c1").clear()
    assert FaultStore(tmp_path, "c1").load() == FaultState()


def test_last_log_line_only_reads_this_run(tmp_path: Path) -> None:
    log = tmp_path / "r.log"
    log.write_text("old run\n")
    offset = log.stat().st_size
    assert last_log_line(log, offset) == ""
    log.write_text("old run\nerror: bad model\n\n")
    assert last_log_line(log, offset) == "error: bad model"
    assert last_log_line(tmp_path / "missing.log", 0) == ""


def test_replica_env_adds_spec_env_and_drops_control_plane_settings() -> None:
    env = replica_env({"PATH": "/bin", "POLYCLOUD_TOKEN": "t"}, {"API_KEY": "k"})
    assert env["PATH"] == "/bin" and env["API_KEY"] == "k" and "POLYCLOUD_TOKEN" not in env
    with pytest.raises(PermanentError):
        replica_env({}, {"A=B": "x"})


def test_replica_command_carries_identity_but_no_env(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "m.onnx", env={"TOKEN": "secret-value"}, delay_ms=12.5)
    command = replica_command("/py", spec, tmp_path, port=4000, fd=9)
    assert command[:3] == ["/py", "-m", "polycloud.serving"]
    assert not any("secret-value" in arg for arg in command)
    parsed = parse_command(1, 0.0, command)
    assert parsed is not None
    assert (parsed.replica_id, parsed.cluster, parsed.home) == ("svc-a-0", "local-a", str(tmp_path))
    assert (parsed.port, parsed.delay_ms, parsed.spec_hash, parsed.revision) == (4000, 12.5, "h1", 1)


def test_driver_refuses_unsafe_names_and_foreign_specs(home: Path, model: Path) -> None:
    with pytest.raises(PermanentError):
        LocalDriver("../evil", home)
    driver = LocalDriver("local-a", home)
    try:
        assert isinstance(driver, SupportsFaults)
        with pytest.raises(PermanentError):
            driver.start_replica(make_spec(model, "../x"))
        with pytest.raises(PermanentError):
            driver.start_replica(make_spec(model, cluster="local-b"))
        driver.stop_replica("never-started")  # no error
        driver.stop_replica("../x")
        with pytest.raises(NotFoundError):
            driver.inject(Fault(kind="kill", replica_id="never-started"))
        with pytest.raises(UserError):
            driver.inject(Fault(kind="errors", error_rate=1.5))
        with pytest.raises(UserError):
            driver.inject(Fault(kind="latency", delay_ms=-1.0))
        assert driver.list_replicas() == []
    finally:
        driver.close()
