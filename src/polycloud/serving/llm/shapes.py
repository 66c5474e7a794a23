"""The OpenAI API's request and answer shapes, as polycloud's runtime and gateway read and write them.

Only what a server needs: checked fields of the three inference requests, the error body
(`{"error": {"message", "type", "param", "code"}}`, which the `openai` SDK turns into its exceptions),
and server-sent events. Shapes follow OpenAI's API reference (chat completions, completions,
embeddings, models; streaming chunks end with `data: [DONE]`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from polycloud.serving.protocol import InvalidRequest, decode_json

DONE = b"data: [DONE]\n\n"
MAX_TOKENS_LIMIT = 4096
DEFAULT_MAX_TOKENS = 64


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param

    def body(self) -> bytes:
        """The JSON body."""
        return error_json(self.message, self.kind, self.code, self.param)


def error_json(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    """`{"error": {...}}` as OpenAI answers errors."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def invalid(message: str, param: str | None = None) -> OpenAIError:
    """A 400 `invalid_request_error`."""
    return OpenAIError(400, message, "invalid_request_error", "invalid_request", param)


def unknown_model(name: object) -> OpenAIError:
    """A 404 for a model no one serves."""
    return OpenAIError(
        404, f"The model {name!r} does not exist", "invalid_request_error", "model_not_found", "model"
    )


def event(data: Any) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body.

    Raises:
        OpenAIError: 400 when it is not a JSON object (or too deeply nested, or has NaN).
    """
    try:
        data = decode_json(body)
    except InvalidRequest as e:
        raise invalid(str(e)) from e
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


def model_name(data: dict[str, Any]) -> str:
    """The request's `model`.

    Raises:
        OpenAIError: 400 when missing or not a non-empty string.
    """
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("'model' is required: the name of the model (the Service's name)", "model")
    return name


@dataclass(frozen=True)
class Generation:
    """What a completion request asks for."""

    prompt: str
    max_tokens: int
    temperature: float
    seed: int | None
    stream: bool
    include_usage: bool
    stop: tuple[str, ...]


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"'{key}' must be a number", key)
    if not low <= value <= high:
        raise invalid(f"'{key}' must be between {low:g} and {high:g}, not {value}", key)
    return float(value)


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return " ".join(p for p in parts if isinstance(p, str))
    raise invalid(f"'{where}' must be a string or a list of text parts", where)


def generation(data: dict[str, Any], chat: bool) -> Generation:
    """The generation a chat (`messages`) or text (`prompt`) completion request asks for.

    Raises:
        OpenAIError: 400 naming the field that is wrong.
    """
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise invalid("'messages' must be a non-empty list", "messages")
        texts = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise invalid(f"'messages[{i}]' must be an object with a role", "messages")
            if message["role"] == "user":
                texts.append(_text(message.get("content"), f"messages[{i}].content"))
        prompt = texts[-1] if texts else ""
    else:
        raw = data.get("prompt")
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            raise invalid("'prompt' must be a string", "prompt")
        prompt = raw
    limit = data.get("max_completion_tokens", data.get("max_tokens"))
    max_tokens = int(_number({"max_tokens": limit}, "max_tokens", DEFAULT_MAX_TOKENS, 1, MAX_TOKENS_LIMIT))
    if isinstance(limit, float) and not limit.is_integer():
        raise invalid("'max_tokens' must be an integer", "max_tokens")
    if data.get("n", 1) not in (1, None):
        raise invalid("only n=1 is supported", "n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool | None):
        raise invalid("'stream' must be true or false", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("'stream_options' must be an object", "stream_options")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise invalid("'seed' must be an integer", "seed")
    stop = data.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else ()
    if stop is not None and not all(isinstance(s, str) and s for s in stops):
        raise invalid("'stop' must be a string or a list of strings", "stop")
    return Generation(
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=_number(data, "temperature", 1.0, 0.0, 2.0),
        seed=seed,
        stream=bool(stream),
        include_usage=options.get("include_usage") is True,
        stop=stops,
    )


def embedding_inputs(data: dict[str, Any]) -> list[str]:
    """The texts an embeddings request names.

    Raises:
        OpenAIError: 400 when `input` is not a string or a non-empty list of strings.
    """
    raw = data.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("'input' must be a string or a non-empty list of strings", "input")
    if len(texts) > 2048:
        raise invalid("'input' may hold at most 2048 texts", "input")
    return texts
