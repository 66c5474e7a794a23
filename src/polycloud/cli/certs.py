"""`polycloud cert ...`: an admin's short-lived client certificate, and rotating the fleet CA."""

import os
from pathlib import Path
from typing import Annotated

import typer

from polycloud.cli.common import connect, err, friendly, out, settings

cert_app = typer.Typer(
    help="The fleet's own certificates: polycloud's parts talk to each other over mutual TLS.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `cert` command group."""
    app.add_typer(cert_app, name="cert", epilog="Example: polycloud cert issue --out ./debug-cert")


@cert_app.command(
    "issue",
    epilog="Example: polycloud cert issue --out ./c && curl --cacert ./c/ca.pem --cert ./c/cert.pem "
    "--key ./c/key.pem https://127.0.0.1:41234/_polycloud/faults",
)
@friendly
def issue(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write cert.pem, key.pem and ca.pem into (created 0700).")
    ],
) -> None:
    """Get a client certificate for debugging replicas directly: valid for an hour, audited.

    Replicas accept it on every endpoint, the control endpoints (faults, predictions) included.
    """
    issued = connect(settings(), start=False, say=err.print).issue_certificate()
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in (
        ("cert.pem", issued["certificate"]),
        ("key.pem", issued["key"]),
        ("ca.pem", issued["ca"]),
    ):
        path = out_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    out.print(f"wrote {out_dir}/cert.pem, key.pem and ca.pem; valid until {issued['expiresAt'][:19]} UTC")


@cert_app.command("rotate", epilog="Example: polycloud cert rotate")
@friendly
def rotate() -> None:
    """Make a new fleet CA. It is trusted everywhere at once and signs after POLYCLOUD_CA_PUBLISH_S
    (180 s); every certificate is then renewed with it, without dropping a request."""
    connect(settings(), start=False, say=err.print).rotate_authority()
    out.print("new fleet CA made: certificates move to it once every part trusts it")
