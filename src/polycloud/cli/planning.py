"""`polycloud validate`, `plan` and `schema`: pure commands that run in-process."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from polycloud.cli.common import EXIT_INFEASIBLE, EXIT_VIOLATION, friendly, out, print_json, settings, usd
from polycloud.cli.policy import fleet_report, show_report

if TYPE_CHECKING:
    from polycloud.placement import Plan

Files = Annotated[list[Path], typer.Argument(help="Spec files or folders of them.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: polycloud validate examples/fleet/")(validate)
    app.command(epilog="Example: polycloud plan examples/fleet/ --json")(plan)
    app.command(epilog="Example: polycloud schema -o polycloud.schema.json")(schema)


@friendly
def validate(files: Files) -> None:
    """Check spec files: syntax, fields, names and references. Exit 1 with FILE:LINE:COL errors.

    Policies are evaluated too, but for the rules that need a plan (budgets, egress); violations are
    listed with their remedies but do not change the exit status (`polycloud policy check` gates on them).
    """
    from polycloud.catalog import load_catalog
    from polycloud.spec import load_fleet

    catalog = load_catalog()
    fleet = load_fleet(files, catalog, model_roots=settings().resolved_model_roots)
    counts = {
        k: len(v)
        for k, v in (
            ("clusters", fleet.clusters),
            ("datasets", fleet.datasets),
            ("services", fleet.services),
            ("jobs", fleet.jobs),
            ("policies", fleet.policies),
        )
    }
    if fleet.role_bindings:  # only named when there are any: most fleets declare access elsewhere
        counts["role bindings"] = len(fleet.role_bindings)
    if fleet.flags:  # named only when there are some: the line others parse stays as it was
        counts["flags"] = len(fleet.flags)
    out.print("valid: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    show_report(fleet_report(fleet, catalog))


@friendly
def plan(
    files: Files,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Place every workload where it is cheapest and allowed, and explain why.

    Exit status: 0 when everything is placed, 2 when some workload cannot be placed (the rest is still
    planned) or a policy is violated, 1 for invalid input. `--json` adds `"policy": {"violations"}`.
    """
    from polycloud.catalog import load_catalog
    from polycloud.placement import plan_fleet
    from polycloud.spec import load_fleet

    catalog = load_catalog()
    fleet = load_fleet(files, catalog, model_roots=settings().resolved_model_roots)
    result = plan_fleet(fleet, catalog)
    report = fleet_report(fleet, catalog, result)
    if as_json:
        print_json({**result.to_json(), "policy": report.to_json()})
    else:
        show_plan(result)
        show_report(report)
    if result.infeasible or report.violations:
        raise typer.Exit(EXIT_INFEASIBLE if result.infeasible else EXIT_VIOLATION)


def show_plan(result: "Plan") -> None:
    """The plan as a table, then totals, the saving against the naive baseline, and infeasibilities."""
    from rich.table import Table

    table = Table(show_lines=True, title="Placement plan")
    for column in ("workload", "pattern", "cluster / role", "instance", "$/month"):
        table.add_column(column, overflow="fold", justify="right" if column == "$/month" else "left")
    for p in result.placements:
        where = "\n".join(f"{a.cluster} {a.role} x{a.replicas}" for a in p.assignments)
        kind = "job (per run)" if p.kind == "Job" else p.pattern
        table.add_row(
            p.workload,
            kind,
            where,
            "\n".join(f"{a.instanceType}{' (spot)' if a.spot else ''}" for a in p.assignments),
            usd(p.totalUSD) + (" /run" if p.kind == "Job" else ""),
        )
    out.print(table)
    out.print("[bold]Why[/bold]")
    for p in result.placements:
        out.print(f"  [bold]{p.workload}[/bold]: {p.explanation}")
    out.print(f"[bold]Total:[/bold] {usd(result.totalUSD)}")
    if result.baselineUSD is not None and result.baselineProvider is not None:
        saving = result.baselineUSD - result.totalUSD
        pct = 100 * saving / result.baselineUSD if result.baselineUSD else 0.0
        out.print(
            f"Naive baseline (all on {result.baselineProvider}, cheapest compute, egress ignored): "
            f"{usd(result.baselineUSD)} — saving {usd(saving)} ({pct:.1f} %)"
        )
    for item in result.infeasible:
        out.print(f"[red]cannot place {item.kind} {item.workload}:[/red]")
        for reason in item.reasons:
            out.print(f"  - {reason}")


@friendly
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Write the JSON Schema of spec v1 documents (for editor completion and validation)."""
    from polycloud.spec.schema import fleet_json_schema

    text = json.dumps(fleet_json_schema(), indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n")
        out.print(f"wrote {output}")
