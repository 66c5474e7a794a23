"""The live feed: one sample per tick for every subscriber, series aligned in time, projects kept apart."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import viewer_token

from polycloud.api.feed import Feed


def row(name: str, rps: float, project: str | None = None) -> dict[str, Any]:
    return {"name": name, "project": project, "rps": rps, "errorRate": 0.0, "p50Ms": 1.0, "p99Ms": 2.0}


class Fleet:
    """Samples that the test changes between ticks."""

    def __init__(self) -> None:
        self.clusters = [row("a", 1.0)]
        self.services = [row("mine", 1.0, "p"), row("theirs", 2.0, "q")]
        self.last_event_id = 0
        self.events: list[dict[str, Any]] = []

    def sample(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "services": self.services,
            "jobs": [],
            "flows": [{"workload": "mine"}, {"workload": "theirs"}],
            "lastEventId": self.last_event_id,
        }

    def events_after(self, after: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["id"] > after]


def test_series_stay_aligned_when_a_cluster_appears() -> None:
    fleet = Fleet()
    feed = Feed(fleet.sample, fleet.events_after)
    feed.tick()
    fleet.clusters = [row("a", 3.0), row("b", 5.0)]
    feed.tick()
    series = feed.series(viewer_token(None))
    assert len(series["t"]) == 2
    assert series["clusters"]["a"]["rps"] == [1.0, 3.0]
    assert series["clusters"]["b"]["rps"] == [None, 5.0]
    assert set(series["services"]) == {"mine", "theirs"}
    assert set(feed.series(viewer_token("p"))["services"]) == {"mine"}


def test_subscribers_get_their_projects_view_and_events() -> None:
    fleet = Fleet()
    feed = Feed(fleet.sample, fleet.events_after)

    async def run() -> list[tuple[str, dict[str, Any]]]:
        mine, everyone = feed.subscribe(viewer_token("p")), feed.subscribe(viewer_token(None))
        feed.close()  # stop the sampler thread: the test ticks by hand
        await asyncio.sleep(0.05)
        while not mine.queue.empty():
            mine.queue.get_nowait()
        feed.tick()
        fleet.events = [{"id": 1, "workload": "theirs"}, {"id": 2, "workload": "mine"}]
        fleet.last_event_id = 2
        feed.tick()
        await asyncio.sleep(0.05)  # call_soon_threadsafe delivers on this loop
        got = []
        while not mine.queue.empty():
            got.append(mine.queue.get_nowait())
        assert everyone.queue.qsize() >= 4
        return got

    got = asyncio.run(run())
    kinds = [name for name, _ in got]
    assert kinds == ["overview", "overview", "event"]
    assert [s["name"] for s in got[0][1]["services"]] == ["mine"]
    assert got[0][1]["flows"] == [{"workload": "mine"}]
    assert got[2][1]["id"] == 2


def test_a_slow_subscriber_loses_old_messages_not_the_feed() -> None:
    fleet = Fleet()
    feed = Feed(fleet.sample, fleet.events_after)

    async def run() -> int:
        sub = feed.subscribe(viewer_token(None))
        feed.close()
        await asyncio.sleep(0.05)
        for _ in range(40):
            feed.tick()
        await asyncio.sleep(0.05)
        return sub.queue.qsize()

    assert asyncio.run(run()) == 16
