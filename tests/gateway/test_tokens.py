"""The gateway's token meter: events forwarded whole as they complete, text events timed and counted,
usage read (and taken out when the gateway asked for it on the client's behalf)."""

from __future__ import annotations

import json

from polycloud.gateway.tokens import TokenMeter


def event(data: object) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def delta(text: str) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}}]})


USAGE = event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
DONE = b"data: [DONE]\n\n"


def test_events_split_across_parts_are_forwarded_once_whole() -> None:
    meter = TokenMeter(0.0, events=True, strip_usage=False)
    body = delta("Hello") + delta(" world") + USAGE + DONE
    out = b"".join(meter.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + meter.flush()
    assert out == body
    usage = meter.usage()
    assert (usage.prompt, usage.completion, usage.total) == (5, 3, 8)
    assert usage.first_token_s is not None and usage.inter_token_s is not None


def test_usage_asked_for_by_the_gateway_is_taken_out() -> None:
    meter = TokenMeter(0.0, events=True, strip_usage=True)
    out = meter.feed(delta("a") + USAGE) + meter.feed(DONE)
    assert out == delta("a") + DONE and meter.usage().completion == 3


def test_without_usage_text_events_are_counted() -> None:
    meter = TokenMeter(0.0, events=True, strip_usage=False)
    role = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    meter.feed(role + delta("a") + delta("b") + delta("c") + DONE)
    usage = meter.usage()
    assert (usage.prompt, usage.completion) == (0, 3)


def test_a_whole_answer_is_scanned_for_usage() -> None:
    meter = TokenMeter(0.0, events=False, strip_usage=False)
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 9}}).encode()
    assert meter.feed(body[:10]) + meter.feed(body[10:]) == body
    assert meter.usage().total == 11 and meter.usage().first_token_s is None
