"""Process-wide settings, read once at the process edge (CLI or server start) and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a polycloud process reads from its environment (`POLYCLOUD_*`)."""

    model_config = SettingsConfigDict(env_prefix="POLYCLOUD_", extra="ignore")

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
