"""`Server`: one control-plane server — the whole API, plus the loops that act, gated on the leader lease.

Every server serves the API. Only the holder of the leader lease (`Leadership`) runs the passes of the
reconciler, the job controller, the observer and the accountant, and their writes go through a store
fenced by the lease's epoch. The API's writes (apply, tokens, secrets, job cancels) are the users'
and are not fenced: any server takes them. The composition roots (`process.ControlPlane` for `up`,
`standalone.StandaloneServer` for `polycloud server`) add what differs: the home lock, the gateway, run files.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from polycloud.api.app import create_app
from polycloud.api.hosts import allowed_hosts
from polycloud.catalog import Catalog, load_catalog
from polycloud.controller.accounting import Accountant
from polycloud.controller.jobs import JobController
from polycloud.controller.lineage import LineageRecorder
from polycloud.controller.reconciler import Reconciler
from polycloud.drivers.base import ClusterDriver
from polycloud.drivers.registry import create_driver
from polycloud.errors import PolycloudError, UserError
from polycloud.loops import Loop
from polycloud.obs.observer import Observer, start_observer
from polycloud.placement.sites import Point
from polycloud.secrets import Vault
from polycloud.server.certs import FleetAuthority, ServerCredentials
from polycloud.server.declared import StoreSpecs
from polycloud.server.keys import fleet_keys
from polycloud.server.leadership import Leadership, LeaseTiming
from polycloud.server.workload import WorkloadIssuer
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.inspecting import Endpoints
from polycloud.services.lineage import trained_on
from polycloud.services.oidc import OidcConfig, OidcVerifier
from polycloud.settings import Settings
from polycloud.state import MemberInput, Store

JOB_STOP_TIMEOUT_S = 15.0
STOP_ALL_TIMEOUT_S = 20.0
GRANT_EVERY_S = 1.0
"""How often the leader signs gateways' certificate requests."""


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


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The verifier of the company's OpenID Provider, when POLYCLOUD_OIDC_ISSUER is set.

    Raises:
        UserError: The issuer is set without its audience (the client id tokens must be issued to).
    """
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_audience:
        raise UserError("POLYCLOUD_OIDC_ISSUER needs POLYCLOUD_OIDC_AUDIENCE (the client id)")
    secret = settings.oidc_client_secret
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        username_claim=settings.oidc_username_claim,
        groups_claim=settings.oidc_groups_claim,
        cooldown_s=settings.oidc_jwks_cooldown_s,
        client_secret=secret.get_secret_value() if secret else None,
    )
    return OidcVerifier(config)


def is_shared(database_url: str) -> bool:
    """Whether the database can be shared by servers on several machines (PostgreSQL)."""
    return database_url.startswith("postgresql")


@dataclass
class Server:
    """The parts of one server, built by `Server.build`; `start_loops`, `serve`, then `close`."""

    settings: Settings
    store: Store
    leadership: Leadership
    reconciler: Reconciler
    jobs: JobController
    api_jobs: JobController
    accountant: Accountant
    app: FastAPI
    endpoints: Endpoints
    api_sock: socket.socket
    observer: Observer | None = None
    credentials: ServerCredentials | None = None
    """The fleet's mutual TLS as this server holds it; None with POLYCLOUD_FLEET_MTLS=false."""
    grants: Loop | None = None
    lineage: LineageRecorder | None = None
    uvicorn_server: uvicorn.Server | None = None
    stop_replicas: bool = False

    @classmethod
    def build(cls, settings: Settings, store: Store, *, server_id: str | None = None) -> Server:
        """Assemble a server on `store` (already migrated); nothing runs until `start_loops`/`serve`.

        Raises:
            UserError: Bad settings (TLS, region, keys) or an API address that cannot be bound.
        """
        home = settings.resolved_home
        tls = settings.tls  # a half-configured TLS fails here, before anything starts
        catalog = load_catalog()
        keys = fleet_keys(
            settings.master_key.get_secret_value() if settings.master_key else None,
            home,
            store,
            shared=is_shared(settings.resolved_database_url),
        )
        vault = Vault(store, keys.wrapper)
        api_sock = bind(settings.api_addr, fallback_to_free=True)
        host, port = api_sock.getsockname()[:2]
        scheme = "https" if tls else "http"
        endpoints = Endpoints(
            api_url=f"{scheme}://{host}:{port}",
            gateway_url=f"{scheme}://{settings.gateway_addr}",
            host=socket.gethostname(),
        )
        me = MemberInput(
            id=server_id or settings.server_id or f"srv-{socket.gethostname()}-{os.getpid()}",
            role="server",
            url=endpoints.api_url,
            host=endpoints.host,
            pid=os.getpid(),
        )
        leadership = Leadership(store, me, timing=LeaseTiming(lease_s=settings.lease_s))
        leader_store = store.fenced(leadership.fence)  # every write of the loops that act
        publish = timedelta(seconds=settings.ca_publish_s)
        authority = FleetAuthority(store, keys.wrapper, publish=publish) if settings.fleet_mtls else None
        credentials = (
            ServerCredentials(authority, me.id, home / "tls" / "servers" / me.id) if authority else None
        )

        issuer = WorkloadIssuer(
            store,
            keys.wrapper,
            settings.workload_issuer or endpoints.api_url,
            ttl_s=settings.workload_token_ttl_s,
            publish_s=settings.workload_key_publish_s,
        )

        def make_driver(kind: str, cluster: str, at: Path) -> ClusterDriver:
            return create_driver(kind, cluster, at, StoreSpecs(store), tls=credentials, identity=issuer)

        reconciler = Reconciler(
            store=leader_store,
            catalog=catalog,
            home=home,
            origin=origin_point(settings.gateway_region, catalog),
            secrets=vault.lookup,
            env_key=keys.fingerprint,
            make_driver=make_driver,
            gate=leadership.holds,
        )
        jobs = JobController(
            leader_store, catalog, home, make_driver, secrets=vault.lookup, gate=leadership.holds
        )
        api_jobs = JobController(store, catalog, home, make_driver, secrets=vault.lookup)
        accountant = Accountant(leader_store, catalog, gate=leadership.holds)
        leadership.on_gain = lambda: wake_all(reconciler, jobs)
        context = ApiContext(
            store=store,
            fleet=FleetService(
                store,
                catalog,
                on_change=reconciler.wake,
                model_cache=home / "models",
                trained_on=lambda: trained_on(store.lineage_events(event_type="COMPLETE")),
            ),
            endpoints=endpoints,
            wake=reconciler.wake,
            shutdown=lambda: server.request_shutdown(),  # bound below: the app exists before the server
            oidc=oidc_verifier(settings),
        )
        app = create_app(context, allowed_hosts=allowed_hosts(host, settings.extra_api_hosts))
        app.state.vault = vault
        app.state.jobs = api_jobs  # api/jobs.py: cancels and drills from any server
        app.state.credentials = credentials  # api/certs.py; api/observe.py scrapes replicas with it
        app.state.workload = issuer  # api/workload.py: discovery, JWKS, rotation
        server = cls(
            settings, store, leadership, reconciler, jobs, api_jobs, accountant, app, endpoints, api_sock
        )
        server.credentials = credentials
        server.lineage = LineageRecorder(
            leader_store,
            catalog,
            url=settings.openlineage_url,
            interval_s=settings.lineage_interval_s,
            gate=leadership.holds,
        )
        return server

    @property
    def id(self) -> str:
        return self.leadership.me.id

    def start_loops(self) -> None:
        """Contend for the lease, then start every loop (they act only while it is held)."""
        self.leadership.start()
        self.reconciler.start()
        self.jobs.start()
        self.accountant.start()
        if self.lineage is not None:
            self.lineage.start()
        credentials = self.credentials
        self.observer = start_observer(
            self.store.fenced(self.leadership.fence),
            webhook_url=self.settings.alert_webhook,
            probe_every_s=self.settings.probe_interval_s,
            gate=self.leadership.holds,
            tls=credentials.client_context() if credentials is not None else None,
        )
        if credentials is not None:  # gateways' requests granted, and the server's own renewed
            self.grants = Loop(
                "certificates", credentials.keep_current, interval_s=GRANT_EVERY_S, gate=self.leadership.holds
            ).start()
        self.app.state.registries = [self.reconciler.metrics.registry, self.observer.metrics.registry]
        self.app.state.feed.start()

    def serve(self) -> None:
        """Serve the API until `request_shutdown` or a signal (blocking)."""
        tls = self.settings.tls
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,  # a half-open TLS handshake must not hold `down` for 30 s
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.uvicorn_server = uvicorn.Server(config)
        running = self.uvicorn_server
        self.app.state.feed.stopping = lambda: running.should_exit  # open dashboard streams end at once
        running.run(sockets=[self.api_sock])

    def request_shutdown(self, stop_replicas: bool = True) -> None:
        """End `serve`; with `stop_replicas` (as `polycloud down` asks), stop every replica and job too."""
        self.stop_replicas = stop_replicas
        if self.uvicorn_server is not None:
            self.uvicorn_server.should_exit = True

    def close(self) -> None:
        """Stop the loops (and, if asked, the fleet), give the lease up and let go of everything."""
        self.app.state.feed.close()
        if self.grants is not None:
            self.grants.stop()
        self.accountant.stop()
        if self.lineage is not None:
            self.lineage.stop()
        self.reconciler.stop()
        stop_jobs(self.jobs, stop_running=self.stop_replicas and self.leadership.holds())
        self.api_jobs.close()
        if self.observer is not None:
            self.observer.stop()
            self.observer.close()
        if self.stop_replicas and self.leadership.holds():
            stop_everything(self.reconciler)
        self.leadership.stop()
        self.reconciler.close()


def wake_all(reconciler: Reconciler, jobs: JobController) -> None:
    """A new leader acts at once rather than at the end of an interval."""
    reconciler.wake()
    jobs.wake()


def stop_jobs(jobs: JobController, *, stop_running: bool) -> None:
    """Stop the job controller; with `stop_running`, its jobs too (they resume at the next start)."""
    jobs.stop()
    try:
        if stop_running:
            jobs.stop_jobs(JOB_STOP_TIMEOUT_S)
    except PolycloudError:
        pass  # shutting down regardless; the next leader adopts or restarts what is left
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
