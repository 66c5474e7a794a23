"""One policy being evaluated against a fleet: its selected workloads and how violations are built."""

from __future__ import annotations

from dataclasses import dataclass, field

from polycloud.policy.scope import Place
from polycloud.policy.violations import Note, Violation
from polycloud.spec.fleet import FieldPath, Fleet, dotted
from polycloud.spec.models import Document, Job, Policy, Service


@dataclass
class Context:
    fleet: Fleet
    policy: Policy
    places: dict[str, Place]
    workloads: list[Service | Job]
    """The workloads the policy's selector picks (all of them when it has none)."""
    violations: list[Violation] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.policy.metadata.name

    def rule_at(self, rule_path: FieldPath) -> str:
        where = self.fleet.where("Policy", self.name)
        line, col = where.at(rule_path, key=True)
        return f"{where.file}:{line}:{col}"

    def report(self, rule: FieldPath, doc: Document, path: FieldPath, message: str, remedy: str) -> None:
        """Record a violation of the rule at `("spec", *rule)` by `doc`'s field at `path`."""
        where = self.fleet.where(doc.kind, doc.metadata.name)
        line, col = where.at(path)
        self.violations.append(
            Violation(
                policy=self.name,
                rule=dotted(rule),
                ruleAt=self.rule_at(("spec", *rule)),
                kind=doc.kind,
                document=doc.metadata.name,
                file=where.file,
                line=line,
                col=col,
                path=path,
                message=message,
                remedy=remedy,
            )
        )

    def note(self, rule: str, message: str) -> None:
        self.notes.append(Note(self.name, rule, message))


def listing(items: list[str], limit: int = 4) -> str:
    """`a, b, c` — or the first `limit` and how many more."""
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
