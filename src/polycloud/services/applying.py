"""Plan and apply a fleet: the diff against what is recorded, model checks, one atomic revision write.

Nothing is written unless every workload can be placed, every model loads and no policy is violated:
apply is all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from polycloud.catalog import Catalog
from polycloud.errors import PermanentError, SpecError, UserError
from polycloud.placement import Placement, Plan, plan_fleet
from polycloud.policy import PolicyViolationError, evaluate
from polycloud.services.documents import documents_to_fleet
from polycloud.serving.fetching import default_model_cache, fetch_model
from polycloud.serving.model import check_sha256, inspect_model
from polycloud.spec import Fleet
from polycloud.spec.fleet import TrainedOn
from polycloud.spec.models import Cluster, Dataset, FeatureFlag, ModelRef, Policy, RoleBinding, ServiceSpec
from polycloud.spec.references import check_routed_revisions
from polycloud.state import DocumentInput, DocumentState, WorkloadInput, WorkloadState, content_hash
from polycloud.state.repositories import HistoryReader
from polycloud.state.repositories_services import FleetRepository

Action = Literal["+", "~", "-", "="]


@dataclass(frozen=True)
class Change:
    """One workload's fate in an apply, with its cost before and after (per month, or per job run)."""

    workload: str
    kind: str
    action: Action
    beforeUSD: float
    afterUSD: float
    revision: int | None


@dataclass(frozen=True)
class Preview:
    changes: list[Change]
    plan: Plan
    applied: bool = False
    documents: dict[str, str] = field(default_factory=dict)
    """"Kind/name" of each other document (Cluster, Dataset, Policy, FeatureFlag) that the apply creates,
    updates or deletes, with what: an apply that changes only documents is a change too."""

    def delta(self, kind: str) -> float:
        """Cost change of one kind: per month for services, per run for jobs."""
        return round(sum(c.afterUSD - c.beforeUSD for c in self.changes if c.kind == kind), 6)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [asdict(c) for c in self.changes],
            "deltaUSD": self.delta("Service"),
            "jobsDeltaUSD": self.delta("Job"),
            "applied": self.applied,
            "documents": self.documents,
            "plan": self.plan.to_json(),
        }


class FleetService:
    """Plan, preview and apply fleets against the state store."""

    def __init__(
        self,
        store: FleetRepository,
        catalog: Catalog,
        on_change: Callable[[], None] = lambda: None,
        secret_names: Callable[[], Collection[str]] | None = None,
        model_cache: Path | None = None,
        trained_on: Callable[[], dict[str, tuple[TrainedOn, ...]]] = dict,
    ) -> None:
        self.store = store
        self.model_cache = model_cache
        """Where `model.uri` models are fetched to (the server's `<home>/models`)."""
        self.catalog = catalog
        self.on_change = on_change
        self.secret_names = secret_names or (lambda: {s.name for s in store.secrets()})
        self.trained_on = trained_on
        """What recorded job runs trained each model on (`Fleet.trained_on`), read at each plan."""

    def plan(self, documents: list[dict[str, Any]]) -> Plan:
        """The plan of `documents`; a model ties to its training data by a declared sha256 only (its
        bytes are read by `apply`)."""
        return plan_fleet(self._fleet(documents), self.catalog)

    def _fleet(self, documents: list[dict[str, Any]]) -> Fleet:
        fleet = documents_to_fleet(documents, self.catalog)
        if fleet.services:
            fleet.trained_on = self.trained_on()
        return fleet

    def apply(self, documents: list[dict[str, Any]], *, author: str, message: str, dry_run: bool) -> Preview:
        """Diff `documents` against the recorded state; unless `dry_run`, record it in one transaction."""
        fleet = self._fleet(documents)
        check_routed_revisions_exist(fleet, self.store)
        # Pinned before the plan (residency follows a model's digest) and the policies (approved-model
        # rules judge the pinned digests).
        pin_model_digests(fleet, self.model_cache)
        plan = plan_fleet(fleet, self.catalog)
        self.enforce_policies(fleet, plan)
        if plan.infeasible:
            lines = [f"{i.kind} {i.workload}: " + "; ".join(i.reasons) for i in plan.infeasible]
            raise UserError("cannot apply, some workloads cannot be placed:\n  " + "\n  ".join(lines))
        inputs = workload_inputs(fleet, plan)
        changes = diff(self.store.current(), inputs, plan)
        documents_in = document_inputs(fleet)
        if dry_run:
            return Preview(changes, plan, documents=document_diff(self.store.documents(), documents_in))
        result = self.store.apply(
            workloads=inputs, documents=documents_in, author=author, message=message, prune=True
        )
        revisions = {w.name: w.revision for w in result.workloads}
        self.on_change()
        changes = [
            Change(
                c.workload, c.kind, c.action, c.beforeUSD, c.afterUSD, revisions.get(c.workload, c.revision)
            )
            for c in changes
        ]
        done = {f"{d.kind}/{d.name}": str(d.action) for d in result.documents if d.action != "unchanged"}
        return Preview(changes, plan, applied=True, documents=done)

    def enforce_policies(self, fleet: Fleet, plan: Plan) -> None:
        """Raise `PolicyViolationError` (HTTP 422) when the fleet or its plan breaks a policy rule."""
        if not fleet.policies:
            return
        needed = any(p.spec.requiredSecrets for p in fleet.policies.values())
        secrets = self.secret_names() if needed else frozenset[str]()
        report = evaluate(fleet, self.catalog, plan=plan.placements, secrets=secrets)
        if report.violations:
            raise PolicyViolationError(report.violations)


def check_routed_revisions_exist(fleet: Fleet, store: HistoryReader) -> None:
    """Raise `SpecError` (422) when a flag routes to a revision its service does not have."""
    if issues := check_routed_revisions(fleet, lambda name: {r.number for r in store.history(name)}):
        raise SpecError(issues)


def pin_model_digests(fleet: Fleet, cache: Path | None = None) -> None:
    """Check every service's model loads, and pin its sha256 in the spec (a revision names exact bytes).

    A `model.uri` is fetched into `cache` (default: a folder in the system's temporary directory) and its
    digest verified first: a model that cannot be fetched is refused here, with the reason, rather than
    recorded as a revision whose replicas could never start. A `runtime`'s model is the user server's
    business: a local file is pinned by its bytes, a folder or URI is passed on as declared."""
    for name, service in list(fleet.services.items()):
        model = service.spec.model
        if model is None:
            continue
        try:
            digest = _checked_digest(service.spec, model, cache)
        except (OSError, PermanentError) as e:
            raise UserError(f"Service {name}: {e}") from e
        if digest is None:
            continue
        pinned = model.model_copy(update={"sha256": digest})
        spec = service.spec.model_copy(update={"model": pinned})
        fleet.services[name] = service.model_copy(update={"spec": spec})


def _checked_digest(spec: ServiceSpec, model: ModelRef, cache: Path | None) -> str | None:
    """The sha256 of the model's bytes once they load as what the service serves; None: not pinned."""
    if spec.runtime is not None:
        path = Path(model.path) if model.path is not None else None
        return check_sha256(path, model.sha256) if path is not None and path.is_file() else None
    if model.path is not None:
        local, pinned = Path(model.path), model.sha256
    elif model.uri is not None:
        local, pinned = fetch_model(model.uri, cache or default_model_cache(), model.sha256)
    else:
        return None
    if spec.protocol == "openai":
        from polycloud.serving.llm.lm import load  # the built-in LLM runtime's model file

        digest = load(local)[1]
        if pinned is not None and digest != pinned:
            raise PermanentError(f"model {local} has sha256 {digest}, not the pinned {pinned}")
        return digest
    return inspect_model(local, pinned).sha256


def workload_inputs(fleet: Fleet, plan: Plan) -> list[WorkloadInput]:
    inputs = []
    for workload in fleet.workloads():
        placement = plan.placement(workload.metadata.name)
        if placement is None:
            continue
        spec = workload.model_dump(mode="json")
        assignments = [asdict(a) for a in placement.assignments]
        inputs.append(
            WorkloadInput(
                name=workload.metadata.name,
                kind=workload.kind,
                spec=spec,
                content_hash=content_hash({"spec": spec, "placement": assignments}),
                placement=assignments,
                project=workload.metadata.labels.get("project"),
            )
        )
    return inputs


def document_inputs(fleet: Fleet) -> list[DocumentInput]:
    docs: list[Cluster | Dataset | Policy | RoleBinding | FeatureFlag] = [
        *fleet.clusters.values(),
        *fleet.datasets.values(),
        *fleet.policies.values(),
        *fleet.role_bindings.values(),
        *fleet.flags.values(),
    ]
    return [
        DocumentInput(
            kind=d.kind,
            name=d.metadata.name,
            spec=d.model_dump(mode="json"),
            content_hash=content_hash(d.model_dump(mode="json")),
        )
        for d in docs
    ]


def document_diff(recorded: list[DocumentState], inputs: list[DocumentInput]) -> dict[str, str]:
    """ "Kind/name" → created, updated or deleted, for each document an apply of `inputs` would change."""
    before = {(d.kind, d.name): d.content_hash for d in recorded}
    changes: dict[str, str] = {}
    for item in inputs:
        old = before.pop((item.kind, item.name), None)
        if old != item.content_hash:
            changes[f"{item.kind}/{item.name}"] = "created" if old is None else "updated"
    changes |= {f"{kind}/{name}": "deleted" for kind, name in before}
    return dict(sorted(changes.items()))


def recorded_cost(state: WorkloadState) -> float:
    return round(sum(float(a.get("costUSD", 0.0)) for a in state.placement), 6)


def diff(current: list[WorkloadState], inputs: list[WorkloadInput], plan: Plan) -> list[Change]:
    """`+` new, `~` changed, `=` unchanged, `-` no longer declared — with costs before and after."""
    before = {w.name: w for w in current}
    changes: list[Change] = []
    for item in inputs:
        placement: Placement | None = plan.placement(item.name)
        after = placement.totalUSD if placement else 0.0
        old = before.get(item.name)
        if old is None:
            changes.append(Change(item.name, item.kind, "+", 0.0, after, None))
        elif old.content_hash != item.content_hash:
            changes.append(Change(item.name, item.kind, "~", recorded_cost(old), after, old.number))
        else:
            changes.append(Change(item.name, item.kind, "=", recorded_cost(old), after, old.number))
    declared = {i.name for i in inputs}
    for old in current:
        if old.name not in declared:
            changes.append(Change(old.name, old.kind, "-", recorded_cost(old), 0.0, old.number))
    return changes
