"""The open-loop scheduler on a fake clock: arrivals keep their schedule whatever the answers do."""

from __future__ import annotations

import asyncio

import pytest

from polycloud.drills.load import OpenLoop, Outcome, arrival_times


class FakeClock:
    """Time moves only when the scheduler sleeps until a later arrival (after letting ready tasks run,
    as a real sleep would)."""

    def __init__(self, now: float = 100.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(0)
        self.t = max(self.t, when)


def test_arrivals_are_evenly_spaced_and_stop_before_the_duration() -> None:
    assert arrival_times(4, 1) == [0.0, 0.25, 0.5, 0.75]
    times = arrival_times(50, 6)
    assert len(times) == 300 and times[0] == 0.0 and times[-1] == pytest.approx(5.98)
    assert arrival_times(3, 1) == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert len(arrival_times(0.5, 3)) == 2
    with pytest.raises(ValueError):
        arrival_times(0, 1)


def test_requests_leave_on_schedule_even_while_earlier_answers_hang() -> None:
    clock = FakeClock()
    sent: list[float] = []
    release = asyncio.Event()
    total = 20

    async def send() -> Outcome:
        sent.append(clock.now())
        if len(sent) == total:
            release.set()  # only the last send releases them all: a closed loop would never get here
        await release.wait()
        return Outcome(200, "a")

    async def main() -> list[float]:
        loop = OpenLoop(10, 2, max_in_flight=100, clock=clock)
        samples = await loop.run(send, start=clock.now())
        return [x.latency_ms for x in samples]

    latencies = asyncio.run(main())
    assert sent == pytest.approx([100.0 + i / 10 for i in range(total)])
    # Every answer came when the last request left (1.9 s in): latency counts from the scheduled time.
    assert latencies == pytest.approx([(1.9 - i / 10) * 1000 for i in range(total)], abs=1e-6)


def test_concurrency_is_bounded_and_waiting_for_a_slot_counts_as_latency() -> None:
    clock = FakeClock()
    in_flight = peak = 0

    async def send() -> Outcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1
        return Outcome(503)

    async def main() -> None:
        samples = await OpenLoop(100, 1, max_in_flight=3, clock=clock).run(send, start=clock.now())
        assert len(samples) == 100 and all(x.status == 503 and x.cluster is None for x in samples)
        assert [x.scheduled_s for x in samples] == pytest.approx(arrival_times(100, 1))

    asyncio.run(main())
    assert peak == 3
