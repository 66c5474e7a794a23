"""What a drill aims at: the cluster and service checked against the fleet's status, and a valid
inference request built from the model's own metadata. Pure functions over JSON documents."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from polycloud.errors import UserError

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})
INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


@dataclass(frozen=True)
class Target:
    """The cluster to fault and the service whose traffic is measured."""

    cluster: str
    service: str
    clusters: tuple[str, ...]
    """Every cluster the service runs in (the faulted one included)."""


def resolve_target(status: dict[str, Any], cluster: str, service: str | None) -> Target:
    """Check `cluster` (and `service`, when given) against `status` (the JSON of `polycloud status`).

    Without a service, picks the first service (in status order) with replicas on `cluster`.

    Raises:
        UserError: unknown cluster or service, or a service that does not run on the cluster; the
            message names the known ones.
    """
    services = status.get("services", [])
    where = {s["name"]: [c["cluster"] for c in s["clusters"]] for s in services}
    known = sorted({c for clusters in where.values() for c in clusters})
    if cluster not in known:
        names = ", ".join(known) or "none"
        raise UserError(f"unknown cluster {cluster!r}; clusters running services: {names}")
    if service is None:
        with_replicas = [
            s["name"]
            for s in services
            if any(c["cluster"] == cluster and c["replicas"] for c in s["clusters"])
        ]
        if not with_replicas:
            raise UserError(f"no service has replicas on {cluster}; pass --service")
        service = with_replicas[0]
    if service not in where:
        raise UserError(f"unknown service {service!r}; services: {', '.join(sorted(where)) or 'none'}")
    if cluster not in where[service]:
        raise UserError(
            f"service {service} does not run on {cluster}; it runs on {', '.join(where[service])}"
        )
    return Target(cluster=cluster, service=service, clusters=tuple(where[service]))


def _zero(datatype: str) -> Any:
    if datatype in FLOAT_TYPES:
        return 0.0
    if datatype in INT_TYPES:
        return 0
    if datatype == "BOOL":
        return False
    if datatype == "BYTES":
        return ""
    raise UserError(f"the drill cannot build a request for datatype {datatype!r}")


def infer_body(metadata: dict[str, Any]) -> dict[str, Any]:
    """An Open Inference Protocol request that fits the model: every input of its metadata
    (`GET /v2/models/{name}`) with its name and datatype, variable dimensions (-1) as 1, all zeros.

    Raises:
        UserError: metadata without inputs, or a datatype the drill cannot fill.
    """
    inputs = metadata.get("inputs") or []
    if not inputs:
        raise UserError(f"model {metadata.get('name', '?')} declares no inputs; cannot build a request")
    tensors = []
    for spec in inputs:
        shape = [1 if int(d) < 0 else int(d) for d in spec.get("shape", [])]
        tensors.append(
            {
                "name": spec["name"],
                "shape": shape,
                "datatype": spec["datatype"],
                "data": [_zero(str(spec["datatype"]))] * math.prod(shape),
            }
        )
    return {"inputs": tensors}


def encode(body: dict[str, Any]) -> bytes:
    """The request body as sent: compact JSON."""
    return json.dumps(body, separators=(",", ":")).encode()
