"""Section 4 of bench/gateway_bench.py: the gateway calling replicas over mutual TLS, beside plain HTTP,
nginx with upstream TLS, and direct calls with a client certificate, all measured in one run.

The bench runs no control-plane server, so it plays the fleet CA itself (`polycloud.pki`), as the
server would: each TLS replica gets a serving certificate in its own folder (what the local driver
writes before it starts one with `--tls-dir`); the gateway's calling certificate is pre-seeded in its
home, `<home>/tls/gateway/{cert,key,ca}.pem` (`GatewayCredentials` loads a saved, unexpired certificate
at start, without the store), and the CA certificate goes into the store as the control setting
`fleet-ca/0001`, so the gateway's refresh finds that certificate current and never asks for another
(checked at the end: `asked_store`). nginx and the load generator get calling certificates of their
own. The gateway runs as in production otherwise: `--home`, `POLYCLOUD_FLEET_MTLS=true`.

One gateway serves both sides: service `bench` over plain replicas and `bench-tls` over TLS replicas of
the same model, so plain and mTLS differ in the upstream scheme only.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from gateway_harness import (
    BODY,
    HEADERS,
    SERVICE,
    Child,
    Fleet,
    Proxy,
    Result,
    added,
    added_latency,
    build_model,
    closed_loop,
    find_nginx,
    free_port,
    record_routes,
    start_nginx,
    start_replicas,
    stop_gateway,
    throughput,
    wait_ready,
)

from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.pki.authority import CA_SETTING
from polycloud.pki.contexts import TlsFiles, client_context
from polycloud.state import Store

REPLICA_HOSTS = ("127.0.0.1", "localhost")
"""What a replica's certificate names, as the local driver's do (nginx verifies `localhost`: its check
matches DNS names, not IP addresses)."""
TLS_SERVICE = "bench-tls"
"""The same model as `SERVICE`, served by replicas over mutual TLS."""
CONNECTIONS = 64
"""The load generator's connections in use at once, whatever the target (requests beyond wait, and the
wait counts in their latency). Unbounded, a stall of the shared machine in the open loop makes it open
a connection per request, and a TLS handshake costs it ~4 ms of CPU here against ~0.1 ms per request on
an open connection: it never catches up again (seen: 1,109 new connections in one 10 s round at
150 req/s, 28 req/s answered)."""
WARM_UP = 200
"""Requests before each measured round of a target, so that it starts on open connections: the
comparison is of keep-alive traffic, not of handshakes (`reused_connections` shows the gateway's)."""


@dataclass(frozen=True)
class BenchAuthority:
    """A fleet CA of the bench's own and the files it issues under `folder`."""

    folder: Path
    authority: ca.Authority

    @classmethod
    def create(cls, folder: Path) -> BenchAuthority:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(folder, ca.new_authority())

    @property
    def bundle(self) -> str:
        return ca.bundle([self.authority.certificate_pem()])

    def publish(self, store: Store) -> None:
        """Put the CA where every holder's refresh reads it: the first fleet CA setting."""
        store.settle_control_setting(f"{CA_SETTING}0001", self.authority.certificate_pem())

    def replica(self, name: str, service: str, cluster: str) -> Path:
        """A replica's folder for `--tls-dir`: a serving certificate, its key and the bundle."""
        identity = identities.replica(None, service, cluster)
        issued = ca.issue_with_key(self.authority, identity, hosts=list(REPLICA_HOSTS), serve=True)
        files = TlsFiles(self.folder / name)
        files.write(issued.certificate_pem, issued.key_pem, self.bundle)
        return files.folder

    def caller(self, folder: Path, identity: str) -> TlsFiles:
        """A calling certificate (clientAuth) for `identity`, with key and bundle, in `folder`."""
        issued = ca.issue_with_key(self.authority, identity, call=True)
        files = TlsFiles(folder)
        files.write(issued.certificate_pem, issued.key_pem, self.bundle)
        return files

    def gateway_home(self, home: Path, member_id: str) -> TlsFiles:
        """Pre-seed a gateway's home with the certificate it would have been granted."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.caller(home / "tls" / "gateway", identities.gateway(member_id))

    def client_context(self, name: str) -> ssl.SSLContext:
        """The load generator's context: an admin's certificate, servers verified by the bundle."""
        return client_context(self.caller(self.folder / name, identities.admin(name)))

    def anonymous_context(self) -> ssl.SSLContext:
        """Trusts the fleet CA but presents no certificate (a replica must refuse it)."""
        return ssl.create_default_context(cadata=self.authority.certificate_pem())


def asked_store(store: Store, member_id: str) -> bool:
    """Whether the gateway asked the store for a certificate (it should not: its own is current)."""
    holder = identities.gateway(member_id)
    pending = any(who == holder for who, _ in store.pending_certificates())
    return pending or store.granted_certificate(holder) is not None


def connections(pid: int, ports: Sequence[int]) -> set[int]:
    """The established TCP connections process `pid` holds to 127.0.0.1:`ports` (socket inodes)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    wanted = {f"0100007F:{port:04X}" for port in ports}
    held = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] in wanted and fields[3] == "01" and int(fields[9]) in inodes:
            held.add(int(fields[9]))
    return held


@dataclass
class MtlsFleet:
    """The processes of the mTLS comparison (section 4 of the module docstring)."""

    fleet: Fleet
    authority: BenchAuthority
    database: str
    plain: list[Child]
    tls: list[Child]
    gateway: Child
    member_id: str
    nginx: tuple[str, str] | None = None
    """nginx's URLs over the plain and over the TLS replicas."""

    def proxies(self) -> dict[str, list[int]]:
        """The processes whose CPU time each proxied target costs."""
        gateway = [self.gateway.proc.pid] if self.gateway.proc is not None else []
        nginx = [p.pid for p in self.fleet.others]
        return {"gateway plain": gateway, "gateway mTLS": gateway, "nginx plain": nginx, "nginx TLS": nginx}

    def targets(self) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
        """(label, URLs) of each target, and the baseline of each proxied one."""

        def infer(bases: list[str], service: str) -> list[str]:
            return [f"{base}/v2/models/{service}/infer" for base in bases]

        targets = [
            ("direct plain", infer([c.url for c in self.plain], SERVICE)),
            ("direct TLS", infer([c.url for c in self.tls], TLS_SERVICE)),
            ("gateway plain", infer([self.gateway.url], SERVICE)),
            ("gateway mTLS", infer([self.gateway.url], TLS_SERVICE)),
        ]
        if self.nginx is not None:
            targets[2:2] = [
                ("nginx plain", infer([self.nginx[0]], SERVICE)),
                ("nginx TLS", infer([self.nginx[1]], TLS_SERVICE)),
            ]
        baselines = {label: "direct TLS" if "TLS" in label else "direct plain" for label, _ in targets[2:]}
        return targets, baselines


def start_mtls_fleet(args: argparse.Namespace, work: Path) -> MtlsFleet:
    """Plain and TLS replicas of one model, their routes and the fleet CA in the store, the gateway with
    its certificate pre-seeded in its home, nginx over both replica sets."""
    fleet = Fleet(work)
    authority = BenchAuthority.create(work / "tls")
    model = build_model(work / "tiny.onnx")
    plain = start_replicas(fleet, model, SERVICE, args.replicas)
    tls = start_replicas(
        fleet,
        model,
        TLS_SERVICE,
        args.replicas,
        lambda name, cluster: authority.replica(name, TLS_SERVICE, cluster),
    )
    database = f"sqlite:///{work / 'state.db'}"
    with Store.open(database) as store:
        record_routes(store, {SERVICE: plain, TLS_SERVICE: tls})
        authority.publish(store)
    port = free_port()
    member_id = f"gw-{socket.gethostname()}-{port}"  # what the gateway will call itself on that port
    home = work / "gateway-home"
    authority.gateway_home(home, member_id)
    command = ["polycloud.gateway", "--addr", f"127.0.0.1:{port}", "--routing-policy", args.policy]
    command += ["--database-url", database, "--home", str(home)]
    gateway = fleet.start(Child("gateway", command, port))
    mtls = MtlsFleet(fleet, authority, database, plain, tls, gateway, member_id)
    nginx = find_nginx()
    if nginx is not None:
        ports = free_port(), free_port()
        client = authority.caller(work / "nginx-client", identities.gateway("nginx"))
        proxies = [
            Proxy("plain", ports[0], [c.port for c in plain]),
            Proxy("tls", ports[1], [c.port for c in tls], client),
        ]
        start_nginx(fleet, nginx, proxies)
        mtls.nginx = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    return mtls


async def refused_without_certificate(context: ssl.SSLContext, replica: Child) -> str:
    """How a TLS replica answers a caller that trusts it but has no client certificate."""
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            infer = f"{replica.url}/v2/models/{TLS_SERVICE}/infer"
            async with session.post(infer, data=BODY, headers=HEADERS) as response:
                return f"ANSWERED {response.status}: mutual TLS is not on"
        except aiohttp.ClientError as e:
            return f"refused ({type(e).__name__})"


async def reused_connections(
    session: aiohttp.ClientSession, mtls: MtlsFleet, args: argparse.Namespace
) -> str:
    """How many connections the gateway opens to the TLS replicas during one closed-loop round."""
    if mtls.gateway.proc is None:
        return "not measured (no gateway process)"
    pid, ports = mtls.gateway.proc.pid, [c.port for c in mtls.tls]
    through = [f"{mtls.gateway.url}/v2/models/{TLS_SERVICE}/infer"]
    await closed_loop(session, through, 200, args.concurrency)  # connections open again after idling
    before = connections(pid, ports)
    result = await closed_loop(session, through, args.requests, args.concurrency)
    after = connections(pid, ports)
    return (
        f"{len(after - before)} new during {result.requests} requests "
        f"({len(after)} held at the end, {result.errors} errors)"
    )


def mtls_summary(best: dict[str, Result], median: dict[str, Result]) -> None:
    """The shares the issue asks for: gateway mTLS against nginx with upstream TLS, and against itself
    over plain HTTP."""
    mtls, plain = best["gateway mTLS"], best["gateway plain"]
    if "nginx TLS" in best:
        share = mtls.rps / best["nginx TLS"].rps
        verdict = "PASS" if share >= 0.7 else "FAIL"
        print(
            f"  gateway mTLS throughput = {share:.0%} of nginx's with upstream TLS (bar: >= 70 %: {verdict})"
        )
        nginx = best["nginx TLS"].rps / best["nginx plain"].rps
        print(f"  nginx with upstream TLS = {nginx:.0%} of nginx over plain HTTP")
    else:
        print("  gateway mTLS against nginx with upstream TLS: not measured (no nginx)")
    print(f"  gateway mTLS throughput = {mtls.rps / plain.rps:.0%} of the gateway over plain HTTP")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        tls = added(median, "gateway mTLS", "direct TLS", q)
        plain_ms = added(median, "gateway plain", "direct plain", q)
        print(f"  added {name}: {tls:+.2f} ms over mTLS, {plain_ms:+.2f} ms over plain HTTP")


async def run_mtls(args: argparse.Namespace, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    mtls = start_mtls_fleet(args, work)
    context = mtls.authority.client_context("bench")  # the load generator's, for direct TLS calls
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=4, ssl=context)
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as session:
            for url in [*(c.url for c in mtls.plain + mtls.tls), mtls.gateway.url]:
                await wait_ready(session, url)
            targets, baselines = mtls.targets()
            for _, urls in targets:  # warm-up
                await closed_loop(session, urls, 400, args.concurrency)

            print(
                f"\n4. mutual TLS inside the fleet: {args.replicas} plain and {args.replicas} TLS replicas "
                f"of one model, one gateway, {os.cpu_count()} cores"
            )
            refused = await refused_without_certificate(mtls.authority.anonymous_context(), mtls.tls[0])
            print(f"  a TLS replica called without a client certificate: {refused}")
            best = await throughput(session, targets, args, "4a", mtls.proxies(), WARM_UP)
            median = await added_latency(session, targets, baselines, args, "4b", WARM_UP)
            print("\n4c. mutual TLS beside nginx with upstream TLS and beside plain HTTP")
            mtls_summary(best, median)
            print(
                f"  gateway connections to the TLS replicas: {await reused_connections(session, mtls, args)}"
            )
            with Store.open(mtls.database) as store:
                asked = asked_store(store, mtls.member_id)
            print(
                "  gateway certificate: the one pre-seeded in its home, "
                f"{'but it ASKED the store for another' if asked else 'never asked the store for another'}"
            )
    finally:
        stop_gateway(mtls.gateway)
        mtls.fleet.close()
