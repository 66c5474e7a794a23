"""Feature flags at the gateway: the last route table's flags, evaluated in memory by flagd's evaluator.

The flags come with each route table (`RouteTable.flags`, read from the store's FeatureFlag documents),
so they are refreshed with the routes, saved with them, and answered while the store or the control
plane is down. `FlagBoard.apply` runs on the event loop when a table arrives and rebuilds the evaluator
only when the flags changed; `evaluate` does no I/O.

Evaluation is `openfeature-flagd-core`'s `FlagdCore` (JsonLogic with flagd's `fractional`,
`starts_with`, `ends_with` and `sem_ver`; `fractional` hashes the flag key and the `targetingKey`
with MurmurHash3 as flagd does), so a definition answers here as it would in flagd. Each flag is
resolved as its own type (the type of its variants): OFREP requests carry no type, and the caller's
provider checks the value's type itself. A flag the evaluator refuses (a definition stored by another
version) answers PARSE_ERROR alone; the others are served.

An answer follows OFREP (docs/flags.md): the value with its variant and reason; a disabled flag (the
kill switch) or one without a default variant that no rule matched answers without a value, so that
the caller uses its code default.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.contrib.tools.flagd.core.model.flag import Flag
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason

from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.routes import FlagRoute
from polycloud.spec.flagd import flag_type

log = logging.getLogger(__name__)
QUIET = "openfeature.contrib"
"""flagd-core's logger: it logs an error per evaluation whose context lacks what a rule needs (a
`fractional` without a targetingKey), which is the caller's business and answered as the default; on
a gateway that would grow the log with traffic, so only its critical messages are kept."""

Resolver = Callable[[FlagdCore, str, EvaluationContext], FlagResolutionDetails[Any]]
_RESOLVERS: dict[str, Resolver] = {
    "boolean": lambda core, key, ctx: core.resolve_boolean_value(key, False, ctx),
    "string": lambda core, key, ctx: core.resolve_string_value(key, "", ctx),
    "integer": lambda core, key, ctx: core.resolve_integer_value(key, 0, ctx),
    "float": lambda core, key, ctx: core.resolve_float_value(key, 0.0, ctx),
    "object": lambda core, key, ctx: core.resolve_object_value(key, {}, ctx),
}
NOT_FOUND = "FLAG_NOT_FOUND"
BULK_ANSWERS = 1024
"""Bulk answers kept per flag version, by context: a poll whose context and flags are unchanged is
answered (and its 304 decided) without evaluating again."""
EVALUATION_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, RecursionError)
"""What JsonLogic may raise on a context a rule did not expect (flagd-core lets them through)."""


@dataclass(frozen=True, slots=True)
class Bulk:
    """Every flag's answer for one context, encoded, with its ETag and what it counts in the metrics."""

    body: bytes
    etag: bytes
    counted: tuple[tuple[str, str, str], ...]
    """(flag, variant, reason or error code) of each answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One flag's evaluation as OFREP answers it."""

    status: int
    """200, 400 (an evaluation failure) or 404 (no such flag)."""
    body: dict[str, Any]
    """An `evaluationSuccess`, `evaluationFailure` or `flagNotFound` object."""


class FlagBoard:
    """The gateway's flags and their evaluator; lives on the event loop."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        """Start with no flags; `metrics` counts evaluations per flag, variant and reason."""
        logging.getLogger(QUIET).setLevel(logging.CRITICAL)
        self._metrics = metrics
        self._flags: Mapping[str, FlagRoute] = {}
        self._core = FlagdCore()
        self._types: dict[str, str] = {}
        self._broken: dict[str, str] = {}
        """Flags the evaluator refused, with why."""
        self._bulk: dict[str, Bulk] = {}
        """Bulk answers of the current flags by context (oldest first); empty when a rule reads the
        clock (`$flagd.timestamp`), whose answers may change without the flags changing."""
        self._clocked = False
        self.version = 0
        """Grows by one each time different flags are applied."""

    def apply(self, flags: Mapping[str, FlagRoute]) -> bool:
        """Follow the flags of a new route table; False when they are the ones held already."""
        if flags == self._flags:
            return False
        types: dict[str, str] = {}
        broken: dict[str, str] = {}
        good: dict[str, Any] = {}
        for key, route in flags.items():
            definition = copy.deepcopy(route.definition)  # the evaluator's parser edits what it reads
            try:
                types[key] = flag_type(dict(definition.get("variants") or {}))
                Flag.from_dict(key, copy.deepcopy(definition))
            except (ValueError, TypeError, OpenFeatureError) as e:
                broken[key] = str(e) or type(e).__name__
                log.warning("flag %s cannot be evaluated (answering PARSE_ERROR): %s", key, broken[key])
                continue
            good[key] = definition
        core = FlagdCore()
        core.set_flags({"flags": good})
        self._core, self._types, self._broken, self._flags = core, types, broken, flags
        self._clocked = "$flagd" in json.dumps([r.definition for r in flags.values()], default=str)
        self._bulk = {}
        self.version += 1
        return True

    def keys(self) -> list[str]:
        """Every flag's key, sorted."""
        return sorted(self._flags)

    def evaluate(self, key: str, context: EvaluationContext) -> Answer:
        """Resolve flag `key` for `context` (no I/O), counted in the metrics."""
        if key not in self._flags:
            self._metrics.flag_evaluated("", "", NOT_FOUND)
            return Answer(404, {"key": key, "errorCode": NOT_FOUND, "errorDetails": f"no flag {key!r}"})
        broken = self._broken.get(key)
        if broken is not None:
            return self._failed(key, "PARSE_ERROR", f"the flag's definition cannot be evaluated: {broken}")
        try:
            details = _RESOLVERS[self._types[key]](self._core, key, context)
        except OpenFeatureError as e:
            return self._failed(key, str(e.error_code), e.error_message or str(e))
        except EVALUATION_ERRORS as e:  # JsonLogic on this context: `{"/": [1, {"var": "n"}]}` with n = 0
            return self._failed(key, "GENERAL", f"the flag's targeting failed on this context: {_named(e)}")
        reason = str(details.reason or Reason.UNKNOWN)
        variant = details.variant or ""
        body: dict[str, Any] = {"key": key, "reason": reason, "variant": variant}
        if details.reason != Reason.DISABLED and details.variant is not None:
            body["value"] = details.value
        # else no value: OFREP's code default (and the Python provider needs "variant" present)
        if details.flag_metadata:
            body["metadata"] = dict(details.flag_metadata)
        self._metrics.flag_evaluated(key, variant, reason)
        return Answer(200, body)

    def evaluate_all(self, context: EvaluationContext) -> Bulk:
        """Every flag resolved for `context`, successes and failures alike (OFREP's bulk answer), from
        the answers kept when this context was answered with the current flags (counted again)."""
        seen = [context.targeting_key, context.attributes]
        key = None if self._clocked else json.dumps(seen, sort_keys=True, default=repr)
        kept = self._bulk.get(key) if key is not None else None
        if kept is not None:
            self._metrics.flags_evaluated(kept.counted)
            return kept
        bodies = [self.evaluate(flag, context).body for flag in self.keys()]
        body = json.dumps({"flags": bodies}, separators=(",", ":")).encode()
        counted = tuple((b["key"], b.get("variant", ""), b.get("reason") or b["errorCode"]) for b in bodies)
        bulk = Bulk(body, etag_of(body), counted)
        if key is not None:
            if len(self._bulk) >= BULK_ANSWERS:
                del self._bulk[next(iter(self._bulk))]
            self._bulk[key] = bulk
        return bulk

    def _failed(self, key: str, code: str, details: str) -> Answer:
        """An evaluation failure (400), counted under its error code."""
        self._metrics.flag_evaluated(key, "", code)
        return Answer(400, {"key": key, "errorCode": code, "errorDetails": details})


def _named(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def etag_of(body: bytes) -> bytes:
    """A strong ETag of `body`: its sha256 digest, quoted (128 bits are plenty to tell answers apart)."""
    return b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
