"""The largest value each number of a spec may take, and the annotated types that enforce them.

Every number a spec accepts has an upper bound, so a typo (`replicas: 99999999999999999999`) is an
error at `validate` rather than an absurd plan, an overflow or a fleet too big to converge. Bounds sit
well above any real fleet (the catalog's largest offering is a 12,288-chip TPU slice at $29,362 an
hour); docs/spec.md lists them ("Limits"), and tests/spec/test_bounds.py checks every numeric field
of every kind carries one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_REPLICAS = 10_000
"""Replicas of one service per cluster, autoscaling bounds included."""
MAX_NODES = 10_000
"""Nodes of one job."""
MAX_ACCELERATORS = 256
"""Accelerators per replica, node or instance (a 72-GPU rack sold as one instance fits)."""
MAX_VCPUS = 4_096
MAX_MEMORY_GIB = 65_536
"""64 TiB; the largest machines sold today have 32."""
MAX_HOURLY_USD = 100_000.0
MAX_USD_PER_GB = 100.0
"""Transfer prices; published ones are cents."""
MAX_DATA_GB = 1_000_000_000.0
"""1 EB: a dataset's size, or what a service reads from one in a month."""
MAX_QUOTA = 1_000_000
"""Accelerators of one name in one cluster."""
MAX_MS = 600_000.0
"""Latency figures and simulated delays: ten minutes."""
MAX_SECONDS = 604_800.0
"""Bake times and checkpoint intervals: a week."""
MAX_JOB_HOURS = 8_760.0
"""A job's expected run time: a year."""
MAX_RESTARTS = 1_000
MAX_IN_FLIGHT = 100_000.0
"""Autoscaling's target of requests in flight per replica."""
MAX_MONTHLY_USD = 10_000_000_000.0
"""Budgets and egress caps: $10 billion a month."""
MAX_REVISION = 2_147_483_647
"""A revision number a flag routes to: what the state store's integer column holds."""

Replicas = Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
Accelerators = Annotated[float, Field(ge=0, le=MAX_ACCELERATORS)]
Vcpus = Annotated[float, Field(ge=0, le=MAX_VCPUS)]
MemoryGiB = Annotated[float, Field(ge=0, le=MAX_MEMORY_GIB)]
HourlyUSD = Annotated[float, Field(ge=0, le=MAX_HOURLY_USD)]
UsdPerGB = Annotated[float, Field(ge=0, le=MAX_USD_PER_GB)]
DataGB = Annotated[float, Field(ge=0, le=MAX_DATA_GB)]
Quota = Annotated[int, Field(ge=0, le=MAX_QUOTA)]
Millis = Annotated[float, Field(ge=0, le=MAX_MS)]
PositiveMillis = Annotated[float, Field(gt=0, le=MAX_MS)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
JobHours = Annotated[float, Field(gt=0, le=MAX_JOB_HOURS)]
Nodes = Annotated[int, Field(ge=1, le=MAX_NODES)]
Restarts = Annotated[int, Field(ge=0, le=MAX_RESTARTS)]
InFlight = Annotated[float, Field(gt=0, le=MAX_IN_FLIGHT)]
MonthlyUSD = Annotated[float, Field(ge=0, le=MAX_MONTHLY_USD)]
