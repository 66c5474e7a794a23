"""`GatewaySettings`: every knob of the gateway in one typed, validated, immutable object.

Built at the process edge (`python -m polycloud.gateway` reads its flags and `polycloud.settings`) or by
a test, and passed to `create_app`; nothing in the gateway reads the environment.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REGION = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class GatewaySettings(BaseModel):
    """How the gateway routes, retries, ejects and sheds load. Durations in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str | None = Field(
        default=None,
        description="Where the gateway stands, as provider/region; the client region when a request "
        "names none (x-polycloud-client-region). None: locality only from the header.",
    )
    routing_policy: str = Field(default="locality", description="A name from `routing_policies()`.")
    ejection_policy: str = Field(
        default="consecutive-failures", description="A name from `ejection_policies()`."
    )

    refresh_interval_s: float = Field(default=0.5, gt=0, le=5, description="Route table refresh period.")
    health_interval_s: float = Field(default=1.0, gt=0, description="Active health check period.")
    health_timeout_s: float = Field(
        default=0.3,
        gt=0,
        description="Least time a health check may take before it counts as timed out; a replica whose "
        "checks usually take longer gets 3 × its usual (see `polycloud.gateway.background`).",
    )
    health_timeout_max_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest a health check waits: its time limit's cap, and how long a late answer may "
        "still come and cancel the timeout.",
    )
    unhealthy_after_timeouts: int = Field(
        default=2, ge=1, description="Health checks timed out in a row that mark a replica unhealthy."
    )

    default_timeout_s: float = Field(
        default=10.0, gt=0, description="A request's deadline when it sends no x-polycloud-timeout-ms."
    )
    max_timeout_s: float = Field(default=300.0, gt=0, description="Cap on a deadline a client asks for.")
    attempt_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Cap on one upstream attempt (and on its limit), so a hung replica leaves time to retry.",
    )
    attempt_floor_s: float = Field(
        default=0.25,
        gt=0,
        description="Least limit of an attempt: the limit is attempt_latency_factor × the service's p99 of "
        "successful attempts, within [attempt_floor_s, attempt_timeout_s] and the request's deadline.",
    )
    attempt_latency_factor: float = Field(
        default=2.0, ge=1, description="An attempt's limit in multiples of its service's recent p99."
    )
    hedge_overdue: bool = Field(
        default=True,
        description="Send a copy of an attempt that outlives its limit to another replica (the first "
        "good answer wins). Off: an attempt waits until attempt_timeout_s before it is retried.",
    )
    connect_timeout_s: float = Field(default=1.0, gt=0, description="Cap on opening one connection.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Upstream attempts per request.")

    max_in_flight: int = Field(
        default=1024, ge=1, description="Requests proxied at once by this gateway; beyond: 429."
    )
    max_in_flight_per_replica: int = Field(
        default=256, ge=1, description="Requests at once on one replica; when every one is full: 429."
    )
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After sent with 429 and 503.")
    max_body_bytes: int = Field(default=64 * 2**20, ge=1, description="Largest request body; beyond: 413.")

    burst_threshold: float = Field(
        default=4.0,
        gt=0,
        description="Mean in-flight requests per usable active replica from which burst replicas take "
        "overflow.",
    )
    ewma_alpha: float = Field(default=0.3, gt=0, le=1, description="Weight of a new latency sample.")

    eject_after_failures: int = Field(
        default=3, ge=1, description="Consecutive failures (connection errors, 5xx, timeouts) that eject."
    )
    eject_base_s: float = Field(default=1.0, gt=0, description="First ejection's length; doubles each time.")
    eject_max_s: float = Field(default=30.0, gt=0, description="Longest ejection.")

    max_connections_per_replica: int = Field(default=64, ge=1, description="Pooled connections per replica.")
    keepalive_s: float = Field(
        default=4.0, gt=0, description="Idle pooled connections close after this (below the replica's 5 s)."
    )
    drain_timeout_s: float = Field(
        default=15.0, ge=0, description="On SIGTERM, how long in-flight requests may still finish."
    )

    @field_validator("region")
    @classmethod
    def _region_shape(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            raise ValueError(f"region must look like provider/region (e.g. aws/us-east-1), not {value!r}")
        return value
