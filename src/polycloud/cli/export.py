"""`polycloud export`: what polycloud runs, as files for other tools, made in-process.

`export k8s FILE... --out DIR` writes the fleet's Kubernetes manifests for GitOps; `export
control-plane --format systemd|k8s [--out DIR]` writes what production needs to run the control plane
itself (servers, gateways, the init step), or prints it when there is no `--out`.
"""

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from polycloud.cli.common import EXIT_INFEASIBLE, err, friendly, out
from polycloud.errors import UserError

# The control-plane defaults appear in `--help`, so they are read at the CLI's start: the module is
# cheap to import (it imports the manifest writer only when it writes). `export k8s` plans the fleet and
# renders Kubernetes manifests: that is imported when it runs.
from polycloud.services.controlplane_export import (
    DEFAULT_BINARY,
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    SECRET,
    ControlPlaneOptions,
    export_control_plane,
)

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
    from polycloud.catalog import load_catalog
    from polycloud.services.exporting import export_fleet, write_export
    from polycloud.spec import load_fleet

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


class PlaneFormat(StrEnum):
    systemd = "systemd"
    k8s = "k8s"


PRIVATE_FILES = {"polycloud.env"}
"""Written 0600: the operator puts the database password in it."""


@export_app.command(
    "control-plane", epilog="Example: polycloud export control-plane --format systemd --out deploy/"
)
@friendly
def control_plane(
    fmt: Annotated[
        PlaneFormat,
        typer.Option(
            "--format",
            help="systemd: units, environment file and user for each machine; "
            "k8s: Deployments, Services, PodDisruptionBudgets and the init Job.",
        ),
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write the files into (else: stdout).")
    ] = None,
    image: Annotated[str | None, typer.Option(help=f"k8s: the image (default {DEFAULT_IMAGE})")] = None,
    namespace: Annotated[
        str | None, typer.Option(help=f"k8s: the namespace (default {DEFAULT_NAMESPACE})")
    ] = None,
    servers: Annotated[int | None, typer.Option(min=1, help="k8s: server replicas (default 3)")] = None,
    gateways: Annotated[int | None, typer.Option(min=1, help="k8s: gateway replicas (default 2)")] = None,
    binary: Annotated[
        str | None,
        typer.Option(
            "--bin", help=f"systemd: the polycloud command, outside /home (default {DEFAULT_BINARY})"
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files in --out that differ.")] = False,
) -> None:
    """Write what production needs to run three control-plane servers and two gateways on PostgreSQL.

    systemd: polycloud-init.service (`server init`, run once by hand), polycloud-server.service,
    polycloud-gateway.service, polycloud.env (settings; 0600) and a sysusers entry; the master key
    stays in /etc/polycloud/master.key, passed as a systemd credential. k8s: an init Job, then a
    Deployment, Service and PodDisruptionBudget each for servers and gateways, reading the Secret
    `polycloud` (keys database-url, master-key), which you create. See docs/operations.md.
    """
    k8s_only = {"--image": image, "--namespace": namespace, "--servers": servers, "--gateways": gateways}
    wrong = [name for name, value in k8s_only.items() if value is not None and fmt is PlaneFormat.systemd]
    if binary is not None and fmt is PlaneFormat.k8s:
        wrong.append("--bin")
    if wrong:
        raise UserError(f"--format {fmt.value} does not take {', '.join(wrong)}")
    options = ControlPlaneOptions(
        fmt=fmt.value,
        image=image or DEFAULT_IMAGE,
        namespace=namespace or DEFAULT_NAMESPACE,
        servers=servers or 3,
        gateways=gateways or 2,
        binary=binary or DEFAULT_BINARY,
    )
    files = export_control_plane(options)
    if out_dir is None:
        sys.stdout.write(as_stream(files, fmt))
        sys.stdout.flush()
        return
    write_files(files, out_dir, force=force)
    out.print(f"wrote {len(files)} files in {out_dir}: {', '.join(files)}")
    out.print(next_steps(options, out_dir))


def as_stream(files: dict[str, str], fmt: PlaneFormat) -> str:
    """Every file in one text: a YAML stream for `kubectl apply -f -`; units under `### NAME` lines."""
    if fmt is PlaneFormat.k8s:
        return "".join(f"---\n{text}" for text in files.values())
    return "\n".join(f"### {name}\n{text}" for name, text in files.items())


def write_files(files: dict[str, str], out_dir: Path, *, force: bool) -> None:
    """Write `files` into `out_dir`; refuse, before writing any, to overwrite one that differs.

    Raises:
        UserError: A file differs from what would be written (an operator's edit) and not `force`.
    """
    differing = [
        name
        for name, text in files.items()
        if (out_dir / name).is_file() and (out_dir / name).read_text() != text
    ]
    if differing and not force:
        raise UserError(f"{out_dir} has edited files ({', '.join(differing)}): --force overwrites them")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        path.chmod(0o600 if name in PRIVATE_FILES else 0o644)


def next_steps(options: ControlPlaneOptions, out_dir: Path) -> str:
    """What to do with the files, in two lines (docs/operations.md has the rest)."""
    if options.fmt == "systemd":
        return (
            "next: install the units in /etc/systemd/system, polycloud.env and master.key (0600) in "
            "/etc/polycloud; `systemctl start polycloud-init` once, then enable polycloud-server on "
            "3 machines and polycloud-gateway on 2 (docs/operations.md)"
        )
    return (
        f"next: kubectl -n {options.namespace} create secret generic {SECRET} "
        "--from-file=database-url=database-url.txt --from-file=master-key=master.key; "
        f"kubectl apply -f {out_dir} (docs/operations.md)"
    )
