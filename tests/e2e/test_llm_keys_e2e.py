"""Tokens as the unit, end to end (issue 14 item 4): a key with a tokens-per-minute limit on an LLM
service, enforced by the real gateway against the real `openai` SDK (429 with Retry-After and the
reason once the minute's tokens are spent), its tokens reported to the store (`polycloud key list`),
and the service's tokens served with their cost per 1M tokens in `polycloud cost`."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from tests.e2e.conftest import Polycloud

from polycloud.serving.llm import lm

pytestmark = pytest.mark.e2e

CORPUS = [
    "The gateway counts the tokens of every answer. A key that spent its tokens of the minute waits for "
    "the minute to free up. The control plane reports what each token cost in every cluster. " * 5
]
FLEET = """
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: east}
spec: {provider: aws, region: us-east-1}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: chat, labels: {team: nlp}}
spec:
  protocol: openai
  model: {path: tiny-lm.json}
  replicas: 1
"""
ASK = [{"role": "user", "content": "What does the gateway count?"}]
LIMIT = 300


def test_a_keys_tokens_per_minute_hold_at_the_gateway_and_reach_the_store_and_the_cost_report(
    polycloud: Polycloud, tmp_path: Path
) -> None:
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "tiny-lm.json").write_bytes(lm.dumps(lm.train(CORPUS)))
    (folder / "fleet.yaml").write_text(FLEET)
    polycloud.ok("apply", folder, "--yes")
    status = polycloud.eventually(lambda: _ready(polycloud), "the LLM replica ready")
    gateway = status["gateway"]["url"]

    created = polycloud.ok(
        "key", "create", "chat", "--rps", "100", "--burst", "100", "--tokens-per-minute", str(LIMIT)
    )
    key = created.stdout.strip()
    assert f"{LIMIT} tokens/minute" in created.stderr
    sdk = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0, timeout=30)
    keyless = openai.OpenAI(base_url=f"{gateway}/v1", api_key="pk_wrong", max_retries=0, timeout=30)

    def closed() -> bool:
        try:
            keyless.chat.completions.create(model="chat", messages=ASK, max_tokens=4)
        except openai.AuthenticationError:
            return True
        except openai.APIStatusError:  # a replica slow to answer a health check on a loaded machine: 503
            return False
        return False

    polycloud.eventually(closed, "the gateway to require a key")

    # One request at a time, streamed and not: each is admitted while the minute's tokens are under the
    # limit; the one after the limit is reached gets 429. Within the minute nothing leaves the window.
    spent: list[int] = []
    refusal: openai.RateLimitError | None = None
    for i in range(100):
        try:
            if i % 2:
                chunks = sdk.chat.completions.create(
                    model="chat",
                    messages=ASK,
                    max_tokens=16,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = [c.usage for c in chunks if c.usage is not None]
                spent.append(usage[-1].total_tokens)
            else:
                answer = sdk.chat.completions.create(model="chat", messages=ASK, max_tokens=16)
                assert answer.usage is not None
                spent.append(answer.usage.total_tokens)
        except openai.RateLimitError as e:
            refusal = e
            break
    assert refusal is not None, f"never refused after {sum(spent)} tokens"
    assert sum(spent) >= LIMIT  # admitted while the budget lasted...
    assert sum(spent[:-1]) < LIMIT  # ...and the last one admitted overshot by its own size at most
    assert f"over its limit of {LIMIT} tokens per minute" in str(refusal)
    assert 1 <= int(refusal.response.headers["retry-after"]) <= 61

    def reported() -> dict[str, object] | None:
        [row] = json.loads(polycloud.ok("key", "list", "--json").stdout)
        return row if row["tokensThisMonth"] == sum(spent) else None

    row = polycloud.eventually(reported, "the key's tokens to reach the store")
    assert row["tokensPerMinute"] == LIMIT and row["usedThisMonth"] == len(spent)
    assert f"{sum(spent)} / -" in polycloud.ok("key", "list").stdout

    def showback() -> dict[str, object] | None:
        tokens = json.loads(polycloud.ok("cost", "--by", "team", "--json").stdout).get("tokens")
        if not tokens or tokens["totalTokens"] < sum(spent) or not tokens["replicaUSD"]:
            return None
        return tokens  # type: ignore[no-any-return]

    tokens = polycloud.eventually(showback, "tokens served and their cost in `polycloud cost`")
    [line] = tokens["services"]  # type: ignore[index]
    assert (line["team"], line["service"], line["cluster"]) == ("nlp", "chat", "east")
    assert line["usdPerMillionTokens"] > 0
    assert [r["key"] for r in tokens["rows"]] == ["nlp"]  # type: ignore[index]
    assert "cost per 1M tokens by team, service and cluster" in polycloud.ok("cost").stdout


def _ready(polycloud: Polycloud) -> dict[str, object] | None:
    status = polycloud.status()
    ready = [
        r for s in status["services"] for c in s["clusters"] for r in c["replicas"] if r["state"] == "ready"
    ]
    return status if ready else None
