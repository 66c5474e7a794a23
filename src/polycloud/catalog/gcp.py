"""GCP offerings: host VM rows and accelerator rows composed into rentable accelerator VMs.

GCP's price list (SkyPilot layout) prices a GPU VM in two rows of the same region: the host VM type
(no accelerator) and the accelerators (no instance type, `AcceleratorCount` of them). An offering is
the host plus the accelerators GCP attaches to it, priced as the sum of the two rows; its spot price is
the sum of the two spot prices when both are known, else None. The rules, as GCP documents them:

* **Fixed-GPU machine types** carry a set accelerator and count, read from the name:
  `a2-highgpu-{n}g` / `a2-megagpu-16g` → A100 x n; `a2-ultragpu-{n}g` → A100-80GB x n;
  `a3-highgpu-{n}g` and `a3-edgegpu-8g[-nolssd]` → H100 x n; `a3-megagpu-8g` → H100-MEGA x8;
  `a3-ultragpu-8g[-nolssd]` → H200 x8; `a4-highgpu-8g` → B200 x8; `g2-standard-{v}` → L4 per GCP's
  G2 table (4/8/12/16/32 vCPUs → 1, 24 → 2, 48 → 4, 96 → 8). They keep the host's name and are never
  offered without their GPUs.
* **N1 hosts** take attachable T4, P4, P100 and V100 GPUs, in each count the price list has, as long as
  the host's vCPUs and memory fit GCP's limit for that GPU and count (`N1_LIMITS`). The offering is
  named `<host>-<gpu lower>` for one GPU and `<host>-<gpu lower>x<count>` for more
  (`n1-standard-8-v100x2`). N1 and N2 hosts are also CPU-only offerings on their own.
* **Variants** (`a3-edgegpu-8g`, `*-nolssd`) equal in every figure to a standard type offered in the
  same region are left out: they would only be ties, and a plan should name the standard type. Where
  a variant is the only one, or priced differently, it is kept.
* **TPU rows** (`tpu-*`) are whole TPU VMs: offered alone, named and accelerated by the TPU name.

A host without its accelerator row in the region (or the reverse) yields nothing. Sums are rounded to
6 decimals (the price lists have at most 6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from polycloud.catalog.model import Offering
from polycloud.catalog.rows import VmRow

PROVIDER = "gcp"

FIXED_FAMILIES: dict[str, str] = {
    "a2-highgpu": "A100",
    "a2-megagpu": "A100",
    "a2-ultragpu": "A100-80GB",
    "a3-highgpu": "H100",
    "a3-edgegpu": "H100",
    "a3-megagpu": "H100-MEGA",
    "a3-ultragpu": "H200",
    "a4-highgpu": "B200",
}
"""Accelerator-optimized families whose names end in `-{count}g` (optionally `-nolssd`)."""

_FIXED_NAME = re.compile(r"^(?P<family>[a-z0-9]+-[a-z]+)-(?P<count>\d+)g(?:-nolssd)?$")

G2_L4_COUNT: dict[int, int] = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
"""`g2-standard-{vcpus}` → attached L4 GPUs (https://cloud.google.com/compute/docs/gpus#l4-gpus)."""

N1_LIMITS: dict[str, dict[int, tuple[int, int]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
}
"""GPU → count → (max vCPUs, max memory) of an N1 host (https://cloud.google.com/compute/docs/gpus,
as SkyPilot's GCP catalog encodes it)."""

CPU_FAMILIES = ("n1-", "n2-")
"""Host families also rentable without accelerators."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """The accelerators GCP attaches to a fixed-GPU host type."""

    accelerator: str
    count: int


def fixed_attachment(instance_type: str) -> Attachment | None:
    """The accelerators a fixed-GPU machine type always carries; None for other types.

    >>> fixed_attachment("a2-highgpu-4g")
    Attachment(accelerator='A100', count=4)
    >>> fixed_attachment("g2-standard-24")
    Attachment(accelerator='L4', count=2)
    """
    if instance_type.startswith("g2-standard-"):
        size = instance_type.removeprefix("g2-standard-")
        count = G2_L4_COUNT.get(int(size)) if size.isdigit() else None
        return Attachment("L4", count) if count is not None else None
    m = _FIXED_NAME.match(instance_type)
    if m is None or m["family"] not in FIXED_FAMILIES:
        return None
    return Attachment(FIXED_FAMILIES[m["family"]], int(m["count"]))


def n1_fits(host: VmRow, accelerator: str, count: float) -> bool:
    """Whether GCP lets `count` of `accelerator` attach to the N1 host `host`."""
    limits = N1_LIMITS.get(accelerator, {})
    if count != int(count) or int(count) not in limits:
        return False
    max_vcpus, max_memory = limits[int(count)]
    return host.vcpus <= max_vcpus and host.memory_gib <= max_memory


def n1_name(host: str, accelerator: str, count: float) -> str:
    """`n1-standard-4-t4` for one GPU, `n1-standard-8-v100x2` for more."""
    suffix = accelerator.lower() if count == 1 else f"{accelerator.lower()}x{count:g}"
    return f"{host}-{suffix}"


def _sum(a: float, b: float) -> float:
    return round(a + b, 6)


def _sum_spot(a: float | None, b: float | None) -> float | None:
    return _sum(a, b) if a is not None and b is not None else None


def _variant_rank(row: VmRow) -> tuple[bool, bool, str]:
    """Standard machine types sort before their edge and no-local-SSD variants."""
    name = row.instance_type or ""
    return ("-edgegpu-" in name, name.endswith("-nolssd"), name)


def _figures(o: Offering) -> tuple[str | None, float, float, float, float, float | None]:
    return (o.accelerator, o.accelerator_count, o.vcpus, o.memory_gib, o.hourly_usd, o.spot_hourly_usd)


def _compose(host: VmRow, gpus: VmRow, name: str) -> Offering:
    return Offering(
        provider=PROVIDER,
        region=host.region,
        instance_type=name,
        accelerator=gpus.accelerator,
        accelerator_count=gpus.accelerator_count,
        vcpus=host.vcpus,
        memory_gib=host.memory_gib,
        hourly_usd=_sum(host.price, gpus.price),
        spot_hourly_usd=_sum_spot(host.spot_price, gpus.spot_price),
    )


def _alone(row: VmRow, name: str, accelerator: str | None, count: float) -> Offering:
    return Offering(
        provider=PROVIDER,
        region=row.region,
        instance_type=name,
        accelerator=accelerator,
        accelerator_count=count,
        vcpus=row.vcpus,
        memory_gib=row.memory_gib,
        hourly_usd=row.price,
        spot_hourly_usd=row.spot_price,
    )


def _region_offerings(hosts: list[VmRow], gpus: dict[tuple[str, float], VmRow]) -> Iterator[Offering]:
    seen: set[tuple[str | None, float, float, float, float, float | None]] = set()
    for host in sorted(hosts, key=_variant_rank):
        name = host.instance_type or ""
        fixed = fixed_attachment(name)
        if fixed is not None:
            row = gpus.get((fixed.accelerator, float(fixed.count)))
            offering = _compose(host, row, name) if row is not None else None
            if offering is not None and _figures(offering) not in seen:
                seen.add(_figures(offering))
                yield offering
            continue
        if not name.startswith(CPU_FAMILIES):
            continue
        yield _alone(host, name, None, 0.0)
        if name.startswith("n1-"):
            for (accelerator, count), row in gpus.items():
                if n1_fits(host, accelerator, count):
                    yield _compose(host, row, n1_name(name, accelerator, count))


def gcp_offerings(rows: Iterable[VmRow]) -> list[Offering]:
    """Compose GCP's price-list rows into offerings (see the module docstring for the rules)."""
    hosts: dict[str, list[VmRow]] = {}
    gpus: dict[str, dict[tuple[str, float], VmRow]] = {}
    out: list[Offering] = []
    for row in rows:
        if row.instance_type is not None:
            hosts.setdefault(row.region, []).append(row)
        elif row.accelerator is not None and row.accelerator.startswith("tpu-"):
            out.append(_alone(row, row.accelerator, row.accelerator, row.accelerator_count))
        elif row.accelerator is not None:
            gpus.setdefault(row.region, {})[(row.accelerator, row.accelerator_count)] = row
    for region, region_hosts in hosts.items():
        out.extend(_region_offerings(region_hosts, gpus.get(region, {})))
    return out
