"""The OpenFeature Remote Evaluation Protocol (OFREP) at the gateway's root.

    POST /ofrep/v1/evaluate/flags/{key}   one flag for the body's `context`
    POST /ofrep/v1/evaluate/flags         every flag; `ETag`, and 304 to a matching `If-None-Match`
    GET  /ofrep/v1/configuration          the provider configuration (polling interval, types)

Open while the fleet has no inference key; else any live inference key, as `Authorization: Bearer`
or `X-API-Key` (`KeyGuard.identify`; flag evaluations count against no rate or quota). The
evaluation context is the caller's plus what the gateway knows: where (`region`: the
`x-polycloud-client-region` header, else the gateway's region; `cluster`: the cluster in the
gateway's region) unless the caller says, since a caller may evaluate for a user elsewhere; and who,
with a key, over anything the caller says, so that no caller can claim another project's rollout:
`project` (the project label of the key's service) and `inferenceKey` (the key's id). Errors have
OFREP's shapes: `{"key", "errorCode", "errorDetails"}` (400 PARSE_ERROR for a body that is not JSON, 400
INVALID_CONTEXT for a context that is not an object or a `targetingKey` that is not a string, 404
FLAG_NOT_FOUND), `{"errorDetails"}` for 401, 405 and 503.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from openfeature.evaluation_context import EvaluationContext

from polycloud.exchange import KeyGrant
from polycloud.gateway.flagboard import FlagBoard, etag_of
from polycloud.gateway.keys import KeyGuard
from polycloud.gateway.proxy import BodyError, read_body
from polycloud.gateway.routes import ClusterRoute, ServiceRoutes
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.wire import Receive, Scope, Send, send_bytes, send_json

PREFIX = "/ofrep/v1/"
FLAGS = "/ofrep/v1/evaluate/flags"
CONFIGURATION = "/ofrep/v1/configuration"
MAX_BODY_BYTES = 2**20
"""An evaluation context is small; anything larger is refused (413)."""
TYPES = ["boolean", "string", "int", "float", "object"]


class BadRequest(Exception):
    """A request OFREP answers 400: its error code and details."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


@dataclass(frozen=True, slots=True)
class Facts:
    """What the gateway adds to every evaluation context, from the last route table."""

    region: str | None = None
    cluster: str | None = None
    projects: Mapping[str, str | None] | None = None
    """Each service's project, for the project of a key's service."""


def facts_of(
    region: str | None, services: Mapping[str, ServiceRoutes], clusters: Mapping[str, ClusterRoute]
) -> Facts:
    """The facts of a gateway standing in `region` ("provider/region") with this route table."""
    here = sorted(
        n for n, c in clusters.items() if region is not None and f"{c.provider}/{c.region}" == region
    )
    return Facts(region, here[0] if here else None, {name: s.project for name, s in services.items()})


class OfrepFront:
    """Answers the OFREP paths from a `FlagBoard`."""

    def __init__(self, board: FlagBoard, settings: GatewaySettings) -> None:
        """Serve `board`'s flags; `settings` gives the gateway's region and refresh period."""
        self.board = board
        self.facts = Facts(settings.region)
        self.keys: KeyGuard | None = None
        """Inference keys; None: OFREP is open."""
        self._limit = min(MAX_BODY_BYTES, settings.max_body_bytes)
        self._timeout = settings.default_timeout_s
        configuration = {
            "name": "polycloud",
            "capabilities": {
                "cacheInvalidation": {
                    "polling": {
                        "enabled": True,
                        "minPollingIntervalMs": int(settings.refresh_interval_s * 1000),
                    }
                },
                "flagEvaluation": {"supportedTypes": TYPES},
            },
        }
        self._configuration = json.dumps(configuration, separators=(",", ":")).encode()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request under /ofrep/."""
        path: str = scope["path"]
        allowed = _method_of(path)
        if allowed is None:
            await send_json(send, 404, {"errorDetails": f"no such path {path!r}"})
            return
        if scope["method"] != allowed:
            headers = [(b"allow", allowed.encode())]
            message = f"{path} takes {allowed}, not {scope['method']}"
            await send_json(send, 405, {"errorDetails": message}, headers)
            return
        denial, grant = self.keys.identify(scope["headers"]) if self.keys is not None else (None, None)
        if denial is not None:
            await send_json(send, denial.status, {"errorDetails": denial.message}, denial.headers)
        elif path == CONFIGURATION:
            await self._configure(scope, send)
        else:
            await self._evaluate(scope, receive, send, path[len(FLAGS) + 1 :] or None, grant)

    async def _evaluate(
        self, scope: Scope, receive: Receive, send: Send, key: str | None, grant: KeyGrant | None
    ) -> None:
        """One flag (`key`) or every flag (None) for the request's context."""
        project = None if grant is None else (self.facts.projects or {}).get(grant.service)
        try:
            context = await self._context(scope, receive, project, None if grant is None else grant.id)
        except BadRequest as e:
            failure = {"errorCode": e.code, "errorDetails": e.details}
            await send_json(send, 400, failure if key is None else {"key": key, **failure})
            return
        except _TooLarge as e:
            await send_json(send, e.error.status, {"errorDetails": e.error.message})
            return
        if key is None:
            await self._bulk(scope, send, context)
        else:
            answer = self.board.evaluate(key, context)
            await send_json(send, answer.status, answer.body)

    async def _configure(self, scope: Scope, send: Send) -> None:
        etag = etag_of(self._configuration)
        if _matches(scope["headers"], etag):
            await send_bytes(send, 304, b"", b"application/json", [(b"etag", etag)])
        else:
            await send_bytes(send, 200, self._configuration, b"application/json", [(b"etag", etag)])

    async def _bulk(self, scope: Scope, send: Send, context: EvaluationContext) -> None:
        """Every flag; the ETag is the answer's own digest, so a 304 means "same values for this
        context", whatever changed in between."""
        bulk = self.board.evaluate_all(context)
        if _matches(scope["headers"], bulk.etag):
            await send_bytes(send, 304, b"", b"application/json", [(b"etag", bulk.etag)])
        else:
            await send_bytes(send, 200, bulk.body, b"application/json", [(b"etag", bulk.etag)])

    async def _context(
        self, scope: Scope, receive: Receive, project: str | None, key_id: int | None
    ) -> EvaluationContext:
        """The request's evaluation context with the gateway's facts on top.

        Raises:
            BadRequest: The body is not JSON, or its context is not an object with a string targetingKey.
            _TooLarge: The body is too large or did not arrive.
        """
        raw = await read_body(receive, self._limit, self._timeout)
        if isinstance(raw, BodyError):
            raise _TooLarge(raw)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as e:
            raise BadRequest("PARSE_ERROR", f"the request body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise BadRequest("INVALID_CONTEXT", 'the request body must be an object: {"context": {...}}')
        given = body.get("context", {})
        if not isinstance(given, dict):
            raise BadRequest("INVALID_CONTEXT", f"context must be an object, not {type(given).__name__}")
        attributes = dict(given)
        targeting_key = attributes.pop("targetingKey", None)
        if targeting_key is not None and not isinstance(targeting_key, str):
            raise BadRequest("INVALID_CONTEXT", f"targetingKey must be a string, not {targeting_key!r}")
        region = header(scope["headers"], b"x-polycloud-client-region") or self.facts.region
        where = {"region": region, "cluster": self.facts.cluster}
        who = {"project": project, "inferenceKey": key_id}
        attributes = {**_known(where), **attributes, **_known(who)}
        return EvaluationContext(targeting_key, attributes)


class _TooLarge(Exception):
    def __init__(self, error: BodyError) -> None:
        super().__init__(error.message)
        self.error = error


def _method_of(path: str) -> str | None:
    """The method an OFREP path takes; None for a path OFREP does not have."""
    if path == CONFIGURATION:
        return "GET"
    if path == FLAGS or (path.startswith(FLAGS + "/") and len(path) > len(FLAGS) + 1):
        return "POST"
    return None


def _known(facts: Mapping[str, str | int | None]) -> dict[str, str | int]:
    return {name: value for name, value in facts.items() if value is not None}


def _matches(headers: Sequence[tuple[bytes, bytes]], etag: bytes) -> bool:
    """Whether `If-None-Match` names `etag` (weakly compared, as RFC 9110 asks of it) or is `*`."""
    value = header(headers, b"if-none-match")
    if value is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in value.split(",")]
    return "*" in tags or etag.decode() in tags


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header `name` (lower case), stripped; None when absent or empty."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1").strip() or None
    return None
