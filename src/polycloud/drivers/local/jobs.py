"""Job attempts as local processes: found by command line, ended states kept in small files.

Each attempt runs `python jobrunner.py --home H --cluster C --job J --revision R --attempt N
--exit-file F -- ARGV` in a new session. The process table is the truth about what runs (so a control
plane that crashed finds its jobs again); files under `$home/jobs/<cluster>/<job>/` say the rest:
`attempt-N.json` (pid, and why polycloud stopped it, if it did) and `attempt-N.exit` (the exit status,
written by the wrapper). `checkpoint/` next to them is the job's `POLYCLOUD_CHECKPOINT_DIR`; output of
every attempt is appended to `$home/logs/jobs/<job>.log`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from polycloud.drivers.jobs import JobLaunch, JobProcessState, JobStatus, StopReason
from polycloud.drivers.local import files, spawning
from polycloud.drivers.local.children import CHILDREN
from polycloud.drivers.local.faultstate import FaultStore
from polycloud.drivers.local.identity import LocalIdentity
from polycloud.drivers.local.processes import pid_running
from polycloud.errors import NotFoundError, PermanentError, TransientError
from polycloud.pki.workload import TOKEN_FILE

RUNNER = Path(__file__).resolve().with_name("jobrunner.py")
SPAWN_GRACE_S = 30.0
"""A record without a pid younger than this is a start in progress; older, its starter died."""
KILL_WAIT_S = 10.0
PYTHONS = frozenset({"python", "python3"})
"""argv[0] names that mean "polycloud's own interpreter" (it has numpy and friends installed)."""

_MARKED: dict[str, JobProcessState] = {
    "preempted": "preempted",
    "cancelled": "cancelled",
    "stopped": "stopped",
}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobProcess:
    """A running job wrapper and what its command line says."""

    pid: int
    create_time: float
    job: str
    revision: int
    attempt: int


def parse_runner(cmdline: list[str], home: str, cluster: str) -> dict[str, str] | None:
    """The options of a job wrapper of `home` and `cluster`; None for any other process."""
    if len(cmdline) < 2 or Path(cmdline[1]).name != RUNNER.name or "--" not in cmdline:
        return None
    head = cmdline[2 : cmdline.index("--")]
    opts = {head[i][2:]: head[i + 1] for i in range(0, len(head) - 1, 2) if head[i].startswith("--")}
    if opts.get("home") != home or opts.get("cluster") != cluster or not opts.get("job"):
        return None
    return opts


def scan_jobs(home: Path, cluster: str) -> dict[str, JobProcess]:
    """Live job wrappers of `home` and `cluster` by job name (zombies skipped, our children reaped)."""
    CHILDREN.reap()
    found: dict[str, JobProcess] = {}
    for proc in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        opts = parse_runner(info.get("cmdline") or [], str(home), cluster)
        if opts is None:
            continue
        try:
            revision, attempt = int(opts.get("revision", "0")), int(opts.get("attempt", "0"))
        except ValueError:
            continue
        found[opts["job"]] = JobProcess(
            proc.pid, info.get("create_time") or 0.0, opts["job"], revision, attempt
        )
    return found


def signal_group(proc: JobProcess, sig: signal.Signals) -> None:
    """Send `sig` to the wrapper's process group (the job and its children), if it still runs."""
    if not pid_running(proc.pid, proc.create_time):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):  # exited meanwhile
        os.killpg(proc.pid, sig)


class LocalJobs:
    """The job processes of one cluster of a home. Thread-safe; see `SupportsJobs` for the contract."""

    def __init__(self, home: Path, cluster: str, python: str, identity: LocalIdentity | None = None) -> None:
        self.home = home
        self._identity = identity or LocalIdentity(None, home, cluster)
        self.cluster = cluster
        self._python = python
        self._root = home / "jobs" / cluster
        self._faults = FaultStore(home, cluster)

    # -------------------------------------------------------------------------------- paths
    def job_dir(self, job: str) -> Path:
        spawning.check_name("job name", job)
        return self._root / job

    def checkpoint_dir(self, job: str) -> Path:
        return self.job_dir(job) / "checkpoint"

    def log(self, job: str) -> Path:
        spawning.check_name("job name", job)
        return self.home / "logs" / "jobs" / f"{job}.log"

    def token(self, job: str) -> Path:
        """The job's identity token file (`POLYCLOUD_IDENTITY_TOKEN_FILE`)."""
        return self.job_dir(job) / "identity" / TOKEN_FILE

    def _record_path(self, job: str, attempt: int) -> Path:
        return self.job_dir(job) / f"attempt-{attempt}.json"

    def _exit_path(self, job: str, attempt: int) -> Path:
        return self.job_dir(job) / f"attempt-{attempt}.exit"

    def _latest(self, job: str) -> tuple[int, dict[str, Any]] | None:
        numbers = [int(p.stem.split("-")[1]) for p in self.job_dir(job).glob("attempt-*.json")]
        if not numbers:
            return None
        number = max(numbers)
        return number, files.read_json(self._record_path(job, number)) or {}

    # ------------------------------------------------------------------------------ starting
    def start(self, launch: JobLaunch) -> JobStatus:
        """Spawn the attempt unless the job already runs here (see `SupportsJobs.start_job`)."""
        if launch.cluster != self.cluster:
            raise PermanentError(f"job {launch.job} is for cluster {launch.cluster}, not {self.cluster}")
        if not launch.command:
            raise PermanentError(f"job {launch.job} has no command")
        env = spawning.replica_env(os.environ, self._env(launch))
        with files.file_lock(self._root / ".lock"):
            if self._faults.load().down:
                raise TransientError(f"cluster {self.cluster} is down (injected fault)")
            running = scan_jobs(self.home, self.cluster).get(launch.job)
            if running is not None:
                return self._status_of_running(running)
            return self._spawn(launch, env)

    def _env(self, launch: JobLaunch) -> dict[str, str]:
        extra = dict(launch.env)
        extra |= {
            "POLYCLOUD_CHECKPOINT_DIR": str(self.checkpoint_dir(launch.job)),
            "POLYCLOUD_JOB_ATTEMPT": str(launch.attempt),
            "POLYCLOUD_JOB_NAME": launch.job,
            "POLYCLOUD_CLUSTER": self.cluster,
        }
        extra |= self._identity.issue("job", launch.job, launch.revision, self.token(launch.job))
        if launch.checkpoint_every_s is not None:
            extra["POLYCLOUD_CHECKPOINT_SECONDS"] = f"{launch.checkpoint_every_s:g}"
        return extra

    def _spawn(self, launch: JobLaunch, env: Mapping[str, str]) -> JobStatus:
        job, attempt = launch.job, launch.attempt
        self.checkpoint_dir(job).mkdir(parents=True, exist_ok=True)
        exit_path = self._exit_path(job, attempt)
        files.remove(exit_path)
        log_path = self.log(job)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = spawning.log_size(log_path)
        record: dict[str, Any] = {
            "revision": launch.revision,
            "created_at": time.time(),
            "log_offset": offset,
        }
        files.write_json(self._record_path(job, attempt), record)  # before the spawn: never a bare process
        argv = list(launch.command)
        if argv[0] in PYTHONS:
            argv[0] = self._python
        options = {
            "home": str(self.home),
            "cluster": self.cluster,
            "job": job,
            "revision": str(launch.revision),
            "attempt": str(attempt),
            "exit-file": str(exit_path),
        }
        command = [self._python, str(RUNNER)] + [x for k, v in options.items() for x in (f"--{k}", v)]
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with log_path.open("ab") as log:
            log.write(f"--- polycloud: {job} attempt {attempt} on {self.cluster} at {stamp} ---\n".encode())
            try:
                popen = subprocess.Popen(
                    [*command, "--", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env),
                    cwd=self.job_dir(job),
                    start_new_session=True,
                )
            except OSError as e:
                files.remove(self._record_path(job, attempt))
                raise PermanentError(f"cannot start job {job}: {e}") from e
        CHILDREN.add(popen, lambda code: self._note_exit(exit_path, code))
        record |= {"pid": popen.pid, "create_time": _start_time(popen.pid)}
        files.write_json(self._record_path(job, attempt), record)
        _log.info("started job %s attempt %d (pid %d)", job, attempt, popen.pid)
        return JobStatus(job, self.cluster, launch.revision, attempt, "running", pid=popen.pid)

    @staticmethod
    def _note_exit(exit_path: Path, code: int) -> None:
        """Keep the exit status of a wrapper that could not write it (killed). Never raises: it runs
        inside whichever listing reaps the child, and a job folder deleted meanwhile is no error."""
        with contextlib.suppress(OSError):
            if not exit_path.exists():
                exit_path.write_text(f"{code}\n", encoding="utf-8")

    # ------------------------------------------------------------------------------- listing
    def list(self) -> list[JobStatus]:
        """The latest attempt of every job of the cluster, running or ended."""
        running = scan_jobs(self.home, self.cluster)
        names = {p.name for p in self._root.iterdir() if p.is_dir()} if self._root.is_dir() else set()
        statuses = []
        for job in sorted(names | running.keys()):
            proc = running.get(job)
            if proc is not None:
                self._identity.refresh("job", job, proc.revision, self.token(job))
            status = self._status_of_running(proc) if proc is not None else self._ended(job)
            if status is not None:
                statuses.append(status)
        return statuses

    def _status_of_running(self, proc: JobProcess) -> JobStatus:
        record = files.read_json(self._record_path(proc.job, proc.attempt)) or {}
        state: JobProcessState = "running"
        if record.get("marker"):
            state = "stopping"
            deadline = record.get("deadline")
            if isinstance(deadline, float | int) and time.time() > deadline + 1.0:
                signal_group(proc, signal.SIGKILL)  # whoever stopped it did not live to finish
        return JobStatus(proc.job, self.cluster, proc.revision, proc.attempt, state, pid=proc.pid)

    def _ended(self, job: str) -> JobStatus | None:
        latest = self._latest(job)
        if latest is None:
            return None
        attempt, record = latest
        revision, pid = int(record.get("revision", 0)), record.get("pid")
        code = _read_code(self._exit_path(job, attempt))
        if pid is None and code is None and time.time() - float(record.get("created_at", 0)) < SPAWN_GRACE_S:
            return JobStatus(job, self.cluster, revision, attempt, "running")  # a start in progress
        if isinstance(pid, int) and code is None and pid_running(pid, record.get("create_time")):
            return JobStatus(job, self.cluster, revision, attempt, "stopping", pid=pid)  # exiting
        state, message = _ending(record.get("marker"), code)
        if state == "failed":
            tail = spawning.last_log_line(self.log(job), int(record.get("log_offset", 0)))
            message = f"{message}: {tail}" if tail else message
        return JobStatus(job, self.cluster, revision, attempt, state, pid, code, message)

    # ------------------------------------------------------------------------------ stopping
    def stop(self, job: str, grace_s: float, why: StopReason | str) -> bool:
        """Mark the running attempt as ended by `why`, SIGTERM it, SIGKILL after `grace_s`.

        Returns:
            False when no process of `job` runs here.
        """
        if not spawning.is_safe_name(job):
            return False
        grace_s = max(0.0, grace_s)
        with files.file_lock(self._root / ".lock"):
            proc = scan_jobs(self.home, self.cluster).get(job)
            if proc is None:
                return False
            path = self._record_path(job, proc.attempt)
            record = files.read_json(path) or {}
            if not record.get("marker"):  # the first reason wins: a preempted job is not re-labelled
                record |= {"marker": why, "deadline": time.time() + grace_s}
                files.write_json(path, record)
        signal_group(proc, signal.SIGKILL if grace_s == 0 else signal.SIGTERM)
        if grace_s > 0:
            threading.Thread(
                target=_kill_after, args=(proc, grace_s), name=f"polycloud-stop-job-{job}", daemon=True
            ).start()
        return True

    def preempt(self, job: str, grace_s: float) -> None:
        if not self.stop(job, grace_s, "preempted"):
            raise NotFoundError(f"job {job!r} does not run in cluster {self.cluster}")


def _kill_after(proc: JobProcess, grace_s: float) -> None:
    """SIGKILL the job's group unless it exited within `grace_s` (a spot reclaim does not wait)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_running(proc.pid, proc.create_time):
            return
        time.sleep(0.02)
    signal_group(proc, signal.SIGKILL)


def _ending(marker: object, code: int | None) -> tuple[JobProcessState, str]:
    """How an attempt ended, from polycloud's marker (if it stopped it) and the exit status."""
    if isinstance(marker, str) and marker in _MARKED:
        return _MARKED[marker], f"{marker} (exit status {code})"
    if code == 0:
        return "succeeded", "exit status 0"
    if code is None:
        return "failed", "the job process vanished (exit status unknown)"
    if code < 0:
        return "failed", f"killed by signal {-code}"
    return "failed", f"exit status {code}"


def _read_code(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class LocalJobsMixin:
    """`SupportsJobs` for `LocalDriver`: the driver sets `_jobs` in its constructor."""

    _jobs: LocalJobs

    def start_job(self, launch: JobLaunch) -> JobStatus:
        """See `SupportsJobs.start_job`; argv[0] `python`/`python3` means polycloud's interpreter."""
        return self._jobs.start(launch)

    def list_jobs(self) -> list[JobStatus]:
        """See `SupportsJobs.list_jobs`."""
        return self._jobs.list()

    def stop_job(self, job: str, grace_s: float = 10.0, why: StopReason = "stopped") -> None:
        """See `SupportsJobs.stop_job`."""
        self._jobs.stop(job, grace_s, why)

    def preempt(self, job: str, grace_s: float = 5.0) -> None:
        """See `SupportsJobs.preempt`."""
        self._jobs.preempt(job, grace_s)

    def checkpoint_dir(self, job: str) -> Path:
        """See `SupportsJobs.checkpoint_dir`."""
        return self._jobs.checkpoint_dir(job)

    def job_log(self, job: str) -> Path:
        """See `SupportsJobs.job_log`."""
        return self._jobs.log(job)
