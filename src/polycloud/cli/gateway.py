"""`polycloud gateway`: one gateway for `$POLYCLOUD_HOME`, in the foreground or detached.

The process is `python -m polycloud.gateway` (`polycloud.gateway.running`), with this home, the
address in `POLYCLOUD_GATEWAY_ADDR` and the database in `POLYCLOUD_DATABASE_URL`; `--detach` starts it
in a session of its own, logging to `$POLYCLOUD_HOME/logs/gateway.log`, exactly as `polycloud up` does.
"""

from typing import Annotated

import typer

from polycloud.cli.common import friendly, out, settings
from polycloud.errors import UserError

START_TIMEOUT_S = 30.0
"""How long `--detach` waits for the gateway to publish its run file."""


def register(app: typer.Typer) -> None:
    """Add the `gateway` command."""
    app.command(
        name="gateway",
        epilog="Example: POLYCLOUD_HOME=~/gw1 POLYCLOUD_GATEWAY_ADDR=0.0.0.0:8080 polycloud gateway --detach",
    )(gateway)


@friendly
def gateway(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background and return.")] = False,
) -> None:
    """Run one gateway for $POLYCLOUD_HOME at $POLYCLOUD_GATEWAY_ADDR until Ctrl-C.

    It routes by what the state store ($POLYCLOUD_DATABASE_URL) says, and keeps serving from its
    last-known routes, keys and rollout weights when the store or every control plane is gone; a copy
    under $POLYCLOUD_HOME/gateway/ lets it serve at once when it restarts. It never migrates the
    database (`polycloud server init` or `polycloud up` does). Run as many as you like, each with its
    own home; each appears in `polycloud status`. `polycloud down` in its home stops it.
    """
    # Imported here, not at the top: the gateway stack would add a second to every other command's start.
    from polycloud.gateway import running
    from polycloud.gateway.presence import running_gateway
    from polycloud.server.children import gateway_args, gateway_command, spawn_detached, wait_published

    s = settings()
    home = s.resolved_home
    args = gateway_args(addr=s.gateway_addr, region=s.gateway_region, home=home)
    if not detach:
        raise typer.Exit(running.main([*args, "--database-url", s.resolved_database_url]))
    already = running_gateway(home, wait_s=2.0)
    if already is not None:
        out.print(f"gateway already running for {home}: pid {already.pid}, {already.url}")
        return
    log = s.logs_dir / "gateway.log"
    command = gateway_command(addr=s.gateway_addr, region=s.gateway_region, home=home)
    proc = spawn_detached(command, s.resolved_database_url, log)
    info = wait_published(home, proc, START_TIMEOUT_S)
    if info is None:
        lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
        raise UserError(f"the gateway did not start: {lines[-1] if lines else 'no output'} (log: {log})")
    out.print(f"gateway running for {home}: pid {info.pid}, {info.url} (log: {log})")
