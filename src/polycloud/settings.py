"""Process-wide settings, read once at the process edge (CLI or server start) and passed in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from polycloud.errors import UserError

ENV_PREFIX = "POLYCLOUD_"


def environment() -> dict[str, str]:
    """The `POLYCLOUD_*` variables of the environment by field name: `POLYCLOUD_API_ADDR` (in any case)
    is `api_addr`."""
    prefix = ENV_PREFIX.lower()
    return {k.lower()[len(prefix) :]: v for k, v in os.environ.items() if k.lower().startswith(prefix)}


class Settings(BaseModel):
    """Everything a polycloud process reads from its environment (`POLYCLOUD_*`).

    Read as pydantic-settings reads a `BaseSettings` with `env_prefix="POLYCLOUD_"`: a variable per field,
    its name in any case, its text validated as the field's type; values given to the constructor win
    over the environment, and the environment over the defaults. Without pydantic-settings itself: its
    import (asyncio, dotenv and a dozen sources these plain fields never use) would be a tenth of a second
    of every CLI command's start. `tests/test_settings.py` holds the two to the same results.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**(environment() | values))

    home: Path = Field(default=Path(".polycloud"), description="State folder: database, logs, tokens.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite under home if unset.")
    gateway_addr: str = Field(default="127.0.0.1:8080", description="host:port of the global endpoint.")
    api_addr: str = Field(default="127.0.0.1:8700", description="host:port of the control-plane API.")
    gateway_region: str = Field(
        default="aws/us-east-1",
        description="Where the gateway stands, as provider/region; simulated delays are measured from here.",
    )
    token: str | None = Field(default=None, description="API bearer token for the CLI.")
    server: str | None = Field(default=None, description="URL of a remote control plane.")
    master_key: SecretStr | None = Field(
        default=None, description="Base64 master key(s) for secrets, comma-separated; else home/master.key."
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate: serve the API and gateway on TLS."
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`.")
    fleet_mtls: bool = Field(
        default=True,
        description="Mutual TLS between polycloud's parts (replicas accept only fleet certificates); "
        "false: plain HTTP inside the fleet.",
    )
    ca_publish_s: float = Field(
        default=180.0,
        ge=0,
        le=86400,
        description="Seconds a new fleet CA is trusted everywhere before it signs certificates.",
    )
    api_hosts: str = Field(
        default="",
        description="Host names the API answers to (comma-separated; `*.example.com` for subdomains, `*` "
        "for any) besides loopback names, its listen address and POLYCLOUD_SERVER's host.",
    )
    model_roots: str = Field(
        default="",
        description="Folders (os.pathsep-separated) model files may come from, besides the spec's.",
    )
    alert_webhook: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="http(s) URL that anomalies, incidents and SLO burn alerts are POSTed to.",
    )
    openlineage_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="OpenLineage collector (Marquez: http://host:5000/api/v1/lineage) that lineage "
        "events are POSTed to from the store's outbox; unset: they are only kept in the store.",
    )
    lineage_interval_s: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between passes of the lineage recorder and outbox."
    )
    server_id: str | None = Field(
        default=None, description="This server's name in the fleet (default: srv-HOSTNAME-PID)."
    )
    lease_s: float = Field(
        default=4.0,
        ge=1,
        le=60,
        description="Seconds a leader's lease lasts unrenewed (renewed every second).",
    )
    probe_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between synthetic probes of each service and cluster."
    )

    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Provider people sign in with (https; http only on a loopback host); unset: "
        "polycloud's own tokens only.",
    )
    oidc_audience: str | None = Field(default=None, description="The provider's client id for polycloud.")
    oidc_groups_claim: str = Field(default="groups", description="ID-token claim listing the groups.")
    oidc_username_claim: str = Field(default="email", description="ID-token claim naming the person.")
    project: str | None = Field(
        default=None,
        description="The project a person signed in by SSO acts in when bound in several "
        "(sent as X-Polycloud-Project).",
    )
    oidc_jwks_cooldown_s: float = Field(
        default=10.0, ge=0, le=3600, description="Least seconds between JWKS fetches for unknown key ids."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Client secret for the dashboard's sign-in, when the provider needs one."
    )

    workload_issuer: str | None = Field(
        default=None,
        description="`iss` of workload identity tokens, whose /.well-known/openid-configuration the "
        "clouds fetch (https and public in production); default: the API's URL.",
    )
    workload_token_ttl_s: float = Field(
        default=3600.0, ge=1, le=86400, description="Seconds a workload identity token is valid."
    )
    workload_key_publish_s: float = Field(
        default=600.0,
        ge=0,
        le=86400,
        description="Seconds a new workload signing key is in the JWKS before it signs (clouds cache it).",
    )

    @field_validator("workload_issuer")
    @classmethod
    def _workload_issuer(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError("must be an http(s) URL without query or fragment (https in production)")
        return value.strip().rstrip("/")

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if not value:
            return value  # unset: single sign-on is off
        url = urlsplit(value.strip())
        loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
        if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
            raise ValueError("must be an https URL (plain http only for a loopback host)")
        return value.strip()

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'state.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.resolved_home / "logs"

    @property
    def extra_api_hosts(self) -> tuple[str, ...]:
        """POLYCLOUD_API_HOSTS, plus the hosts of POLYCLOUD_SERVER (the URL clients reach the API by) and
        POLYCLOUD_WORKLOAD_ISSUER."""
        extra = [h.strip() for h in self.api_hosts.split(",") if h.strip()]
        for url in (self.server, self.workload_issuer):  # the clouds fetch the issuer's documents
            host = urlsplit(url).hostname if url else None
            extra += [host] if host else []
        return tuple(extra)

    @property
    def resolved_model_roots(self) -> tuple[Path, ...]:
        return tuple(Path(p).expanduser().resolve() for p in self.model_roots.split(os.pathsep) if p.strip())

    @property
    def tls(self) -> tuple[Path, Path] | None:
        """(certificate, key) when TLS is configured; both or neither must be set."""
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise UserError("set both POLYCLOUD_TLS_CERT and POLYCLOUD_TLS_KEY, or neither")
        for path in (self.tls_cert, self.tls_key):
            if not path.expanduser().is_file():
                raise UserError(f"TLS file {path} does not exist")
        return self.tls_cert.expanduser().resolve(), self.tls_key.expanduser().resolve()
