"""Residency that follows the data: a Service serving a model a Job writes inherits the residency of the
datasets that job reads (docs/lineage.md).

The tie is the spec's own: the service's `model.path` is one of the job's `outputs` (both made absolute
from their spec files' folders). A Policy with `derivedResidency: ignore` that selects the service frees
it of every inherited residency; otherwise placement and policy treat serving the model outside the
dataset's jurisdiction like reading the dataset there.
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

    @property
    def chain(self) -> str:
        """`dataset D → job J → model M`: the words an explanation shows."""
        return f"dataset {self.dataset} → job {self.job} → model {self.model}"


def inherited_residencies(
    fleet: Fleet, workload: Service | Job, policies: Iterable[Policy]
) -> list[Inherited]:
    """The residencies `workload` inherits through the model it serves (none for a job, or when a
    selecting policy says `derivedResidency: ignore`)."""
    if not isinstance(workload, Service) or workload.spec.model is None or workload.spec.model.path is None:
        return []
    if any(p.spec.derivedResidency == "ignore" and selects(p, workload) for p in policies):
        return []
    path = workload.spec.model.path
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
