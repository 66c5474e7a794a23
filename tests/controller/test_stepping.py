"""The reconcile decision, on made-up observations: starts, stops, rolling updates, back-off."""

from __future__ import annotations

from polycloud.controller.desired import DesiredState, ReplicaGroup, ReplicaTemplate
from polycloud.controller.stepping import Backoff, plan_step
from polycloud.drivers.base import ReplicaState, ReplicaStatus


def group(count: int, spec_hash: str = "h1", service: str = "svc", cluster: str = "c1") -> ReplicaGroup:
    template = ReplicaTemplate(service, cluster, 1, "active", "/m.onnx", None, {}, 0.0, spec_hash)
    return ReplicaGroup(service, cluster, count, template)


def replica(
    i: int, state: ReplicaState = "ready", spec_hash: str = "h1", service: str = "svc"
) -> ReplicaStatus:
    return ReplicaStatus(f"{service}-c1-{i}", service, "c1", 1, "active", spec_hash, state)


def desired(*groups: ReplicaGroup) -> DesiredState:
    return DesiredState(groups={(g.service, g.cluster): g for g in groups})


def test_starts_missing_replicas_with_fresh_ordinals() -> None:
    actions = plan_step(desired(group(3)), {"c1": [replica(1)]}, Backoff(), now=0.0)
    assert sorted(s.id for s in actions.start) == ["svc-c1-0", "svc-c1-2"]
    assert actions.stop == []


def test_converged_does_nothing() -> None:
    actions = plan_step(desired(group(2)), {"c1": [replica(0), replica(1)]}, Backoff(), now=0.0)
    assert not actions.start and not actions.stop and not actions.events


def test_scales_down_starting_before_ready() -> None:
    observed = {"c1": [replica(0), replica(1, "starting"), replica(2)]}
    actions = plan_step(desired(group(2)), observed, Backoff(), now=0.0)
    assert actions.stop == [("c1", "svc-c1-1")]


def test_undeclared_replicas_are_removed() -> None:
    actions = plan_step(desired(), {"c1": [replica(0, service="old")]}, Backoff(), now=0.0)
    assert actions.stop == [("c1", "old-c1-0")]


def test_rolling_update_surges_one_and_keeps_ready_count() -> None:
    new = group(2, spec_hash="h2")
    old = [replica(0), replica(1)]
    step1 = plan_step(desired(new), {"c1": old}, Backoff(), now=0.0)
    assert [s.id for s in step1.start] == ["svc-c1-2"] and step1.stop == []
    starting = [*old, replica(2, "starting", "h2")]
    step2 = plan_step(desired(new), {"c1": starting}, Backoff(), now=0.0)
    assert step2.start == [] and step2.stop == []
    ready = [*old, replica(2, "ready", "h2")]
    step3 = plan_step(desired(new), {"c1": ready}, Backoff(), now=0.0)
    assert step3.stop == [("c1", "svc-c1-1")] and step3.start == []
    step4 = plan_step(desired(new), {"c1": [replica(0), replica(2, "ready", "h2")]}, Backoff(), now=0.0)
    assert [s.id for s in step4.start] == ["svc-c1-1"] and step4.stop == []


def test_failed_replica_is_replaced_at_once_then_backs_off() -> None:
    backoff = Backoff()
    actions = plan_step(desired(group(1)), {"c1": [replica(0, "failed")]}, backoff, now=10.0)
    assert actions.stop == [("c1", "svc-c1-0")]
    assert [s.id for s in actions.start] == ["svc-c1-1"]  # drift repair is immediate
    assert any(e.reason == "ReplicaFailed" for e in actions.events)
    again = plan_step(desired(group(1)), {"c1": [replica(1, "failed")]}, backoff, now=10.1)
    assert again.start == []  # a crash loop backs off
    later = plan_step(desired(group(1)), {"c1": []}, backoff, now=12.0)
    assert [s.id for s in later.start] == ["svc-c1-0"]


def test_backoff_grows_and_resets_when_healthy() -> None:
    backoff = Backoff()
    key = ("svc", "c1")
    backoff.failed(key, 0.0)
    first = backoff.not_before[key]
    backoff.failed(key, 0.0)
    assert backoff.not_before[key] > first
    backoff.healthy(key)
    assert not backoff.waiting(key, 0.0)


def test_crash_loop_keeps_backing_off_while_other_replicas_are_ready() -> None:
    backoff = Backoff()
    observed = {"c1": [replica(0), replica(1, "failed")]}
    first = plan_step(desired(group(2)), observed, backoff, now=0.0)
    assert [s.id for s in first.start] == ["svc-c1-2"]
    second = plan_step(desired(group(2)), {"c1": [replica(0), replica(2, "failed")]}, backoff, now=0.1)
    assert second.start == []  # the ready replica 0 does not end the crash loop


def test_blocked_service_keeps_its_replicas() -> None:
    state = desired(group(2, spec_hash="h2"))
    state.blocked["svc"] = "secret 'x' does not exist"
    actions = plan_step(state, {"c1": [replica(0), replica(1)]}, Backoff(), now=0.0)
    assert not actions.start and not actions.stop


def test_a_canary_group_runs_beside_the_baseline_with_unique_ordinals() -> None:
    state = desired(group(2))
    state.canaries[("svc", "c1")] = group(1, spec_hash="h2")
    baseline = [replica(0), replica(1)]
    first = plan_step(state, {"c1": baseline}, Backoff(), now=0.0)
    assert [s.id for s in first.start] == ["svc-c1-2"] and first.stop == []
    settled = plan_step(state, {"c1": [*baseline, replica(2, "ready", "h2")]}, Backoff(), now=0.0)
    assert not settled.start and not settled.stop  # neither group rolls the other's replicas


def test_a_canary_group_that_crash_loops_does_not_hold_back_the_baseline() -> None:
    state = desired(group(2))
    state.canaries[("svc", "c1")] = group(1, spec_hash="h2")
    backoff = Backoff()
    for now in (0.0, 0.1):
        plan_step(state, {"c1": [replica(0), replica(2, "failed", "h2")]}, backoff, now=now)
    retry = plan_step(state, {"c1": [replica(0)]}, backoff, now=0.2)
    assert [s.spec_hash for s in retry.start] == ["h1"]  # the baseline's replacement is not delayed
