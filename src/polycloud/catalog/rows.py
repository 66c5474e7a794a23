"""Rows of the `<cloud>_vms.csv` price lists as parsed, and the one-row-one-offering rule (AWS, Azure).

The files use SkyPilot's catalog columns:
`InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region`.
Empty cells become None (names, counts, sizes) or 0 (counts and sizes of CPU-only rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from polycloud.catalog.model import Offering
from polycloud.errors import PermanentError

VM_COLUMNS = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "SpotPrice",
    "Region",
)


class CatalogDataError(PermanentError):
    """A shipped data file is malformed (a packaging bug, not a user error)."""


@dataclass(frozen=True, slots=True)
class VmRow:
    """One price-list row. GCP splits accelerator VMs into host rows and accelerator rows."""

    instance_type: str | None
    """None for GCP accelerator rows (they price only the accelerators)."""
    accelerator: str | None
    accelerator_count: float
    vcpus: float
    memory_gib: float
    price: float
    spot_price: float | None
    region: str


def parse_vm_rows(text: str, name: str) -> list[VmRow]:
    """Parse one price list.

    Args:
        text: the CSV text, header included.
        name: the file's name, for error messages.

    Raises:
        CatalogDataError: the header or a number is malformed.
    """
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != VM_COLUMNS:
        raise CatalogDataError(f"{name}: header {header} != {VM_COLUMNS}")
    rows: list[VmRow] = []
    for line, (itype, acc, count, vcpus, mem, price, spot, region) in enumerate(reader, start=2):
        try:
            rows.append(
                VmRow(
                    instance_type=itype or None,
                    accelerator=acc or None,
                    accelerator_count=float(count) if count else 0.0,
                    vcpus=float(vcpus) if vcpus else 0.0,
                    memory_gib=float(mem) if mem else 0.0,
                    price=float(price),
                    spot_price=float(spot) if spot else None,
                    region=region,
                )
            )
        except ValueError as e:
            raise CatalogDataError(f"{name}:{line}: {e}") from e
    return rows


def plain_offerings(provider: str, rows: Iterable[VmRow]) -> Iterator[Offering]:
    """One offering per row, as AWS and Azure list them (the row prices the whole VM).

    Rows without an instance type cannot be rented alone and are skipped.
    """
    for row in rows:
        if row.instance_type is None:
            continue
        yield Offering(
            provider=provider,
            region=row.region,
            instance_type=row.instance_type,
            accelerator=row.accelerator,
            accelerator_count=row.accelerator_count if row.accelerator else 0.0,
            vcpus=row.vcpus,
            memory_gib=row.memory_gib,
            hourly_usd=row.price,
            spot_hourly_usd=row.spot_price,
        )
