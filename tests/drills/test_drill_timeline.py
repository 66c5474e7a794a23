"""The drill's figures from synthetic timelines: percentiles, rto, recovery, the report."""

from __future__ import annotations

import pytest

from polycloud.drills.timeline import FaultWindow, Sample, percentile, recovery_ms, rto, rto_ms, summarize

WINDOW = FaultWindow(cluster="a", fault_at_s=10.0, cleared_at_s=20.0)


def s(
    scheduled: float, cluster: str | None, status: int = 200, latency: float = 0.01, tried: str = ""
) -> Sample:
    return Sample(scheduled, scheduled + latency, status, cluster, tuple(tried.split(",")) if tried else ())


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(reversed(values)), 50) == 50.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_rto_runs_from_the_injection_to_the_last_answer_of_the_failed_cluster() -> None:
    samples = [s(9.0, "a"), s(9.5, "b"), s(10.1, "a", latency=0.2), s(10.2, "b"), s(10.4, "a"), s(11.0, "b")]
    # The last request scheduled after the fault that `a` answered: scheduled 10.4, answered 10.41.
    assert rto_ms(samples, WINDOW) == pytest.approx(410.0)


def test_rto_counts_the_answer_time_of_a_slow_answer_not_only_its_send_time() -> None:
    samples = [s(9.0, "a"), s(10.1, "a", latency=2.0), s(10.2, "b"), s(12.0, "b")]
    assert rto_ms(samples, WINDOW) == pytest.approx(2100.0)


def test_requests_sent_before_the_fault_do_not_count() -> None:
    samples = [s(9.0, "a"), s(9.99, "a", latency=1.0), s(10.1, "b"), s(15.0, "b")]
    assert rto_ms(samples, WINDOW) == 0.0


def test_rto_is_null_when_traffic_never_left_the_cluster() -> None:
    samples = [s(9.0, "a"), *(s(10.0 + i / 10, "a" if i % 2 else "b") for i in range(100))]
    result = rto(samples, WINDOW)
    assert result.ms is None and result.note is not None and "still reached" in result.note


def test_rto_is_null_when_the_cluster_served_nothing_before_the_fault() -> None:
    samples = [s(9.0, "b"), s(10.5, "b"), s(21.0, "a")]
    result = rto(samples, WINDOW)
    assert result.ms is None and result.note is not None and "before the fault" in result.note


def test_the_tail_shrinks_for_a_short_fault_window() -> None:
    short = FaultWindow(cluster="a", fault_at_s=10.0, cleared_at_s=11.0)
    # Last answer from `a` scheduled 10.3: outside the last half (0.5 s) of a 1 s window.
    assert rto_ms([s(9.0, "a"), s(10.3, "a"), s(10.9, "b")], short) == pytest.approx(310.0)
    assert rto_ms([s(9.0, "a"), s(10.6, "a"), s(10.9, "b")], short) is None


def test_recovery_runs_from_the_clear_to_the_first_success_of_the_cluster() -> None:
    samples = [s(19.0, "b"), s(20.1, "b"), s(20.5, "a", status=500), s(21.0, "a", latency=0.05), s(22.0, "a")]
    assert recovery_ms(samples, WINDOW) == pytest.approx(1050.0)
    assert recovery_ms([s(21.0, "b")], WINDOW) is None
    assert recovery_ms(samples, FaultWindow("a", 10.0, None)) is None


def test_summarize_counts_failures_retryables_and_clusters() -> None:
    samples = [
        s(1.0, "a"),
        s(2.0, "b"),
        s(10.5, "b", status=503),
        s(11.0, "b", status=429),
        s(12.0, None, status=0),
        s(13.0, "b", status=500),
        s(21.0, "a"),
    ]
    report = summarize(samples, WINDOW, kind="outage", service="svc", rps=1.0, duration_s=30.0).to_json()
    assert {"requests", "failed", "p50Ms", "p99Ms", "rtoMs", "recoveryMs"} <= set(report)
    assert report["requests"] == 7 and report["failed"] == 4 and report["retryable"] == 2
    assert report["statusCodes"] == {"200": 3, "429": 1, "500": 1, "503": 1, "error": 1}
    assert report["byCluster"] == {"a": 2, "b": 4, "none": 1}
    assert report["rtoMs"] == 0.0 and report["recoveryMs"] == pytest.approx(1010.0)
    assert report["p50Ms"] == pytest.approx(10.0) and report["faultedShare"] == 0.0
    assert report["faultAt"] == 10.0 and report["clearedAt"] == 20.0 and report["injectCallMs"] is None


def test_rto_counts_requests_that_waited_on_the_failed_cluster_before_another_answered() -> None:
    # A black hole answers nothing: what clients see is requests tried there first, then answered by b.
    samples = [
        s(9.0, "a"),
        s(10.1, "b", latency=0.3, tried="a"),
        s(10.3, "b", latency=0.28, tried="a,c"),
        s(10.5, "b"),
        s(15.0, "b"),
    ]
    assert rto_ms(samples, WINDOW) == pytest.approx(580.0)
    assert rto_ms([s(9.0, "a"), s(10.1, "b", tried="c"), s(12.0, "b")], WINDOW) == 0.0
    stuck = [s(9.0, "a"), s(19.5, "b", latency=0.3, tried="a")]  # still waiting on it at the end
    assert rto_ms(stuck, WINDOW) is None


def test_the_report_gives_the_p99_of_the_requests_sent_during_the_fault() -> None:
    before = [s(i / 10, "a", latency=0.01) for i in range(100)]
    during = [s(10.0 + i / 10, "b", latency=0.02, tried="a" if i < 3 else "") for i in range(100)]
    during[2] = s(10.2, "b", latency=0.4, tried="a")
    report = summarize(
        before + during, WINDOW, kind="blackhole", service="m", rps=10, duration_s=30
    ).to_json()
    assert report["faultP99Ms"] == pytest.approx(20.0)  # one slow request in a hundred: under the p99
    assert report["p99Ms"] == pytest.approx(20.0)
    assert report["rtoMs"] == pytest.approx(600.0) and report["faultedShare"] == 0.0
