"""The CLI imports only what a command uses (issue 17): `polycloud --help` and `validate` must not load the
state store, the server stack, the model server, the Kubernetes client, the solver or the HTTP client.

Each case runs the real entry point (`polycloud.cli.main:run`, as the console script does) in a fresh
interpreter and lists the modules it had loaded when the command ended. No timing is asserted here;
`bench/cli_bench.py` measures the start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from polycloud.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "fleet"

PROBE = """
import json, sys
from polycloud.cli.main import run
args, out = json.loads(sys.argv[1]), sys.argv[2]
sys.argv = ["polycloud", *args]
try:
    run()
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(n for n, m in sys.modules.items() if m is not None)}, f)
"""
"""Runs the CLI as the console script does (`run()`), then writes its exit status and loaded modules."""

SERVER_STACK = (
    "pydantic_settings",  # polycloud.settings reads the environment itself
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",
    "cryptography",
    "opentelemetry",
    "polycloud.state",
    "polycloud.server",
    "polycloud.api",
    "polycloud.controller",
    "polycloud.obs",
    "polycloud.secrets",
    "polycloud.telemetry",
    "polycloud.dashboard",
)
"""The control plane's own stack (no CLI command but `up`, `server` and `gateway` runs it), and what
nothing of polycloud needs."""

RUNTIME = (
    "onnxruntime",
    "kubernetes",
    "polycloud.drivers",
    "polycloud.gateway",
    "polycloud.serving",
    "polycloud.proxying",
    "polycloud.pki",
    "polycloud.drills",
)
"""Replicas, drivers, gateways and drills."""

SERVICES = (  # every use case but the one whose defaults `export control-plane --help` shows
    "polycloud.services.applying",
    "polycloud.services.documents",
    "polycloud.services.exporting",
)

PLANNER = ("highspy", "numpy", "scipy", "polycloud.placement", "polycloud.cost")
CLIENT = ("httpx", "httpcore", "polycloud.client.http", "polycloud.client.discovery")
FLEET_NEEDS = ("polycloud.spec", "polycloud.catalog", "polycloud.policy")
FLEET = ("yaml", "polycloud.settings", *FLEET_NEEDS)


def loaded(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """(exit status, every module loaded) of `polycloud ARGS` in a fresh interpreter."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
    env |= {"POLYCLOUD_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.is_file(), done.stderr
    found = json.loads(out.read_text())
    return found["code"], found["modules"]


def offending(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules that are, or are inside, one of `forbidden`."""
    return [m for m in modules if any(m == f or m.startswith(f"{f}.") for f in forbidden)]


def test_help_loads_neither_the_stack_nor_rich(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "--help")
    assert code == 0
    assert "polycloud.cli.export" in modules  # every command module is imported: help lists them all
    forbidden = SERVER_STACK + RUNTIME + SERVICES + PLANNER + CLIENT + FLEET
    assert offending(modules, (*forbidden, "rich", "psutil", "pydantic")) == []


@pytest.mark.parametrize(
    "args",
    [
        ("export", "control-plane", "--help"),
        ("status", "--help"),
        ("validate", "--help"),
        ("login", "--help"),
    ],
)
def test_a_command_help_loads_little_more(tmp_path: Path, args: tuple[str, ...]) -> None:
    """As `--help`, but with pydantic: Typer validates the options of `polycloud` itself with it."""
    code, modules = loaded(tmp_path, *args)
    assert code == 0
    forbidden = SERVER_STACK + RUNTIME + SERVICES + PLANNER + CLIENT + FLEET
    assert offending(modules, (*forbidden, "rich", "psutil")) == []


def test_validate_loads_the_spec_catalog_and_policies_only(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "validate", str(EXAMPLES))
    assert code == 0
    assert set(FLEET_NEEDS) <= set(modules)
    assert offending(modules, SERVER_STACK + RUNTIME + SERVICES + PLANNER + CLIENT) == []


def test_an_invalid_spec_is_reported_without_loading_more(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("apiVersion: polycloud/v1\nkind: Cluster\nmetadata: {name: a}\nspec: {provider: 3}\n")
    code, modules = loaded(tmp_path, "validate", str(spec))
    assert code == 1
    assert offending(modules, SERVER_STACK + RUNTIME + SERVICES + PLANNER + CLIENT) == []


def test_plan_loads_the_planner_but_no_state_store_server_or_driver(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "plan", "--json", str(EXAMPLES))
    assert code == 0
    assert "polycloud.placement" in modules
    assert offending(modules, SERVER_STACK + RUNTIME + SERVICES + CLIENT) == []


def test_status_loads_the_client_but_not_the_fleet_model_or_server(tmp_path: Path) -> None:
    """No control plane runs in this home: status says so (exit 1) after looking with the client."""
    code, modules = loaded(tmp_path, "--token", "t", "status")
    assert code == 1
    assert "polycloud.client.discovery" in modules
    assert offending(modules, SERVER_STACK + RUNTIME + SERVICES + PLANNER + FLEET_NEEDS + ("yaml",)) == []
    assert "polycloud.cli.jobs" not in modules  # only the command's own module is imported


# -- the map from command to module --------------------------------------------------------------------


def test_commands_names_every_command_and_the_module_that_registers_it() -> None:
    everything = typer.main.get_command(main.app)
    assert isinstance(everything, typer.core.TyperGroup)
    assert set(everything.commands) == set(main.COMMANDS)
    for module in main.MODULES:
        alone = typer.main.get_command(main.build([module]))
        assert isinstance(alone, typer.core.TyperGroup)
        assert set(alone.commands) == {c for c, m in main.COMMANDS.items() if m == module}, module


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ([], None),
        (["--help"], None),
        (["status", "--json"], "status"),
        (["--server", "https://cp.example.com", "--token", "t", "jobs", "status"], "jobs"),
        (["--server=https://cp.example.com", "plan", "x.yaml"], "plan"),
        (["--token"], None),
        (["--verbose", "status"], None),
    ],
)
def test_the_command_name_is_the_first_word_after_polycloud_s_own_options(
    args: list[str], name: str | None
) -> None:
    assert main.command_name(args) == name
