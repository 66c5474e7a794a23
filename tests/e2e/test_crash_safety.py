"""Crash safety: SIGKILL the control plane during an apply, a rolling update or `down`, start it again.

After every crash the user's natural retry (`polycloud apply --yes` again, which starts a new control
plane) must converge to exactly the declared replicas: one process per declared replica, no orphan, no
duplicate id, every replica ready on its service's current revision, and only complete revisions in
history (r1 after a first apply, r1 and r2 after a rolling update; nothing half-written, nothing lost).

Kill points are moments of the apply as the outside can see them: the CLI printing its preview (the real
apply request follows at once), then fixed delays after it that span recording the revision, spawning
replicas and their becoming ready (each case prints what the crash left behind); for a rolling update,
states of the process table (the first replica of the new revision started, the first old one gone); for
`down`, the first replica told to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tests.e2e.conftest import Background, Fleet, Polycloud

from polycloud.errors import NotFoundError
from polycloud.state import RevisionRecord

pytestmark = pytest.mark.e2e

PREVIEW_LINE = "cost delta:"
"""The last line `apply` prints before it sends the real (not dry-run) apply request."""
APPLY_KILL_POINTS_MS = [0, 250, 600, 1000, 2000]
"""Delays after the preview at which the control plane is killed during a first apply. On a 2-core
machine they typically land before the revision is recorded; after it, with few or no replicas spawned;
with some spawned; with all spawned; with all ready (it shifts with the load; each case prints where)."""


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    """Poll `condition` (at 50 Hz) until true; fail the test after `timeout_s` (a hang guard)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def _retry_apply(pc: Polycloud, fleet: Fleet, name: str = "fleet.yaml") -> None:
    """The user's retry after a crash: `apply --yes` again; it starts a new control plane and says so."""
    result = pc.ok("apply", fleet.write(name), "--yes")
    assert "started the control plane" in result.stderr, result.stderr
    assert "ready:" in result.stdout, result.stdout


def _killed_command_ends(command: Background) -> None:
    """A command whose control plane was killed under it ends, either done or with a clear error."""
    rc, stdout, stderr = command.finish()
    assert rc == 0 or "error" in stderr.lower(), (rc, stdout, stderr)


def _after_kill(pc: Polycloud, fleet: Fleet) -> None:
    """Print what the crash left behind (shown with a failing test's output, or with `pytest -s`)."""
    recorded = {s.name: [r.number for r in _revisions_if_any(pc, s.name)] for s in fleet.services}
    print(f"after the kill: {len(pc.replica_processes())} replica processes, revisions {recorded}")


def _revisions_if_any(pc: Polycloud, name: str) -> list[RevisionRecord]:
    """The recorded revisions of `name`; none when it was never recorded."""
    try:
        return pc.revisions(name)
    except NotFoundError:
        return []


@pytest.mark.parametrize("delay_ms", APPLY_KILL_POINTS_MS, ids=lambda d: f"preview+{d}ms")
def test_kill_during_first_apply(polycloud: Polycloud, fleet: Fleet, delay_ms: int) -> None:
    """From before anything is recorded to after every replica runs: the retry gives exactly r1."""
    apply = polycloud.start("apply", fleet.write(), "--yes", "--no-wait")  # starts the control plane too
    assert apply.wait_for_line(PREVIEW_LINE), apply.finish()
    time.sleep(delay_ms / 1000)
    polycloud.kill_control_plane()
    _killed_command_ends(apply)
    _after_kill(polycloud, fleet)

    _retry_apply(polycloud, fleet)

    polycloud.expect_exactly(fleet)
    for service in fleet.services:
        assert [r.number for r in polycloud.revisions(service.name)] == [1]


@pytest.mark.parametrize("moment", ["surge-started", "first-old-stopped"])
def test_kill_during_rolling_update(polycloud: Polycloud, fleet: Fleet, moment: str) -> None:
    """Mid-roll, with old and new replicas side by side: the retry finishes the roll, nothing is left."""
    polycloud.ok("apply", fleet.write(), "--yes")
    before = {p.pid for p in polycloud.replica_processes() if p.service == "beta"}
    changed = fleet.with_env("beta", COLOR="green")

    apply = polycloud.start("apply", changed.write("fleet-v2.yaml"), "--yes", "--no-wait")
    if moment == "surge-started":
        _wait_for(lambda: any(p.revision == 2 for p in polycloud.replica_processes()), "a replica of r2")
    else:
        _wait_for(lambda: not before <= {p.pid for p in polycloud.replica_processes()}, "an old replica gone")
    polycloud.kill_control_plane()
    _killed_command_ends(apply)
    _after_kill(polycloud, fleet)

    _retry_apply(polycloud, changed, "fleet-v2.yaml")

    status = polycloud.expect_exactly(changed)
    assert {s["name"]: s["revision"] for s in status["services"]} == {"alpha": "r1", "beta": "r2"}
    assert polycloud.history("alpha") == [1]
    assert polycloud.history("beta") == [1, 2]
    env = [{e["name"]: e["value"] for e in r.spec["spec"]["env"]} for r in polycloud.revisions("beta")]
    assert env == [{"COLOR": "blue"}, {"COLOR": "green"}]


def test_kill_during_down(polycloud: Polycloud, fleet: Fleet) -> None:
    """Kill the control plane once it has begun stopping replicas: `down` still leaves nothing behind,
    and `up --detach` then `apply` bring back exactly the same fleet, with no new revision."""
    polycloud.ok("apply", fleet.write(), "--yes")
    pid = polycloud.control_plane_pid()
    assert pid is not None
    logs = [polycloud.home / "logs" / f"{p.replica_id}.log" for p in polycloud.replica_processes()]
    down = polycloud.start("down")
    _wait_for(lambda: any('"event": "stopping"' in log.read_text() for log in logs), "a replica to stop")
    if not polycloud.kill(pid):
        print("the control plane had already finished stopping when it was to be killed")

    rc, stdout, stderr = down.finish()
    assert rc == 0, (stdout, stderr)
    assert polycloud.replica_processes() == []
    assert polycloud.control_plane_pid() is None

    polycloud.ok("up", "--detach")
    assert "no changes" in polycloud.ok("apply", fleet.write(), "--yes").stdout
    polycloud.expect_exactly(fleet)
    for service in fleet.services:
        assert [r.number for r in polycloud.revisions(service.name)] == [1]
