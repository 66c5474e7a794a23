"""The gateway's OpenAI API against replicas of the built-in LLM runtime, with the real `openai` SDK:
answers equal those straight from a replica, streamed chunks arrive as the replica sent them, errors
have OpenAI's shape, a replica down before the first byte is failed over, and one dying mid-stream ends
that stream with an error the SDK raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from tests.support import wait_until

from polycloud.gateway import ReplicaRoute, RouteTable, ServiceRoutes, StaticRouteSource
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.llm import lm
from polycloud.serving.llm.runtime import LlmReplica, create_llm_app
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics

from .support import MakeGateway, ServerThread
from .test_gateway_e2e import Processes, ready

CORPUS = [
    "The gateway routes every request to the nearest healthy replica. A replica that fails is ejected "
    "and the request is retried in another cluster. The control plane places every model where it is "
    "cheapest and allowed. Streaming answers arrive token by token through the gateway.",
]
ASK = [{"role": "user", "content": "How does the gateway route a request?"}]


def llm_replica(cluster: str, token_ms: float = 0.0) -> tuple[LlmReplica, ServerThread]:
    model = lm.train(CORPUS, token_ms=token_ms)
    replica = LlmReplica(
        "chat", model, Faults(FaultSettings()), ReplicaMetrics(ReplicaLabels("chat", cluster, "1"))
    )
    return replica, ServerThread(create_llm_app(replica)).start()


def routes(servers: dict[str, ServerThread], protocol: str = "openai") -> RouteTable:
    replicas = tuple(_route(c, s) for c, s in servers.items())
    return RouteTable.of([ServiceRoutes("chat", "active-active", replicas, protocol=protocol)])


@pytest.fixture
def fleet(make_gateway: MakeGateway) -> Iterator[tuple[dict[str, ServerThread], str]]:
    servers = {c: llm_replica(c)[1] for c in ("a", "b")}
    gateway = make_gateway(StaticRouteSource(routes(servers)))
    yield servers, gateway.url
    for server in servers.values():
        server.stop(force=True)


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=30)


def test_answers_through_the_gateway_equal_answers_from_a_replica(
    fleet: tuple[dict[str, ServerThread], str],
) -> None:
    servers, gateway = fleet
    direct = client(servers["a"].url).chat.completions.create(
        model="chat", messages=ASK, temperature=0, max_tokens=20
    )
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=ASK, temperature=0, max_tokens=20
    )
    routed = raw.parse()
    assert routed.choices[0].message.content == direct.choices[0].message.content
    assert routed.choices[0].message.content
    assert routed.usage is not None and routed.usage.completion_tokens == direct.usage.completion_tokens  # type: ignore[union-attr]
    assert raw.headers["x-polycloud-cluster"] in ("a", "b")
    text = client(gateway).completions.create(model="chat", prompt="the gateway", temperature=0, max_tokens=8)
    assert text.choices[0].text
    vectors = client(gateway).embeddings.create(model="chat", input=["replica", "gateway"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == lm.EMBEDDING_DIMS
    listed = [m.id for m in client(gateway).models.list()]
    assert listed == ["chat"]


def test_streamed_chunks_arrive_as_the_replica_sent_them(fleet: tuple[dict[str, ServerThread], str]) -> None:
    servers, gateway = fleet

    def chunks(base: str) -> list[tuple[str | None, str | None]]:
        stream = client(base).chat.completions.create(
            model="chat", messages=ASK, temperature=0, max_tokens=12, stream=True
        )
        return [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in stream]

    direct = chunks(servers["b"].url)
    assert chunks(gateway) == direct  # the usage the gateway asked for on the client's behalf is not shown
    assert len(direct) >= 5 and direct[-1][1] in ("stop", "length")
    with_usage = client(gateway).chat.completions.create(
        model="chat",
        messages=ASK,
        temperature=0,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(with_usage)[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0


def test_async_streaming(fleet: tuple[dict[str, ServerThread], str]) -> None:
    _, gateway = fleet

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0) as aclient:
            stream = await aclient.chat.completions.create(
                model="chat", messages=ASK, temperature=0, max_tokens=10, stream=True
            )
            return [c.choices[0].delta.content or "" async for c in stream]

    parts = asyncio.run(run())
    assert "".join(parts).strip()


def test_errors_have_openai_shape(fleet: tuple[dict[str, ServerThread], str]) -> None:
    _, gateway = fleet
    with pytest.raises(openai.NotFoundError) as unknown:
        client(gateway).chat.completions.create(model="nope", messages=ASK)
    assert unknown.value.status_code == 404
    with httpx.Client(trust_env=False) as http:
        bad = http.post(f"{gateway}/v1/chat/completions", content=b"[" * 100_000)
        assert bad.status_code == 400 and set(bad.json()["error"]) >= {"message", "type", "code"}
        missing = http.post(f"{gateway}/v1/chat/completions", json={"messages": ASK})
        assert missing.status_code == 400 and "model" in missing.json()["error"]["message"]
        wrong = http.get(f"{gateway}/v1/chat/completions")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_oip_services_are_not_openai_models(make_gateway: MakeGateway) -> None:
    _, server = llm_replica("a")
    try:
        gateway = make_gateway(StaticRouteSource(routes({"a": server}, protocol="oip-v2")))
        assert list(client(gateway.url).models.list()) == []
        with pytest.raises(openai.NotFoundError):
            client(gateway.url).chat.completions.create(model="chat", messages=ASK)
    finally:
        server.stop(force=True)


def test_a_replica_down_before_the_first_byte_is_failed_over(
    fleet: tuple[dict[str, ServerThread], str],
) -> None:
    servers, gateway = fleet
    servers["a"].stop(force=True)
    for _ in range(10):
        raw = client(gateway).chat.completions.with_raw_response.create(
            model="chat", messages=ASK, temperature=0, max_tokens=5, stream=True
        )
        assert raw.headers["x-polycloud-cluster"] == "b"
        assert list(raw.parse())


def test_a_replica_dying_mid_stream_ends_the_stream_with_an_error(
    make_gateway: MakeGateway, processes: Processes, tmp_path: Path
) -> None:
    """A real replica process, SIGKILLed while it streams: the stream ends with an error event the SDK
    raises; the next request goes to the other replica."""
    model = tmp_path / "slow.json"
    model.write_bytes(lm.dumps(lm.train(CORPUS * 20, token_ms=40)))
    args = ["polycloud.serving", "--model", str(model), "--name", "chat", "--protocol", "openai"]
    proc, url = processes.start("slow", args)
    with httpx.Client(trust_env=False) as http:
        wait_until(ready(http, url), what="the replica")
    _, other = llm_replica("b")
    slow = ReplicaRoute(id="chat-a", cluster="a", role="active", endpoint=url, state="ready", revision=1)
    source = StaticRouteSource(RouteTable.of([ServiceRoutes("chat", "single", (slow,), protocol="openai")]))
    gateway = make_gateway(source)
    try:
        stream = client(gateway.url).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "gateway"}], max_tokens=400, stream=True
        )
        got: list[str] = []
        with pytest.raises(openai.APIError) as cut:
            for chunk in stream:
                got.append(chunk.choices[0].delta.content or "")
                if len(got) == 5:
                    proc.kill()
        assert len(got) >= 5 and "failed mid-answer" in str(cut.value), got
        source.set(
            RouteTable.of([ServiceRoutes("chat", "single", (slow, _route("b", other)), protocol="openai")])
        )
        gateway.wait_version(2)
        answer = client(gateway.url).chat.completions.with_raw_response.create(
            model="chat", messages=ASK, max_tokens=3
        )
        assert answer.headers["x-polycloud-cluster"] == "b"
    finally:
        other.stop(force=True)


def _route(cluster: str, server: ServerThread) -> ReplicaRoute:
    return ReplicaRoute(
        id=f"chat-{cluster}", cluster=cluster, role="active", endpoint=server.url, state="ready", revision=1
    )


def test_token_metrics(fleet: tuple[dict[str, ServerThread], str]) -> None:
    _, gateway = fleet
    list(
        client(gateway).chat.completions.create(
            model="chat", messages=ASK, temperature=0, max_tokens=6, stream=True
        )
    )
    metrics = httpx.get(f"{gateway}/metrics", trust_env=False).text
    assert 'polycloud_gateway_llm_tokens_total{cluster="' in metrics
    assert "polycloud_gateway_llm_time_to_first_token_seconds_count" in metrics
    completion = [
        line
        for line in metrics.splitlines()
        if line.startswith("polycloud_gateway_llm_tokens_total") and 'kind="completion"' in line
    ]
    assert completion and sum(float(line.rsplit(" ", 1)[1]) for line in completion) >= 6
    json.dumps(metrics)


def test_prefix_affinity_sends_a_shared_prompt_prefix_to_one_replica(make_gateway: MakeGateway) -> None:
    made = [llm_replica("a") for _ in range(3)]
    replicas = tuple(
        ReplicaRoute(id=f"chat-{i}", cluster="a", role="active", endpoint=s.url, state="ready", revision=1)
        for i, (_, s) in enumerate(made)
    )
    routes_ = RouteTable.of(
        [ServiceRoutes("chat", "single", replicas, protocol="openai", prefix_affinity=True)]
    )
    gateway = make_gateway(StaticRouteSource(routes_))
    system = {"role": "system", "content": "You are the support assistant of ACME's ML platform. " * 8}
    try:
        for question in (
            "How do I deploy?",
            "Why is my job slow?",
            "Who pays for GPUs?",
            "What is a canary?",
        ):
            client(gateway.url).chat.completions.create(
                model="chat", messages=[system, {"role": "user", "content": question}], max_tokens=3
            )
        counts = [_answered(r) for r, _ in made]
        assert sorted(counts) == [0, 0, 4], counts
    finally:
        for _, server in made:
            server.stop(force=True)


def _answered(replica: LlmReplica) -> int:
    for line in replica.metrics.render().decode().splitlines():
        if line.startswith("polycloud_replica_requests_total") and 'code="200"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_streams_are_not_capped_by_the_pool_of_short_exchanges(make_gateway: MakeGateway) -> None:
    """A stream holds its upstream connection for its whole length: more concurrent streams than
    `max_connections_per_replica` must all be served (up to the in-flight cap), not queued to time out."""
    _, slow = llm_replica("a", token_ms=20)
    gateway = make_gateway(
        StaticRouteSource(routes({"a": slow})), max_connections_per_replica=2, attempt_timeout_s=1.0
    )

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as aclient:

            async def one() -> str:
                stream = await aclient.chat.completions.create(
                    model="chat", messages=ASK, max_tokens=60, stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            return await asyncio.gather(*(one() for _ in range(6)))

    try:
        answers = asyncio.run(run())
        assert all(answers) and len(answers) == 6
    finally:
        slow.stop(force=True)
