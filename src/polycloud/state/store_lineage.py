"""Store methods of lineage: OpenLineage RunEvents kept once each, and the outbox that delivers them.
Each is one short transaction, as in `Store`."""

from __future__ import annotations

from datetime import datetime

from polycloud.state import lineage
from polycloud.state.lineage import LineageEventInput, LineageEventRecord
from polycloud.state.store_core import StoreCore


class LineageStore(StoreCore):
    """Lineage events and their delivery."""

    def add_lineage_events(self, events: list[LineageEventInput]) -> int:
        """Keep the events not kept yet (per run and type); returns how many were new."""
        with self._session(write=True) as session:
            return lineage.record(session, events)

    def lineage_keys(self) -> set[tuple[str, str]]:
        """(run id, event type) of every kept event."""
        with self._session(write=False) as session:
            return lineage.keys(session)

    def lineage_events(
        self, job_name: str | None = None, event_type: str | None = None
    ) -> list[LineageEventRecord]:
        """Every kept event (of one OpenLineage job name, of one type, when given), oldest first."""
        with self._session(write=False) as session:
            return lineage.listing(session, job_name, event_type)

    def open_lineage_runs(self, kind: str) -> list[LineageEventRecord]:
        """START events of `kind` ("job" or "service") runs not ended yet."""
        with self._session(write=False) as session:
            return lineage.open_runs(session, kind)

    def unsent_lineage_events(self, limit: int = 100) -> list[LineageEventRecord]:
        """Events the outbox still has to deliver, oldest first."""
        with self._session(write=False) as session:
            return lineage.unsent(session, limit)

    def mark_lineage_sent(self, event_id: int) -> None:
        """The collector took event `event_id`."""
        with self._session(write=True) as session:
            lineage.mark_sent(session, event_id, self._clock())

    def mark_lineage_failed(self, event_id: int, error: str, next_try_at: datetime) -> None:
        """Delivering event `event_id` failed with `error`."""
        with self._session(write=True) as session:
            lineage.mark_failed(session, event_id, error, next_try_at)
