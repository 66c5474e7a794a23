"""A model server polycloud did not write, end to end (issue 14): llama.cpp's OpenAI server
(`llama-cpp-python`, built from its source package once per machine by scripts/llama_cpp.py) runs as a
Service's `runtime.command` behind polycloud's sidecar, in two clusters, with mutual TLS on. Through the
gateway, the real `openai` SDK gets the answers a replica gives directly (greedy decoding), and streamed
chunks arrive as the replica sent them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.e2e.conftest import Polycloud

from polycloud.pki.contexts import TlsFiles, client_context

pytestmark = pytest.mark.e2e

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
BUILD_TIMEOUT_S = 2400
"""llama.cpp compiles in ~6 minutes on two quiet cores, ~18 under a loaded test run; cached after."""
ASK = [{"role": "user", "content": "What does the gateway do?"}]


@pytest.fixture(scope="session")
def llama_python() -> Path:
    """The interpreter of the per-machine llama-cpp-python build (built now if this machine has none)."""
    spec = importlib.util.spec_from_file_location("polycloud_llama_cpp", SCRIPTS / "llama_cpp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    python: Path = module.ensure_llama_cpp()
    return python


@pytest.fixture
def gguf(tmp_path: Path) -> Iterator[Path]:
    """A tiny llama-architecture model made from the repo's docs (scripts/tiny_gguf.py), no model hub."""
    out = tmp_path / "fleet" / "tiny.gguf"
    subprocess.run([sys.executable, str(SCRIPTS / "tiny_gguf.py"), str(out)], check=True, capture_output=True)
    yield out


def fleet(folder: Path, python: Path) -> Path:
    (folder / "fleet.yaml").write_text(
        f"""\
apiVersion: polycloud/v1
kind: Cluster
metadata: {{name: east}}
spec: {{provider: aws, region: us-east-1}}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {{name: west}}
spec: {{provider: gcp, region: us-west1}}
---
apiVersion: polycloud/v1
kind: Service
metadata: {{name: llama}}
spec:
  protocol: openai
  model: {{path: tiny.gguf}}
  runtime:
    command: [{python}, -m, llama_cpp.server, --model, "${{MODEL}}", --model_alias, llama,
              --host, 127.0.0.1, --port, "${{PORT}}", --n_ctx, "512"]
    readinessPath: /v1/models
  replicas: 1
  pattern: active-active
  traffic: [{{region: aws/us-east-1, share: 0.5}}, {{region: gcp/us-west1, share: 0.5}}]
"""
    )
    return folder


@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_llama_cpp_behind_the_gateway_answers_as_it_does_directly(
    polycloud: Polycloud, llama_python: Path, gguf: Path, tmp_path: Path
) -> None:
    polycloud.ok("apply", fleet(gguf.parent, llama_python), "--yes", timeout_s=300)

    def ready() -> dict[str, Any] | None:
        status = polycloud.status()
        replicas = [r for s in status["services"] for c in s["clusters"] for r in c["replicas"]]
        return status if len([r for r in replicas if r["state"] == "ready"]) == 2 else None

    status = polycloud.eventually(ready, "both llama.cpp replicas ready", timeout_s=180)
    endpoint = status["services"][0]["clusters"][0]["replicas"][0]["endpoint"]
    assert endpoint.startswith("https://")
    polycloud.ok("cert", "issue", "--out", tmp_path / "me")  # an admin's certificate, to call a replica
    http = httpx.Client(verify=client_context(TlsFiles(tmp_path / "me")), timeout=60)
    direct = openai.OpenAI(base_url=f"{endpoint}/v1", api_key="none", http_client=http, max_retries=0)
    routed = openai.OpenAI(
        base_url=f"{status['gateway']['url']}/v1", api_key="none", max_retries=0, timeout=60
    )

    assert [m.id for m in routed.models.list()] == ["llama"]
    ask: dict[str, Any] = {"model": "llama", "messages": ASK, "temperature": 0, "max_tokens": 16}
    mine = direct.chat.completions.create(**ask).choices[0].message.content
    raw = routed.chat.completions.with_raw_response.create(**ask)
    assert raw.parse().choices[0].message.content == mine and mine
    assert raw.headers["x-polycloud-cluster"] in ("east", "west")

    def chunks(client: openai.OpenAI) -> list[tuple[str | None, str | None]]:
        stream = client.chat.completions.create(**ask, stream=True)
        return [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in stream if c.choices]

    assert chunks(routed) == chunks(direct)
    text = routed.completions.create(model="llama", prompt="The gateway", temperature=0, max_tokens=8)
    assert text.choices[0].text
    # llama.cpp reports no usage in streams: the gateway counts the text chunks it relayed.
    metrics = httpx.get(f"{status['gateway']['url']}/metrics", timeout=10).text
    assert 'polycloud_gateway_llm_tokens_total{cluster="' in metrics
    http.close()
