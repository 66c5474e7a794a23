"""Derive polycloud's shipped catalog data (`src/polycloud/catalog/data/`) from the shared catalog folder.

Usage::

    python scripts/build_catalog.py [SOURCE_DIR]

SOURCE_DIR defaults to `../shared/catalog` relative to the repository root. The script

* checks the headers of every source file and that every region named by a VM or latency row has a row
  in `regions.csv` (it stops with a message otherwise);
* copies `aws_vms.csv`, `gcp_vms.csv`, `azure_vms.csv` and `regions.csv` verbatim (GCP host + accelerator
  composition happens at load time, in `polycloud.catalog.gcp`, so the shipped rows stay the sources');
* writes `latency_ms.csv` without its `source` column (one constant value, recorded in the README);
* resolves `network.csv` (prices per provider and kind, with free-text scopes) into one row per catalog
  region with the two prices the cost model uses, in USD per GB (GCP's per-GiB figures converted), and
  keeps the published table as `network_published.csv`;
* copies the source README verbatim as `SOURCES.md` (sources, dates and licences).

The hand-written `README.md` in the data folder (rules and licences) is not touched.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from polycloud.catalog.rows import VM_COLUMNS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "catalog"
TARGET = REPO_ROOT / "src" / "polycloud" / "catalog" / "data"

VM_HEADER = list(VM_COLUMNS)  # one definition of the price-list columns: the loader's
REGION_HEADER = ["provider", "region", "city", "country", "jurisdiction", "lat", "lon", "source"]
NETWORK_HEADER = ["provider", "kind", "usd_per_gb", "scope", "source"]
LATENCY_HEADER = ["src_provider", "src_region", "dst_provider", "dst_region", "rtt_ms", "source"]
VM_FILES = {"aws": "aws_vms.csv", "gcp": "gcp_vms.csv", "azure": "azure_vms.csv"}

GIB_PER_GB = 1.073741824  # 1 GiB = 1.073741824 GB: a price per GiB divided by this is the price per GB
PER_GIB_PROVIDERS = frozenset({"gcp"})

# Continent of each country in regions.csv, as the network scopes name them.
CONTINENTS: dict[str, str] = {
    **dict.fromkeys(["US", "CA", "MX"], "North America"),
    **dict.fromkeys(["BR", "CL"], "South America"),
    **dict.fromkeys(
        ["AT", "BE", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "NL", "NO", "PL", "SE"], "Europe"
    ),
    **dict.fromkeys(["HK", "ID", "IN", "JP", "KR", "MY", "SG", "TW"], "Asia"),
    **dict.fromkeys(["AU", "NZ"], "Oceania"),
    **dict.fromkeys(["AE", "BH", "IL", "QA", "SA"], "Middle East"),
    **dict.fromkeys(["ZA"], "Africa"),
}
CONTINENT_NAMES = tuple(sorted(set(CONTINENTS.values()), key=len, reverse=True))
INTERNET = "internet_egress_first_10TB"
SAME_CONTINENT = "inter_region_same_continent"
INTERCONTINENTAL = "inter_region_intercontinental"


class BuildError(Exception):
    """The source data is not what this script expects; the message says what to look at."""


@dataclass(frozen=True)
class PriceRule:
    """One published network price and where it applies."""

    provider: str
    kind: str
    usd_per_gb: float
    first: bool  # the first row of its (provider, kind): the provider's default (North America/Europe)
    regions: frozenset[str]  # regions the scope names explicitly ("from sa-east-1")
    continents: frozenset[str]  # continents the scope names ("within Europe")


def read_rows(path: Path, header: Sequence[str]) -> list[dict[str, str]]:
    """Read a CSV file whose header must be exactly `header`."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != list(header):
            raise BuildError(f"{path}: header {reader.fieldnames} != expected {list(header)}")
        return list(reader)


def check_regions(source: Path, regions: list[dict[str, str]]) -> set[tuple[str, str]]:
    """Every (provider, region) of the VM and latency files must be in regions.csv."""
    known = {(r["provider"], r["region"]) for r in regions}
    for r in regions:
        if r["country"] not in CONTINENTS:
            raise BuildError(f"regions.csv: country {r['country']} has no continent in CONTINENTS")
    missing: set[tuple[str, str]] = set()
    for provider, name in VM_FILES.items():
        missing |= {(provider, row["Region"]) for row in read_rows(source / name, VM_HEADER)} - known
    for row in read_rows(source / "latency_ms.csv", LATENCY_HEADER):
        missing |= {
            (row["src_provider"], row["src_region"]),
            (row["dst_provider"], row["dst_region"]),
        } - known
    if missing:
        raise BuildError(f"regions.csv lacks {sorted(missing)}")
    return known


def price_rules(network: list[dict[str, str]], known: set[tuple[str, str]]) -> list[PriceRule]:
    """Interpret network.csv's scopes: region names and continent names they mention."""
    region_names = {region for _, region in known}
    seen: set[tuple[str, str]] = set()
    rules: list[PriceRule] = []
    for row in network:
        if not row["usd_per_gb"]:
            continue  # Azure intra_region: not sourced
        key = (row["provider"], row["kind"])
        first = key not in seen
        seen.add(key)
        scope = row["scope"]
        named = frozenset(t for t in re.findall(r"[a-z]+(?:-[a-z]+)+-\d+", scope) if t in region_names)
        continents = frozenset(c for c in CONTINENT_NAMES if c in scope)
        if not first and not named and not continents:
            raise BuildError(
                f"network.csv: cannot tell where {row['provider']} {row['kind']} applies: {scope!r}"
            )
        usd = float(row["usd_per_gb"])
        if row["provider"] in PER_GIB_PROVIDERS:
            usd /= GIB_PER_GB
        rules.append(PriceRule(row["provider"], row["kind"], usd, first, named, continents))
    return rules


def pick(
    rules: Iterable[PriceRule], kinds: tuple[str, ...], region: str, continent: str
) -> tuple[float, str]:
    """The price that applies to traffic leaving `region`: region-named, else continent-named, else default.

    Returns the price and a short note of which rule gave it.
    """
    candidates = [r for r in rules if r.kind in kinds]
    for r in candidates:
        if not r.first and region in r.regions:
            return r.usd_per_gb, f"{r.kind} from {region}"
    for r in candidates:
        if not r.first and r.kind == kinds[0] and continent in r.continents:
            return r.usd_per_gb, f"{r.kind} in {continent}"
    defaults = [r for r in candidates if r.first and r.kind == kinds[0]]
    if not defaults:
        raise BuildError(f"network.csv has no {kinds[0]} row for a provider")
    return defaults[0].usd_per_gb, f"{kinds[0]} default"


def network_table(rules: list[PriceRule], regions: list[dict[str, str]]) -> list[list[str]]:
    """One row per catalog region plus a `*` default row per provider (for regions outside the catalog).

    Internet egress: a row whose scope names the source region, else one naming its continent, else the
    provider's first (North America/Europe) row. Inter-region: a same-continent or intercontinental row
    naming the source region (AWS prices inter-region transfer by source, "any destination region"),
    else the same-continent row for its continent, else the provider's first same-continent row.
    """
    out: list[list[str]] = []
    places = [(r["provider"], r["region"], CONTINENTS[r["country"]]) for r in regions]
    for provider in sorted({r.provider for r in rules}):
        places.append((provider, "*", ""))
    for provider, region, continent in places:
        mine = [r for r in rules if r.provider == provider]
        internet, why_internet = pick(mine, (INTERNET,), region, continent)
        inter, why_inter = pick(mine, (SAME_CONTINENT, INTERCONTINENTAL), region, continent)
        unit = " (published per GiB)" if provider in PER_GIB_PROVIDERS else ""
        out.append(
            [provider, region, f"{internet:.10g}", f"{inter:.10g}", f"{why_internet}; {why_inter}{unit}"]
        )
    return out


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write rows as CSV with `\\n` line endings."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def build(source: Path, target: Path) -> list[str]:
    """Derive every data file from `source` into `target`; returns the names written."""
    regions = read_rows(source / "regions.csv", REGION_HEADER)
    known = check_regions(source, regions)
    network = read_rows(source / "network.csv", NETWORK_HEADER)
    target.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name in [*VM_FILES.values(), "regions.csv"]:
        shutil.copyfile(source / name, target / name)
        written.append(name)
    shutil.copyfile(source / "network.csv", target / "network_published.csv")
    shutil.copyfile(source / "README.md", target / "SOURCES.md")
    written += ["network_published.csv", "SOURCES.md"]

    latency = read_rows(source / "latency_ms.csv", LATENCY_HEADER)
    sources = {row["source"] for row in latency}
    if len(sources) != 1:
        raise BuildError(f"latency_ms.csv: expected one source, found {sorted(sources)}")
    write_csv(
        target / "latency_ms.csv",
        LATENCY_HEADER[:-1],
        (
            [r["src_provider"], r["src_region"], r["dst_provider"], r["dst_region"], r["rtt_ms"]]
            for r in latency
        ),
    )
    written.append("latency_ms.csv")

    write_csv(
        target / "network.csv",
        ["provider", "region", "internet_egress_usd_per_gb", "inter_region_usd_per_gb", "basis"],
        network_table(price_rules(network, known), regions),
    )
    written.append("network.csv")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="shared catalog folder")
    parser.add_argument("--target", type=Path, default=TARGET, help="package data folder to write")
    args = parser.parse_args(argv)
    try:
        written = build(args.source, args.target)
    except (BuildError, OSError) as e:
        print(f"build_catalog: {e}", file=sys.stderr)
        return 1
    for name in written:
        print(args.target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
