"""Tables of governance: the audit hash chain (and its head), envelope-encrypted secrets, and gateway
inference keys with their usage. Migrations must match these exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.records import (
    AUDIT_OUTCOMES,
    AuditRecord,
    stored,
)
from polycloud.state.tables import NAME, Base, in_list


class AuditRow(Base):
    """One entry of the audit hash chain: `hash` = sha256(`prev_hash` + canonical JSON of the entry).

    `seq` numbers entries 1, 2, 3... and is part of the hashed entry, so no entry can be moved, dropped
    or slipped in without breaking a hash or a link (see `polycloud.state.audit`).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(in_list("outcome", AUDIT_OUTCOMES), name="outcome"),
        Index(None, "time"),
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int | None]
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def to_record(self) -> AuditRecord:
        """This row as a detached record."""
        return AuditRecord(
            seq=self.seq,
            time=self.time,
            actor=self.actor,
            action=self.action,
            target=self.target,
            outcome=stored(self.outcome, AUDIT_OUTCOMES, "audit outcome"),
            revision=self.revision,
            detail=self.detail,
            prev_hash=self.prev_hash,
            hash=self.hash,
        )


class AuditHeadRow(Base):
    """The chain's newest (seq, hash), written with every append: a cut-off tail shows up against it."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


class SecretRow(Base):
    """An envelope-encrypted secret: the value sealed by its own data key, the data key by a master key.

    Nothing here is plaintext: `wrapped_key` opens only with the master key named by `key_id`, and both
    layers are bound to (project, name), so a row copied over another does not decrypt.
    """

    __tablename__ = "secrets"
    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)

    project: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    """'' for a fleet-wide secret (a primary key column cannot be NULL)."""
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    wrapped_key: Mapped[bytes]
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    """AES-GCM ciphertext of the value, tag included."""
    key_id: Mapped[str] = mapped_column(String(64))
    """Which master key wrapped `wrapped_key`."""
    version: Mapped[int]
    """1 at creation, + 1 at each new value (a new value rolls the replicas that use it)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InferenceKeyRow(Base):
    """A gateway inference key of one service. Only `key_hash` (sha256 hex of the key) is kept."""

    __tablename__ = "inference_keys"
    __table_args__ = (
        UniqueConstraint("key_hash"),
        Index(None, "service"),
        CheckConstraint("rps > 0", name="rps_positive"),
        CheckConstraint("burst >= 1", name="burst_positive"),
        CheckConstraint("monthly_quota IS NULL OR monthly_quota >= 1", name="quota_positive"),
        CheckConstraint(
            "tokens_per_minute IS NULL OR tokens_per_minute >= 1", name="tokens_per_minute_positive"
        ),
        CheckConstraint("monthly_tokens IS NULL OR monthly_tokens >= 1", name="monthly_tokens_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    """The key's first characters, so that people can tell keys apart without the secret."""
    rps: Mapped[float] = mapped_column(Float)
    """Token-bucket refill rate, requests per second."""
    burst: Mapped[int]
    """Token-bucket size: requests allowed at once after a quiet spell."""
    monthly_quota: Mapped[int | None]
    """Requests per calendar month (UTC); None for no quota."""
    created_at: Mapped[datetime]
    revoked: Mapped[bool]
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger)
    """LLM tokens (prompt and completion) per sliding minute, at each gateway; None for no limit."""
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger)
    """LLM tokens per calendar month (UTC), shared by the gateways; None for no quota."""


class KeyUsageRow(Base):
    """Requests and LLM tokens counted by the gateways for one inference key in one calendar month (UTC)."""

    __tablename__ = "key_usage"
    __table_args__ = (ForeignKeyConstraint(["key_id"], ["inference_keys.id"]),)

    key_id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    """"YYYY-MM"."""
    requests: Mapped[int]
    updated_at: Mapped[datetime]
    tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Prompt and completion tokens of the key's LLM answers."""


class WebSessionRow(Base):
    """A dashboard login code or browser session standing for an API token; only a sha256 is kept.

    A `code` is single-use and short-lived: `polycloud dashboard` prints it in the address it opens,
    and the page trades it for a `session` (kept in an HttpOnly cookie). Both die with their token.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (
        UniqueConstraint("secret_hash"),
        ForeignKeyConstraint(["token_id"], ["tokens.id"]),
        CheckConstraint(in_list("kind", ("code", "session")), name="kind"),
        Index(None, "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class PersonSessionRow(Base):
    """A dashboard session of a person signed in with the company's OpenID Provider; only a sha256 of
    its secret is kept. `person` holds who they are (subject, issuer, username, groups) as the ID token
    said at sign-in; what they may do is worked out from the RoleBindings on every request."""

    __tablename__ = "person_sessions"
    __table_args__ = (UniqueConstraint("secret_hash"), Index(None, "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    person: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
