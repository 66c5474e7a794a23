"""Store methods of the control plane itself: the leader lease, members' heartbeats, shared settings and
injected faults.

Each is one short transaction, as in `Store`. The lease's reads and writes are never fenced (they are
how fencing starts); everything else a leader writes goes through `StoreCore.fenced`.
"""

from __future__ import annotations

from datetime import timedelta

from polycloud.state import control, faults
from polycloud.state.control import Lease, MemberInput, MemberRecord
from polycloud.state.faults import FaultInput, FaultRecord
from polycloud.state.store_core import StoreCore


class ControlStore(StoreCore):
    """The lease, the members and the shared settings (see `polycloud.state.control`)."""

    def acquire_lease(self, holder: str, ttl_s: float, name: str = control.LEADER) -> Lease:
        """Take or renew lease `name` for `holder`; the returned lease says who holds it now."""
        with self._session(write=True, unfenced=True, lock_name="lease") as session:
            return control.acquire(session, name, holder, ttl_s)

    def release_lease(self, holder: str, epoch: int, name: str = control.LEADER) -> None:
        """Let lease `name` go at once, if `holder` still holds it at `epoch`."""
        with self._session(write=True, unfenced=True) as session:
            control.release(session, name, holder, epoch)

    def lease(self, name: str = control.LEADER) -> Lease | None:
        """Lease `name` as it stands, or None when no one ever took it."""
        with self._session(write=False) as session:
            return control.read(session, name)

    def heartbeat(self, member: MemberInput) -> None:
        """Record that `member` (a server or a gateway) is alive."""
        with self._session(write=True, unfenced=True) as session:
            control.heartbeat(session, member, self._clock())

    def members(self, max_age_s: float) -> list[MemberRecord]:
        """Members heard from within the last `max_age_s` seconds, by (role, id)."""
        since = self._clock() - timedelta(seconds=max_age_s)
        with self._session(write=False) as session:
            return control.members(session, since)

    def leave(self, member_id: str) -> None:
        """Forget a member that stops on purpose."""
        with self._session(write=True, unfenced=True) as session:
            control.leave(session, member_id)

    def control_setting(self, name: str) -> str | None:
        """A setting every server shares, or None when unset."""
        with self._session(write=False) as session:
            return control.setting(session, name)

    def settle_control_setting(self, name: str, value: str) -> str:
        """Set `name` to `value` unless already set (race-free); returns the value that stands."""
        with self._session(write=True, unfenced=True, lock_name="control-settings") as session:
            return control.setting_once(session, name, value)

    def control_settings_like(self, prefix: str) -> dict[str, str]:
        """Every shared setting whose name starts with `prefix`."""
        with self._session(write=False) as session:
            return control.settings_like(session, prefix)

    # certificates (mutual TLS inside the fleet)

    def request_certificate(self, holder: str, request: str) -> None:
        """Ask the leader for a certificate for `holder` (a PEM signing request)."""
        with self._session(write=True, unfenced=True) as session:
            control.request_certificate(session, holder, request, self._clock())

    def pending_certificates(self) -> list[tuple[str, str]]:
        """(holder, request) of the requests waiting for the leader."""
        with self._session(write=False) as session:
            return control.pending_certificates(session)

    def grant_certificate(self, holder: str, request: str, certificate: str) -> None:
        """Record the certificate the leader issued for `holder`'s request."""
        with self._session(write=True, unfenced=True) as session:
            control.grant_certificate(session, holder, request, certificate, self._clock())

    def granted_certificate(self, holder: str) -> tuple[str, str | None] | None:
        """(request, certificate or None) of `holder`, None when it never asked."""
        with self._session(write=False) as session:
            return control.granted_certificate(session, holder)

    # injected faults

    def add_fault(self, fault: FaultInput) -> FaultRecord:
        """Record a fault for the leader to apply (any server may take the request)."""
        with self._session(write=True, unfenced=True) as session:
            return faults.add(session, fault, self._clock())

    def clear_faults(self, cluster: str) -> list[int]:
        """Clear every fault of `cluster`; the leader takes them back. Returns their ids."""
        with self._session(write=True, unfenced=True) as session:
            return faults.clear(session, cluster, self._clock())

    def live_faults(self) -> list[FaultRecord]:
        """Faults wanted now, or applied and not yet taken back (what the leader must act on)."""
        with self._session(write=False) as session:
            return faults.live(session)

    def faults(self, ids: list[int]) -> list[FaultRecord]:
        """The faults with these ids (to follow one through the leader)."""
        with self._session(write=False) as session:
            return faults.by_ids(session, ids)

    def mark_faults(self, *, applied: list[int], released: list[int], consumed: list[int]) -> None:
        """Stamp what the leader did with faults (fenced like every other write of the leader)."""
        with self._session(write=True) as session:
            faults.mark(session, applied=applied, released=released, consumed=consumed, now=self._clock())
