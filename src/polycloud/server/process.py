"""Run a control plane for one home: store, reconciler thread, gateway child, API server (blocking)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from polycloud.api.app import create_app
from polycloud.api.context import ApiContext
from polycloud.catalog import Catalog, load_catalog
from polycloud.controller.accounting import Accountant
from polycloud.controller.desired import fingerprint_key
from polycloud.controller.jobs import JobController
from polycloud.controller.reconciler import Reconciler
from polycloud.drivers.base import ClusterDriver, Fault, SupportsFaults
from polycloud.drivers.registry import create_driver
from polycloud.errors import NotFoundError, PermanentError, PolycloudError, UserError
from polycloud.obs.observer import start_observer
from polycloud.placement.sites import Point
from polycloud.secrets import LocalKeyWrapper, Vault
from polycloud.server.children import GatewayProcess
from polycloud.server.declared import StoreSpecs
from polycloud.server.runfile import RunInfo, exclusive, remove_runinfo, write_runinfo, write_token
from polycloud.services.applying import FleetService
from polycloud.services.inspecting import Endpoints
from polycloud.settings import Settings
from polycloud.state import Store

STOP_ALL_TIMEOUT_S = 20.0
JOB_STOP_TIMEOUT_S = 15.0
GATEWAY_START_TIMEOUT_S = 15.0


def origin_point(region: str, catalog: Catalog) -> Point:
    """The gateway's standing point, from `provider/region`."""
    provider, _, name = region.partition("/")
    found = catalog.region(provider, name)
    if found is None:
        raise UserError(f"POLYCLOUD_GATEWAY_REGION {region!r} is not a catalog region (provider/region)")
    return Point(found.lat, found.lon, (provider, name))


def bind(addr: str, *, fallback_to_free: bool) -> socket.socket:
    """A listening socket on `host:port`; with `fallback_to_free`, any free port when that one is taken."""
    host, _, port = addr.rpartition(":")
    # IPPROTO_TCP explicitly: with protocol 0, asyncio leaves TCP_NODELAY off on accepted connections
    # and every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host or "127.0.0.1", int(port)))
    except OSError as e:
        if not fallback_to_free:
            sock.close()
            raise UserError(f"cannot listen on {addr}: {e.strerror}") from e
        sock.bind((host or "127.0.0.1", 0))
    sock.listen(512)
    return sock


def wait_listening(addr: str, timeout_s: float) -> bool:
    """Wait until something accepts connections at `addr` (the gateway child), at most `timeout_s`."""
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host or "127.0.0.1", int(port))) == 0:
                return True
        time.sleep(0.05)
    return False


def free_addr(addr: str) -> None:
    """Fail early and clearly when the gateway's address is taken."""
    bind(addr, fallback_to_free=False).close()


class ControlPlane:
    """One control plane. `serve()` blocks until shutdown (SIGINT/SIGTERM or the API's /shutdown)."""

    def __init__(self, settings: Settings, *, on_ready: Callable[[RunInfo, Path | None], None]) -> None:
        self.settings = settings
        self.home = settings.resolved_home
        self.on_ready = on_ready
        self._server: uvicorn.Server | None = None
        self._stop_replicas = False

    def serve(self) -> None:
        with exclusive(self.home):
            self._serve_locked()

    def _serve_locked(self) -> None:
        settings, home = self.settings, self.home
        tls = settings.tls  # a half-configured TLS fails here, before anything starts
        scheme = "https" if tls else "http"
        store = Store.open(settings.resolved_database_url)
        catalog = load_catalog()
        token_path = self._first_token(store)
        master_key = settings.master_key.get_secret_value() if settings.master_key else None
        vault = Vault(store, LocalKeyWrapper.load(master_key, home))
        reconciler = Reconciler(
            store=store,
            catalog=catalog,
            home=home,
            origin=origin_point(settings.gateway_region, catalog),
            secrets=vault.lookup,
            env_key=fingerprint_key(home),
            make_driver=lambda kind, cluster, h: create_driver(kind, cluster, h, StoreSpecs(store)),
        )
        jobs = JobController(store, catalog, home, reconciler.make_driver, secrets=reconciler.secrets)
        free_addr(settings.gateway_addr)
        gateway = GatewayProcess(
            addr=settings.gateway_addr,
            database_url=settings.resolved_database_url,
            region=settings.gateway_region,
            log=settings.logs_dir / "gateway.log",
        )
        api_sock = bind(settings.api_addr, fallback_to_free=True)
        host, port = api_sock.getsockname()[:2]
        endpoints = Endpoints(
            api_url=f"{scheme}://{host}:{port}", gateway_url=f"{scheme}://{settings.gateway_addr}"
        )
        context = ApiContext(
            store=store,
            fleet=FleetService(store, catalog, on_change=reconciler.wake),
            endpoints=endpoints,
            wake=reconciler.wake,
            inject_fault=lambda cluster, fault: self._fault(reconciler, cluster, fault),
            shutdown=self.request_shutdown,
        )
        app = create_app(context)
        app.state.vault = vault
        app.state.jobs = jobs  # api/jobs.py
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,  # a half-open TLS handshake must not hold `down` for 30 s
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        app.state.feed.stopping = lambda: server.should_exit  # open dashboard streams end at once
        app.state.feed.start()
        loop = threading.Thread(target=reconciler.run, name="reconciler", daemon=True)
        loop.start()
        job_loop = threading.Thread(target=jobs.run, name="jobs", daemon=True)
        job_loop.start()
        observer, observer_loop = start_observer(
            store, webhook_url=settings.alert_webhook, probe_every_s=settings.probe_interval_s
        )
        app.state.registries = [reconciler.metrics.registry, observer.metrics.registry]  # GET /metrics
        accountant = Accountant(store, catalog)  # the cost ledger, off the request path
        accounting = threading.Thread(target=accountant.run, name="accountant", daemon=True)
        accounting.start()
        gateway.start()
        wait_listening(settings.gateway_addr, GATEWAY_START_TIMEOUT_S)
        info = RunInfo(pid=os.getpid(), api_url=endpoints.api_url, gateway_url=endpoints.gateway_url)
        write_runinfo(home, info)
        self.on_ready(info, token_path)
        try:
            self._server.run(sockets=[api_sock])
        finally:
            app.state.feed.close()
            accountant.stop()
            accounting.join(timeout=10)
            reconciler.stop()
            loop.join(timeout=10)
            stop_jobs(jobs, job_loop, stop_running=self._stop_replicas)
            observer.stop()
            observer_loop.join(timeout=10)
            observer.close()
            gateway.stop()
            if self._stop_replicas:
                stop_everything(reconciler)
            reconciler.close()
            remove_runinfo(home)
            store.close()

    def request_shutdown(self, stop_replicas: bool = True) -> None:
        self._stop_replicas = stop_replicas
        if self._server is not None:
            self._server.should_exit = True

    def _first_token(self, store: Store) -> Path | None:
        """On the first start of a home, create an admin token and keep it in a 0600 file."""
        if store.tokens():
            return None
        token, _ = store.create_token(name="admin", role="admin", project=None, expires_at=None)
        return write_token(self.home, token)

    @staticmethod
    def _fault(reconciler: Reconciler, cluster: str, fault: Fault | None) -> None:
        driver = reconciler.driver(cluster)
        if driver is None:
            raise NotFoundError(f"no running driver for cluster {cluster!r}")
        if not isinstance(driver, SupportsFaults):
            raise PermanentError(f"the driver of cluster {cluster} cannot inject faults")
        if fault is None:
            driver.clear_faults()
        else:
            driver.inject(fault)
        reconciler.wake()


def stop_jobs(jobs: JobController, loop: threading.Thread, *, stop_running: bool) -> None:
    """Stop the job controller; with `stop_running`, its jobs too (they resume at the next start)."""
    jobs.stop()
    loop.join(timeout=10)
    try:
        if stop_running:
            jobs.stop_jobs(JOB_STOP_TIMEOUT_S)
    except PolycloudError:
        pass  # shutting down regardless; the next control plane adopts or restarts what is left
    finally:
        jobs.close()


def stop_everything(reconciler: Reconciler) -> None:
    """Stop every replica every driver reports, and wait until none is left (bounded)."""
    drivers: list[ClusterDriver] = reconciler.drivers()
    deadline = time.monotonic() + STOP_ALL_TIMEOUT_S
    while time.monotonic() < deadline:
        left = [(d, r.id) for d in drivers for r in d.list_replicas()]
        if not left:
            return
        for driver, replica_id in left:
            driver.stop_replica(replica_id, grace_s=5.0)
        time.sleep(0.2)
