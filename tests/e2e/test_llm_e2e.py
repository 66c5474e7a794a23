"""LLM services end to end (issue 14): `polycloud apply` of a Service on the built-in LLM runtime and one
whose replicas run a server of their own (`runtime.command`, behind polycloud's sidecar), in two clusters,
with the fleet's mutual TLS on; the real `openai` SDK through the gateway; replicas refuse callers
without a fleet certificate; killing or freezing every replica of one cluster under streaming load fails
no request that started after it."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from tests.e2e.conftest import Polycloud

from polycloud.serving.llm import lm

pytestmark = pytest.mark.e2e

CORPUS = [
    "The gateway routes every request to the nearest healthy replica. A replica that fails is ejected "
    "and the request is retried in another cluster. The control plane places every model where it is "
    "cheapest and allowed. Streaming answers arrive token by token through the gateway. " * 5
]
CLUSTERS = """
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: east}
spec: {provider: aws, region: us-east-1}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: west}
spec: {provider: gcp, region: us-west1}
"""
SERVICES = """
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: chat}
spec:
  protocol: openai
  model: {path: tiny-lm.json}
  replicas: 1
  pattern: active-active
  traffic: [{region: aws/us-east-1, share: 0.5}, {region: gcp/us-west1, share: 0.5}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: custom}
spec:
  protocol: openai
  model: {path: tiny-lm.json}
  runtime:
    command: [python, -m, polycloud.serving, --model, "${MODEL}", --name, custom, --protocol, openai,
              --port, "${PORT}"]
    readinessPath: /health
  replicas: 1
  placement: {clusters: [east]}
"""
ASK = [{"role": "user", "content": "How does the gateway route a request?"}]


def write_fleet(root: Path, token_ms: float) -> Path:
    folder = root / "fleet"
    folder.mkdir()
    (folder / "tiny-lm.json").write_bytes(lm.dumps(lm.train(CORPUS, token_ms=token_ms)))
    (folder / "fleet.yaml").write_text(CLUSTERS + SERVICES)
    return folder


def test_llm_services_through_the_gateway_with_the_openai_sdk(polycloud: Polycloud, tmp_path: Path) -> None:
    polycloud.ok("apply", write_fleet(tmp_path, token_ms=0), "--yes")
    status = polycloud.eventually(lambda: _ready(polycloud, 3), "3 LLM replicas ready")
    gateway = status["gateway"]["url"]
    sdk = openai.OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0, timeout=30)
    assert sorted(m.id for m in sdk.models.list()) == ["chat", "custom"]
    for model in ("chat", "custom"):
        answer = sdk.chat.completions.with_raw_response.create(
            model=model, messages=ASK, temperature=0, max_tokens=12
        )
        assert answer.headers["x-polycloud-cluster"] in ("east", "west")
        text = answer.parse().choices[0].message.content
        streamed = sdk.chat.completions.create(
            model=model, messages=ASK, temperature=0, max_tokens=12, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == text and text
    # Replicas answer fleet certificates only: a plain or certificate-less call is refused.
    endpoints = [r["endpoint"] for s in status["services"] for c in s["clusters"] for r in c["replicas"]]
    assert endpoints and all(e.startswith("https://") for e in endpoints)
    for endpoint in endpoints:
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"{endpoint}/v1/chat/completions",
                json={"model": "chat", "messages": ASK},
                verify=False,
                timeout=5,
            )
        plain = endpoint.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{plain}/v1/chat/completions", json={"model": "chat", "messages": ASK}, timeout=5)
    # The runtime's own server listens only on loopback behind its sidecar, which polycloud started.
    custom = next(s for s in status["services"] if s["name"] == "custom")
    assert custom["clusters"][0]["replicas"][0]["state"] == "ready"


@pytest.mark.parametrize("signal_", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_losing_a_cluster_under_streaming_load_fails_no_request_started_after(
    polycloud: Polycloud, tmp_path: Path, signal_: signal.Signals
) -> None:
    """Every replica of one cluster killed (SIGKILL) or frozen (SIGSTOP: the connections stay open, no
    byte comes) while 4 clients stream: the streams cut mid-way end with the SDK-readable error event —
    a frozen replica's within seconds, once the gateway's health checks find it silent, not after the
    client's timeout — and every request started after the loss is answered from the other cluster."""
    polycloud.ok("apply", write_fleet(tmp_path, token_ms=5), "--yes")
    status = polycloud.eventually(lambda: _ready(polycloud, 3), "3 LLM replicas ready")
    gateway = status["gateway"]["url"]
    results: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def client() -> None:
        sdk = openai.OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0, timeout=30)
        while not stop.is_set():
            started = time.monotonic()
            try:
                chunks = sdk.chat.completions.create(model="chat", messages=ASK, max_tokens=20, stream=True)
                outcome = "ok" if "".join(c.choices[0].delta.content or "" for c in chunks) else "empty"
            except openai.APIError as e:
                outcome = f"error: {e}"
            results.append((started, time.monotonic(), outcome))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    chat = next(s for s in status["services"] if s["name"] == "chat")
    pids = [r["pid"] for c in chat["clusters"] if c["cluster"] == "east" for r in c["replicas"]]
    lost_at = time.monotonic()
    try:
        for pid in pids:
            os.kill(pid, signal_)
        time.sleep(4.0 if signal_ == signal.SIGKILL else 8.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=40)
        if signal_ == signal.SIGSTOP:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
    after = [outcome for started, _, outcome in results if started > lost_at + 0.01]
    assert len(after) > 20 and all(o == "ok" for o in after), [o for o in after if o != "ok"][:5]
    cut = [(ended, o) for started, ended, o in results if started <= lost_at and o != "ok"]
    assert all("failed mid-answer" in o for _, o in cut), cut
    assert all(ended - lost_at < 15 for ended, _ in cut), [ended - lost_at for ended, _ in cut]


def _ready(polycloud: Polycloud, replicas: int) -> dict[str, object] | None:
    status = polycloud.status()
    ready = [
        r for s in status["services"] for c in s["clusters"] for r in c["replicas"] if r["state"] == "ready"
    ]
    return status if len(ready) >= replicas else None
