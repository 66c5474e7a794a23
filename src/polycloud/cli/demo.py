"""`polycloud demo`: plan and apply the example fleet (with an LLM over the OpenAI API), send real
inference everywhere, stream a chat answer through the gateway, show cost.

It talks to replicas and the gateway over real HTTP, like any client. Ctrl-C (or `--once`) stops
everything it started.
"""

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polycloud.cli.common import connect, friendly, out, settings, usd
from polycloud.cli.planning import show_plan
from polycloud.cli.runtime import down, show_changes, wait_converged
from polycloud.errors import PolycloudError

if TYPE_CHECKING:
    import httpx

    from polycloud.client.http import ApiClient
    from polycloud.spec import Fleet

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "fleet"


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: polycloud demo --once")(demo)


@friendly
def demo(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Fleet to run (default: examples/fleet, examples/llm and examples/flags)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One round of requests, then stop everything.")
    ] = False,
) -> None:
    """Plan and apply a fleet on the local driver, infer on every cluster, show status and cost."""
    from polycloud.catalog import load_catalog
    from polycloud.cli import demo_flags, demo_llm
    from polycloud.placement import plan_fleet
    from polycloud.services.documents import fleet_to_documents
    from polycloud.spec import load_fleet

    catalog = load_catalog()
    if not files:
        demo_llm.ensure_model()
    fleet = load_fleet(files or [EXAMPLES, demo_llm.EXAMPLES, demo_flags.EXAMPLES], catalog)
    llms = {name for name, s in fleet.services.items() if s.spec.protocol == "openai"}
    out.rule("1. plan")
    plan = plan_fleet(fleet, catalog)
    show_plan(plan)
    out.rule("2. apply")
    client = connect(settings(), start=True, say=out.print)
    try:
        documents = fleet_to_documents(fleet)
        show_changes(client.apply(documents, dry_run=True))
        client.apply(documents, dry_run=False, message="polycloud demo")
        status = wait_converged(client, set(fleet.services))
        out.rule("3. inference on every cluster (direct, then through the gateway)")
        with fleet_client(client) as http:
            infer_everywhere(http, fleet, status, skip=llms)
            if llms:
                out.rule("3b. an LLM in two clouds: the OpenAI API, streamed through the gateway")
                demo_llm.chat_everywhere(http, llms, status)
                for name in sorted(llms):
                    demo_llm.stream_through_gateway(http, name, status["gateway"]["url"])
            if demo_flags.FLAG in fleet.flags:
                out.rule("3c. a feature flag, asked of the gateway over OFREP (OpenFeature)")
                demo_flags.flags_through_gateway(http, status["gateway"]["url"])
            out.rule("4. cost")
            out.print(
                f"services {usd(sum(p.totalUSD for p in plan.placements if p.kind == 'Service'))}/month, "
                f"jobs {usd(sum(p.totalUSD for p in plan.placements if p.kind == 'Job'))} per run"
            )
            while not once:
                out.rule("traffic through the gateway (Ctrl-C to stop)")
                through_gateway(http, fleet, status, skip=llms)
                time.sleep(2.0)
    except KeyboardInterrupt:
        out.print("stopping…")
    finally:
        out.rule("5. down")
        down()


def fleet_client(client: "ApiClient") -> "httpx.Client":
    """An HTTP client that may call replicas directly: with an admin's fleet certificate (audited, an
    hour long) when the fleet runs mutual TLS, as it does by default."""
    import tempfile

    import httpx

    from polycloud.pki.contexts import TlsFiles, client_context

    try:
        issued = client.issue_certificate()
    except PolycloudError:  # mutual TLS is off: replicas speak plain HTTP
        return httpx.Client(timeout=10.0, trust_env=False)
    files = TlsFiles(Path(tempfile.mkdtemp(prefix="polycloud-demo-")))
    files.write(issued["certificate"], issued["key"], issued["ca"])
    return httpx.Client(timeout=10.0, trust_env=False, verify=client_context(files))


def infer_everywhere(http: "httpx.Client", fleet: "Fleet", status: dict[str, Any], skip: set[str]) -> None:
    from rich.table import Table

    table = Table()
    for col in ("service", "cluster", "role", "replica", "ms", "answer"):
        table.add_column(col)
    for svc in status["services"]:
        if svc["name"] in skip:
            continue
        body = request_body(fleet, svc["name"])
        for c in svc["clusters"]:
            for r in c["replicas"][:1]:
                ms, answer = timed_infer(http, r["endpoint"], svc["name"], body)
                table.add_row(svc["name"], c["cluster"], c["role"], r["id"], f"{ms:.0f}", answer)
        ms, answer = timed_infer(http, status["gateway"]["url"], svc["name"], body)
        table.add_row(svc["name"], "[bold]gateway[/bold]", "", "", f"{ms:.0f}", answer)
    out.print(table)
    out.print("Latency includes each cluster's simulated network delay from the gateway's region.")


def through_gateway(http: "httpx.Client", fleet: "Fleet", status: dict[str, Any], skip: set[str]) -> None:
    for svc in status["services"]:
        if svc["name"] in skip:
            continue
        ms, answer = timed_infer(
            http, status["gateway"]["url"], svc["name"], request_body(fleet, svc["name"])
        )
        out.print(f"{svc['name']:16} {ms:7.0f} ms  {answer}")


def timed_infer(http: "httpx.Client", base: str, service: str, body: dict[str, Any]) -> tuple[float, str]:
    import httpx

    start = time.perf_counter()
    try:
        response = http.post(f"{base}/v2/models/{service}/infer", json=body)
    except httpx.HTTPError as e:
        return (time.perf_counter() - start) * 1000, f"[red]unreachable: {e}[/red]"
    ms = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        return ms, f"[red]{response.status_code} {response.text[:80]}[/red]"
    served = response.headers.get("x-polycloud-cluster")
    outputs = response.json().get("outputs", [])
    first = outputs[0]["data"][:3] if outputs else []
    return ms, f"{outputs[0]['name'] if outputs else ''}={first}" + (f" via {served}" if served else "")


def request_body(fleet: "Fleet", service: str) -> dict[str, Any]:
    """An infer request with a real sample row for the service's model (from samples.json)."""
    model = fleet.services[service].spec.model
    path = Path((model.path if model is not None else None) or "")
    samples_file = path.parent / "samples.json"
    from polycloud.serving.model import inspect_model  # onnxruntime is slow to import; only demo needs it

    first = inspect_model(path).inputs[0]
    width = first.shape[-1] if first.shape and first.shape[-1] > 0 else 1
    rows: list[list[float]] = [[0.0] * width]
    if samples_file.is_file():
        rows = json.loads(samples_file.read_text()).get(path.name, {}).get("rows", rows)
    return {
        "inputs": [
            {"name": first.name, "shape": [1, len(rows[0])], "datatype": first.datatype, "data": rows[0]}
        ]
    }
