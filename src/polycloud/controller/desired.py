"""From the recorded desired state to the replicas each cluster should run (pure; no I/O).

A `ReplicaGroup` is "run `count` replicas of this template on this cluster". The template's
`spec_hash` covers everything a running replica is made of (model file digest, env, role, delay), so
a replica whose hash differs is outdated and gets rolled.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.placement.sites import Point, Site, rtt_ms
from polycloud.spec.models import Runtime, Service
from polycloud.state import WorkloadState, canonical_json, content_hash

SecretLookup = Callable[[str, str | None], str | None]
"""(secret name, project) → value, or None when no such secret exists."""


@dataclass(frozen=True)
class ReplicaTemplate:
    """What every replica of a group runs; ids are given out by the reconciler."""

    service: str
    cluster: str
    revision: int
    role: str
    model_path: str
    model_sha256: str | None
    env: Mapping[str, str]
    delay_ms: float
    spec_hash: str
    protocol: str = "oip-v2"
    runtime: Runtime | None = None


@dataclass(frozen=True)
class ReplicaGroup:
    service: str
    cluster: str
    count: int
    template: ReplicaTemplate


@dataclass(frozen=True)
class Canary:
    """A service under a canary rollout: its baseline keeps serving while the current revision takes
    `weight` percent of the traffic on its own replicas."""

    baseline: WorkloadState
    weight: int


@dataclass
class DesiredState:
    """Replica groups per (service, cluster), and problems that stop a service from running."""

    groups: dict[tuple[str, str], ReplicaGroup] = field(default_factory=dict)
    canaries: dict[tuple[str, str], ReplicaGroup] = field(default_factory=dict)
    """Canary groups, beside `groups` (the baseline's) of the same key, during a rollout."""
    held: dict[tuple[str, str], list[ReplicaGroup]] = field(default_factory=dict)
    """Groups of older revisions that a service's routing by a flag names, beside `groups` (and
    `canaries`) of the same key; only where they run something else than those."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Service → why its replicas cannot start (e.g. a missing secret)."""
    unheld: dict[tuple[str, int], str] = field(default_factory=dict)
    """(service, held revision) → why that revision's replicas cannot start (the rest runs on)."""


def desired_state(
    workloads: list[WorkloadState],
    delays: Mapping[str, float],
    *,
    secrets: SecretLookup,
    scale: Mapping[tuple[str, str], int] | None = None,
    canaries: Mapping[str, Canary] | None = None,
    held: Mapping[str, list[WorkloadState]] | None = None,
    env_key: bytes = b"",
) -> DesiredState:
    """Replica groups for every service; `scale` overrides a (service, cluster)'s count.

    Overrides come from failover and autoscaling; a count of 0 is a group that runs nothing (an idle
    burst cluster) and stops whatever it still has. A service in `canaries` runs its baseline's groups
    and, in each cluster where the current revision runs something different, a canary group sized to
    the canary's share of traffic (at least one replica). `env_key` keys the digest of each template's
    environment, which holds secret values and shows in replica ids and command lines: without the
    key, a weak secret could be guessed from its digest. `held`: per service, the older revisions its
    flag routes to (`held_revisions`), each placed like the service (`held_state`).
    """
    state = DesiredState()
    for workload in workloads:
        if workload.kind != "Service":
            continue
        canary = (canaries or {}).get(workload.name)
        if canary is not None:
            _add_canary(state, workload, canary, delays, secrets, scale, env_key)
        else:
            _add_service(state, workload, delays, secrets, scale, env_key)
        for revision in (held or {}).get(workload.name, []):
            _add_held(state, revision, delays, secrets, scale, env_key)
    return state


def held_revisions(workload: WorkloadState) -> set[int]:
    """The revisions other than its current one that a Service's routing by a flag names."""
    if workload.kind != "Service":
        return set()
    routing = Service.model_validate(workload.spec).spec.routing
    return routing.revisions() - {workload.number} if routing is not None else set()


def held_state(workload: WorkloadState, revision: WorkloadState) -> WorkloadState:
    """`revision` (an older revision of `workload`) placed where the service is placed now."""
    return replace(revision, placement=workload.placement, project=workload.project)


def _add_held(
    state: DesiredState,
    revision: WorkloadState,
    delays: Mapping[str, float],
    secrets: SecretLookup,
    scale: Mapping[tuple[str, str], int] | None,
    env_key: bytes,
) -> None:
    """Groups of `revision` beside the service's, in each cluster where it runs something else."""
    groups, blocked = _apart(revision, delays, secrets, scale, env_key)
    if blocked is not None:
        state.unheld[(revision.name, revision.number)] = blocked
    for key, group in groups.items():
        if _same(group, state.groups.get(key), state.canaries.get(key), *state.held.get(key, [])):
            continue  # the same replicas serve it already
        if key in state.groups:
            state.held.setdefault(key, []).append(group)


def _add_canary(
    state: DesiredState,
    workload: WorkloadState,
    canary: Canary,
    delays: Mapping[str, float],
    secrets: SecretLookup,
    scale: Mapping[tuple[str, str], int] | None,
    env_key: bytes,
) -> None:
    _add_service(state, canary.baseline, delays, secrets, scale, env_key)
    groups, blocked = _apart(workload, delays, secrets, scale, env_key)
    if blocked is not None:
        state.blocked[workload.name] = blocked
        return
    for key, group in groups.items():
        if _same(group, state.groups.get(key)):
            continue  # this cluster runs the same either way: its replicas serve both revisions
        count = max(1, math.ceil(group.count * canary.weight / 100)) if group.count else 0
        state.canaries[key] = ReplicaGroup(group.service, group.cluster, count, group.template)


def _apart(
    workload: WorkloadState,
    delays: Mapping[str, float],
    secrets: SecretLookup,
    scale: Mapping[tuple[str, str], int] | None,
    env_key: bytes,
) -> tuple[dict[tuple[str, str], ReplicaGroup], str | None]:
    """`workload`'s groups as if it ran alone (another revision beside the current one), and why it
    cannot start (None: it can)."""
    alone = DesiredState()
    _add_service(alone, workload, delays, secrets, scale, env_key)
    return alone.groups, alone.blocked.get(workload.name)


def _same(group: ReplicaGroup, *others: ReplicaGroup | None) -> bool:
    """Whether one of `others` runs what `group` runs (its replicas can serve both)."""
    return any(o is not None and o.template.spec_hash == group.template.spec_hash for o in others)


def _add_service(
    state: DesiredState,
    workload: WorkloadState,
    delays: Mapping[str, float],
    secrets: SecretLookup,
    scale: Mapping[tuple[str, str], int] | None,
    env_key: bytes,
) -> None:
    service = Service.model_validate(workload.spec)
    env, missing = _env(service, workload.project, secrets)
    if missing:
        state.blocked[workload.name] = f"secret {missing!r} does not exist"
        return
    for assignment in workload.placement:
        cluster = str(assignment["cluster"])
        delay = delays.get(cluster)
        if delay is None:
            state.blocked[workload.name] = f"cluster {cluster!r} is no longer declared"
            continue
        count = int(assignment["replicas"])
        if scale and (workload.name, cluster) in scale:
            count = max(0, scale[(workload.name, cluster)])
        template = _template(workload, service, cluster, str(assignment["role"]), env, delay, env_key)
        state.groups[(workload.name, cluster)] = ReplicaGroup(workload.name, cluster, count, template)


def _env(service: Service, project: str | None, secrets: SecretLookup) -> tuple[dict[str, str], str | None]:
    env: dict[str, str] = {}
    for var in service.spec.env:
        if var.value is not None:
            env[var.name] = var.value
            continue
        value = secrets(var.secret or "", project)
        if value is None:
            return {}, var.secret
        env[var.name] = value
    return env, None


def _template(
    workload: WorkloadState,
    service: Service,
    cluster: str,
    role: str,
    env: dict[str, str],
    delay: float,
    env_key: bytes,
) -> ReplicaTemplate:
    model = service.spec.model
    digest = (model.sha256 if model is not None else None) or ""
    where = (model.path or model.uri or "") if model is not None else ""
    runtime = service.spec.runtime
    fingerprint = {
        "model": where,
        "digest": digest,
        "env": hmac.new(env_key, canonical_json(env).encode(), hashlib.sha256).hexdigest(),
        "role": role,
        "delay": round(delay, 3),
    }
    if runtime is not None or service.spec.protocol != "oip-v2":  # absent before runtimes: same hashes
        served = runtime.model_dump() if runtime else None
        fingerprint |= {"protocol": service.spec.protocol, "runtime": served}
    return ReplicaTemplate(
        service=workload.name,
        cluster=cluster,
        revision=workload.number,
        role=role,
        model_path=where,
        model_sha256=digest or None,
        env=env,
        delay_ms=delay,
        spec_hash=content_hash(fingerprint)[:16],
        protocol=service.spec.protocol,
        runtime=runtime,
    )


def cluster_delays(
    sites: Mapping[str, Site], overrides: Mapping[str, float | None], catalog: Catalog, origin: Point
) -> dict[str, float]:
    """Simulated network delay per cluster: its own setting, else the RTT from the gateway's region."""
    return {
        name: (
            overrides.get(name) if overrides.get(name) is not None else rtt_ms(origin, site.point, catalog)
        )
        or 0.0
        for name, site in sites.items()
    }


def fingerprint_key(home: Path) -> bytes:
    """The key of environment digests for `home`: made once (0600), the same across restarts so that a
    restarted control plane recognises the replicas it started."""
    path = home / "fingerprint.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    return path.read_bytes()
