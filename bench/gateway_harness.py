"""What bench/gateway_bench.py is made of: replica, gateway and nginx processes on 127.0.0.1, the
aiohttp load generator, and measurement rounds with the targets interleaved.

A sibling of the bench scripts (they run as `python bench/NAME.py`, which puts bench/ on the path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import onnx
import psutil
from onnx import TensorProto, helper

from polycloud.pki.contexts import TlsFiles
from polycloud.state import ReplicaRecord, Store, WorkloadInput, content_hash

SERVICE = "bench"
BODY = b'{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
HEADERS = {"content-type": "application/json"}
ROUNDS = 3
NGINX_PACKAGE = "nginx-light"


def build_model(path: Path) -> Path:
    """A tiny ONNX model: Y[-1,2] = X[-1,4] @ W."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, 2])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


@contextlib.contextmanager
def work_folder(kept: Path | None, prefix: str) -> Iterator[Path]:
    """`kept` (created, resolved) when given, else a temporary folder removed at the end."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def free_port() -> int:
    with listener() as sock:
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    args: list[str]
    port: int
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


class Fleet:
    """The child processes of the benchmark; `close` kills every one."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.children: list[Child] = []
        self.others: list[subprocess.Popen[bytes]] = []  # not restarted: nginx
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        self.env["POLYCLOUD_HOME"] = str(work)  # traces under work/traces (OTEL_SDK_DISABLED=true: none)
        self.env["POLYCLOUD_FLEET_MTLS"] = "true"  # the default, stated: https:// replicas get mTLS

    def start(self, child: Child) -> Child:
        sock = listener(child.port)
        child.port = sock.getsockname()[1]
        with (self.work / f"{child.name}.log").open("ab") as log:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", *child.args, "--fd", str(sock.fileno())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                pass_fds=[sock.fileno()], env=self.env,
            )  # fmt: skip
        sock.close()
        if child not in self.children:
            self.children.append(child)
        return child

    def close(self) -> None:
        for proc in self.others:  # nginx: SIGQUIT stops its workers too (SIGKILL would orphan them)
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=30)
        for proc in [c.proc for c in self.children if c.proc is not None]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu_us: float | None = None
    """The proxy's CPU time per request (µs, its worker processes included), when measured."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self, label: str) -> str:
        return (
            f"  {label:<24} {self.rps:8.0f} req/s   p50 {self.quantile(0.5):6.2f} ms   "
            f"p99 {self.quantile(0.99):6.2f} ms   errors {self.errors}"
            + (f"   proxy CPU {self.cpu_us:4.0f} µs/req" if self.cpu_us is not None else "")
        )


def cpu_seconds(pids: Sequence[int]) -> float:
    """The CPU time these processes and their children (nginx's workers) have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for each in [process, *process.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
    return total


async def call(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            return response.status, response.headers.get("x-polycloud-cluster", "")
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


async def closed_loop(session: aiohttp.ClientSession, urls: list[str], n: int, concurrency: int) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()

    async def worker() -> None:
        nonlocal errors
        while (i := next(counter)) < n:
            start = time.perf_counter()
            status, _ = await call(session, urls[i % len(urls)])
            latencies.append((time.perf_counter() - start) * 1000)
            errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(n, errors, time.perf_counter() - start, latencies)


async def open_loop(
    session: aiohttp.ClientSession,
    urls: list[str],
    rate: float,
    seconds: float,
    events: list[tuple[float, str, float]] | None = None,
    begin: float | None = None,
) -> Result:
    """Send at `rate` whatever the answers' pace; `events` gets (sent at, cluster, latency ms)."""
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter() if begin is None else begin

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        status, cluster = await call(session, urls[i % len(urls)])
        done = time.perf_counter()
        latency = (done - scheduled) * 1000
        latencies.append(latency)
        errors += status != 200
        if events is not None:
            events.append((scheduled - begin, cluster, latency))

    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return Result(len(tasks), errors, time.perf_counter() - begin, latencies)


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{url}/v2/health/ready") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{url} did not become ready within {timeout_s:.0f} s")


async def throughput(
    session: aiohttp.ClientSession,
    targets: list[tuple[str, list[str]]],
    args: argparse.Namespace,
    number: str = "1",
    proxies: dict[str, list[int]] | None = None,
    warm_up: int = 0,
) -> dict[str, Result]:
    """Closed loop, ROUNDS rounds with the targets interleaved; the best round of each, printed, with
    the CPU time per request of the processes `proxies` names for its label (the gateway, nginx).
    `warm_up` requests, unmeasured, go just before each round (connections idle since the target's
    last round have closed: with TLS, the round would otherwise start with handshakes)."""
    what = f"{args.requests} requests at concurrency {args.concurrency}"
    print(f"\n{number}. closed loop: {what}, best of {ROUNDS}")
    best: dict[str, Result] = {}
    for _ in range(ROUNDS):
        for label, urls in targets:
            pids = (proxies or {}).get(label, [])
            if warm_up:
                await closed_loop(session, urls, warm_up, args.concurrency)
            before = cpu_seconds(pids)
            result = await closed_loop(session, urls, args.requests, args.concurrency)
            if pids:
                result.cpu_us = (cpu_seconds(pids) - before) / result.requests * 1e6
            if label not in best or result.rps > best[label].rps:
                best[label] = result
    for label, _ in targets:
        print(best[label].line(label))
    return best


def added(median: dict[str, Result], label: str, baseline: str, q: float) -> float:
    """What `label` adds to `baseline`'s latency quantile `q`, in ms."""
    return median[label].quantile(q) - median[baseline].quantile(q)


async def added_latency(
    session: aiohttp.ClientSession,
    targets: list[tuple[str, list[str]]],
    baselines: dict[str, str],
    args: argparse.Namespace,
    number: str = "2",
    warm_up: int = 0,
) -> dict[str, Result]:
    """Open loop at --rate, ROUNDS rounds with the targets interleaved; of each target the round with the
    median p99, printed with what it adds to its baseline (`baselines`: label → the baseline's label);
    `warm_up` as for `throughput`."""
    seconds = args.requests / args.rate
    print(f"\n{number}. open loop at {args.rate:.0f} req/s for {seconds:.1f} s, median of {ROUNDS} rounds")
    rounds: dict[str, list[Result]] = {label: [] for label, _ in targets}
    for _ in range(ROUNDS):
        for label, urls in targets:
            if warm_up:
                await closed_loop(session, urls, warm_up, args.concurrency)
            rounds[label].append(await open_loop(session, urls, args.rate, seconds))
    median = {label: sorted(r, key=lambda x: x.quantile(0.99))[len(r) // 2] for label, r in rounds.items()}
    for label, result in median.items():
        print(result.line(label))
    for label, baseline in baselines.items():
        p50, p99 = added(median, label, baseline, 0.5), added(median, label, baseline, 0.99)
        print(f"  added by {label}: p50 {p50:+.2f} ms, p99 {p99:+.2f} ms (against {baseline})")
    return median


TlsDir = Callable[[str, str], Path]
"""Issues a replica (name, cluster) its certificate and returns the folder for `--tls-dir`."""


def start_replicas(
    fleet: Fleet, model: Path, service: str, count: int, tls_dir: TlsDir | None = None
) -> list[Child]:
    """`count` replicas of `service`, alternately in clusters a and b (`a-0`, `b-1`, ...); with
    `tls_dir`, over mutual TLS (`a-tls-0`, `b-tls-1`, ...: https:// endpoints)."""
    serve = ["polycloud.serving", "--model", str(model), "--name", service, "--home", str(fleet.work)]
    children = []
    for i in range(count):
        cluster = "ab"[i % 2]
        if tls_dir is None:
            child = Child(f"{cluster}-{i}", [*serve, "--cluster", cluster], 0)
        else:
            name = f"{cluster}-tls-{i}"
            tls = ["--tls-dir", str(tls_dir(name, cluster))]
            child = Child(name, [*serve, "--cluster", cluster, *tls], 0, "https")
        children.append(fleet.start(child))
    return children


def record_routes(store: Store, services: dict[str, list[Child]]) -> None:
    """Each service active-active over its replicas, all ready, as the controller would record them."""
    workloads = []
    for service in services:
        spec: dict[str, Any] = {"metadata": {"name": service}, "spec": {"pattern": "active-active"}}
        workloads.append(WorkloadInput(service, "Service", spec, content_hash(spec), []))
    store.apply(workloads=workloads, documents=[], author="bench", message="")
    store.replace_replicas(
        [
            ReplicaRecord(
                c.name, service, c.name[0], "active", 1, c.url, c.proc.pid if c.proc else None, "ready"
            )
            for service, children in services.items()
            for c in children
        ]
    )


@dataclass(frozen=True)
class Proxy:
    """One nginx server block: listens on `port`, spreads over `upstreams` (ports on 127.0.0.1), with
    TLS and this calling certificate when `client` is given."""

    name: str
    port: int
    upstreams: Sequence[int]
    client: TlsFiles | None = None


def _location(proxy: Proxy) -> str:
    if proxy.client is None:
        return f"proxy_pass http://{proxy.name};"
    files = proxy.client
    return (
        f"proxy_pass https://{proxy.name}; proxy_ssl_certificate {files.cert}; "
        f"proxy_ssl_certificate_key {files.key}; proxy_ssl_trusted_certificate {files.ca}; "
        "proxy_ssl_verify on; proxy_ssl_verify_depth 2; proxy_ssl_name localhost; "
        "proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_session_reuse on;"
    )  # TLSv1.3 as the gateway negotiates it (nginx 1.22 leaves it out of the default)


def nginx_conf(work: Path, proxies: Sequence[Proxy]) -> Path:
    """One worker (the gateway is one process too), keep-alive upstreams, no access log."""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for kind in kinds:
        (work / kind).mkdir(exist_ok=True)
    temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in kinds)
    blocks = []
    for proxy in proxies:
        servers = "\n".join(f"    server 127.0.0.1:{port};" for port in proxy.upstreams)
        blocks.append(
            f"  upstream {proxy.name} {{\n{servers}\n    keepalive 64;\n  }}\n"
            f"  server {{ listen 127.0.0.1:{proxy.port}; location / {{ {_location(proxy)} "
            'proxy_http_version 1.1; proxy_set_header Connection ""; } }\n'
        )
    conf = work / "nginx.conf"
    conf.write_text(
        f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; {temp}\n{''.join(blocks)}}}\n"
    )
    return conf


def _nginx_path() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def find_nginx() -> str | None:
    """nginx's path; when missing and running as root, Debian's `nginx-light` is installed with apt-get
    first (nothing else installs it); otherwise None, after saying why the nginx rows are skipped."""
    found = _nginx_path()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"nginx is not installed (apt-get install -y {NGINX_PACKAGE} needs root): nginx rows skipped")
        return None
    print(f"nginx is not installed: apt-get install -y {NGINX_PACKAGE}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt_get(*args: str) -> int:
        done = subprocess.run(
            ["apt-get", *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
        )
        return done.returncode

    if apt_get("install", "-y", "-q", NGINX_PACKAGE) != 0:  # as `make browser` does: update, once more
        apt_get("update", "-q")
        apt_get("install", "-y", "-q", NGINX_PACKAGE)
    found = _nginx_path()
    if found is None:
        print(f"apt-get could not install {NGINX_PACKAGE}: nginx rows skipped")
    return found


def start_nginx(fleet: Fleet, nginx: str, proxies: list[Proxy]) -> None:
    """nginx in the foreground as one of `fleet`'s processes, its files in the fleet's folder."""
    conf = nginx_conf(fleet.work, proxies)
    command = [nginx, "-c", str(conf), "-p", str(fleet.work)]
    fleet.others.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def stop_gateway(gateway: Child) -> None:
    """SIGTERM: the gateway drains and should exit 0."""
    if gateway.proc is not None:
        gateway.proc.send_signal(signal.SIGTERM)
        print(f"\ngateway exit status after SIGTERM: {gateway.proc.wait(timeout=30)}")
