"""Fleets that end-to-end tests declare: private-site clusters on the local driver and their services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

SITES = [(39.0, -77.5), (45.5, -73.6), (41.9, -87.6), (33.7, -84.4), (43.7, -79.4), (40.7, -74.0)]
"""Where private sites stand, near the gateway's default region (aws/us-east-1): small simulated delays."""


# ------------------------------------------------------------------------------------------- fleets


@dataclass(frozen=True)
class ServiceDecl:
    """One Service as a test declares it.

    One cluster gives a `single` service pinned there; two give an `active-active` service that runs
    `replicas` replicas in each of them.
    """

    name: str
    clusters: tuple[str, ...]
    replicas: int = 2
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Env variables whose value comes from a secret: variable name → secret name."""

    def document(self, model: Path) -> dict[str, Any]:
        """The Service document, as YAML would hold it."""
        if len(self.clusters) not in (1, 2):
            raise ValueError(f"service {self.name}: declare one or two clusters, not {self.clusters}")
        spec: dict[str, Any] = {
            "model": {"path": str(model)},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": self.replicas,
            "pattern": "single" if len(self.clusters) == 1 else "active-active",
            "placement": {"clusters": list(self.clusters)},
        }
        env = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        env += [{"name": k, "secret": v} for k, v in sorted(self.secrets.items())]
        if env:
            spec["env"] = env
        metadata = {"name": self.name}
        return {"apiVersion": "polycloud/v1", "kind": "Service", "metadata": metadata, "spec": spec}


@dataclass(frozen=True)
class Fleet:
    """Private-site clusters on the local driver and the services placed on them, written as YAML."""

    root: Path
    """Where `write` puts files (the test's `tmp_path`)."""
    model: Path
    clusters: tuple[str, ...]
    services: tuple[ServiceDecl, ...]

    @classmethod
    def grid(cls, root: Path, model: Path, clusters: int, services: int, replicas: int) -> Fleet:
        """`services` single-cluster services on each of `clusters` clusters, `replicas` each."""
        names = tuple(f"site{c}" for c in range(clusters))
        decls = tuple(
            ServiceDecl(f"svc{s}-{cluster}", (cluster,), replicas)
            for cluster in names
            for s in range(services)
        )
        return cls(root, model, names, decls)

    def service(self, name: str) -> ServiceDecl:
        """The declaration of service `name`."""
        return next(s for s in self.services if s.name == name)

    def with_env(self, service: str, **env: str) -> Fleet:
        """This fleet with `service`'s env variables updated (a change that rolls its replicas)."""
        return self._replace(service, lambda s: replace(s, env={**s.env, **env}))

    def with_secret(self, service: str, **secrets: str) -> Fleet:
        """This fleet with `service` also reading env variables from secrets (`NAME="secret-name"`)."""
        return self._replace(service, lambda s: replace(s, secrets={**s.secrets, **secrets}))

    def without(self, service: str) -> Fleet:
        """This fleet with `service` no longer declared."""
        return replace(self, services=tuple(s for s in self.services if s.name != service))

    def _replace(self, service: str, change: Callable[[ServiceDecl], ServiceDecl]) -> Fleet:
        self.service(service)  # fail loudly on a typo
        return replace(self, services=tuple(change(s) if s.name == service else s for s in self.services))

    def declared(self) -> dict[tuple[str, str], int]:
        """How many replicas each (service, cluster) must run."""
        return {(s.name, c): s.replicas for s in self.services for c in s.clusters}

    @property
    def total(self) -> int:
        """The number of replicas the fleet declares."""
        return sum(self.declared().values())

    def documents(self) -> list[dict[str, Any]]:
        """Cluster documents, then Service documents."""
        docs = []
        for index, name in enumerate(self.clusters):
            lat, lon = SITES[index % len(SITES)]
            docs.append(
                {
                    "apiVersion": "polycloud/v1",
                    "kind": "Cluster",
                    "metadata": {"name": name},
                    "spec": {
                        "provider": name,
                        "region": "dc1",
                        "driver": {"type": "local"},
                        "location": {"lat": lat, "lon": lon},
                        "instances": [
                            {"name": "cpu-node", "vcpus": 16, "memoryGiB": 64, "hourlyUSD": 0.5 + index / 100}
                        ],
                    },
                }
            )
        docs += [s.document(self.model) for s in self.services]
        return docs

    def write(self, name: str = "fleet.yaml") -> Path:
        """Write the fleet as one multi-document YAML file under `root`; returns its path."""
        path = self.root / name
        path.write_text(yaml.safe_dump_all(self.documents(), sort_keys=False))
        return path
