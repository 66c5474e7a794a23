"""`polycloud identity ...`: the signing key of the workload identity tokens the clouds trust."""

from datetime import UTC, datetime

import typer

from polycloud.cli.common import connect, err, friendly, out, settings

identity_app = typer.Typer(
    help="Workload identity: polycloud signs tokens for its replicas and jobs that AWS, GCP and Azure "
    "trust (docs/identity.md).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `identity` command group."""
    app.add_typer(identity_app, name="identity", epilog="Example: polycloud identity rotate")


@identity_app.command("rotate", epilog="Example: polycloud identity rotate")
@friendly
def rotate() -> None:
    """Make a new signing key (audited). It is published in the JWKS at once and signs after
    POLYCLOUD_WORKLOAD_KEY_PUBLISH_S (600 s); the old key stays published until every token it signed
    has expired, so no valid token stops verifying."""
    made = connect(settings(), start=False, say=err.print).rotate_workload_key()
    signs = datetime.fromtimestamp(float(made["signsAt"]), UTC).isoformat(timespec="seconds")
    out.print(f"new workload signing key {made['kid']}: published now, signs from {signs}")
