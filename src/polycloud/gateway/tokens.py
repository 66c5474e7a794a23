"""Token accounting of OpenAI answers as they pass through the gateway: usage, time to first token and
the spacing of tokens, read from the bytes without holding them back.

A streamed answer is server-sent events (`data: {...}\\n\\n`, ending with `data: [DONE]`). The meter
forwards whole events as soon as they are complete (a part that ends mid-event keeps its tail until
the rest arrives — in practice servers write whole events, so nothing waits), notes the time of the
first event that carries text (time to first token) and of the last, counts the events that carry text
(a token each, for servers that report no usage), and reads `usage` from the event that has it. When
the gateway asked for usage on the client's behalf (`stream_options.include_usage`), that event — no
choices, only usage — is taken out, so the client receives exactly what it asked for.

A whole (non-streamed) answer is scanned for its `usage` once complete.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

TEXT = re.compile(rb'"(?:content|text)": ?"(?!")')
"""An event carrying generated text (a non-empty `content` or `text`)."""
MAX_WHOLE_SCAN = 1 << 20
"""A whole answer larger than this is not parsed for usage (embeddings of huge batches)."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one LLM answer used, and how its tokens were spaced."""

    prompt: int = 0
    completion: int = 0
    first_token_s: float | None = None
    """From the request's arrival to the first text (streams only)."""
    inter_token_s: float | None = None
    """Mean time between tokens after the first (streams with two tokens or more)."""

    @property
    def total(self) -> int:
        """Prompt and completion tokens."""
        return self.prompt + self.completion


class TokenMeter:
    """Watches one answer's body on its way to the client."""

    __slots__ = (
        "_carry",
        "_first",
        "_last",
        "_strip",
        "_texts",
        "_usage",
        "_whole",
        "events",
        "metered",
        "started",
    )

    def __init__(self, started: float, events: bool, strip_usage: bool) -> None:
        """Meter an answer to a request that arrived at `started` (`time.perf_counter()`); `events`:
        it is a stream of server-sent events; `strip_usage`: remove the usage-only event."""
        self.started = started
        """When the request arrived (`time.perf_counter()`)."""
        self.events = events
        self._strip = strip_usage
        self._carry = b""
        self._first: float | None = None
        self._last = 0.0
        self._texts = 0
        self._usage: dict[str, Any] | None = None
        self._whole: list[bytes] | None = None if events else []
        self.metered: TokenUsage | None = None
        """The answer's usage once it has been relayed (None: no answer was relayed)."""

    def feed(self, part: bytes) -> bytes:
        """Take the next part of the body; returns what to send on now."""
        if not self.events:
            whole = self._whole
            if whole is not None:
                whole.append(part)
                if sum(map(len, whole)) > MAX_WHOLE_SCAN:
                    self._whole = None
            return part
        data = self._carry + part if self._carry else part
        end = data.rfind(b"\n\n")
        if end < 0:
            self._carry = data
            return b""
        ready, self._carry = data[: end + 2], data[end + 2 :]
        now = time.perf_counter()
        texts = len(TEXT.findall(ready))
        if texts:
            if self._first is None:
                self._first = now
            self._last = now
            self._texts += texts
        if b'"usage"' in ready:
            ready = self._take_usage(ready)
        return ready

    def flush(self) -> bytes:
        """What is left once the body has ended (an unterminated last event)."""
        left, self._carry = self._carry, b""
        return left

    def _take_usage(self, ready: bytes) -> bytes:
        kept = []
        for event in ready.split(b"\n\n"):
            if not event:
                continue
            payload = _data(event)
            usage = payload.get("usage") if isinstance(payload, dict) else None
            if isinstance(usage, dict):
                self._usage = usage
                if self._strip and not payload.get("choices"):
                    continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def usage(self) -> TokenUsage:
        """What the answer used: the replica's `usage` when it gave one, else text events counted."""
        usage = self._usage
        if usage is None and self._whole:
            found = _data(b"data: " + b"".join(self._whole))
            usage = found.get("usage") if isinstance(found, dict) else None
        prompt = _count(usage, "prompt_tokens")
        completion = _count(usage, "completion_tokens") if usage is not None else self._texts
        first = None if self._first is None else self._first - self.started
        spacing = None
        if self._first is not None and self._texts > 1:
            spacing = (self._last - self._first) / (max(completion, self._texts) - 1)
        return TokenUsage(prompt, completion, first, spacing)


def _data(event: bytes) -> Any:
    """The JSON of an event's `data:` line (None when it has none or it is not JSON)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                return json.loads(line[5:])
            except ValueError:
                return None
    return None


def _count(usage: dict[str, Any] | None, key: str) -> int:
    value = usage.get(key) if usage is not None else None
    return value if isinstance(value, int) and value >= 0 else 0
