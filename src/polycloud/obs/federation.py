"""The fleet's `/metrics`: the control plane's own registries, plus the gateway's and every replica's
metrics fetched at scrape time and relabelled.

Every fetched sample gains the labels its source does not carry: `provider` and `region` of its
cluster (from the Cluster documents), and, for replicas, `replica`, `role`, `service`, `cluster` and
`revision`. Sources are fetched concurrently with a short timeout; `polycloud_federation_up{source}`
says which answered, so one dead replica never fails the scrape. `*_created` series are dropped.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from polycloud.state.repositories_runtime import FederationReader

FETCH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Source:
    """A `/metrics` endpoint and the labels its samples gain (where they lack them)."""

    name: str
    url: str
    labels: Mapping[str, str]


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(groups: Iterable[tuple[Iterable[Metric], Mapping[str, str]]]) -> list[Metric]:
    """Families of every group merged by name, each sample with its group's labels added where missing."""
    merged: dict[str, Metric] = {}
    for families, labels in groups:
        for family in families:
            if family.name.endswith("_created"):
                continue
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                target.samples.append(sample._replace(labels={**labels, **sample.labels}))
    return list(merged.values())


def locate(families: list[Metric], clusters: Mapping[str, tuple[str, str]]) -> None:
    """Add `provider` and `region` to every sample whose `cluster` label names a known cluster."""
    for family in families:
        for i, sample in enumerate(family.samples):
            where = clusters.get(sample.labels.get("cluster", ""))
            if where is not None and "provider" not in sample.labels:
                labels = {**sample.labels, "provider": where[0], "region": where[1]}
                family.samples[i] = sample._replace(labels=labels)


def fleet_sources(
    store: FederationReader, gateway_url: str
) -> tuple[list[Source], dict[str, tuple[str, str]]]:
    """The gateway's and every replica's `/metrics`, and (provider, region) per declared cluster."""
    clusters = {}
    for document in store.documents("Cluster"):
        spec = document.spec.get("spec") or {}
        clusters[document.name] = (str(spec.get("provider", "")), str(spec.get("region", "")))
    sources = [Source("gateway", f"{gateway_url.rstrip('/')}/metrics", {})]
    for r in store.replicas():
        if r.endpoint and r.state in ("ready", "stopping"):
            labels = {
                "replica": r.id,
                "service": r.workload,
                "cluster": r.cluster,
                "role": r.role,
                "revision": str(r.revision),
            }
            sources.append(Source(f"replica/{r.id}", f"{r.endpoint.rstrip('/')}/metrics", labels))
    return sources, clusters


def render(families: list[Metric]) -> bytes:
    """The Prometheus text exposition of `families`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)


async def _fetch(client: httpx.AsyncClient, source: Source) -> list[Metric] | None:
    try:
        answer = await client.get(source.url)
        answer.raise_for_status()
        return list(text_string_to_metric_families(answer.text))
    except (httpx.HTTPError, ValueError):
        return None


async def federate(
    own: list[CollectorRegistry],
    sources: list[Source],
    clusters: Mapping[str, tuple[str, str]],
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """The control plane's registries and every source's metrics, relabelled, as one exposition
    (replicas scraped over mutual TLS with `tls`, the server's fleet client context)."""
    verify: ssl.SSLContext | bool = tls if tls is not None else True
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, verify=verify) as client:
        fetched = await asyncio.gather(*(_fetch(client, s) for s in sources))
    groups: list[tuple[Iterable[Metric], Mapping[str, str]]] = [(r.collect(), {}) for r in own]
    up = Metric("polycloud_federation_up", "1 when the source answered this scrape, else 0.", "gauge")
    for source, families in zip(sources, fetched, strict=True):
        up.add_sample("polycloud_federation_up", {"source": source.name}, 0.0 if families is None else 1.0)
        if families is not None:
            groups.append((families, source.labels))
    groups.append(([up], {}))
    families = merge(groups)
    locate(families, clusters)
    return render(families)
