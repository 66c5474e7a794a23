"""The audit hash chain on an open session: append, read, and verify.

Entry n stores `hash_n = sha256(hash_{n-1} + canonical JSON of entry n)`, where the entry holds its
sequence number n, time, actor, action, target, outcome, revision and detail (entry 1 links to `GENESIS`).
`audit_head` keeps the newest (seq, hash), written in the same transaction. Appends hold the "audit" lock
(SQLite: the write transaction itself; PostgreSQL: an advisory lock), so two processes never fork the
chain.

`verify` names the first place the stored chain stops being what was appended, and how:
- edited:    an entry's content no longer hashes to its hash, or a rewritten entry breaks the next link;
- deleted:   a sequence number is missing, or the next entry links to a hash that is nowhere;
- inserted:  an entry is not linked from the next one, duplicates a number, or lies past the head;
- reordered: an entry hashes correctly under another position, or links to a later entry.
Someone who can rewrite the database can also rewrite every hash after an entry and the head: compare
the head hash `verify` reports with a copy kept elsewhere to catch that (see docs/security.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from polycloud.errors import PolycloudError, UserError
from polycloud.state.hashing import canonical_json
from polycloud.state.records import AuditBreak, AuditInput, AuditRecord, AuditVerdict
from polycloud.state.tables_governance import AuditHeadRow, AuditRow

GENESIS = "0" * 64
"""The `prev_hash` of entry 1."""
MAX_LIMIT = 10_000


def entry_hash(prev_hash: str, seq: int, entry: AuditInput, time: datetime) -> str:
    """The chain hash of `entry` stored at `seq` after the entry whose hash is `prev_hash`."""
    fields = (entry.actor, entry.action, entry.target, entry.outcome, entry.revision, entry.detail)
    body = canonical_json(_content(seq, time, *fields))
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _content(seq: int, time: datetime, *fields: Any) -> dict[str, Any]:
    actor, action, target, outcome, revision, detail = fields
    return {
        "seq": seq,
        "time": time.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "revision": revision,
        "detail": detail,
    }


def append(session: Session, entry: AuditInput, now: datetime) -> AuditRecord:
    """Append `entry` at the end of the chain; the caller holds the "audit" lock."""
    head = session.get(AuditHeadRow, 1)
    last = session.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
    # Link to the head, not to the last row: entries cut off the end stay missing for `verify`. A tampered
    # table (a row past the head, a lost head) must not stop appends, so never reuse a number.
    seq = max(head.seq if head else 0, int(last[0]) if last else 0) + 1
    prev = head.hash if head is not None else str(last[1]) if last else GENESIS
    row = AuditRow(
        seq=seq,
        time=now,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        outcome=entry.outcome,
        revision=entry.revision,
        detail=entry.detail,
        prev_hash=prev,
        hash=entry_hash(prev, seq, entry, now),
    )
    session.add(row)
    if head is None:
        session.add(AuditHeadRow(id=1, seq=seq, hash=row.hash))
    else:
        head.seq, head.hash = seq, row.hash
    session.flush()
    return row.to_record()


def entries(session: Session, limit: int, before: int | None = None) -> list[AuditRecord]:
    """The newest `limit` entries (below sequence number `before`, when given), newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"audit limit must be between 1 and {MAX_LIMIT}, not {limit}")
    query = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditRow.seq < before)
    return [row.to_record() for row in session.scalars(query)]


@dataclass(frozen=True)
class _Stored:
    """A row as read back for verification; `recomputed` is None when its content cannot be read."""

    seq: int
    prev_hash: str
    hash: str
    recomputed: str | None
    content: dict[str, Any] | None


def verify(session: Session) -> AuditVerdict:
    """Walk the whole chain and report the first tampered place, if any."""
    rows = _read_all(session)
    head = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).first()
    head_seq, head_hash = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS)
    broken = _first_break(rows, head_seq) or _against_head(rows, head_seq, head_hash)
    return AuditVerdict(entries=len(rows), head_seq=head_seq, head_hash=head_hash, broken=broken)


def _read_all(session: Session) -> list[_Stored]:
    """Every row in `seq` order. A row whose columns no longer parse is kept as unreadable (edited)."""
    try:
        return [_stored(row) for row in session.execute(select(*_COLUMNS).order_by(AuditRow.seq))]
    except _UNREADABLE:
        pass  # one row does not parse: read them one by one to find it
    seqs = session.scalars(select(AuditRow.seq).order_by(AuditRow.seq)).all()
    return [_read_one(session, int(seq)) for seq in seqs]


_COLUMNS = (
    AuditRow.seq, AuditRow.prev_hash, AuditRow.hash, AuditRow.time, AuditRow.actor, AuditRow.action,
    AuditRow.target, AuditRow.outcome, AuditRow.revision, AuditRow.detail,
)  # fmt: skip
_UNREADABLE = (ValueError, TypeError, AttributeError, PolycloudError)


def _stored(row: Any) -> _Stored:
    seq, prev_hash, hash_, *fields = row
    content = _content(int(seq), *fields)
    recomputed = _digest(str(prev_hash), content)
    return _Stored(int(seq), str(prev_hash), str(hash_), recomputed, content)


def _read_one(session: Session, seq: int) -> _Stored:
    try:
        return _stored(session.execute(select(*_COLUMNS).where(AuditRow.seq == seq)).one())
    except _UNREADABLE:
        keys = session.execute(select(AuditRow.prev_hash, AuditRow.hash).where(AuditRow.seq == seq)).one()
        return _Stored(seq, str(keys[0]), str(keys[1]), None, None)


def _digest(prev_hash: str, content: dict[str, Any]) -> str | None:
    try:
        body = canonical_json(content)
    except UserError:
        return None
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _first_break(rows: Sequence[_Stored], head_seq: int) -> AuditBreak | None:
    prev = GENESIS
    for i, row in enumerate(rows):
        if row.seq == i + 1 and row.recomputed == row.hash and row.prev_hash == prev:
            prev = row.hash
            continue
        if row.seq > head_seq:
            return AuditBreak(row.seq, "inserted", f"entry {row.seq} lies past the chain's head {head_seq}")
        return _classify(rows, i, prev)
    return None


def _classify(rows: Sequence[_Stored], i: int, prev: str) -> AuditBreak:
    """Why row `i` (the first that does not fit) does not fit, given the hash it should follow."""
    row, expected = rows[i], i + 1
    position: dict[str, int] = {}
    for j, r in enumerate(rows):
        position.setdefault(r.hash, j)
    back = position.get(row.prev_hash)
    following = rows[i + 1] if i + 1 < len(rows) else None
    if row.seq > expected:
        return AuditBreak(expected, "deleted", f"entries {expected}..{row.seq - 1} are missing")
    if back is not None and back > i:
        return AuditBreak(row.seq, "reordered", f"entry {row.seq} follows an entry stored after it")
    if back is not None and back < i - 1:
        first = rows[back + 1].seq
        return AuditBreak(
            first, "inserted", f"entry {row.seq} links past entry {first}, which is not its own"
        )
    if following is not None and following.prev_hash == prev:
        return AuditBreak(row.seq, "inserted", f"entry {row.seq} is not part of the chain")
    if row.recomputed != row.hash:
        moved = _hashes_elsewhere(rows, i)
        if moved is None:
            return AuditBreak(row.seq, "edited", f"entry {row.seq} does not match its hash")
        if back is None:
            return AuditBreak(
                expected, "deleted", f"the entry before {moved} is missing; later ones renumbered"
            )
        return AuditBreak(row.seq, "reordered", f"entry {row.seq} holds the entry written as {moved}")
    if i > 0:
        why = f"entry {row.seq} no longer links to it"
        return AuditBreak(expected - 1, "edited", f"entry {expected - 1} was rewritten ({why})")
    return AuditBreak(row.seq, "edited", f"entry {row.seq} does not start the chain")


def _hashes_elsewhere(rows: Sequence[_Stored], i: int) -> int | None:
    """The other sequence number under which row `i`'s content hashes to its hash (a moved entry)."""
    row = rows[i]
    if row.content is None:
        return None
    for other in rows:
        if other.seq != row.seq and _digest(row.prev_hash, {**row.content, "seq": other.seq}) == row.hash:
            return other.seq
    return None


def _against_head(rows: Sequence[_Stored], head_seq: int, head_hash: str) -> AuditBreak | None:
    last_seq, last_hash = (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS)
    if last_seq < head_seq:
        return AuditBreak(last_seq + 1, "deleted", f"entries {last_seq + 1}..{head_seq} are missing")
    if last_seq > head_seq:
        return AuditBreak(head_seq + 1, "inserted", f"entries after {head_seq} were never appended")
    if last_hash != head_hash:
        return AuditBreak(last_seq, "edited", f"entry {last_seq} was rewritten")
    return None
