"""The gateway's metrics render exactly as `prometheus_client`'s own `Counter` and `Histogram` would
(the request path counts in plain dicts; a collector builds the families at scrape time)."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from polycloud.gateway.metrics import BUCKETS, GatewayMetrics


def reference(events: list[tuple[str, tuple[object, ...]]]) -> bytes:
    """The same events counted by prometheus_client's metric classes, as the gateway once did."""
    r = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "polycloud_gateway_requests", "Answers to clients.", ["service", "cluster", "code"], registry=r
    )
    duration = Histogram(
        "polycloud_gateway_request_duration_seconds",
        "Time from request to answer.",
        ["service"],
        buckets=BUCKETS,
        registry=r,
    )
    attempts = Counter(
        "polycloud_gateway_attempts",
        "Upstream attempts by outcome.",
        ["service", "cluster", "outcome"],
        registry=r,
    )
    retries = Counter("polycloud_gateway_retries", "Attempts after the first.", ["service"], registry=r)
    hedges = Counter("polycloud_gateway_hedges", "Attempts raced by a hedged copy.", ["service"], registry=r)
    ejections = Counter(
        "polycloud_gateway_ejections", "Passive outlier ejections.", ["service", "cluster"], registry=r
    )
    flags = Counter(
        "polycloud_gateway_flag_evaluations",
        "Feature flag evaluations (OFREP) by variant and reason or error code.",
        ["flag", "variant", "reason"],
        registry=r,
    )
    moved = Counter(
        "polycloud_gateway_upstream_bytes",
        "Bytes of request and answer bodies moved to and from a cluster by successful attempts.",
        ["service", "cluster", "direction"],
        registry=r,
    )
    Gauge("polycloud_gateway_in_flight", "Requests being proxied.", registry=r)
    Gauge("polycloud_gateway_routes_version", "Route tables applied.", registry=r)
    for kind, args in events:
        if kind == "answered":
            service, cluster, code, seconds = args
            requests.labels(service, cluster, str(code)).inc()
            duration.labels(service).observe(seconds)  # type: ignore[arg-type]
        elif kind == "attempted":
            attempts.labels(*args).inc()
        elif kind == "moved":
            service, cluster, sent, received = args
            moved.labels(service, cluster, "sent").inc(sent)  # type: ignore[arg-type]
            moved.labels(service, cluster, "received").inc(received)  # type: ignore[arg-type]
        elif kind == "retried":
            retries.labels(*args).inc()
        elif kind == "hedged":
            hedges.labels(*args).inc()
        elif kind == "flag_evaluated":
            flags.labels(*args).inc()
        else:
            ejections.labels(*args).inc()
    return generate_latest(r)


def without_created_values(text: bytes) -> str:
    """The exposition with `_created` timestamps blanked (they differ between the two), without the LLM
    families (those are prometheus_client's own classes: nothing to compare)."""
    kept = "".join(
        line for line in text.decode().splitlines(keepends=True) if "polycloud_gateway_llm_" not in line
    )
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", kept)


def test_the_exposition_is_prometheus_clients_own() -> None:
    events: list[tuple[str, tuple[object, ...]]] = [
        ("answered", ("m", "a", 200, 0.004)),
        ("answered", ("m", "a", 200, 0.001)),  # on a bucket's bound: counted in it (`le`)
        ("answered", ("m", "", 503, 42.0)),  # past the last bound: +Inf only
        ("answered", ("n", "b", 404, 0.3)),
        ("attempted", ("m", "a", "ok")),
        ("attempted", ("m", "a", "connect")),
        ("attempted", ("m", "a", "ok")),
        ("moved", ("m", "a", 77, 120)),
        ("moved", ("m", "a", 3, 4)),
        ("retried", ("m",)),
        ("hedged", ("n",)),
        ("ejected", ("m", "a")),
        ("flag_evaluated", ("new-ranker", "on", "TARGETING_MATCH")),
        ("flag_evaluated", ("new-ranker", "on", "TARGETING_MATCH")),
        ("flag_evaluated", ("", "", "FLAG_NOT_FOUND")),
    ]
    metrics = GatewayMetrics()
    for kind, args in events:
        getattr(metrics, kind)(*args)
    ours = without_created_values(metrics.render())
    assert ours == without_created_values(reference(events))
    assert 'polycloud_gateway_request_duration_seconds_created{service="m"} T' in ours
    assert 'polycloud_gateway_requests_total{cluster="a",code="200",service="m"} 2.0' in ours


def test_nothing_counted_renders_the_families_empty() -> None:
    assert without_created_values(GatewayMetrics().render()) == without_created_values(reference([]))
