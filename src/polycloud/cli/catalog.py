"""`polycloud catalog`: the cheapest offerings per region, from the shipped price and region catalog."""

import difflib
from typing import TYPE_CHECKING, Annotated

import typer

from polycloud.cli.common import friendly, out, print_json
from polycloud.errors import UserError

if TYPE_CHECKING:
    from rich.table import Table

    from polycloud.catalog import Catalog, CatalogRow

HELP = (
    "Show the cheapest offerings per region (or every offering with --all), cheapest first.\n\n"
    "Prices are USD per hour, on-demand (spot with --spot), from the catalog shipped with polycloud; "
    "GCP accelerator VMs are priced as host VM plus GPUs."
)
EPILOG = "Example — cheapest H100 x8 per region in the EU: polycloud catalog -a H100 -n 8 --jurisdiction EU"


def register(app: typer.Typer) -> None:
    """Add the `catalog` command to `app`."""
    app.command("catalog", help=HELP, epilog=EPILOG)(catalog)


@friendly
def catalog(
    accelerator: Annotated[
        str | None,
        typer.Option("--accelerator", "-a", help="Accelerator name, any case (H100, a100-80gb, T4)."),
    ] = None,
    count: Annotated[
        float | None, typer.Option("--count", "-n", min=0, help="At least this many accelerators.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider (aws, gcp, azure).")
    ] = None,
    jurisdiction: Annotated[
        str | None,
        typer.Option("--jurisdiction", help="Only regions of this jurisdiction (EU, US, UK, JP...)."),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Only this region (name or provider/name).")
    ] = None,
    vcpus: Annotated[float, typer.Option("--vcpus", min=0, help="At least this many vCPUs.")] = 0,
    memory: Annotated[float, typer.Option("--memory", min=0, help="At least this much memory, GiB.")] = 0,
    spot: Annotated[
        bool, typer.Option("--spot", help="Rank by spot price; skip offerings without one.")
    ] = False,
    every: Annotated[
        bool, typer.Option("--all", help="Every matching offering, not only the cheapest per region.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many rows; 0 for all.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List matching offerings (see HELP)."""
    from rich.console import Console
    from rich.measure import Measurement

    from polycloud.catalog import cheapest, load_catalog

    cat = load_catalog()
    check_filters(cat, accelerator=accelerator, provider=provider, jurisdiction=jurisdiction, region=region)
    rows = cheapest(
        cat,
        accelerator=accelerator,
        count=count,
        provider=provider,
        jurisdiction=jurisdiction,
        region=region,
        min_vcpus=vcpus,
        min_memory_gib=memory,
        spot=spot,
        per_region=not every,
        limit=limit,
    )
    if as_json:
        print_json([row_json(r) for r in rows])
    elif not rows:
        out.print("no offering matches")
    else:
        table = row_table(rows, spot=spot, per_region=not every)
        # Never truncate names: render at the table's natural width, even beyond the terminal's.
        natural = Measurement.get(out, out.options.update_width(1000), table).maximum
        Console(width=max(out.width, natural), highlight=False).print(table)


def check_filters(
    cat: "Catalog",
    *,
    accelerator: str | None,
    provider: str | None,
    jurisdiction: str | None,
    region: str | None,
) -> None:
    """Reject names the catalog does not know, with "did you mean" hints.

    Raises:
        UserError: a provider, region, accelerator or jurisdiction is unknown.
    """
    from polycloud.catalog import suggest_accelerator, suggest_region

    if region is not None and "/" in region:
        head, _, region = region.partition("/")
        provider = provider or head
    if provider is not None and provider not in cat.providers:
        raise UserError(f"unknown provider {provider!r}; known: {', '.join(sorted(cat.providers))}")
    if region is not None:
        providers = [provider] if provider is not None else sorted(cat.providers)
        if not any(cat.region(p, region) for p in providers):
            close = [(p, name) for p in providers for name in suggest_region(cat, p, region)]
            close.sort(key=lambda pn: -difflib.SequenceMatcher(None, region, pn[1]).ratio())
            hints = [f"{p}/{name}" for p, name in close[:3]]
            raise UserError(
                f"unknown region {region!r}" + (f"; did you mean {', '.join(hints)}?" if hints else "")
            )
    if accelerator is not None and accelerator.lower() not in {a.lower() for a in cat.accelerators()}:
        hints = suggest_accelerator(cat, accelerator)
        raise UserError(
            f"unknown accelerator {accelerator!r}" + (f"; did you mean {', '.join(hints)}?" if hints else "")
        )
    if jurisdiction is not None:
        known = {r.jurisdiction.lower(): r.jurisdiction for r in cat.regions()}
        if jurisdiction.lower() not in known:
            raise UserError(
                f"unknown jurisdiction {jurisdiction!r}; known: {', '.join(sorted(known.values()))}"
            )


def _num(x: float) -> float | int:
    return int(x) if x.is_integer() else x


def row_json(row: "CatalogRow") -> dict[str, str | float | int | None]:
    """One row as JSON: the offering (spec field names) and where it is."""
    o = row.offering
    return {
        "provider": o.provider,
        "region": o.region,
        "city": row.city,
        "country": row.country,
        "jurisdiction": row.jurisdiction,
        "instanceType": o.instance_type,
        "accelerator": o.accelerator,
        "acceleratorCount": _num(o.accelerator_count),
        "vcpus": _num(o.vcpus),
        "memoryGiB": _num(o.memory_gib),
        "hourlyUSD": o.hourly_usd,
        "spotHourlyUSD": o.spot_hourly_usd,
    }


def row_table(rows: "list[CatalogRow]", *, spot: bool, per_region: bool) -> "Table":
    """The rows as a compact rich table, the ranked price column in bold."""
    from rich import box
    from rich.table import Table

    what = "cheapest per region" if per_region else "every match"
    table = Table(
        title=f"{what}, by {'spot' if spot else 'on-demand'} USD/hour",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name in ("region", "location", "law", "instance type", "accelerator"):
        table.add_column(name, no_wrap=True)
    for name in ("vCPUs", "GiB", "$/h", "spot $/h"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        o = row.offering
        on_demand = f"{o.hourly_usd:,.4f}"
        spot_price = f"{o.spot_hourly_usd:,.4f}" if o.spot_hourly_usd is not None else "-"
        table.add_row(
            f"{o.provider}/{o.region}",
            f"{row.city}, {row.country}",
            row.jurisdiction,
            o.instance_type,
            f"{o.accelerator} x{o.accelerator_count:g}" if o.accelerator else "-",
            f"{o.vcpus:g}",
            f"{o.memory_gib:g}",
            on_demand if spot else f"[bold]{on_demand}[/bold]",
            f"[bold]{spot_price}[/bold]" if spot else spot_price,
        )
    return table
