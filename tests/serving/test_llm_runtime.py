"""The built-in runtime's OpenAI API, in process: shapes of answers and streams, and client errors as
OpenAI-style 4xx (never a 5xx that would count against the replica)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.llm import lm
from polycloud.serving.llm.runtime import LlmReplica, create_llm_app
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics

TEXT = ["The gateway routes each request to a healthy replica. A replica that fails is ejected."]


def call(method: str, path: str, body: Any = None, raw: bytes | None = None) -> httpx.Response:
    replica = LlmReplica(
        "chat", lm.train(TEXT), Faults(FaultSettings()), ReplicaMetrics(ReplicaLabels("chat", "c", "1"))
    )

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_llm_app(replica))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            return await client.request(method, path, content=content)

    return asyncio.run(go())


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": "What does the gateway do?"}]} | extra


def test_chat_completion_shape() -> None:
    answer = call("POST", "/v1/chat/completions", chat(temperature=0, max_tokens=5)).json()
    assert answer["object"] == "chat.completion" and answer["model"] == "chat"
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    assert (
        answer["usage"]["total_tokens"]
        == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    )


def test_a_stream_ends_with_finish_usage_and_done() -> None:
    response = call(
        "POST",
        "/v1/chat/completions",
        chat(stream=True, max_tokens=4, stream_options={"include_usage": True}),
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2])


def test_stop_strings_end_the_answer() -> None:
    full = call(
        "POST", "/v1/completions", {"model": "chat", "prompt": "gateway", "max_tokens": 10, "temperature": 0}
    ).json()
    text = full["choices"][0]["text"]
    word = text.split()[2]
    stopped = call(
        "POST",
        "/v1/completions",
        {"model": "chat", "prompt": "gateway", "max_tokens": 10, "temperature": 0, "stop": [word]},
    ).json()
    assert (
        stopped["choices"][0]["text"] == text[: text.index(word)]
        and stopped["choices"][0]["finish_reason"] == "stop"
    )


def test_embeddings_as_floats_and_base64() -> None:
    floats = call("POST", "/v1/embeddings", {"model": "chat", "input": ["a", "b"]}).json()
    assert len(floats["data"]) == 2 and len(floats["data"][0]["embedding"]) == lm.EMBEDDING_DIMS
    packed = call(
        "POST", "/v1/embeddings", {"model": "chat", "input": "a", "encoding_format": "base64"}
    ).json()
    assert isinstance(packed["data"][0]["embedding"], str)


@pytest.mark.parametrize(
    ("body", "raw", "status", "param"),
    [
        (None, b"[" * 100_000, 400, None),
        (None, b'{"model": "chat", "messages": [], "max_tokens": NaN}', 400, None),
        ({"messages": [{"role": "user", "content": "x"}]}, None, 400, "model"),
        (chat(model="other"), None, 404, "model"),
        (chat(max_tokens=0), None, 400, "max_tokens"),
        (chat(max_tokens=10**9), None, 400, "max_tokens"),
        (chat(temperature=3), None, 400, "temperature"),
        (chat(n=2), None, 400, "n"),
        (chat(stream="yes"), None, 400, "stream"),
        (chat(stop=[1]), None, 400, "stop"),
        ({"model": "chat", "messages": "hi"}, None, 400, "messages"),
        ({"model": "chat", "messages": [{"content": "no role"}]}, None, 400, "messages"),
    ],
)
def test_client_errors_are_openai_4xx(body: Any, raw: bytes | None, status: int, param: str | None) -> None:
    response = call("POST", "/v1/chat/completions", body, raw)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error" and error["param"] == param


def test_models_and_health() -> None:
    assert call("GET", "/v1/models").json()["data"][0]["id"] == "chat"
    assert call("GET", "/health").status_code == 200
    assert call("GET", "/v2/health/ready").status_code == 200
    assert call("GET", "/v1/chat/completions").status_code == 405
