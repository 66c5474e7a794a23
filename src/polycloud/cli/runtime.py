"""Commands that change or show the running fleet: up, apply, status, history, rollback, down, logs."""

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polycloud.cli.common import (
    EXIT_INVALID,
    connect,
    err,
    find,
    friendly,
    out,
    print_json,
    settings,
    start_background,
    usd,
)
from polycloud.cli.policy import pointing_into
from polycloud.cli.rollout import describe
from polycloud.client.convergence import is_converged
from polycloud.homefiles import RunInfo, pid_alive, read_runinfo

if TYPE_CHECKING:
    from polycloud.client.http import ApiClient
    from polycloud.spec import Fleet

Files = Annotated[list[Path], typer.Argument(help="Spec files or folders of them.", show_default=False)]
WAIT_TIMEOUT_S = 180.0
GATEWAY_PATIENCE_S = 10.0
"""How long apply waits for a gateway that does not answer at all before saying so and moving on."""


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: polycloud up --detach")(up)
    app.command(epilog="Example: polycloud apply examples/fleet/ --yes")(apply)
    app.command(epilog="Example: polycloud status --json")(status)
    app.command(epilog="Example: polycloud history species")(history)
    app.command(epilog="Example: polycloud rollback species --to 1")(rollback)
    app.command(epilog="Example: polycloud down")(down)
    app.command(epilog="Example: polycloud logs species-aws-use1-0 --tail 20")(logs)
    app.command(epilog="Example: polycloud events --workload species")(events)


@friendly
def up(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background and return.")] = False,
) -> None:
    """Run the control plane (API, reconciler, gateway) for $POLYCLOUD_HOME until Ctrl-C."""
    s = settings()
    if detach:
        running = read_runinfo(s.resolved_home)
        info = running or start_background(s)
        out.print(f"control plane {'already ' if running else ''}running: pid {info.pid}")
        _where(info, s.resolved_home / "admin.token")
        return

    def ready(info: RunInfo, token_path: Path | None) -> None:
        out.print(f"control plane for {s.resolved_home} (pid {info.pid})")
        _where(info, token_path)
        if token_path is not None:
            out.print(f"created the first admin token; it is in {token_path} (shown once, keep it safe)")
        sys.stdout.flush()

    # Imported here, not at the top: the server stack (uvicorn, FastAPI, SQLAlchemy) would add most of a
    # second to every other command's start.
    from polycloud.server.process import ControlPlane

    ControlPlane(s, on_ready=ready).serve()


def _where(info: RunInfo, token_path: Path | None) -> None:
    out.print(f"  API      {info.api_url}/api/v1  (OpenAPI: {info.api_url}/api/v1/openapi.json)")
    out.print(f"  gateway  {info.gateway_url}")


@friendly
def apply(
    files: Files,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once recorded; do not wait.")] = False,
    message: Annotated[str, typer.Option("--message", "-m", help="Why; kept with the revision.")] = "",
) -> None:
    """Plan, show the diff and cost delta, record a revision, and wait until every replica is ready."""
    from polycloud.catalog import load_catalog
    from polycloud.services.documents import fleet_to_documents
    from polycloud.spec import load_fleet

    s = settings()
    fleet = load_fleet(files, load_catalog(), model_roots=settings().resolved_model_roots)
    documents = fleet_to_documents(fleet)
    client = connect(s, start=True, say=lambda line: err.print(line))
    check_routed_revisions(fleet, client)
    with pointing_into(fleet):  # policy violations name the lines of these files
        preview = client.apply(documents, dry_run=True)
    show_changes(preview)
    changed = any(c["action"] != "=" for c in preview["changes"]) or bool(preview.get("documents"))
    if changed and not yes:
        if not sys.stdin.isatty():
            err.print("[red]error:[/red] not a terminal: pass --yes to apply without confirmation")
            raise typer.Exit(EXIT_INVALID)
        if not typer.confirm("Apply these changes?"):
            raise typer.Exit(EXIT_INVALID)
    if changed:
        with pointing_into(fleet):
            result = client.apply(documents, dry_run=False, message=message)
        revs = ", ".join(f"{c['workload']} r{c['revision']}" for c in result["changes"] if c["action"] != "=")
        out.print(f"recorded: {revs or ', '.join(result.get('documents', {}))}")
    else:
        out.print("no changes")
    if not no_wait:
        names = {str(d["metadata"]["name"]) for d in documents if d["kind"] == "Service"}
        wait_converged(client, names)


def check_routed_revisions(fleet: "Fleet", client: "ApiClient") -> None:
    """Refuse, with the lines of the files, a flag routing to a revision its service does not have (the
    control plane refuses it too, naming the document: this says where in the files)."""
    from polycloud.errors import SpecError
    from polycloud.spec.references import check_routed_revisions as check

    if issues := check(fleet, lambda name: {int(r["number"]) for r in client.history(name)}):
        raise SpecError(issues)


DOCUMENT_MARKS = {"created": "+", "updated": "~", "deleted": "-"}


def show_changes(preview: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Changes", show_edge=False)
    for col in ("", "workload", "kind", "before", "after", "delta"):
        table.add_column(col, justify="right" if col in ("before", "after", "delta") else "left")
    colour = {"+": "green", "~": "yellow", "-": "red", "=": "dim"}
    for c in preview["changes"]:
        unit = "/run" if c["kind"] == "Job" else "/mo"
        delta = c["afterUSD"] - c["beforeUSD"]
        style = colour[c["action"]]
        table.add_row(
            f"[{style}]{c['action']}[/{style}]",
            c["workload"],
            c["kind"],
            usd(c["beforeUSD"]) + unit,
            usd(c["afterUSD"]) + unit,
            f"{'+' if delta >= 0 else '-'}{usd(abs(delta))}",
        )
    out.print(table)
    for document, action in preview.get("documents", {}).items():
        out.print(f"{DOCUMENT_MARKS.get(action, '?')} {document} ({action})")
    for key, unit in (("deltaUSD", "per month (services)"), ("jobsDeltaUSD", "per run (jobs)")):
        delta = float(preview[key])
        out.print(f"cost delta: {'+' if delta >= 0 else '-'}{usd(abs(delta))} {unit}")


def wait_converged(client: "ApiClient", names: set[str], timeout_s: float = WAIT_TIMEOUT_S) -> dict[str, Any]:
    """Poll status until the named services run exactly their desired replicas, all ready."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    deadline = time.monotonic() + timeout_s
    patience = time.monotonic() + GATEWAY_PATIENCE_S
    with err.status("waiting for replicas…") as spinner:
        while True:
            status = client.status()
            ready, total = _counts(status, names)
            canaries = [s["rollout"] for s in status["services"] if s["name"] in names and "rollout" in s]
            if canaries:
                deadline = time.monotonic() + timeout_s  # a canary bakes as long as its steps say
                spinner.update("; ".join(describe(r) for r in canaries))
                if any(r["state"] == "paused" for r in canaries):
                    out.print("rollout paused; continue with `polycloud rollout resume NAME`")
                    return status
            else:
                spinner.update(f"waiting for replicas: {ready}/{total} ready")
            rolled_back = _rolled_back(client, names, since)
            if rolled_back:
                err.print(f"[red]error:[/red] {rolled_back}")
                raise typer.Exit(EXIT_INVALID)
            if is_converged(status, names) and _routable(status, names, patience):
                out.print(f"ready: {ready}/{total} replicas, served at {status['gateway']['url']}")
                return status
            if time.monotonic() > deadline:
                break
            blocked = _blocked(client, names, since)
            if blocked:
                err.print(f"[red]error:[/red] {blocked}; the running replicas are kept")
                raise typer.Exit(EXIT_INVALID)
            time.sleep(0.25)
    for e in client.events(limit=10):
        if e["level"] != "info":
            err.print(f"  {e['reason']}: {e['message']}")
    err.print(
        f"[red]error:[/red] not ready after {timeout_s:.0f} s ({ready}/{total}); see `polycloud events`"
    )
    raise typer.Exit(EXIT_INVALID)


def _rolled_back(client: "ApiClient", names: set[str], since: datetime) -> str | None:
    """Why a named service's canary was rolled back or aborted since `since`, if it was."""
    for e in client.events(limit=20):
        fresh = datetime.fromisoformat(e["time"]) >= since
        if fresh and e["reason"] in ("RolloutRolledBack", "RolloutAborted") and e["workload"] in names:
            return f"{e['workload']}: canary {e['message']}"
    return None


def _blocked(client: "ApiClient", names: set[str], since: datetime) -> str | None:
    """Why a named service cannot roll out, if the controller has said so since `since`."""
    for e in client.events(limit=20):
        fresh = datetime.fromisoformat(e["time"]) >= since
        if fresh and e["reason"] == "ServiceBlocked" and e["workload"] in names:
            status = client.status()
            svc = next((s for s in status["services"] if s["name"] == e["workload"]), None)
            if svc is not None and e["message"] and not is_converged(status, {svc["name"]}):
                return f"{e['workload']} cannot start its {svc['revision']}: {e['message']}"
    return None


def _routable(status: dict[str, Any], names: set[str], patience: float) -> bool:
    """Whether every live gateway routes every named service's current revision yet, as their heartbeats
    tell the API (a gateway learns routes within a second). Asking the API, not a gateway, works for
    services behind inference keys, which the CLI does not hold.

    With no gateway heard from, apply does not wait past `patience`: replicas are ready, which is what
    apply promises; `polycloud events` tells why no gateway runs.
    """
    gateways = status.get("controlPlane", {}).get("gateways", [])
    if not gateways:
        if time.monotonic() > patience:
            err.print("[yellow]warning:[/yellow] no gateway has reported in; the replicas are ready")
            return True
        return False
    revisions = {s["name"]: s["revision"] for s in status["services"] if s["name"] in names}
    return all(
        revision in g.get("routes", {}).get(name, [])
        for g in gateways
        for name, revision in revisions.items()
    )


def _counts(status: dict[str, Any], names: set[str]) -> tuple[int, int]:
    ready = total = 0
    for svc in status["services"]:
        if svc["name"] in names:
            for c in svc["clusters"]:
                total += c["desired"]
                ready += c["ready"]  # of the current revision only
    return ready, total


@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (DESIGN.md §5).")] = False,
) -> None:
    """Show every service, where its replicas run and whether they are ready."""
    client = connect(settings(), start=False, say=err.print)
    data = client.status()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"gateway {data['gateway']['url']}   API {data['api']['url']}")
    for col in ("service", "rev", "cluster", "role", "ready", "replicas"):
        table.add_column(col)
    for svc in data["services"]:
        for c in svc["clusters"]:
            ready = _ready_text(svc, c)
            reps = "\n".join(f"{r['id']} {r['state']} {r['endpoint'] or ''}" for r in c["replicas"])
            table.add_row(svc["name"], svc["revision"], c["cluster"], c["role"], ready, reps)
    out.print(table)
    for a in data.get("anomalies", []):  # the last 15 minutes' (polycloud.obs)
        out.print(f"anomaly {a['time'][:19]} {a['message']}", markup=False)


def _ready_text(svc: dict[str, Any], cluster: dict[str, Any]) -> str:
    """ "2/2", plus the ready replicas of older revisions: those a flag routes to, and the others."""
    held = set(svc.get("held", ()))
    others = [
        r["revision"]
        for r in cluster["replicas"]
        if r["state"] == "ready" and r["revision"] != svc["revision"]
    ]
    text = f"{cluster['ready']}/{cluster['desired']}"
    if kept := [r for r in others if r in held]:
        text += f" (+{len(kept)} of {', '.join(sorted(set(kept)))} for its flag)"
    if older := [r for r in others if r not in held]:
        text += f" (+{len(older)} on older revisions)"
    return text


@friendly
def history(name: Annotated[str, typer.Argument(help="Workload name.")]) -> None:
    """List a workload's revisions, newest last."""
    from rich.table import Table

    client = connect(settings(), start=False, say=err.print)
    table = Table(title=f"history of {name}")
    for col in ("revision", "created", "author", "where", "cost", "message"):
        table.add_column(col)
    for r in client.history(name):
        where = ", ".join(f"{a['cluster']} ({a['role']})" for a in r["placement"])
        table.add_row(r["revision"], r["createdAt"][:19], r["author"], where, usd(r["costUSD"]), r["message"])
    out.print(table)


@friendly
def rollback(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    to: Annotated[
        int | None, typer.Option("--to", help="Revision number (default: the previous one).")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the replicas.")] = False,
) -> None:
    """Roll a workload back to an earlier revision (recorded as a new revision)."""
    client = connect(settings(), start=False, say=err.print)
    record = client.rollback(name, to)
    out.print(f"{name}: now {record['revision']} ({record['message']})")
    if not no_wait:
        wait_converged(client, {name})


@friendly
def down() -> None:
    """Stop every replica, the control plane and the home's gateway. State (revisions, events) is kept."""
    from polycloud.drivers.local import stop_all_replicas
    from polycloud.server.children import stop_gateway  # (imported here: see `up`)

    s = settings()
    client = find(s)
    info = read_runinfo(s.resolved_home)
    if client is not None:
        client.shutdown()
        deadline = time.monotonic() + 60
        while info is not None and pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever the control plane could not stop (or when none ran), stop the embedded replicas directly.
    left = stop_all_replicas(s.resolved_home)
    # The home's gateway outlives control planes; `down` stops it too.
    stop_gateway(s.resolved_home)
    out.print("stopped" + (f" ({left} leftover replicas)" if left else ""))


@friendly
def logs(
    replica: Annotated[str, typer.Argument(help="Replica id, as in `polycloud status`.")],
    tail: Annotated[int, typer.Option("--tail", "-n", help="Lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Show a replica's log ($POLYCLOUD_HOME/logs/REPLICA.log)."""
    path = settings().logs_dir / f"{replica}.log"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.log"))
        raise typer.BadParameter(f"no log for {replica!r}; known: {', '.join(known) or 'none'}")
    with path.open(errors="replace") as f:
        for line in f.readlines()[-tail:]:
            sys.stdout.write(line)
        while follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)


@friendly
def events(
    workload: Annotated[str | None, typer.Option("--workload", "-w", help="Only this workload.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the controller's recent events, newest first."""
    rows = connect(settings(), start=False, say=err.print).events(workload, limit)
    if as_json:
        print_json(rows)
        return
    for e in rows:
        out.print(f"{e['time'][:19]} {e['level']:7} {e['reason']:18} {e['workload'] or '':16} {e['message']}")
