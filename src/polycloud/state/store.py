"""`Store`: the durable state of a polycloud control plane, behind one synchronous, thread-safe facade.

Every method is one short transaction on its own session, so the API process, the reconciler thread and
CLI processes can share one database. Database failures surface as polycloud errors: an unreachable or
busy database as `TransientError`, a violated constraint as `ConflictError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from polycloud.exchange import FlagCount, LoadReport
from polycloud.state import (
    desired,
    flag_counts,
    flag_revisions,
    loads,
    observed,
    person_sessions,
    tokens,
    web_sessions,
)
from polycloud.state.flag_revisions import FlagRevisionRecord
from polycloud.state.records import (
    ApplyResult,
    DocumentInput,
    DocumentState,
    EventInput,
    EventRecord,
    ReplicaRecord,
    RevisionRecord,
    TokenRecord,
    WorkloadInput,
    WorkloadState,
)
from polycloud.state.store_control import ControlStore
from polycloud.state.store_core import Clock, StoreCore
from polycloud.state.store_extended import ExtendedStore
from polycloud.state.store_lineage import LineageStore
from polycloud.state.tables import DocumentRow


class Store(ExtendedStore, ControlStore, LineageStore):
    """The state store. Create with `Store.open(url)`; close with `close()` or a `with` block."""

    # desired state

    def apply(
        self,
        *,
        workloads: list[WorkloadInput],
        documents: list[DocumentInput],
        author: str,
        message: str,
        prune: bool = True,
    ) -> ApplyResult:
        """Record the declared fleet as the desired state, in one transaction (all of it or nothing).

        A workload gets a new revision (number = previous + 1) when it is new, was deleted, or its
        content_hash differs from its current revision; otherwise it is left untouched. Documents are
        overwritten when their hash differs. With `prune`, workloads and documents missing from the
        input are marked deleted (their history stays).

        Args:
            workloads: Every Service and Job declared; names must be unique.
            documents: Every other declared object; (kind, name) pairs must be unique.
            author: Who applies, recorded on each new revision.
            message: Why, recorded on each new revision.
            prune: Mark what is not declared as deleted.

        Returns:
            What happened to each workload and document.

        Raises:
            UserError: A name is declared twice.
        """
        authorship = desired.Authorship(author, message, self._clock())
        with self._session(write=True, lock_name="desired") as session:
            return desired.apply_changes(session, workloads, documents, authorship, prune=prune)

    def current(self) -> list[WorkloadState]:
        """Every workload that is not deleted, with the content of its current revision, sorted by name."""
        with self._session(write=False) as session:
            return desired.current_workloads(session)

    def documents(self, kind: str | None = None) -> list[DocumentState]:
        """Declared non-workload objects that are not deleted, optionally of one kind, by (kind, name)."""
        query = select(DocumentRow).where(DocumentRow.deleted.is_(False))
        if kind is not None:
            query = query.where(DocumentRow.kind == kind)
        query = query.order_by(DocumentRow.kind, DocumentRow.name)
        with self._session(write=False) as session:
            return [row.to_state() for row in session.scalars(query)]

    def history(self, workload: str) -> list[RevisionRecord]:
        """Every revision of `workload`, oldest first, including a deleted workload's.

        Raises:
            NotFoundError: No such workload; the message suggests close names.
        """
        with self._session(write=False) as session:
            return [row.to_record() for row in desired.revisions_of(session, workload)]

    def revision(self, workload: str, number: int) -> RevisionRecord:
        """Revision `number` of `workload`.

        Raises:
            NotFoundError: No such workload, or no such revision of it.
        """
        with self._session(write=False) as session:
            return desired.get_revision(session, workload, number).to_record()

    def rollback(self, workload: str, *, to: int | None, author: str, message: str = "") -> RevisionRecord:
        """Append a new revision to `workload` that copies the spec and placement of revision `to`.

        Args:
            workload: The workload's name.
            to: The revision to restore; by default the latest revision before the current one whose
                content differs from it. A deleted workload needs an explicit `to` and comes back.
            author: Recorded on the new revision.
            message: Recorded on the new revision; "rollback to rN" by default.

        Returns:
            The new revision.

        Raises:
            NotFoundError: No such workload or revision.
            ConflictError: Nothing to roll back to, or `to` has the current content already.
        """
        authorship = desired.Authorship(author, message, self._clock())
        with self._session(write=True, lock_name="desired") as session:
            return desired.rollback(session, workload, to, authorship)

    def flag_history(self, name: str) -> list[FlagRevisionRecord]:
        """Every version of FeatureFlag `name`, oldest first (deletions included).

        Raises:
            NotFoundError: No flag of that name was ever applied.
        """
        with self._session(write=False) as session:
            return flag_revisions.history(session, name)

    def put_flag(
        self, name: str, document: dict[str, Any], content_hash: str, *, author: str, message: str
    ) -> FlagRevisionRecord:
        """Make `document` (a validated FeatureFlag) flag `name`'s content, as a new version: the kill
        switch and rollbacks, outside an apply (the next apply of the files sets it as they say).

        Raises:
            NotFoundError: No flag of that name was ever applied.
        """
        with self._session(write=True, lock_name="desired") as session:
            return flag_revisions.put(
                session, name, document, content_hash, author=author, message=message, now=self._clock()
            )

    def add_flag_counts(self, gateway_id: str, counts: list[FlagCount]) -> None:
        """Add gateway `gateway_id`'s flag evaluations of its last window to the current minute's counts.

        Raises:
            UserError: Empty `gateway_id`, or two counts of one (flag, variant, error).
        """
        now = self._clock()
        with self._session(write=True, lock_name="load") as session:
            flag_counts.add(session, gateway_id, counts, now)

    def flag_counts(self, since_s: float) -> list[FlagCount]:
        """Flag evaluations per (flag, variant, error) over about the last `since_s` seconds (whole
        minutes: from the minute `since_s` ago on), summed over every gateway."""
        since = self._clock() - timedelta(seconds=since_s)
        with self._session(write=False) as session:
            return flag_counts.totals(session, since)

    # observed state

    def replace_replicas(self, replicas: list[ReplicaRecord]) -> None:
        """Make `replicas` the whole observed snapshot, atomically (readers see the old or the new one).

        Raises:
            UserError: Two replicas share an id.
        """
        with self._session(write=True, lock_name="observed") as session:
            observed.replace_replicas(session, replicas)

    def replicas(self) -> list[ReplicaRecord]:
        """The observed snapshot, sorted by (workload, cluster, id)."""
        with self._session(write=False) as session:
            return observed.list_replicas(session)

    def add_events(self, events: list[EventInput]) -> None:
        """Append events; one without a time gets the store clock's now."""
        now = self._clock()
        with self._session(write=True) as session:
            observed.add_events(session, events, now)

    def events(
        self, *, workload: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest `limit` events, newest first, optionally only those of one workload or cluster.

        Raises:
            UserError: `limit` is below 1.
        """
        with self._session(write=False) as session:
            return observed.list_events(session, workload=workload, cluster=cluster, limit=limit)

    # load reports

    def report_load(self, gateway_id: str, rows: list[LoadReport]) -> None:
        """Make `rows` the whole current report of gateway `gateway_id`, atomically, stamped with now.

        Rows the gateway reported before and not now are gone afterwards; other gateways' rows stay.

        Raises:
            UserError: Empty `gateway_id`, a row naming another gateway, or two rows for one
                (service, cluster).
        """
        now = self._clock()
        with self._session(write=True, lock_name="load") as session:
            loads.replace_reports(session, gateway_id, rows, now)

    def load(self, max_age_s: float) -> list[LoadReport]:
        """Every gateway's rows reported within the last `max_age_s` seconds.

        Sorted by (service, cluster, gateway_id); rows of a gateway that stopped reporting age out.
        """
        since = self._clock() - timedelta(seconds=max_age_s)
        with self._session(write=False) as session:
            return loads.fresh_reports(session, since)

    # tokens

    def create_token(
        self, *, name: str, role: str, project: str | None, expires_at: datetime | None
    ) -> tuple[str, TokenRecord]:
        """Create an API token. Its plaintext is returned here once and never stored.

        Args:
            name: A label for humans ("ci", "alice").
            role: "viewer", "deployer" or "admin".
            project: Limit the token to one project; None for all.
            expires_at: Timezone-aware expiry; None for never.

        Returns:
            The token to hand to the user (it starts with "pc_"), and its record.

        Raises:
            UserError: Empty name, unknown role, or a naive `expires_at`.
        """
        now = self._clock()
        with self._session(write=True) as session:
            return tokens.create_token(
                session, name=name, role=role, project=project, expires_at=expires_at, now=now
            )

    def create_first_admin_token(self) -> str | None:
        """Create the first admin token if no token exists yet; returns its plaintext, or None.

        Race-free: servers starting at once on one database create exactly one.
        """
        now = self._clock()
        with self._session(write=True, lock_name="tokens") as session:
            if tokens.list_tokens(session):
                return None
            token, _ = tokens.create_token(
                session, name="admin", role="admin", project=None, expires_at=None, now=now
            )
            return token

    def tokens(self) -> list[TokenRecord]:
        """Every token ever created (revoked and expired included), oldest first."""
        with self._session(write=False) as session:
            return tokens.list_tokens(session)

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token for good; revoking it again changes nothing.

        Raises:
            NotFoundError: No token has that id.
        """
        with self._session(write=True) as session:
            tokens.revoke_token(session, token_id)

    def authenticate(self, token: str) -> TokenRecord | None:
        """The record of a valid token; None when it is unknown, revoked or expired."""
        now = self._clock()
        with self._session(write=False) as session:
            return tokens.authenticate(session, token, now)

    # ---------------------------------------------------------------------- dashboard sessions

    def issue_login_code(self, token_id: int, ttl: timedelta) -> str:
        """A single-use dashboard login code for token `token_id`, valid for `ttl`.

        Raises:
            NotFoundError: No such token, or it is revoked or expired.
        """
        now = self._clock()
        with self._session(write=True) as session:
            return web_sessions.issue(session, token_id, "code", ttl, now)

    def open_web_session(self, token_id: int, ttl: timedelta) -> str:
        """A browser session for token `token_id` (a token typed into the login form)."""
        now = self._clock()
        with self._session(write=True) as session:
            return web_sessions.issue(session, token_id, "session", ttl, now)

    def redeem_login_code(self, code: str, ttl: timedelta) -> tuple[str, TokenRecord] | None:
        """Trade a login code for a browser session once; None when the code is not valid."""
        now = self._clock()
        with self._session(write=True) as session:
            return web_sessions.redeem(session, code, ttl, now)

    def authenticate_web_session(self, secret: str) -> TokenRecord | None:
        """The token a valid browser session stands for; None when unknown, expired or its token is."""
        now = self._clock()
        with self._session(write=False) as session:
            return web_sessions.authenticate(session, secret, now)

    def end_web_session(self, secret: str) -> None:
        """Log a browser session out (a token's or a person's)."""
        with self._session(write=True) as session:
            web_sessions.end(session, secret)
            person_sessions.end(session, secret)

    def open_person_session(self, person: dict[str, Any], ttl: timedelta) -> str:
        """A browser session for a person signed in with the OpenID Provider (`person`: plain JSON)."""
        now = self._clock()
        with self._session(write=True) as session:
            return person_sessions.open_session(session, person, ttl, now)

    def authenticate_person_session(self, secret: str) -> dict[str, Any] | None:
        """The person a valid browser session stands for; None when unknown or expired."""
        now = self._clock()
        with self._session(write=False) as session:
            return person_sessions.authenticate(session, secret, now)


__all__ = ["Clock", "Store", "StoreCore"]
