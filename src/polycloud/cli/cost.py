"""`polycloud cost [export|budgets]` and `polycloud advise`: what the fleet cost, and what could cost less."""

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings, usd
from polycloud.errors import UserError

if TYPE_CHECKING:
    from polycloud.client.http import ApiClient

ROW_FIELDS = ("key", "computeUSD", "egressUSD", "totalUSD")
EXPORT_FIELDS = (
    "workload",
    "cluster",
    "provider",
    "computeUSD",
    "egressUSD",
    "totalUSD",
    "periodStart",
    "periodEnd",
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


By = Annotated[
    str, typer.Option("--by", help="Group by service, cluster, provider, or a label key such as team.")
]
Since = Annotated[
    str | None, typer.Option("--since", help="Only cost accrued since: 30m, 12h, 7d, 2w or a date (UTC).")
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object (same as --format json).")]

cost_app = typer.Typer(
    help="Accrued cost of the running fleet (observed replica-hours × price, plus egress).",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add the `cost` group and the `advise` command."""
    app.add_typer(cost_app, name="cost", epilog="Example: polycloud cost --by team --since 7d")
    app.command(epilog="Example: polycloud advise --json")(advise)


def _client() -> "ApiClient":
    return connect(settings(), start=False, say=err.print)


@cost_app.callback(epilog="Example: polycloud cost --by cluster --since 7d --format csv")
@friendly
def cost(
    ctx: typer.Context,
    by: By = "service",
    since: Since = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    as_json: Json = False,
) -> None:
    """Show the cost accrued so far, grouped by service, cluster, provider or a label."""
    if ctx.invoked_subcommand is not None:
        return
    client = _client()
    try:
        data = client.cost(by, since)
    finally:
        client.close()
    if as_json or fmt is Format.json:
        tokens = {"tokens": data["tokens"]} if data.get("tokens") else {}
        print_json({"rows": data["rows"], "totalUSD": data["totalUSD"], **tokens})
    elif fmt is Format.csv:
        sys.stdout.write(_csv(data["rows"], ROW_FIELDS))
    else:
        _show(data, by)


def _show(data: dict[str, Any], by: str) -> None:
    from rich.table import Table

    table = Table(title="accrued cost", show_edge=False)
    table.add_column(by)
    for col in ("compute", "egress", "total"):
        table.add_column(col, justify="right")
    for row in data["rows"]:
        table.add_row(row["key"], _usd(row["computeUSD"]), _usd(row["egressUSD"]), _usd(row["totalUSD"]))
    table.add_row("[bold]total[/bold]", "", "", f"[bold]{_usd(data['totalUSD'])}[/bold]")
    out.print(table)
    tokens = data.get("tokens")
    if tokens:
        _show_tokens(tokens, by)


def _show_tokens(tokens: dict[str, Any], by: str) -> None:
    """Tokens served and replica cost per 1M tokens: by the `--by` key, then by team, service and cluster."""
    from rich.table import Table

    figures = ("prompt", "completion", "tokens", "replicas", "per 1M tokens")
    grouped = Table(title="LLM tokens served", show_edge=False)
    grouped.add_column(by)
    for col in figures:
        grouped.add_column(col, justify="right")
    for row in tokens["rows"]:
        grouped.add_row(row["key"], *_token_cells(row))
    grouped.add_row("[bold]total[/bold]", *_token_cells(tokens))
    out.print(grouped)
    detail = Table(title="cost per 1M tokens by team, service and cluster", show_edge=False)
    for col in ("team", "service", "cluster"):
        detail.add_column(col)
    for col in figures:
        detail.add_column(col, justify="right")
    for row in tokens["services"]:
        detail.add_row(row["team"], row["service"], row["cluster"], *_token_cells(row))
    out.print(detail)


def _token_cells(row: dict[str, Any]) -> list[str]:
    rate = row["usdPerMillionTokens"]
    return [
        f"{row['promptTokens']:,}",
        f"{row['completionTokens']:,}",
        f"{row['totalTokens']:,}",
        _usd(row["replicaUSD"]),
        "-" if rate is None else _usd(rate),
    ]


def _usd(x: float) -> str:
    """Dollars with cents, or with six decimals below one cent (a young ledger holds tiny sums)."""
    return usd(x) if abs(x) >= 0.01 or x == 0 else f"${x:.6f}"


def _csv(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@cost_app.command(epilog="Example: polycloud cost export --out chargeback.csv --label team --since 30d")
@friendly
def export(
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write.", show_default=False)],
    label: Annotated[str, typer.Option("--label", help="Label to charge back by.")] = "team",
    since: Since = None,
) -> None:
    """Write a chargeback CSV: one row per label value, workload and cluster, with the period."""
    client = _client()
    try:
        data = client.cost_export(label, since)
    finally:
        client.close()
    text = _csv(data["rows"], (label, *EXPORT_FIELDS))
    try:
        out_file.write_text(text)
    except OSError as e:
        raise UserError(f"cannot write {out_file}: {e.strerror}") from e
    out.print(f"wrote {len(data['rows'])} rows ({data['periodStart']} to {data['periodEnd']}) to {out_file}")


@cost_app.command(epilog="Example: polycloud cost budgets --json")
@friendly
def budgets(as_json: Json = False) -> None:
    """Show each Policy budget this month: spend, month-end forecast, % used and alert level."""
    client = _client()
    try:
        data = client.budgets()
    finally:
        client.close()
    if as_json:
        print_json(data)
        return
    if not data["budgets"]:
        out.print("no budgets: add spec.budgets to a Policy document")
        return
    from rich.table import Table

    table = Table(title="budgets this month", show_edge=False)
    for col in ("policy", "budget", "spend", "forecast", "limit", "used", "alert"):
        table.add_column(col, justify="left" if col in ("policy", "budget") else "right")
    for b in data["budgets"]:
        alert = f"{b['alert']}%" if b["alert"] is not None else "-"
        table.add_row(
            b["policy"],
            f"{b['label']}={b['value']}",
            _usd(b["spendUSD"]),
            _usd(b["forecastUSD"]),
            _usd(b["limitUSD"]),
            f"{b['percentUsed']:.1f}%",
            alert,
        )
    out.print(table)


@friendly
def advise(as_json: Json = False) -> None:
    """Show savings with dollar figures, and the command that applies each."""
    client = _client()
    try:
        data = client.advice()
    finally:
        client.close()
    if as_json:
        print_json(data)
        return
    for note in data["notes"]:
        err.print(f"note: {note}")
    if not data["advice"]:
        out.print("no savings found")
        return
    for a in data["advice"]:
        out.print(f"[bold]{_usd(a['savingUSD'])}/{a['per']}[/bold]  {a['kind']}  {a['target']}")
        out.print(f"    {a['detail']}")
        out.print(f"    → {a['command']}")
    out.print(
        f"total: {_usd(data['monthlySavingUSD'])}/month (services, datasets), "
        f"{_usd(data['perRunSavingUSD'])}/run (jobs)"
    )
