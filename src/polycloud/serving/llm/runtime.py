"""The built-in LLM runtime's replica: the OpenAI API over a `LanguageModel`, with streamed tokens.

Routes (beside `polycloud.serving.control`'s health, metrics and control routes):

    GET  /v1/models             the one model served (named as the Service)
    POST /v1/chat/completions   chat; `"stream": true` answers server-sent events, token by token
    POST /v1/completions        text completion; streams the same way
    POST /v1/embeddings         feature-hashed embeddings (floats, or base64 float32 as the SDK asks)
    GET  /health                200 while ready (what a model server's readiness path usually is)

Streams end with a chunk carrying `finish_reason` ("stop" at a sentence's end or a stop string,
"length" at `max_tokens`), then, when `stream_options.include_usage` asks, a chunk with `usage` and no
choices, then `data: [DONE]`. The model's `token_ms` paces streamed tokens as a GPU decoder's would (0:
as fast as the model makes them), so streaming can be seen and measured on a machine without one.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from polycloud.serving.control import (
    MAX_BODY_BYTES,
    ReplicaBase,
    SimulatedNetwork,
    control_routes,
    http_error,
    json_response,
    openai_inference,
    read_limited,
)
from polycloud.serving.faults import Faults
from polycloud.serving.llm import shapes
from polycloud.serving.llm.lm import LanguageModel, tokenize
from polycloud.serving.llm.shapes import Generation, OpenAIError
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.tracing import ReplicaTracer

JSON = "application/json"


class LlmReplica(ReplicaBase):
    """A replica of the built-in LLM runtime."""

    def __init__(
        self,
        name: str,
        model: LanguageModel,
        faults: Faults,
        metrics: ReplicaMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: ReplicaTracer | None = None,
        mutual_tls: bool = False,
    ) -> None:
        """Serve `model` as `name` (the Service's name); see `ReplicaBase` for the other arguments."""
        super().__init__(faults, metrics, sleep, tracer, mutual_tls)
        self.name = name
        self.model = model
        self.created = int(time.time())

    async def models(self, request: Request) -> Response:
        """`GET /v1/models`."""
        card = {"id": self.name, "object": "model", "created": self.created, "owned_by": "polycloud"}
        return json_response({"object": "list", "data": [card]})

    async def health(self, request: Request) -> Response:
        """`GET /health`."""
        return json_response({"status": "ok" if self.ready else "stopping"}, 200 if self.ready else 503)

    async def chat(self, request: Request) -> Response:
        """`POST /v1/chat/completions`."""
        return await self._complete(request, chat=True)

    async def completions(self, request: Request) -> Response:
        """`POST /v1/completions`."""
        return await self._complete(request, chat=False)

    async def embeddings(self, request: Request) -> Response:
        """`POST /v1/embeddings`."""
        try:
            data = await self._request(request)
            texts = shapes.embedding_inputs(data)
        except OpenAIError as e:
            return Response(e.body(), e.status, media_type=JSON)
        as_base64 = data.get("encoding_format") == "base64"
        items = []
        for i, text in enumerate(texts):
            vector = self.model.embed(text)
            packed: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            )
            items.append({"object": "embedding", "index": i, "embedding": packed})
        used = sum(len(tokenize(t)) for t in texts)
        usage = {"prompt_tokens": used, "total_tokens": used}
        return json_response({"object": "list", "data": items, "model": self.name, "usage": usage})

    async def _request(self, request: Request) -> dict[str, Any]:
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            raise OpenAIError(
                413, f"the request body is larger than {MAX_BODY_BYTES} bytes", "invalid_request_error"
            )
        data = shapes.parse_body(body)
        name = shapes.model_name(data)
        if name != self.name:
            raise shapes.unknown_model(name)
        return data

    async def _complete(self, request: Request, chat: bool) -> Response:
        try:
            ask = shapes.generation(await self._request(request), chat)
        except OpenAIError as e:
            return Response(e.body(), e.status, media_type=JSON)
        kind = "chat.completion" if chat else "text_completion"
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        if ask.stream:
            chunks = self._stream(ask, chat, kind + ".chunk" if chat else kind, ident)
            return StreamingResponse(
                chunks, media_type="text/event-stream", headers={"cache-control": "no-cache"}
            )
        tokens = list(
            _stopped(self.model.generate(ask.prompt, ask.max_tokens, ask.temperature, ask.seed), ask)
        )
        if self.model.token_ms > 0:  # a whole answer takes as long as its tokens would have streamed
            await self.sleep(self.model.token_ms * len(tokens) / 1000.0)
        text = "".join(t for t, _ in tokens)
        finish = tokens[-1][1] if tokens else "stop"
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice |= {"text": text, "logprobs": None}
        body = {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": self.name,
            "choices": [choice],
            "usage": _usage(ask.prompt, len(tokens)),
        }
        return json_response(body)

    async def _stream(self, ask: Generation, chat: bool, kind: str, ident: str) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any] | str, finish: str | None) -> bytes:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["delta"] = delta
            else:
                choice |= {"text": delta, "logprobs": None}
            return shapes.event(
                {"id": ident, "object": kind, "created": created, "model": self.name, "choices": [choice]}
            )

        if chat:
            yield chunk({"role": "assistant", "content": ""}, None)
        count, finish = 0, "stop"
        pace = self.model.token_ms / 1000.0
        for text, finish_reason in _stopped(
            self.model.generate(ask.prompt, ask.max_tokens, ask.temperature, ask.seed), ask
        ):
            if pace > 0:
                await self.sleep(pace)
            count += 1
            finish = finish_reason
            yield chunk({"content": text} if chat else text, None)
        yield chunk({} if chat else "", finish)
        if ask.include_usage:
            yield shapes.event(
                {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": self.name,
                    "choices": [],
                    "usage": _usage(ask.prompt, count),
                }
            )
        yield shapes.DONE


def _stopped(tokens: Iterator[str], ask: Generation) -> Iterator[tuple[str, str]]:
    """(token, finish reason if the answer ended now) until a stop string or the model's own end."""
    emitted = ""
    for count, token in enumerate(tokens, 1):
        if ask.stop:
            joined = emitted + token
            cut = min((i for s in ask.stop if (i := joined.find(s)) >= 0), default=-1)
            if cut >= 0:
                rest = joined[len(emitted) : cut]
                if rest:
                    yield rest, "stop"
                return
            emitted = joined
        yield token, "length" if count >= ask.max_tokens else "stop"


def _usage(prompt: str, completion: int) -> dict[str, int]:
    used = len(tokenize(prompt))
    return {"prompt_tokens": used, "completion_tokens": completion, "total_tokens": used + completion}


def create_llm_app(replica: LlmReplica) -> ASGIApp:
    """The ASGI application of a built-in LLM runtime replica."""
    routes = [
        *control_routes(replica),
        Route("/health", replica.health, methods=["GET"]),
        Route("/v1/models", replica.models, methods=["GET"]),
        Route("/v1/chat/completions", replica.chat, methods=["POST"]),
        Route("/v1/completions", replica.completions, methods=["POST"]),
        Route("/v1/embeddings", replica.embeddings, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return SimulatedNetwork(app, replica, prefix="/v1", inference=openai_inference)
