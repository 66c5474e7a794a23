"""Residency that follows the data: a Service serving a model a Job writes inherits the residency of the
datasets that job reads (docs/lineage.md).

Two ties: the spec's own, the service's `model.path` being one of a job's `outputs` (both made absolute
from their spec files' folders); and the bytes, the service's model sha256 (declared, or pinned by
`apply`) being that of a model a recorded job run wrote (`Fleet.trained_on`, from the store's lineage),
so a model copied elsewhere or served by URI keeps the residency of the data it was trained on. A
Policy with `derivedResidency: ignore` that selects the service frees it of every inherited residency;
otherwise placement and policy treat serving the model outside the dataset's jurisdiction like reading
the dataset there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from polycloud.policy.scope import selects
from polycloud.spec.fleet import Fleet
from polycloud.spec.models import Job, Policy, Service


@dataclass(frozen=True)
class Inherited:
    """A residency a service inherits, and the lineage chain it comes by."""

    jurisdiction: str
    dataset: str
    job: str
    model: str
    tie: str = "path"
    """The `spec.model` field the service is tied by: "path" or "sha256"."""

    @property
    def chain(self) -> str:
        """`dataset D → job J → model M`: the words an explanation shows."""
        return f"dataset {self.dataset} → job {self.job} → model {self.model}"


def inherited_residencies(
    fleet: Fleet, workload: Service | Job, policies: Iterable[Policy]
) -> list[Inherited]:
    """The residencies `workload` inherits through the model it serves (none for a job, or when a
    selecting policy says `derivedResidency: ignore`)."""
    if not isinstance(workload, Service) or workload.spec.model is None:
        return []
    if any(p.spec.derivedResidency == "ignore" and selects(p, workload) for p in policies):
        return []
    model = workload.spec.model
    found = [] if model.path is None else _by_path(fleet, model.path)
    if model.sha256 is not None:
        label = f"sha256:{model.sha256[:12]}…"
        found += [
            Inherited(t.residency, t.dataset, t.job, label, "sha256")
            for t in fleet.trained_on.get(model.sha256, ())
        ]
    unique: dict[tuple[str, str, str], Inherited] = {}
    for inherited in found:  # a model tied both ways is named by its path
        unique.setdefault((inherited.jurisdiction, inherited.dataset, inherited.job), inherited)
    return list(unique.values())


def _by_path(fleet: Fleet, path: str) -> list[Inherited]:
    found = []
    for job in fleet.jobs.values():
        for output in job.spec.outputs:
            if output.path != path:
                continue
            for read in job.spec.reads:
                dataset = fleet.datasets.get(read.dataset)
                if dataset is not None and dataset.spec.residency is not None:
                    found.append(Inherited(dataset.spec.residency, read.dataset, job.metadata.name, path))
    return found
