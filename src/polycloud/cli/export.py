"""`polycloud export k8s FILE... --out DIR`: Kubernetes manifests for GitOps, planned in-process."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from polycloud.catalog import load_catalog
from polycloud.cli.common import EXIT_INFEASIBLE, err, friendly, out
from polycloud.services.exporting import export_fleet, write_export
from polycloud.spec import load_fleet

Files = Annotated[list[Path], typer.Argument(help="Spec files or folders of them.", show_default=False)]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="Folder to write DIR/<cluster>/<kind>-<name>.yaml into.")
]


class Format(StrEnum):
    k8s = "k8s"
    argo = "argo"


FormatOption = Annotated[
    Format, typer.Option("--format", help="k8s: Jobs as batch/v1 Jobs; argo: Jobs as Argo Workflows.")
]

export_app = typer.Typer(
    help="Write what polycloud would run, as manifests for other tools.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the `export` command group."""
    app.add_typer(
        export_app, name="export", epilog="Example: polycloud export k8s examples/fleet/ --out manifests/"
    )


@export_app.command(epilog="Example: polycloud export k8s examples/fleet/ --out manifests/ --format argo")
@friendly
def k8s(files: Files, out_dir: Out, fmt: FormatOption = Format.k8s) -> None:
    """Plan the fleet and write, per kubernetes cluster, the manifests its driver would apply.

    Services become a Deployment and a Service; Jobs a Job (or, with --format argo, an Argo Workflow)
    plus a checkpoint volume claim. Secrets are referenced by name (`polycloud-<secret>`, key `value`),
    never written. Exit status: 0 when every workload is placed, 2 when some cannot be (the rest is
    still written), 1 for invalid input.
    """
    catalog = load_catalog()
    export = export_fleet(load_fleet(files, catalog), catalog, "argo" if fmt is Format.argo else "k8s")
    written = write_export(export, out_dir)
    for cluster, items in sorted(export.manifests.items()):
        out.print(f"{cluster}: {len(items)} manifests in {out_dir / cluster}")
    if export.skipped:
        out.print(f"skipped (driver is not kubernetes): {', '.join(sorted(export.skipped))}")
    if not written:
        err.print("no manifests: no workload is placed on a cluster with driver.type kubernetes")
    for item in export.infeasible:
        err.print(f"[red]cannot place {item}[/red] (run `polycloud plan` for the reasons)")
    if export.infeasible:
        raise typer.Exit(EXIT_INFEASIBLE)
