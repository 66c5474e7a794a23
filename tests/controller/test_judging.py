"""Judging a canary step on per-revision counts: windows, restarts, and the rules relative to the baseline."""

from __future__ import annotations

from polycloud.controller.judging import MIN_ATTEMPTS, Window, judge, snapshot, windows
from polycloud.exchange import LATENCY_BOUNDS_MS, RevisionCounts, bucket_of, empty_buckets, quantile_ms
from polycloud.spec.models import Rollout


def counts(
    revision: int, attempts: int, failures: int, ms: float = 5.0, gateway: str = "g1"
) -> RevisionCounts:
    buckets = empty_buckets()
    buckets[bucket_of(ms)] = attempts
    return RevisionCounts("svc", revision, attempts, failures, tuple(buckets), gateway_id=gateway)


def window(attempts: int, failures: int, ms: float = 5.0) -> Window:
    w = Window(attempts, failures)
    w.buckets[bucket_of(ms)] = attempts
    return w


def test_a_window_counts_only_what_came_after_the_snapshot() -> None:
    start = snapshot([counts(2, 100, 10), counts(1, 50, 0)])
    seen = windows([counts(2, 130, 40), counts(1, 80, 0)], start)
    assert (seen[2].attempts, seen[2].failures) == (30, 30)
    assert (seen[1].attempts, seen[1].failures) == (30, 0)


def test_a_gateway_that_restarted_counts_from_zero_and_new_gateways_count_whole() -> None:
    start = snapshot([counts(2, 100, 10, gateway="old")])
    seen = windows([counts(2, 7, 1, gateway="old"), counts(2, 5, 0, gateway="new")], start)
    assert (seen[2].attempts, seen[2].failures) == (12, 1)


def test_too_few_attempts_never_fail_the_canary() -> None:
    assert judge(window(MIN_ATTEMPTS - 1, MIN_ATTEMPTS - 1), Window(), Rollout()) is None


def test_errors_fail_the_canary_only_beyond_the_limit_and_the_baseline() -> None:
    rules = Rollout(maxErrorRate=0.05)
    assert judge(window(100, 10), window(100, 0), rules) is not None
    assert judge(window(100, 10), window(100, 20), rules) is None  # the baseline fares worse: not its fault
    assert judge(window(100, 4), window(100, 0), rules) is None  # within the limit
    assert "error rate 10.0%" in (judge(window(100, 10), Window(), rules) or "")


def test_latency_fails_the_canary_only_beyond_the_limit_and_the_baseline() -> None:
    rules = Rollout(maxP99Ms=100)
    assert judge(window(100, 0, ms=400), window(100, 0, ms=10), rules) is not None
    assert judge(window(100, 0, ms=400), window(100, 0, ms=900), rules) is None
    assert judge(window(100, 0, ms=50), window(100, 0, ms=10), rules) is None
    assert judge(window(100, 0, ms=400), window(100, 0, ms=10), Rollout()) is None  # no latency rule


def test_histogram_quantiles_are_within_a_bucket_of_the_truth() -> None:
    buckets = empty_buckets()
    for ms in [1.0] * 98 + [50.0, 200.0]:
        buckets[bucket_of(ms)] += 1
    assert 50.0 <= quantile_ms(buckets, 0.99) <= 50.0 * 1.25
    assert quantile_ms(empty_buckets(), 0.99) == 0.0
    assert LATENCY_BOUNDS_MS[-1] > 30_000
