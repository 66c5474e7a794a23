"""`polycloud.settings.Settings` reads the environment exactly as pydantic-settings would.

Settings read `POLYCLOUD_*` themselves so that no command pays for importing pydantic-settings (issue
17); these tests hold them to a `BaseSettings` with the same fields and `env_prefix="POLYCLOUD_"`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from polycloud.settings import Settings


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLYCLOUD_", extra="ignore")


Reference = create_model(  # type: ignore[call-overload]
    "Settings",
    __base__=_Base,
    **{name: (field.annotation, field) for name, field in Settings.model_fields.items()},
)

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {
        "POLYCLOUD_HOME": "~/pc",
        "POLYCLOUD_DATABASE_URL": "postgresql+psycopg://pc@db:5432/polycloud",
        "POLYCLOUD_GATEWAY_ADDR": "0.0.0.0:8080",
        "POLYCLOUD_API_ADDR": "127.0.0.1:9000",
        "POLYCLOUD_GATEWAY_REGION": "gcp/europe-west4",
        "POLYCLOUD_TOKEN": "pc_abc",
        "POLYCLOUD_SERVER": "https://cp.example.com:8700",
        "POLYCLOUD_MASTER_KEY": "a2V5,b2xk",
        "POLYCLOUD_TLS_CERT": "/etc/pc/cert.pem",
        "POLYCLOUD_TLS_KEY": "/etc/pc/key.pem",
        "POLYCLOUD_FLEET_MTLS": "false",
        "POLYCLOUD_CA_PUBLISH_S": "60",
        "POLYCLOUD_API_HOSTS": "a.example, *.b.example",
        "POLYCLOUD_MODEL_ROOTS": f"/models{os.pathsep}/more",
        "POLYCLOUD_ALERT_WEBHOOK": "https://hooks.example.com/x",
        "POLYCLOUD_SERVER_ID": "srv-1",
        "POLYCLOUD_LEASE_S": "2.5",
        "POLYCLOUD_PROBE_INTERVAL_S": "5",
        "POLYCLOUD_OIDC_ISSUER": "https://idp.example.com/oauth2/default",
        "POLYCLOUD_OIDC_AUDIENCE": "pc-client",
        "POLYCLOUD_OIDC_GROUPS_CLAIM": "roles",
        "POLYCLOUD_OIDC_JWKS_COOLDOWN_S": "2",
        "POLYCLOUD_WORKLOAD_ISSUER": "https://id.example.com/polycloud",
        "POLYCLOUD_WORKLOAD_TOKEN_TTL_S": "900",
        "POLYCLOUD_WORKLOAD_KEY_PUBLISH_S": "0",
    },
    {"polycloud_api_addr": "127.0.0.1:1", "Polycloud_Lease_S": "7", "POLYCLOUD_fleet_mtls": "0"},
    {"POLYCLOUD_TOKEN": "", "POLYCLOUD_TLS_CERT": "", "POLYCLOUD_SERVER": "", "POLYCLOUD_MODEL_ROOTS": ""},
    {"POLYCLOUD_FLEET_MTLS": "yes", "POLYCLOUD_NOT_A_SETTING": "x", "API_ADDR": "1.2.3.4:5", "HOME": "/x"},
    {"POLYCLOUD_FLEET_MTLS": "on", "POLYCLOUD_CA_PUBLISH_S": "0"},
]

INVALID: list[dict[str, str]] = [
    {"POLYCLOUD_LEASE_S": "0.5"},
    {"POLYCLOUD_LEASE_S": "soon"},
    {"POLYCLOUD_FLEET_MTLS": "maybe"},
    {"POLYCLOUD_ALERT_WEBHOOK": "ftp://x"},
    {"POLYCLOUD_PROBE_INTERVAL_S": "0", "POLYCLOUD_CA_PUBLISH_S": "-1"},
    {"POLYCLOUD_WORKLOAD_TOKEN_TTL_S": "0.5", "POLYCLOUD_WORKLOAD_KEY_PUBLISH_S": "90000"},
]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without any POLYCLOUD_* variable (in any case)."""
    for name in list(os.environ):
        if name.lower().startswith("polycloud_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _set(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.model_fields}


@pytest.mark.parametrize("variables", ENVIRONMENTS)
def test_the_environment_reads_as_pydantic_settings_reads_it(
    environ: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    _set(environ, variables)
    assert _fields(Settings()) == _fields(Reference())


@pytest.mark.parametrize("variables", INVALID)
def test_invalid_values_fail_as_with_pydantic_settings(
    environ: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    _set(environ, variables)
    with pytest.raises(ValidationError) as ours:
        Settings()
    with pytest.raises(ValidationError) as theirs:
        Reference()
    assert [(e["loc"], e["type"]) for e in ours.value.errors()] == [
        (e["loc"], e["type"]) for e in theirs.value.errors()
    ]


def test_values_given_win_over_the_environment(environ: pytest.MonkeyPatch) -> None:
    _set(environ, {"POLYCLOUD_TOKEN": "from-env", "POLYCLOUD_SERVER": "https://env.example"})
    given: dict[str, Any] = {"token": "given", "server": None}
    assert _fields(Settings(**given)) == _fields(Reference(**given))
    assert Settings(**given).token == "given"
    assert Settings(**given).server is None


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://idp.example.com", True),
        ("http://127.0.0.1:9000", True),
        ("http://localhost:9000/realms/x", True),
        ("http://idp.example.com", False),
        ("ftp://idp.example.com", False),
        ("idp.example.com", False),
    ],
)
def test_the_oidc_issuer_is_https_or_loopback(environ: pytest.MonkeyPatch, issuer: str, ok: bool) -> None:
    environ.setenv("POLYCLOUD_OIDC_ISSUER", issuer)
    if ok:
        assert Settings().oidc_issuer == issuer
    else:
        with pytest.raises(ValidationError, match="https"):
            Settings()


@pytest.mark.parametrize(
    ("issuer", "read"),
    [
        ("https://id.example.com/", "https://id.example.com"),
        ("http://127.0.0.1:8700", "http://127.0.0.1:8700"),
        ("", None),
        ("id.example.com", "error"),
        ("https://id.example.com/?x=1", "error"),
    ],
)
def test_the_workload_issuer_is_an_http_url_without_a_trailing_slash(
    environ: pytest.MonkeyPatch, issuer: str, read: str | None
) -> None:
    environ.setenv("POLYCLOUD_WORKLOAD_ISSUER", issuer)
    if read == "error":
        with pytest.raises(ValidationError, match="http"):
            Settings()
    else:
        assert Settings().workload_issuer == read
    if read and read != "error":
        assert urlsplit(read).hostname in Settings().extra_api_hosts  # the clouds fetch from it
