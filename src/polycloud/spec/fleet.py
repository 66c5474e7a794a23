"""A fleet: every document of one or more spec files, with where each field was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polycloud.errors import SpecIssue
from polycloud.spec.models import Cluster, Dataset, Document, FeatureFlag, Job, Policy, RoleBinding, Service

FieldPath = tuple[str | int, ...]


@dataclass
class Positions:
    """Where one document and its fields sit in their file (1-based line and column)."""

    file: str
    base_dir: Path
    model_roots: tuple[Path, ...] = ()
    """Folders a model file of this document must lie under; empty: anywhere."""
    keys: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: FieldPath, *, key: bool = False) -> tuple[int, int]:
        """Position of `path`, or of its nearest ancestor that was written."""
        table = self.keys if key else self.values
        for cut in range(len(path), -1, -1):
            if path[:cut] in table:
                return table[path[:cut]]
            if path[:cut] in self.values:
                return self.values[path[:cut]]
        return (1, 1)

    def issue(self, path: FieldPath, message: str, *, key: bool = False) -> SpecIssue:
        line, col = self.at(path, key=key)
        return SpecIssue(self.file, line, col, dotted(path), message)


def dotted(path: FieldPath) -> str:
    """`("spec", "traffic", 0, "share")` → `spec.traffic[0].share`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True)
class TrainedOn:
    """A dataset a recorded job run read while writing a model: the residency the model inherits."""

    job: str
    dataset: str
    residency: str


@dataclass
class Fleet:
    """All documents of a fleet, by kind and name, each with its source positions."""

    clusters: dict[str, Cluster] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    role_bindings: dict[str, RoleBinding] = field(default_factory=dict)
    flags: dict[str, FeatureFlag] = field(default_factory=dict)
    positions: dict[tuple[str, str], Positions] = field(default_factory=dict)
    trained_on: dict[str, tuple[TrainedOn, ...]] = field(default_factory=dict)
    """Model sha256 → the resident datasets of the job runs that wrote it, from the store's lineage (empty
    where no store is read, e.g. `polycloud plan`): residency follows a model served by digest or URI."""

    def documents(self) -> list[Document]:
        """Every document, clusters first (the order a reader expects)."""
        return [
            *self.clusters.values(),
            *self.datasets.values(),
            *self.services.values(),
            *self.jobs.values(),
            *self.policies.values(),
            *self.role_bindings.values(),
            *self.flags.values(),
        ]

    def workloads(self) -> list[Service | Job]:
        return [*self.services.values(), *self.jobs.values()]

    def where(self, kind: str, name: str) -> Positions:
        """Positions of a document; a synthetic one for documents not read from a file."""
        return self.positions.get((kind, name)) or Positions(file="<fleet>", base_dir=Path.cwd())

    def add(self, doc: Document, positions: Positions) -> None:
        self._table(doc.kind)[doc.metadata.name] = doc
        self.positions[(doc.kind, doc.metadata.name)] = positions

    def _table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "Cluster": self.clusters,
            "Dataset": self.datasets,
            "Service": self.services,
            "Job": self.jobs,
            "Policy": self.policies,
            "RoleBinding": self.role_bindings,
            "FeatureFlag": self.flags,
        }
        return tables[kind]

    def has(self, kind: str, name: str) -> bool:
        return name in self._table(kind)
