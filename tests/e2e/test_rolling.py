"""Rolling updates, drift repair, removal and rollback, end to end through the real CLI and processes.

- A changed service rolls without ever having fewer ready replicas than declared in any cluster (max
  unavailable 0), leaves other services alone, and ends with every replica on the new revision, running
  with the new environment; `apply --yes` returns only once that is so.
- A replica killed from outside is replaced, and the failure is reported as an event (eventually; how
  fast is the benchmark's concern); one that keeps failing is retried after a back-off, not every pass.
- A service removed from the fleet loses its replicas; its history is kept.
- `polycloud rollback` records the previous content as a new revision and the replicas follow.
- An update whose replicas cannot start (a missing secret) is reported, and the old replicas keep serving.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import psutil
import pytest
from tests.e2e.conftest import Fleet, Polycloud

pytestmark = pytest.mark.e2e

DEADLINE_S = 90.0
"""How long the fleet may take to get somewhere before the test gives up (a hang guard, not a target)."""


def _ready_by_cluster(status: dict[str, Any], service: str) -> dict[str, int]:
    """Ready replicas of `service` per cluster in one status snapshot."""
    svc = next((s for s in status["services"] if s["name"] == service), None)
    if svc is None:
        return {}
    return {c["cluster"]: sum(r["state"] == "ready" for r in c["replicas"]) for c in svc["clusters"]}


def _revisions_listed(status: dict[str, Any], service: str) -> set[str]:
    """The revisions the replicas of `service` run, in one status snapshot."""
    svc = next(s for s in status["services"] if s["name"] == service)
    return {r["revision"] for c in svc["clusters"] for r in c["replicas"]}


def _env_of(pid: int) -> dict[str, str]:
    """The environment a replica process was started with."""
    return psutil.Process(pid).environ()


def _converged(pc: Polycloud, fleet: Fleet, gone: frozenset[int] = frozenset()) -> bool:
    """Whether the fleet is exactly `fleet`, and none of the `gone` pids is part of it."""
    return not pc.problems(fleet, pc.api_status()) and not gone & {p.pid for p in pc.replica_processes()}


def test_rolling_update_never_drops_below_declared(polycloud: Polycloud, fleet: Fleet) -> None:
    """An env change rolls beta: never fewer ready than declared per cluster, alpha untouched, and
    `apply --yes` returns only when every beta replica runs r2."""
    polycloud.ok("apply", fleet.write(), "--yes")
    alpha_pids = {p.pid for p in polycloud.replica_processes() if p.service == "alpha"}
    changed = fleet.with_env("beta", COLOR="green")
    declared = {cluster: n for (service, cluster), n in changed.declared().items() if service == "beta"}

    apply = polycloud.start("apply", changed.write("fleet-v2.yaml"), "--yes")
    lowest, mixed, at_return = dict(declared), 0, None
    deadline = time.monotonic() + DEADLINE_S
    while True:  # watch the whole roll, whenever the command returns
        returned = apply.popen.poll() is not None
        status = polycloud.api_status()
        ready = _ready_by_cluster(status, "beta")
        lowest = {c: min(lowest[c], ready.get(c, 0)) for c in declared}
        mixed += _revisions_listed(status, "beta") == {"r1", "r2"}
        if returned and at_return is None:
            at_return = status
        if at_return is not None and _converged(polycloud, changed):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the roll did not end: {polycloud.problems(changed, status)}")
        time.sleep(0.05)
    rc, stdout, stderr = apply.finish()
    assert rc == 0, (stdout, stderr)

    assert lowest == declared, f"ready replicas of beta per cluster fell to {lowest}; declared {declared}"
    assert mixed, "never saw the roll in progress (r1 and r2 replicas side by side)"
    status = polycloud.expect_exactly(changed)
    assert _revisions_listed(status, "beta") == {"r2"}
    beta = [p for p in polycloud.replica_processes() if p.service == "beta"]
    assert {p.revision for p in beta} == {2}
    assert all(_env_of(p.pid).get("COLOR") == "green" for p in beta)
    assert {p.pid for p in polycloud.replica_processes() if p.service == "alpha"} == alpha_pids
    assert polycloud.history("beta") == [1, 2]
    assert _revisions_listed(at_return, "beta") == {"r2"}, (
        f"`apply --yes` returned while beta's replicas ran {_revisions_listed(at_return, 'beta')}\n{stdout}"
    )


def test_killed_replica_is_replaced(polycloud: Polycloud, fleet: Fleet) -> None:
    """Drift: a replica SIGKILLed from outside is reported and replaced; no new revision."""
    polycloud.ok("apply", fleet.write(), "--yes")
    victim = next(p for p in polycloud.replica_processes() if p.replica_id == "alpha-acme-0")

    os.kill(victim.pid, signal.SIGKILL)

    polycloud.eventually(lambda: _converged(polycloud, fleet, frozenset({victim.pid})), "a replacement")
    polycloud.expect_exactly(fleet)
    events = polycloud.api().get("/events", params={"workload": "alpha", "limit": 50}).json()
    assert any(e["reason"] == "ReplicaFailed" and victim.replica_id in e["message"] for e in events), events
    assert [r.number for r in polycloud.revisions("alpha")] == [1]


def test_crash_looping_replica_backs_off(polycloud: Polycloud, fleet: Fleet) -> None:
    """A replacement that fails at every start (its model file no longer matches the pinned digest) is
    retried after a growing back-off, never in the same reconcile pass that saw it fail, even while the
    other replica of its group is healthy; the rest of the fleet keeps serving."""
    polycloud.ok("apply", fleet.write(), "--yes")
    with fleet.model.open("ab") as model:
        model.write(b"\0")  # running replicas have their model loaded; new ones refuse the file
    victim = next(p for p in polycloud.replica_processes() if p.replica_id == "alpha-acme-0")

    os.kill(victim.pid, signal.SIGKILL)

    def events() -> list[dict[str, Any]]:
        rows = polycloud.api().get("/events", params={"workload": "alpha", "limit": 200}).json()
        return [e for e in rows if e["cluster"] == "acme"]

    polycloud.eventually(
        lambda: sum(e["reason"] == "ReplicaFailed" for e in events()) >= 4, "four failures of alpha-acme"
    )
    passes: dict[str, set[str]] = {}
    for e in events():  # the events of one reconcile pass share their time
        passes.setdefault(e["time"], set()).add(e["reason"])
    failing = sorted(t for t, reasons in passes.items() if "ReplicaFailed" in reasons)
    hasty = [t for t in failing[1:] if "ReplicaStarting" in passes[t]]  # the first restart may be at once
    assert not hasty, f"restarted in the very pass that saw it fail again, at {hasty}"
    ready = _ready_by_cluster(polycloud.api_status(), "alpha")
    assert ready["borealis"] == 2 and ready["acme"] >= 1, ready


def test_removed_service_stops(polycloud: Polycloud, fleet: Fleet) -> None:
    """A service left out of the fleet is shown as `-`, its replicas stop, its history stays."""
    polycloud.ok("apply", fleet.write(), "--yes")
    smaller = fleet.without("alpha")

    result = polycloud.ok("apply", smaller.write("fleet-v2.yaml"), "--yes")

    assert re.search(r"^\W*-\W+alpha\s", result.stdout, flags=re.MULTILINE), result.stdout
    polycloud.eventually(lambda: _converged(polycloud, smaller), "alpha's replicas to stop")
    assert not [p for p in polycloud.replica_processes() if p.service == "alpha"]
    status = polycloud.expect_exactly(smaller)
    assert [s["name"] for s in status["services"]] == ["beta"]
    assert polycloud.history("alpha") == [1]  # the history of a removed service is kept


def test_rollback_restores_previous_content(polycloud: Polycloud, fleet: Fleet) -> None:
    """`rollback` appends r3 with r1's content; the replicas follow before the command returns."""
    polycloud.ok("apply", fleet.write(), "--yes")
    polycloud.ok("apply", fleet.with_env("beta", COLOR="green").write("fleet-v2.yaml"), "--yes")

    result = polycloud.ok("rollback", "beta")
    at_return = polycloud.api_status()

    assert "r3" in result.stdout, result.stdout
    revisions = polycloud.revisions("beta")
    assert [r.number for r in revisions] == [1, 2, 3]
    assert (revisions[2].content_hash, revisions[2].spec) == (revisions[0].content_hash, revisions[0].spec)
    status = polycloud.expect_exactly(fleet)
    assert _revisions_listed(status, "beta") == {"r3"}
    beta = [p for p in polycloud.replica_processes() if p.service == "beta"]
    assert {p.revision for p in beta} == {3}
    assert all(_env_of(p.pid).get("COLOR") == "blue" for p in beta)
    assert polycloud.history("beta") == [1, 2, 3]
    assert _revisions_listed(at_return, "beta") == {"r3"}, (
        f"`rollback` returned while beta's replicas ran {_revisions_listed(at_return, 'beta')}"
    )


def test_update_that_cannot_start_keeps_old_replicas(polycloud: Polycloud, fleet: Fleet) -> None:
    """A new revision naming a secret that does not exist cannot start: the reconciler says so with an
    event, and the running revision's replicas keep serving (max unavailable 0 holds for it too)."""
    polycloud.ok("apply", fleet.write(), "--yes")
    serving = {p.pid for p in polycloud.replica_processes() if p.service == "beta"}
    blocked = fleet.with_secret("beta", TOKEN="no-such-secret")

    polycloud.ok("apply", blocked.write("fleet-v2.yaml"), "--yes", "--no-wait")

    def reported() -> bool:
        events = polycloud.api().get("/events", params={"workload": "beta", "limit": 50}).json()
        return any(e["reason"] == "ServiceBlocked" and "no-such-secret" in e["message"] for e in events)

    polycloud.eventually(reported, "a ServiceBlocked event naming the secret")
    # Passes of the reconciler have run since: it has replaced a replica killed after the event.
    victim = next(p for p in polycloud.replica_processes() if p.service == "alpha")
    os.kill(victim.pid, signal.SIGKILL)
    alpha = sum(n for (service, _), n in fleet.declared().items() if service == "alpha")
    polycloud.eventually(
        lambda: (
            len([p for p in polycloud.replica_processes() if p.service == "alpha"]) == alpha
            and victim.pid not in {p.pid for p in polycloud.replica_processes()}
        ),
        "the killed alpha replica to be replaced",
    )
    still = {p.pid for p in polycloud.replica_processes() if p.service == "beta"}
    assert still == serving, f"beta's r1 replicas {sorted(serving)} were stopped; now {sorted(still)}"
    ready = _ready_by_cluster(polycloud.api_status(), "beta")
    assert ready == {"acme": 2, "borealis": 2}, ready
