"""LiteLLM's proxy for bench/llm_bench.py: installed from PyPI into a virtualenv of its own
(`bench/.venv-litellm`, made on first use and kept; never the project's .venv), configured with a
config.yaml whose model_list points `openai/<name>` at the replicas, and run with its logging quiet,
no telemetry, no database and no master key (as the gateway runs here without inference keys).

A sibling of the bench scripts (they run as `python bench/NAME.py`, which puts bench/ on the path).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

VENV = Path(__file__).resolve().parent / ".venv-litellm"
VERSION = "1.108.5"
"""Pinned: the newest release whose `proxy` extra resolves on the package index this machine reaches
(later ones need `litellm-proxy`/`litellm-enterprise` builds it lacks), and after the compromised 1.107.0."""
REQUIREMENT = f"litellm[proxy]=={VERSION}"
INSTALL_TIMEOUT_S = 1200.0
START_TIMEOUT_S = 120.0
QUIET = {
    "LITELLM_LOG": "ERROR",  # litellm's logger and uvicorn's (access log included) at ERROR
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the bundled cost map: no fetch from the internet at start
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
}
UNSET = ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL", "STORE_MODEL_IN_DB")


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_installed() -> Path | str:
    """The `litellm` command of the bench's own virtualenv, installing LiteLLM there first when it is
    missing or not the pinned version; or why it cannot be had."""
    python, command = VENV / "bin" / "python", VENV / "bin" / "litellm"
    if _installed_version(python) == VERSION and command.exists():
        return command
    print(f"LiteLLM: installing {REQUIREMENT} into {VENV} (once; a few minutes)", flush=True)
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if made.returncode != 0:
            return f"cannot make a virtualenv at {VENV}: {made.stderr.strip()[-300:]}"
    (VENV / ".gitignore").write_text("*\n")  # the folder stays out of git
    log = VENV / "install.log"
    try:
        with log.open("w") as out:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", REQUIREMENT],
                stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=False,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"pip install {REQUIREMENT} took over {INSTALL_TIMEOUT_S:.0f} s (see {log})"
    if done.returncode != 0 or not command.exists():
        tail = [line for line in log.read_text().splitlines() if not line.startswith("WARNING: Location")]
        return f"pip install {REQUIREMENT} failed: {' | '.join(t[:160] for t in tail[-2:])} (see {log})"
    return command


def write_config(path: Path, deployments: Mapping[str, Sequence[str]]) -> Path:
    """A config.yaml: each model name served by `openai/<name>` at each of its replicas' base URLs."""
    lines = ["model_list:"]
    for name, bases in deployments.items():
        for base in bases:
            lines += [
                f"  - model_name: {name}",
                "    litellm_params:",
                f"      model: openai/{name}",
                f"      api_base: {base}/v1",
                "      api_key: none",
                "      input_cost_per_token: 0  # priced (at 0), as a self-hosted model would be: unpriced,",
                "      output_cost_per_token: 0  # LiteLLM diagnoses the zero cost of every answer",
            ]
    lines += [
        "litellm_settings:",
        "  drop_params: true",
        "general_settings:",
        "  disable_spend_logs: true",
        "  dangerously_permit_weak_or_unset_master_key: true  # no keys: as the gateway runs here",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class LiteLLM:
    """A running LiteLLM proxy."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(command: Path, config: Path, port: int, work: Path) -> LiteLLM:
    """`litellm --config config --port port` (one worker, uvicorn), its output in work/litellm.log."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("POLYCLOUD_")}
    env |= QUIET
    env["PATH"] = f"{command.parent}:{env.get('PATH', '')}"
    log = work / "litellm.log"
    args = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*args, "--num_workers", "1"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, cwd=work,
        )  # fmt: skip
    return LiteLLM(proc, port, log)


async def wait_ready(
    session: aiohttp.ClientSession, proxy: LiteLLM, timeout_s: float = START_TIMEOUT_S
) -> str | None:
    """None once LiteLLM answers its liveness probe; else why not (it exited, or took too long)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proxy.proc.poll() is not None:
            return f"LiteLLM exited with status {proxy.proc.returncode}: {proxy.tail()}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{proxy.url}/health/liveliness") as response:
                if response.status == 200:
                    return None
        await asyncio.sleep(0.2)
    return f"LiteLLM did not answer within {timeout_s:.0f} s: {proxy.tail()}"
