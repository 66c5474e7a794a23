"""Fixtures for end-to-end tests: the real `polycloud` command, a real control plane, real replicas.

Every test gets its own home (`POLYCLOUD_HOME` under `tmp_path`) and its own free ports for the API and
the gateway, so tests never see each other's processes. The pieces:

- `Fleet` declares private-site clusters and services and writes them as YAML into `tmp_path`;
  `Fleet.declared()` is the exact replica count it asks for, per (service, cluster).
- `Polycloud` runs the CLI in that environment (`cli(*args)` gives `(rc, stdout, stderr)`), starts
  commands in the background, reads `status`, the API and the state store, finds the control plane, and
  checks that the running fleet is exactly the declared one (`problems`).
- `replica_processes(home)` and `home_processes(home)` read the process table with psutil: the former
  the model-server replicas (by their `--home`), the latter everything that belongs to a home.

Teardown runs `polycloud down`, then kills whatever of the home is still alive and fails the test if
anything was (a leaked replica, an orphaned gateway or control plane).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx
import psutil
import pytest
from tests.e2e.fleets import Fleet, ServiceDecl

from polycloud.state import RevisionRecord, Store, content_hash

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
IRIS_MODEL = ROOT / "examples" / "fleet" / "models" / "iris.onnx"
"""4 FP32 features (input `input`), trained on scikit-learn's iris data set."""
POLYCLOUD = Path(sys.executable).with_name("polycloud")
"""The installed command, next to the interpreter running the tests."""

CLI_TIMEOUT_S = 180.0
"""The longest one CLI command may run before the test gives up (a hang guard, not a target)."""
DEADLINE_S = 90.0
"""How long `eventually` conditions may take (a hang guard, not a target)."""
SETTLE_S = 1.0
"""A converged fleet must still be the same this much later (several reconcile passes): no flapping."""

# ---------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class ReplicaProcess:
    """A live `python -m polycloud.serving` process, as its command line describes it."""

    pid: int
    replica_id: str
    cluster: str
    service: str
    revision: int
    spec_hash: str


def _options(args: list[str]) -> dict[str, str]:
    """`--name value` pairs of a command line."""
    return {a[2:]: b for a, b in itertools.pairwise(args) if a.startswith("--")}


def replica_processes(home: Path) -> list[ReplicaProcess]:
    """Every live replica process of `home` (its `--home` names it), zombies excluded."""
    wanted = str(home.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("status") == psutil.STATUS_ZOMBIE or "polycloud.serving" not in cmdline:
            continue
        opts = _options(cmdline)
        if opts.get("home") != wanted:
            continue
        found.append(
            ReplicaProcess(
                pid=proc.pid,
                replica_id=opts.get("replica-id", ""),
                cluster=opts.get("cluster", ""),
                service=opts.get("name", ""),
                revision=int(opts.get("revision") or 0),
                spec_hash=opts.get("spec-hash", ""),
            )
        )
    return found


def home_processes(home: Path) -> list[psutil.Process]:
    """Every live process of `home` but this one: replicas and the gateway (whose arguments name the
    home or its database) and the control plane and CLI commands (whose `POLYCLOUD_HOME` is the home)."""
    wanted = str(home.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid == os.getpid() or proc.info.get("status") == psutil.STATUS_ZOMBIE or not cmdline:
            continue
        if any(wanted in arg for arg in cmdline):
            found.append(proc)
            continue
        if "python" not in Path(cmdline[0]).name and "polycloud" not in Path(cmdline[0]).name:
            continue
        try:
            env_home = proc.environ().get("POLYCLOUD_HOME")
        except psutil.Error:
            continue
        if env_home and Path(env_home).resolve() == Path(wanted):
            found.append(proc)
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if _pid_alive(p.pid)]


def _cmdline(proc: psutil.Process) -> list[str]:
    """`proc`'s command line; empty once it has exited (or become a zombie)."""
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(
    check: Callable[[], T | None], what: str, timeout_s: float = DEADLINE_S, every_s: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy, and return it; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


# ------------------------------------------------------------------------------------------ polycloud


class CliResult(NamedTuple):
    """What one `polycloud` command did."""

    rc: int
    stdout: str
    stderr: str


class Background:
    """A `polycloud` command running in the background, its stdout read line by line as it comes."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self._lines: list[str] = []
        self._stderr = ""
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        self._stderr = self.popen.stderr.read()

    def wait_for_line(self, needle: str, timeout_s: float = CLI_TIMEOUT_S) -> bool:
        """Block until a line of stdout contains `needle` (True) or the command has ended without one."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not any(needle in line for line in self._lines):
                if self.popen.poll() is not None and not self._readers[0].is_alive():
                    return False
                if time.monotonic() > deadline:
                    pytest.fail(f"`{needle}` did not appear within {timeout_s:.0f} s: {self._lines}")
                self._changed.wait(0.05)
        return True

    def finish(self, timeout_s: float = CLI_TIMEOUT_S) -> CliResult:
        """Wait for the command to end; fail the test if it hangs."""
        try:
            rc = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.popen.args!r} did not end within {timeout_s:.0f} s")
        for reader in self._readers:
            reader.join(10)
        return CliResult(rc, "".join(self._lines), self._stderr)

    def kill(self) -> None:
        """SIGKILL the command if it still runs, and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


class Polycloud:
    """One polycloud home and the environment that selects it; runs the real CLI against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = (root / "home").resolve()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        self.env |= {
            "POLYCLOUD_HOME": str(self.home),
            "POLYCLOUD_GATEWAY_ADDR": f"127.0.0.1:{free_port()}",
            "POLYCLOUD_API_ADDR": f"127.0.0.1:{free_port()}",
            "COLUMNS": "200",  # tables wide enough not to wrap
            "NO_COLOR": "1",
        }
        self._background: list[Background] = []
        self._api: httpx.Client | None = None

    # -- running the CLI ------------------------------------------------------------------------
    def cli(self, *args: str | Path, timeout_s: float = CLI_TIMEOUT_S) -> CliResult:
        """Run `polycloud ARGS` to its end; `(rc, stdout, stderr)`."""
        command = [str(POLYCLOUD), *map(str, args)]
        try:
            done = subprocess.run(
                command,
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`polycloud {' '.join(map(str, args))}` did not end within {timeout_s:.0f} s")
        return CliResult(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str | Path, timeout_s: float = CLI_TIMEOUT_S) -> CliResult:
        """Run `polycloud ARGS` and fail the test unless it exits 0."""
        result = self.cli(*args, timeout_s=timeout_s)
        if result.rc != 0:
            pytest.fail(
                f"`polycloud {' '.join(map(str, args))}` exited {result.rc}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{self.diagnostics()}"
            )
        return result

    def start(self, *args: str | Path) -> Background:
        """Start `polycloud ARGS` in the background; it is killed at teardown if still running."""
        popen = subprocess.Popen(
            [str(POLYCLOUD), *map(str, args)],
            cwd=self.root,
            env=self.env,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        command = Background(popen)
        self._background.append(command)
        return command

    def status(self) -> dict[str, Any]:
        """`polycloud status --json`."""
        return json.loads(self.ok("status", "--json").stdout)  # type: ignore[no-any-return]

    def history(self, name: str) -> list[int]:
        """The revision numbers `polycloud history NAME` lists, in its order."""
        rows = re.findall(r"^\W*r(\d+)\s", self.ok("history", name).stdout, flags=re.MULTILINE)
        return [int(n) for n in rows]

    # -- reading the control plane directly --------------------------------------------------------
    def runinfo(self) -> dict[str, Any] | None:
        """`$POLYCLOUD_HOME/control-plane.json`, or None when there is none."""
        try:
            return json.loads((self.home / "control-plane.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def control_plane_pid(self) -> int | None:
        """The pid the run file names, if that process is alive (a zombie is not)."""
        info = self.runinfo()
        if info is None or not _pid_alive(int(info["pid"])):
            return None
        return int(info["pid"])

    def kill_control_plane(self) -> int:
        """SIGKILL the running control plane (only its own pid, as a crash would); returns its pid once
        it is dead (gone, or a zombie its parent has not reaped yet)."""
        pid = self.control_plane_pid()
        if pid is None:
            pytest.fail(f"no control plane runs for {self.home}")
        self.kill(pid)
        return pid

    def kill(self, pid: int) -> bool:
        """SIGKILL `pid` and wait until it is dead; False when it had already gone."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        eventually(lambda: not _pid_alive(pid), f"pid {pid} to die", every_s=0.02)
        return True

    def api(self) -> httpx.Client:
        """An HTTP client of the running control plane's `/api/v1`, with the admin token."""
        info = self.runinfo()
        if info is None:
            pytest.fail(f"no control plane runs for {self.home}")
        base = f"{info['api_url']}/api/v1"
        if self._api is None or str(self._api.base_url).rstrip("/") != base:
            if self._api is not None:
                self._api.close()
            token = (self.home / "admin.token").read_text().strip()
            self._api = httpx.Client(
                base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=30.0, trust_env=False
            )
        return self._api

    def api_status(self) -> dict[str, Any]:
        """`GET /api/v1/status` (the JSON of `polycloud status --json`, without starting a CLI)."""
        response = self.api().get("/status")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def revisions(self, name: str) -> list[RevisionRecord]:
        """Every recorded revision of workload `name`, read from the state store itself."""
        with Store.open(f"sqlite:///{self.home / 'state.db'}") as store:
            return store.history(name)

    def replica_processes(self) -> list[ReplicaProcess]:
        """The live replica processes of this home."""
        return replica_processes(self.home)

    def gateway_running(self) -> bool:
        """Whether a gateway process of this home (its arguments name the home's database) is alive."""
        return any("polycloud.gateway" in _cmdline(p) for p in home_processes(self.home))

    # -- checks ----------------------------------------------------------------------------------
    def eventually(self, check: Callable[[], T | None], what: str, timeout_s: float = DEADLINE_S) -> T:
        """Poll `check` until it returns something truthy and return that; fail after `timeout_s`."""
        return eventually(check, what, timeout_s)

    def problems(self, fleet: Fleet, status: dict[str, Any]) -> list[str]:
        """How the running fleet differs from exactly `fleet` (empty when it is exactly that).

        Exactly means: one live process per declared replica, no duplicate ids, the status lists the
        same replicas with the same pids, every replica is ready and runs its service's current
        revision, and every revision recorded for a declared service is complete (its content hashes
        to its recorded hash, its spec names the service and its placement names its clusters).
        """
        problems: list[str] = []
        procs = self.replica_processes()
        ids = Counter(p.replica_id for p in procs)
        problems += [f"replica id {rid} runs {n} times" for rid, n in ids.items() if n > 1]
        running = Counter((p.service, p.cluster) for p in procs)
        declared = fleet.declared()
        for key in sorted(set(running) | set(declared)):
            if running.get(key, 0) != declared.get(key, 0):
                problems.append(f"{key}: {running.get(key, 0)} processes, {declared.get(key, 0)} declared")
        listed = {
            r["id"]: (svc["name"], c["cluster"], r)
            for svc in status["services"]
            for c in svc["clusters"]
            for r in c["replicas"]
        }
        pids = {p.replica_id: p.pid for p in procs}
        if set(listed) != set(pids):
            problems.append(f"status lists {sorted(listed)}, processes are {sorted(pids)}")
        revision = {svc["name"]: svc["revision"] for svc in status["services"]}
        if set(revision) != {s.name for s in fleet.services}:
            problems.append(f"status lists services {sorted(revision)}")
        for rid, (service, _, r) in sorted(listed.items()):
            if r["state"] != "ready" or r["pid"] != pids.get(rid) or r["revision"] != revision[service]:
                problems.append(
                    f"{rid}: {r['state']}, pid {r['pid']} (process {pids.get(rid)}), "
                    f"{r['revision']} of {revision[service]}"
                )
        for p in procs:
            if p.service in revision and f"r{p.revision}" != revision[p.service]:
                problems.append(f"{p.replica_id} (pid {p.pid}) runs r{p.revision}, not {revision[p.service]}")
        for service in fleet.services:
            problems += _revision_problems(service, self.revisions(service.name))
        return problems

    def expect_exactly(self, fleet: Fleet, timeout_s: float = DEADLINE_S) -> dict[str, Any]:
        """Wait until the running fleet is exactly `fleet` (see `problems`) and still is, with the same
        processes, a moment later; fail the test with what differs after `timeout_s`. Returns the status.

        Reads the status from the API (the same JSON as `polycloud status --json`, without a CLI start).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.api_status()
            problems = self.problems(fleet, status)
            if not problems:
                pids = {p.pid for p in self.replica_processes()}
                time.sleep(SETTLE_S)
                status = self.api_status()
                problems = self.problems(fleet, status)
                if not problems and pids == {p.pid for p in self.replica_processes()}:
                    return status
                problems = problems or [f"replica processes changed within {SETTLE_S} s of converging"]
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the fleet is not exactly as declared after {timeout_s:.0f} s:\n  "
                    + "\n  ".join(problems)
                    + self.diagnostics()
                )
            time.sleep(0.2)

    def diagnostics(self) -> str:
        """The tail of the control plane's log, for failure messages."""
        log = self.home / "logs" / "control-plane.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        return "\ncontrol-plane.log (tail):\n  " + "\n  ".join(tail)

    # -- teardown --------------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop everything of this home: `polycloud down`, then SIGKILL what is left.

        Returns:
            What went wrong: a failing `down`, or processes that were still alive after it.
        """
        for background in self._background:
            background.kill()
        if self._api is not None:
            self._api.close()
        errors = []
        if self.home.exists():
            down = self.cli("down", timeout_s=120)
            if down.rc != 0:
                errors.append(f"`polycloud down` exited {down.rc}: {down.stderr.strip()}")
        left = _alive(home_processes(self.home))
        for proc in left:
            command = " ".join(_cmdline(proc))[:300]
            errors.append(f"left running after `polycloud down`: pid {proc.pid} {command}")
            proc.kill()
        psutil.wait_procs(left, timeout=10)
        return errors


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _revision_problems(service: ServiceDecl, revisions: list[RevisionRecord]) -> list[str]:
    """What is incomplete or inconsistent in a service's recorded revisions."""
    problems = []
    numbers = [r.number for r in revisions]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"{service.name}: revision numbers {numbers}")
    for r in revisions:
        where = f"{service.name} r{r.number}"
        if content_hash({"spec": r.spec, "placement": r.placement}) != r.content_hash:
            problems.append(f"{where}: its content does not hash to its recorded hash")
        if r.spec.get("metadata", {}).get("name") != service.name or "model" not in r.spec.get("spec", {}):
            problems.append(f"{where}: incomplete spec {r.spec}")
        if sorted(str(a.get("cluster")) for a in r.placement) != sorted(service.clusters):
            problems.append(f"{where}: placement {r.placement}")
    return problems


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def polycloud(tmp_path: Path) -> Iterator[Polycloud]:
    """A fresh home with its own ports; `polycloud down` and a leak check at teardown."""
    pc = Polycloud(tmp_path)
    try:
        yield pc
    finally:
        errors = pc.close()
    if errors:
        pytest.fail("teardown:\n  " + "\n  ".join(errors))


@pytest.fixture
def cli(polycloud: Polycloud) -> Callable[..., CliResult]:
    """Run `polycloud ARGS` in the test's environment: `rc, stdout, stderr = cli("status")`."""
    return polycloud.cli


@pytest.fixture
def status(polycloud: Polycloud) -> Callable[[], dict[str, Any]]:
    """`polycloud status --json` of the test's home, parsed."""
    return polycloud.status


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The iris model, copied into the test's folder."""
    return Path(shutil.copy(IRIS_MODEL, tmp_path / "iris.onnx"))


@pytest.fixture
def fleet(tmp_path: Path, model: Path) -> Fleet:
    """Two private sites (acme, borealis), two active-active services (alpha, beta), two replicas each
    per site: eight replicas."""
    clusters = ("acme", "borealis")
    services = (
        ServiceDecl("alpha", clusters, 2, {"COLOR": "blue"}),
        ServiceDecl("beta", clusters, 2, {"COLOR": "blue"}),
    )
    return Fleet(tmp_path, model, clusters, services)
