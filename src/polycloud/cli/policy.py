"""`polycloud policy check`: evaluate Policy documents against a fleet and its plan, in-process."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from polycloud.cli.common import EXIT_VIOLATION, friendly, out, print_json, settings
from polycloud.errors import PolycloudError

if TYPE_CHECKING:
    from polycloud.catalog import Catalog
    from polycloud.placement import Plan
    from polycloud.policy import Report
    from polycloud.spec import Fleet

Files = Annotated[list[Path], typer.Argument(help="Spec files or folders of them.", show_default=False)]

policy_app = typer.Typer(
    help="Policy as code: check a fleet against its Policy documents.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")


@policy_app.command(epilog="Example: polycloud policy check examples/fleet/ examples/policies/ --json")
@friendly
def check(
    files: Files,
    as_json: Annotated[bool, typer.Option("--json", help="Print violations and notes as JSON.")] = False,
) -> None:
    """Evaluate every rule of every Policy against the fleet and its plan.

    Exit status: 0 when no rule is broken, 2 when some are, 1 for invalid input. Secrets cannot be
    checked without the control plane: `requiredSecrets` is reported as a note (apply checks it).
    """
    from polycloud.catalog import load_catalog
    from polycloud.placement import plan_fleet
    from polycloud.spec import load_fleet

    catalog = load_catalog()
    fleet = load_fleet(files, catalog, model_roots=settings().resolved_model_roots)
    report = fleet_report(fleet, catalog, plan_fleet(fleet, catalog))
    if as_json:
        print_json(report.to_json())
    else:
        show_report(report, clean=f"policy: {len(fleet.policies)} policies, no violations")
    if report.violations:
        raise typer.Exit(EXIT_VIOLATION)


def fleet_report(fleet: "Fleet", catalog: "Catalog", plan: "Plan | None" = None) -> "Report":
    """Evaluate `fleet`'s policies in-process: model digests from the files, no secret store."""
    from polycloud.policy import evaluate

    return evaluate(fleet, catalog, plan=plan.placements if plan else None, digests=model_digests(fleet))


def model_digests(fleet: "Fleet") -> dict[str, str]:
    """sha256 of each Service's model file whose spec gives none (only when a policy needs them)."""
    if not any(p.spec.approvedModels is not None for p in fleet.policies.values()):
        return {}
    digests = {}
    for name, service in fleet.services.items():
        model = service.spec.model
        local = model.path if model is not None and model.sha256 is None else None
        if local is not None:
            try:
                digests[name] = file_sha256(Path(local))
            except OSError:
                continue  # reported as "cannot check" by the policy
    return digests


def file_sha256(path: Path) -> str:
    """The sha256 of a file, as lower-case hex (as the model server computes it, without importing the
    model server: onnxruntime and numpy would cost `validate` a second).

    Raises:
        OSError: The file is missing, a folder, or cannot be read.
    """
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def show_report(report: "Report", clean: str | None = None) -> None:
    """Violations, each with its remedy, then notes; `clean` is printed when there is nothing to say."""
    from rich.markup import escape

    if report.violations:
        out.print(f"[red]policy: {len(report.violations)} violation(s)[/red]")
    elif clean:
        out.print(clean)
    for v in report.violations:
        out.print(escape(f"  {v}"), soft_wrap=True)
    for n in report.notes:
        out.print(f"[dim]  note: {escape(str(n))}[/dim]", soft_wrap=True)


@contextmanager
def pointing_into(fleet: "Fleet") -> Iterator[None]:
    """Re-point violations the control plane reports into the files `fleet` was read from."""
    try:
        yield
    except PolycloudError as e:
        from polycloud.policy import PolicyViolationError

        if not isinstance(e, PolicyViolationError):
            raise
        raise e.located(fleet) from None
