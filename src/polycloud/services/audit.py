"""The audit trail as the rest of polycloud uses it: one `record` seam, and `audited` around an action;
`trail` and `verify` read it, for fleet-wide callers only.

Every mutating use case (apply, rollback, tokens, secrets, rollouts, faults, drills, shutdown), every
authentication failure and every policy decision calls one of these, in the control-plane process (never
on the gateway's request path). Entries go to the hash chain in the state store (`polycloud.state.audit`).
Never put a secret's value in `detail`: the trail is readable by every fleet-wide admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from polycloud.errors import PolycloudError
from polycloud.policy import PolicyViolationError
from polycloud.services.governance import ForbiddenError, require_fleet_wide
from polycloud.state.records import AuditInput, AuditOutcome, AuditRecord, AuditVerdict, TokenRecord
from polycloud.state.repositories import AuditWriter
from polycloud.state.repositories_services import AuditTrailReader

ANONYMOUS = "anonymous"
MAX_ERROR = 300
"""Characters of an error message kept in an entry's detail."""


def actor_of(token: TokenRecord | None) -> str:
    """How an entry names the caller: "NAME#ID" of its token, "NAME [ISSUER SUBJECT]" of a person signed
    in with the OpenID Provider, or "anonymous"."""
    if token is None:
        return ANONYMOUS
    issuer = getattr(token, "issuer", "")
    if issuer:
        return f"{token.name} [{issuer} {getattr(token, 'subject', '')}]"[:250]
    return f"{token.name}#{token.id}"


def record(
    store: AuditWriter,
    *,
    actor: str,
    action: str,
    target: str = "",
    outcome: AuditOutcome = "ok",
    revision: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one entry to the audit trail.

    Args:
        store: The state store holding the chain.
        actor: `actor_of(token)` of the caller.
        action: "noun.verb", e.g. "secret.set", "rollout.start", "policy.check".
        target: What it was done to (a workload, secret or token id).
        outcome: "ok", "denied" (refused by RBAC or a policy) or "failed" (an error).
        revision: The workload revision the action produced, if any.
        detail: Plain JSON context; never a secret's value.

    Raises:
        UserError: An empty actor or action, an unknown outcome, or a detail that is not plain JSON.
    """
    entry = AuditInput(actor, action, target, outcome, revision, dict(detail or {}))
    return store.audit(entry)


@dataclass
class Pending:
    """What an `audited` block learns while it runs, recorded when it ends."""

    target: str
    revision: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@contextmanager
def audited(
    store: AuditWriter, actor: str, action: str, target: str = "", **detail: object
) -> Iterator[Pending]:
    """Record the block as one entry: "ok" when it returns, "failed" (with the reason) when it raises,
    "denied" (with each broken rule) when a policy forbids it.

    A `ForbiddenError` is left to the API, which records every refusal the same way.
    """
    pending = Pending(target, detail=dict(detail))
    try:
        yield pending
    except ForbiddenError:
        raise
    except PolicyViolationError as e:
        pending.detail["violations"] = violations(e)
        _finish(store, actor, action, pending, "denied", f"{len(e.violations)} policy violation(s)")
        raise
    except PolycloudError as e:
        _finish(store, actor, action, pending, "failed", str(e))
        raise
    except Exception as e:
        _finish(store, actor, action, pending, "failed", f"internal error: {type(e).__name__}")
        raise
    _finish(store, actor, action, pending, "ok", None)


def violations(error: PolicyViolationError) -> list[dict[str, str]]:
    """A policy refusal as an entry's detail keeps it: which rule each document broke."""
    return [
        {"policy": v.policy, "rule": v.rule, "kind": v.kind, "document": v.document} for v in error.violations
    ]


def _finish(
    store: AuditWriter, actor: str, action: str, pending: Pending, outcome: AuditOutcome, error: str | None
) -> None:
    detail = dict(pending.detail)
    if error is not None:
        detail["error"] = error[:MAX_ERROR]
    record(
        store,
        actor=actor,
        action=action,
        target=pending.target,
        outcome=outcome,
        revision=pending.revision,
        detail=detail,
    )


def trail(
    store: AuditTrailReader, caller: TokenRecord, *, limit: int = 100, before: int | None = None
) -> list[AuditRecord]:
    """The newest `limit` entries (those below sequence number `before`), newest first.

    Raises:
        ForbiddenError: `caller` is a project token: the trail spans every project.
    """
    require_fleet_wide(caller, "read the audit trail")
    return store.audit_log(limit=limit, before=before)


def verify(store: AuditTrailReader, caller: TokenRecord) -> AuditVerdict:
    """Walk the whole chain; the verdict names the first edited, deleted, inserted or reordered entry.

    Raises:
        ForbiddenError: `caller` is a project token: the trail spans every project.
    """
    require_fleet_wide(caller, "verify the audit trail")
    return store.verify_audit()


def entry_json(entry: AuditRecord) -> dict[str, Any]:
    """One entry as the API and `audit log --json` show it."""
    return {
        "seq": entry.seq,
        "time": entry.time.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "revision": entry.revision,
        "detail": entry.detail,
        "hash": entry.hash,
        "prevHash": entry.prev_hash,
    }


def verdict_json(verdict: AuditVerdict) -> dict[str, Any]:
    """The result of `audit verify` as JSON."""
    broken = verdict.broken
    return {
        "intact": verdict.intact,
        "entries": verdict.entries,
        "headSeq": verdict.head_seq,
        "headHash": verdict.head_hash,
        "broken": None
        if broken is None
        else {"seq": broken.seq, "kind": broken.kind, "reason": broken.reason},
    }
