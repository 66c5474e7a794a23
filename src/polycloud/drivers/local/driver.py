"""`LocalDriver`: a cluster whose replicas are model-server processes on this machine.

Processes are the truth: every call scans the process table for this home's and cluster's replica
command lines, so replicas started by a control plane that crashed are found and adopted, and two
driver objects (or two processes) on one home see the same fleet. Sidecar records
(`drivers.local.records`) add what a command line cannot say; fault state lives in a shared file
(`drivers.local.faultstate`).

Replica states: `starting` until `GET /v2/health/ready` answers 200 (then cached per process),
`ready`, `stopping` after `stop_replica` until the process has exited, and `failed` once the process
exited on its own or was killed by a fault, until `stop_replica` acknowledges it.

A `freeze` fault stops every replica process of the cluster with SIGSTOP: its sockets stay open, the
kernel still accepts connections and requests, nothing answers — a black hole for the gateway to find
out by itself. The processes still run, so a frozen replica keeps the state it had (a ready one stays
ready, with the message "frozen") and is neither failed nor replaced. A replica started while the
cluster is frozen is stopped as soon as it is spawned (it stays `starting`: in a black-holed cluster a
new replica is unreachable too), and `clear_faults` resumes them all with SIGCONT. A replica stopped
while frozen is resumed right after its SIGTERM, so that it can exit gracefully rather than wait for
its SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from polycloud.drivers.base import Fault, ReplicaSpec, ReplicaState, ReplicaStatus
from polycloud.drivers.local import probing, spawning
from polycloud.drivers.local.children import CHILDREN
from polycloud.drivers.local.faulting import sync_faults
from polycloud.drivers.local.faultstate import FaultState, FaultStore
from polycloud.drivers.local.identity import LocalIdentity
from polycloud.drivers.local.jobs import LocalJobs, LocalJobsMixin
from polycloud.drivers.local.processes import (
    ReplicaProcess,
    pid_running,
    scan,
    send,
    start_time,
    wait_gone,
)
from polycloud.drivers.local.records import RecordStore, ReplicaRecord
from polycloud.drivers.local.reporting import failure_message, process_status, record_status
from polycloud.errors import NotFoundError, PermanentError, TransientError, UserError
from polycloud.pki import identities
from polycloud.pki.contexts import FleetTls, TlsFiles
from polycloud.pki.workload import WorkloadTokens

SPAWN_GRACE_S = 30.0
"""A record without a pid younger than this is a spawn in progress; older, the spawner died."""
KILL_WAIT_S = 10.0
"""How long a stop waits for a SIGKILLed process to disappear."""
MAX_FAULT_DELAY_MS = 600_000.0
"""The largest injected latency the model server accepts (ten minutes)."""
FROZEN = "frozen (injected fault): stopped with SIGSTOP, answers nothing until the fault is cleared"

_log = logging.getLogger(__name__)
REPLICA_HOSTS = ("127.0.0.1", "localhost")
"""The names a local replica's certificate is valid for (it listens on 127.0.0.1)."""
RENEW_CHECK_S = 5.0
"""How often the driver looks for replica certificates due for renewal."""


class LocalDriver(LocalJobsMixin):
    """Runs one cluster's replicas as local processes of `python -m polycloud.serving`.

    Thread-safe: the reconciler and API threads may share one object. Implements `ClusterDriver`,
    `SupportsFaults` and `SupportsJobs`.
    """

    def __init__(
        self,
        cluster: str,
        home: Path,
        *,
        python: str = sys.executable,
        tls: FleetTls | None = None,
        identity: WorkloadTokens | None = None,
    ) -> None:
        """Create a driver; cheap, starts nothing.

        Args:
            cluster: The cluster's name.
            home: The polycloud home (`$POLYCLOUD_HOME`); replicas, records and logs live under it.
            python: The interpreter that runs replicas.
            tls: The fleet's mutual TLS: replicas then get certificates (renewed past half their life)
                and accept only fleet clients; None: plain HTTP.
            identity: The workload issuer: replicas and jobs then get identity token files, renewed
                past half their life; None: no tokens.
        """
        spawning.check_name("cluster name", cluster)
        self.cluster = cluster
        self.home = home.expanduser().resolve()
        self._python = python
        self._records = RecordStore(self.home, cluster)
        self._faults = FaultStore(self.home, cluster)
        self._identity = LocalIdentity(identity, self.home, cluster)
        self._jobs = LocalJobs(self.home, cluster, python, self._identity)  # drivers.local.jobs
        self._lock = threading.Lock()
        self._ready: set[tuple[int, float]] = set()  # guarded by _lock
        self._tls = tls
        self._scheme = "https" if tls is not None else "http"
        self._http = probing.new_client(tls.client_context() if tls is not None else None)
        self._renewed_at = time.monotonic()

    # ----------------------------------------------------------------------------------- listing

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every replica of the cluster: running processes plus exited ones not yet stopped.

        Probes the readiness of `starting` replicas (one short timeout for all) and sends the injected
        faults to replicas that have not acknowledged the current ones; a replica is reported `ready`
        only once it answers its readiness probe and has acknowledged them.
        """
        records = self._records.load_all()
        running = self._running()
        self._renew(running)
        statuses: dict[str, ReplicaStatus] = {}
        to_probe: list[ReplicaProcess] = []
        for rid in sorted(records.keys() | running.keys()):
            proc = running.get(rid)
            if proc is None:
                status = self._exited(self._records.get(rid))  # fresh: a stop may have just begun
            else:
                status = self._alive(proc, records.get(rid) or self._records.get(rid))
                if status.state == "starting":
                    to_probe.append(proc)
            if status is not None:
                statuses[rid] = status
        faults = self._faults.load()
        was_ready = [p for p in running.values() if statuses[p.replica_id].state == "ready"]
        answering = self._probe(to_probe, records)
        # Ready means serving *with* the faults in force: a replica that missed them stays starting.
        # (Frozen replicas answer nothing: what they missed reaches them at the first listing after.)
        missed = (
            set()
            if faults.frozen
            else sync_faults(self._http, self._records, was_ready + answering, faults, only_changed=True)
        )
        now_ready = [p for p in answering if p.replica_id not in missed]
        with self._lock:
            self._ready.update(p.key for p in now_ready)
        for proc in now_ready:
            statuses[proc.replica_id] = replace(statuses[proc.replica_id], state="ready")
        if faults.frozen:
            for rid in running:
                if statuses[rid].state in ("starting", "ready"):
                    statuses[rid] = replace(statuses[rid], message=FROZEN)
        return list(statuses.values())

    def _running(self) -> dict[str, ReplicaProcess]:
        """Live replica processes of the cluster by id (the oldest one when an id runs twice)."""
        found: dict[str, ReplicaProcess] = {}
        for proc in scan(self.home, self.cluster):
            found.setdefault(proc.replica_id, proc)
        with self._lock:
            self._ready &= {p.key for p in found.values()}
        return found

    def _alive(self, proc: ReplicaProcess, record: ReplicaRecord | None) -> ReplicaStatus:
        """The status of a running replica process."""
        state: ReplicaState
        if record is not None and record.stopping:
            if record.stop_deadline is not None and time.time() > record.stop_deadline + 1.0:
                _log.warning("replica %s outlived its stop deadline: SIGKILL", proc.replica_id)
                send(proc, signal.SIGKILL)  # whoever stopped it did not live to finish the job
            state = "stopping"
        else:
            with self._lock:
                state = "ready" if proc.key in self._ready else "starting"
        return process_status(proc, record, state)

    def _exited(self, record: ReplicaRecord | None) -> ReplicaStatus | None:
        """The status of a record whose process is not running; None when it is not to be listed."""
        if record is None:
            return None
        if record.pid is not None and pid_running(record.pid, record.create_time):
            # Exiting: its command line has left the process table, the process not yet.
            state: ReplicaState = "stopping" if record.stopping else "failed"
            return record_status(record, state, pid=record.pid, message="exiting")
        if record.stopping:
            self._records.delete_if(record.id, lambda r: r.stopping and r.pid == record.pid)
            return None
        if record.pid is None:
            if time.time() - record.created_at < SPAWN_GRACE_S:
                return record_status(record, "starting", endpoint=f"{self._scheme}://127.0.0.1:{record.port}")
            return record_status(record, "failed", message="the replica process was never started")
        ended = self._records.exit_of(record.id, record.pid)
        message = failure_message(ended, self._log_path(record.id), record.log_offset)
        return record_status(record, "failed", pid=record.pid, message=message)

    def _issue(self, spec: ReplicaSpec) -> Path | None:
        """Give `spec`'s replica a fresh certificate; its folder (None without mutual TLS)."""
        if self._tls is None:
            return None
        folder = self._tls_folder(spec.id)
        self._tls.replica_files(identities.replica(None, spec.service, self.cluster), REPLICA_HOSTS, folder)
        return folder

    def _tls_folder(self, replica_id: str) -> Path:
        return self.home / "tls" / self.cluster / replica_id

    def _renew(self, running: dict[str, ReplicaProcess]) -> None:
        """Renew replica certificates and identity tokens past half their life (each replica reloads
        its files), and the server's own certificate."""
        if time.monotonic() - self._renewed_at < RENEW_CHECK_S:
            return
        self._renewed_at = time.monotonic()
        if self._identity.tokens is not None:
            for proc in running.values():
                path = self._identity.replica_token(proc.replica_id)
                self._identity.refresh("service", proc.service, proc.revision, path)
            self._identity.forget_replicas(set(running) | set(self._records.load_all()))
        if self._tls is None:
            return
        bundle = self._tls.trust_bundle()
        for proc in running.values():
            files = TlsFiles(self._tls_folder(proc.replica_id))
            try:
                certificate, trusted = files.cert.read_text(), files.ca.read_text()
            except OSError:
                continue  # not one of ours (started without TLS)
            if self._tls.due(certificate):
                identity = identities.replica(None, proc.service, self.cluster)
                self._tls.replica_files(identity, REPLICA_HOSTS, files.folder)
            elif trusted != bundle:
                files.write_bundle(bundle)  # a new CA: trusted before it signs anything
        self._tls.client_context()  # renews the server's own certificate in place when due

    def _probe(self, procs: list[ReplicaProcess], records: dict[str, ReplicaRecord]) -> list[ReplicaProcess]:
        """The processes of `procs` whose readiness probe answers 200 (probed all at once)."""
        targets = []
        for proc in procs:
            record = records.get(proc.replica_id)
            extra = record.applied_delay_ms if record is not None else 0.0
            targets.append((proc.endpoint or "", proc.delay_ms + extra))  # health answers are delayed too
        flags = probing.ready_flags(self._http, targets)
        return [p for p, ok in zip(procs, flags, strict=True) if ok and p.endpoint]

    # ---------------------------------------------------------------------------------- changing

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        """Spawn `spec` unless a process with its id runs already; returns at once (`starting`).

        Raises:
            TransientError: The cluster is down (injected fault) or no port is free.
            PermanentError: The spec cannot be started here (wrong cluster, invalid id, bad env).
        """
        spawning.check_name("replica id", spec.id)
        if spec.cluster != self.cluster:
            raise PermanentError(f"replica {spec.id} is for cluster {spec.cluster}, not {self.cluster}")
        env = spawning.replica_env(os.environ, spec.env)
        with self._records.transaction() as txn:  # serialises starts across threads and processes
            faults = self._faults.load()
            if faults.down:
                raise TransientError(f"cluster {self.cluster} is down (injected fault)")
            for proc in scan(self.home, self.cluster):
                if proc.replica_id == spec.id:
                    return self._alive(proc, txn.get(spec.id))
            log_path = self._log_path(spec.id)
            listener = spawning.bind_listener()
            try:
                record = ReplicaRecord(
                    id=spec.id,
                    service=spec.service,
                    cluster=self.cluster,
                    revision=spec.revision,
                    role=spec.role,
                    spec_hash=spec.spec_hash,
                    port=listener.getsockname()[1],
                    base_delay_ms=spec.delay_ms,
                    created_at=time.time(),
                    log_offset=spawning.log_size(log_path),
                )
                txn.put(record)  # before the spawn: a listing never sees a replica without metadata
                command = spawning.replica_command(
                    self._python,
                    spec,
                    self.home,
                    port=record.port,
                    fd=listener.fileno(),
                    tls_dir=self._issue(spec),
                )
                try:  # the token after the record: a listing never removes it as a stranger's
                    token = self._identity.replica_token(spec.id)
                    env |= self._identity.issue("service", spec.service, spec.revision, token)
                    popen = spawning.spawn(command, env, log_path, listener, cwd=self.home)
                except PermanentError:
                    txn.delete(spec.id)
                    raise
            finally:
                listener.close()
            _log.info("started replica %s (pid %d, port %d)", spec.id, popen.pid, record.port)
            CHILDREN.add(popen, partial(self._records.note_exit, spec.id, popen.pid))
            if faults.frozen:  # inside the transaction: a freeze or a clear sees it spawned, or not yet
                _log.info(
                    "replica %s starts frozen: cluster %s is frozen (injected fault)", spec.id, self.cluster
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGSTOP)
            record = replace(record, pid=popen.pid, create_time=start_time(popen.pid))
            txn.put(record)
        return record_status(
            record, "starting", endpoint=f"{self._scheme}://127.0.0.1:{record.port}", pid=popen.pid
        )

    def stop_replica(self, replica_id: str, grace_s: float = 10.0) -> None:
        """SIGTERM the replica now and SIGKILL it after `grace_s` (from a background thread).

        Returns quickly; never raises because the replica is gone. Forgets an exited replica's
        failure, which is how the reconciler acknowledges a crash.
        """
        if not spawning.is_safe_name(replica_id):
            return  # such a replica cannot exist
        grace_s = max(0.0, grace_s)
        with self._records.transaction() as txn:
            record = txn.get(replica_id)
            procs = [p for p in scan(self.home, self.cluster) if p.replica_id == replica_id]
            if not procs:
                txn.delete(replica_id)
                return
            if record is not None:
                deadline = time.time() + grace_s
                if record.stopping and record.stop_deadline is not None:
                    deadline = min(deadline, record.stop_deadline)  # a second stop never extends the first
                txn.put(replace(record, stopping=True, stop_deadline=deadline))
        first = signal.SIGKILL if grace_s == 0 else signal.SIGTERM
        thaw = first == signal.SIGTERM and self._faults.load().frozen
        for proc in procs:
            send(proc, first)
            if thaw:  # a stopped process would only take its SIGTERM once resumed
                send(proc, signal.SIGCONT)
        pids = {p.pid for p in procs}
        threading.Thread(
            target=self._finish_stop,
            args=(replica_id, procs, pids, grace_s),
            name=f"polycloud-stop-{replica_id}",
            daemon=True,
        ).start()

    def _finish_stop(
        self, replica_id: str, procs: list[ReplicaProcess], pids: set[int], grace_s: float
    ) -> None:
        """Wait out the grace period, SIGKILL what is left, then forget the record."""
        alive = wait_gone(procs, grace_s)
        for proc in alive:
            _log.info("replica %s still runs %.1fs after SIGTERM: SIGKILL", replica_id, grace_s)
            send(proc, signal.SIGKILL)
        wait_gone(alive, KILL_WAIT_S)
        self._records.delete_if(replica_id, lambda r: r.stopping and r.pid in pids)

    def close(self) -> None:
        """Release the HTTP client; replicas keep running."""
        self._http.close()

    # ------------------------------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> None:
        """Apply `fault` (see `Fault`); latency and error rates also reach replicas started later.

        `latency` and `errors` replace the cluster's previous injected value of the same kind; they are
        sent to the running replicas now (a replica that does not answer in time gets them before it
        is next reported ready).

        Raises:
            NotFoundError: `kill` names no running replica of this cluster.
            UserError: A fault kind or value this driver cannot apply.
        """
        if fault.kind == "kill":
            self._kill(fault.replica_id)
        elif fault.kind == "down":
            self._faults.update(lambda s: replace(s, down=True))
            with self._records.transaction():  # a start in progress either finishes first or sees `down`
                procs = scan(self.home, self.cluster)
            self._kill_now(procs, "killed: cluster down (injected fault)")
        elif fault.kind == "freeze":
            self._faults.update(lambda s: replace(s, frozen=True))
            with self._records.transaction():  # a start in progress either finishes first or sees it
                procs = scan(self.home, self.cluster)
            for proc in procs:
                send(proc, signal.SIGSTOP)
            _log.info("froze %d replica processes of cluster %s (injected fault)", len(procs), self.cluster)
        elif fault.kind == "latency":
            if not 0 <= fault.delay_ms <= MAX_FAULT_DELAY_MS:
                raise UserError(
                    f"latency fault needs 0 <= delay_ms <= {MAX_FAULT_DELAY_MS:.0f}, got {fault.delay_ms}"
                )
            state = self._faults.update(lambda s: replace(s, delay_ms=fault.delay_ms))
            if not state.frozen:  # frozen replicas get it at the first listing after the thaw
                sync_faults(self._http, self._records, self._live(), state)
        elif fault.kind == "errors":
            if not 0 <= fault.error_rate <= 1:
                raise UserError(f"errors fault needs 0 <= error_rate <= 1, got {fault.error_rate}")
            state = self._faults.update(lambda s: replace(s, error_rate=fault.error_rate))
            if not state.frozen:
                sync_faults(self._http, self._records, self._live(), state)
        else:
            raise UserError(f"unknown fault kind {fault.kind!r}")

    def clear_faults(self) -> None:
        """Lift `down`, resume frozen replicas, and return every running replica to its own delay and
        no injected errors."""
        was = self._faults.load()
        self._faults.clear()
        if was.frozen:
            with self._records.transaction():  # after any start that saw the cluster frozen
                procs = scan(self.home, self.cluster)
            for proc in procs:
                send(proc, signal.SIGCONT)
            _log.info("resumed %d replica processes of cluster %s", len(procs), self.cluster)
        sync_faults(self._http, self._records, self._live(), FaultState())

    def _kill(self, replica_id: str | None) -> None:
        procs = [p for p in scan(self.home, self.cluster) if p.replica_id == replica_id]
        if replica_id is None or not procs:
            raise NotFoundError(f"no running replica {replica_id!r} in cluster {self.cluster}")
        self._kill_now(procs, "killed by injected fault (SIGKILL)")

    def _kill_now(self, procs: list[ReplicaProcess], note: str) -> None:
        """SIGKILL `procs`, noting why, and wait (briefly: SIGKILL is quick) until they are gone."""
        for proc in procs:
            self._records.note_exit(proc.replica_id, proc.pid, -signal.SIGKILL, note)
            send(proc, signal.SIGKILL)
        wait_gone(procs, KILL_WAIT_S)

    def _live(self) -> list[ReplicaProcess]:
        return list(self._running().values())

    def _log_path(self, replica_id: str) -> Path:
        return self.home / "logs" / f"{replica_id}.log"
