"""The streaming client of bench/llm_bench.py: OpenAI chat completions streamed over aiohttp, each
server-sent event timestamped as it arrives, and the figures of a batch of streams.

A sibling of the bench scripts (they run as `python bench/NAME.py`, which puts bench/ on the path).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

PATH = "/v1/chat/completions"
HEADERS = {"content-type": "application/json"}
TEXT = re.compile(rb'"content":"(?!")')
"""An event carrying generated text (a non-empty `content`): one token each (the runtime streams one
token per event)."""
DONE = b"data: [DONE]"


def chat_body(model: str, prompt: str, max_tokens: int) -> bytes:
    """A streamed chat completion request, greedy (the same answer on every replica)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (nearest rank) of `values`; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Stream:
    """One streamed answer as the client saw it."""

    started: float
    ttft_ms: float | None = None
    """From sending the request to the first event with text."""
    gaps_ms: list[float] = field(default_factory=list)
    """Per token after the first: the time since the previous token arrived (0 for a token that came in
    the same read as the one before it)."""
    tokens: int = 0
    reads: int = 0
    """Reads that brought at least one token (fewer than `tokens`: tokens arrived coalesced)."""
    error: str | None = None


async def stream(session: aiohttp.ClientSession, url: str, body: bytes) -> Stream:
    """Send one streamed request and read its events to `data: [DONE]`."""
    started = time.perf_counter()
    seen = Stream(started)
    carry = b""
    last = 0.0
    done = False
    try:
        async with session.post(url, data=body, headers=HEADERS) as response:
            if response.status != 200:
                text = (await response.read())[:200].decode(errors="replace")
                seen.error = f"HTTP {response.status}: {text}"
                return seen
            async for data in response.content.iter_any():
                now = time.perf_counter()
                data = carry + data if carry else data
                end = data.rfind(b"\n\n")
                if end < 0:
                    carry = data
                    continue
                ready, carry = data[: end + 2], data[end + 2 :]
                count = len(TEXT.findall(ready))
                if count:
                    if seen.ttft_ms is None:
                        seen.ttft_ms = (now - started) * 1000
                    else:
                        seen.gaps_ms.append((now - last) * 1000)
                    seen.gaps_ms.extend([0.0] * (count - 1))
                    seen.tokens += count
                    seen.reads += 1
                    last = now
                if b'"error"' in ready:
                    seen.error = "error event: " + ready[:200].decode(errors="replace")
                if DONE in ready:
                    done = True
    except (aiohttp.ClientError, TimeoutError) as e:
        seen.error = f"{type(e).__name__}: {e}"
        return seen
    if not done and seen.error is None:
        seen.error = "the stream ended without data: [DONE]"
    return seen


@dataclass
class Batch:
    """Streams of one path under one load, and what its proxy spent on them."""

    streams: list[Stream] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float | None = None
    """CPU time of the proxy process (None: no proxy, or not measured)."""

    def add(self, other: Batch) -> None:
        """Pool `other`'s streams, time and CPU into this one."""
        self.streams.extend(other.streams)
        self.seconds += other.seconds
        if other.cpu_s is not None:
            self.cpu_s = (self.cpu_s or 0.0) + other.cpu_s

    @property
    def ok(self) -> list[Stream]:
        return [s for s in self.streams if s.error is None]

    @property
    def errors(self) -> int:
        return sum(s.error is not None for s in self.streams)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.streams)

    def ttft(self, q: float) -> float:
        return quantile([s.ttft_ms for s in self.ok if s.ttft_ms is not None], q)

    def itl(self, q: float) -> float:
        return quantile([g for s in self.ok for g in s.gaps_ms], q)

    @property
    def coalesced(self) -> float:
        """Share of tokens that arrived in the same read as the token before them."""
        tokens = sum(s.tokens for s in self.ok)
        return (tokens - sum(s.reads for s in self.ok)) / tokens if tokens else 0.0

    @property
    def streams_per_s(self) -> float:
        return len(self.ok) / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_1k(self) -> float | None:
        """The proxy's CPU seconds per 1,000 tokens relayed."""
        return None if self.cpu_s is None or not self.tokens else self.cpu_s / self.tokens * 1000

    def first_error(self) -> str:
        return next((s.error for s in self.streams if s.error is not None), "")


async def closed_loop(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    body: bytes,
    concurrency: int,
    count: int | None = None,
    seconds: float | None = None,
) -> Batch:
    """`concurrency` clients, each starting its next stream when the last ends, until `count` streams
    have started or `seconds` have passed (streams under way then finish); URLs taken in turn."""
    counter = itertools.count()
    streams: list[Stream] = []
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")

    async def client() -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            if count is not None and i >= count:
                return
            streams.append(await stream(session, urls[i % len(urls)], body))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Batch(streams, time.perf_counter() - start)
