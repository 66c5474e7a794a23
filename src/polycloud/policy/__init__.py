"""Policy as code (pure): evaluate a fleet's Policy documents against the fleet and its plan.

`evaluate(fleet, catalog, plan=..., digests=..., secrets=...)` returns a `Report` of violations, each
naming the rule, the offending document's file, line and field, and a remedy. It sits between spec and
placement: it reads specs and the catalog, and takes plans, digests and secret names as plain input.
"""

from polycloud.policy.costs import Placed
from polycloud.policy.evaluating import evaluate
from polycloud.policy.scope import selects
from polycloud.policy.violations import Note, PolicyViolationError, Report, Violation

__all__ = ["Note", "Placed", "PolicyViolationError", "Report", "Violation", "evaluate", "selects"]
