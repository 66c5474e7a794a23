"""The LLM part of `polycloud demo`: chat with every cluster's replica, then stream an answer through
the gateway token by token, over the OpenAI API (plain HTTP and server-sent events, like any client)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from polycloud.cli.common import out

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "llm"
MODEL = EXAMPLES / "models" / "tiny-lm.json"
TOKEN_MS = 15.0
"""The demo model's pace: about what a mid-size model streams at on one GPU."""
QUESTION = "How does the gateway fail over when a replica stops answering?"


def ensure_model(path: Path = MODEL) -> None:
    """Train the demo's model from polycloud's own docstrings unless it is there (a second or two)."""
    if path.is_file():
        return
    from polycloud.serving.llm.training import build

    out.print(f"training the built-in LLM runtime's model into {path} …")
    build(path, token_ms=TOKEN_MS)


def chat(
    http: httpx.Client, base: str, service: str, prompt: str, max_tokens: int = 24
) -> tuple[float, str, str]:
    """One chat completion (greedy): (milliseconds, answer or error, the cluster that served)."""
    body = {"model": service, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    start = time.perf_counter()
    try:
        response = http.post(f"{base}/v1/chat/completions", json=body | {"max_tokens": max_tokens})
    except httpx.HTTPError as e:
        return (time.perf_counter() - start) * 1000, f"[red]unreachable: {e}[/red]", ""
    ms = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        return ms, f"[red]{response.status_code} {response.text[:80]}[/red]", ""
    text = response.json()["choices"][0]["message"]["content"]
    return ms, text, response.headers.get("x-polycloud-cluster", "")


def chat_everywhere(http: httpx.Client, services: set[str], status: dict[str, Any]) -> None:
    """Ask every cluster's replica of each LLM service directly, then the gateway."""
    table = Table()
    for col in ("service", "cluster", "replica", "ms", "answer (greedy, first tokens)"):
        table.add_column(col)
    for svc in status["services"]:
        if svc["name"] not in services:
            continue
        for c in svc["clusters"]:
            for r in c["replicas"][:1]:
                ms, answer, _ = chat(http, r["endpoint"], svc["name"], QUESTION, 8)
                table.add_row(svc["name"], c["cluster"], r["id"], f"{ms:.0f}", answer)
        ms, answer, served = chat(http, status["gateway"]["url"], svc["name"], QUESTION, 8)
        table.add_row(svc["name"], f"[bold]gateway[/bold] → {served}", "", f"{ms:.0f}", answer)
    out.print(table)


def stream_through_gateway(http: httpx.Client, service: str, gateway: str) -> None:
    """Stream one answer through the gateway, printing each token as it arrives."""
    body = {
        "model": service,
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": 48,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out.print(f"[bold]you:[/bold] {QUESTION}")
    start = time.perf_counter()
    first = 0.0
    usage: dict[str, Any] = {}
    with http.stream("POST", f"{gateway}/v1/chat/completions", json=body) as response:
        served = response.headers.get("x-polycloud-cluster", "?")
        out.print(f"[bold]{service}[/bold] (via {served}): ", end="")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    first = first or time.perf_counter()
                    out.print(text, end="", soft_wrap=True)
    elapsed = time.perf_counter() - start
    out.print()
    tokens = usage.get("completion_tokens", 0)
    rate = tokens / (elapsed - (first - start)) if first and elapsed > first - start else 0.0
    out.print(
        f"time to first token {(first - start) * 1000:.0f} ms, {tokens} tokens at {rate:.0f} tokens/s "
        f"(prompt {usage.get('prompt_tokens', 0)} tokens)"
    )
