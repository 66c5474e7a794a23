"""What a policy evaluation finds: violations (which block apply) and notes (rules it could not check)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from polycloud.errors import UserError
from polycloud.spec.fleet import FieldPath, Fleet, dotted


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, the offending document and field, and how to fix it."""

    policy: str
    rule: str
    """The Policy field that was broken, e.g. `requiredLabels` or `budgets[0]`."""
    ruleAt: str
    """Where the rule is written, `FILE:LINE:COL`."""
    kind: str
    document: str
    file: str
    line: int
    col: int
    path: FieldPath
    message: str
    remedy: str

    @property
    def field(self) -> str:
        return dotted(self.path)

    def __str__(self) -> str:
        where = f"{self.field}: " if self.path else ""
        return (
            f"{self.file}:{self.line}:{self.col}: {where}{self.kind} {self.document}: {self.message} "
            f"[policy {self.policy}, {self.rule} at {self.ruleAt}]; remedy: {self.remedy}"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = list(self.path)
        data["field"] = self.field
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Violation:
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        fields["path"] = tuple(fields["path"])
        return cls(**fields)

    def located(self, fleet: Fleet) -> Violation:
        """The same violation, pointed at where `fleet` (read from files) has the offending field."""
        if (self.kind, self.document) not in fleet.positions:
            return self
        where = fleet.where(self.kind, self.document)
        line, col = where.at(self.path)
        rule_at = self.ruleAt
        if ("Policy", self.policy) in fleet.positions:
            rules = fleet.where("Policy", self.policy)
            rule_line, rule_col = rules.at(("spec", *undotted(self.rule)), key=True)
            rule_at = f"{rules.file}:{rule_line}:{rule_col}"
        return replace(self, file=where.file, line=line, col=col, ruleAt=rule_at)


@dataclass(frozen=True)
class Note:
    """A rule that could not be checked here, and where it will be."""

    policy: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"policy {self.policy}, {self.rule}: {self.message}"


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "violations": [v.to_json() for v in self.violations],
            "notes": [asdict(n) for n in self.notes],
        }


class PolicyViolationError(UserError):
    """Policies forbid the change; the message lists every violation with its remedy."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__(
            f"{len(violations)} policy violation(s):\n" + "\n".join(f"  {v}" for v in violations)
        )

    def located(self, fleet: Fleet) -> PolicyViolationError:
        """The same error with each violation pointing into the files `fleet` was read from."""
        moved = [v.located(fleet) for v in self.violations]
        return PolicyViolationError(sorted(moved, key=lambda v: (v.file, v.line, v.col, v.policy, v.rule)))


def undotted(text: str) -> FieldPath:
    """`budgets[1]` → `("budgets", 1)`: the inverse of `dotted`."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)
