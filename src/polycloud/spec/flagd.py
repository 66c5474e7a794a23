"""Checks of a FeatureFlag's definition in flagd's flag format, made when it is validated.

A flag is evaluated at the gateways by `openfeature-flagd-core` (JsonLogic with flagd's `fractional`,
`starts_with`, `ends_with` and `sem_ver`). What that evaluator would only find on a request, when it
answers with an error or the code default, is found here instead, at `validate` and `apply`: variants
of mixed or non-JSON types, an operator JsonLogic does not know, a `fractional` bucket naming no
variant, a weight that is not a whole number.
"""

from __future__ import annotations

import math
from typing import Any

from polycloud.spec.hints import did_you_mean

CONTROL_OPERATORS = frozenset({"if", "?:", "and", "or", "filter", "reduce", "map", "all", "some", "none"})
"""JsonLogic's operators that the evaluator handles itself (they decide which arguments to evaluate)."""
DATA_OPERATORS = frozenset(
    {
        "!", "!!", "!=", "!==", "%", "*", "+", "-", "/", "<", "<=", "==", "===", ">", ">=",
        "cat", "in", "log", "max", "merge", "min", "missing", "missing_some", "substr", "var",
    }
)  # fmt: skip
"""JsonLogic's other operators, as `panzi-json-logic` (flagd-core's JsonLogic) implements them."""
FLAGD_OPERATORS = frozenset({"fractional", "starts_with", "ends_with", "sem_ver"})
OPERATORS = CONTROL_OPERATORS | DATA_OPERATORS | FLAGD_OPERATORS
MAX_WEIGHT_SUM = 2**31 - 1
"""flagd's bound on the sum of a `fractional`'s weights."""


def json_type(value: Any) -> str:
    """The OpenFeature type of one variant's value: boolean, string, integer, float or object.

    Raises:
        ValueError: The value is not JSON (a date, null, NaN, a mapping with non-string keys).
    """
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return "float"
    if isinstance(value, dict | list):
        _check_json(value)
        return "object"
    if value is None:
        raise ValueError("null is not a flag value (a variant is a boolean, string, number or object)")
    raise ValueError(f"{value!r} is a {type(value).__name__}, not a JSON value (quote it)")


def _check_json(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} is not a string (quote it)")
            _check_json(item)
    elif isinstance(value, list):
        for item in value:
            _check_json(item)
    elif value is not None:
        json_type(value)


def flag_type(variants: dict[str, Any]) -> str:
    """The one type of every variant (integers among floats make a float flag).

    Raises:
        ValueError: Variants of different types, naming one of each.
    """
    types: dict[str, str] = {}
    for name, value in variants.items():
        try:
            types.setdefault(json_type(value), name)
        except ValueError as e:
            raise ValueError(f"variant {name!r}: {e}") from e
    if not types:
        raise ValueError("a flag needs at least one variant")
    if set(types) == {"integer", "float"}:
        return "float"
    if len(types) > 1:
        shown = ", ".join(f"{kind} ({name!r})" for kind, name in sorted(types.items()))
        raise ValueError(f"variants mix types: {shown}; every variant of a flag has one type")
    return next(iter(types))


def targeting_problems(logic: Any, variants: dict[str, Any]) -> list[str]:
    """What is wrong with a flag's targeting rule, each as `path: message` (empty when nothing is):
    unknown operations, `fractional` buckets, and variant names it would answer that do not exist."""
    return _rule_problems(logic, variants, "targeting") + _answer_problems(logic, variants, "targeting")


def _answer_problems(logic: Any, variants: dict[str, Any], path: str) -> list[str]:
    """Names of variants the rule answers with (literal strings in the results of `if`) that are unknown."""
    if isinstance(logic, str):
        return (
            [] if logic in variants else [f"{path}: unknown variant {logic!r}{did_you_mean(logic, variants)}"]
        )
    if not isinstance(logic, dict) or len(logic) != 1:
        return []
    op, args = next(iter(logic.items()))
    if op not in ("if", "?:") or not isinstance(args, list):
        return []
    results = [i for i in range(1, len(args), 2)] + ([len(args) - 1] if len(args) % 2 else [])
    return [p for i in results for p in _answer_problems(args[i], variants, f"{path}.{op}[{i}]")]


def _rule_problems(logic: Any, variants: dict[str, Any], path: str) -> list[str]:
    if isinstance(logic, list):
        return [p for i, item in enumerate(logic) for p in _rule_problems(item, variants, f"{path}[{i}]")]
    if not isinstance(logic, dict) or len(logic) != 1:
        return []  # a literal: JsonLogic returns it as it is
    op, args = next(iter(logic.items()))
    where = f"{path}.{op}"
    if op not in OPERATORS:
        hint = did_you_mean(op, OPERATORS)
        return [f"{path}: unknown JsonLogic operation {op!r}{hint}"]
    problems = _fractional_problems(args, variants, where) if op == "fractional" else []
    return problems + _rule_problems(args, variants, where)


def _fractional_problems(args: Any, variants: dict[str, Any], path: str) -> list[str]:
    """A `fractional`'s buckets: [variant, weight] pairs, after an optional expression to hash."""
    buckets = args if isinstance(args, list) else [args]
    if buckets and not isinstance(buckets[0], list):
        buckets = buckets[1:]  # the first argument is what to hash (default: flag key and targetingKey)
    if not buckets:
        return [f"{path}: fractional needs at least one [variant, weight] bucket"]
    problems: list[str] = []
    total = 0
    for i, bucket in enumerate(buckets):
        where = f"{path}[{i}]"
        if not isinstance(bucket, list) or not 1 <= len(bucket) <= 2:
            problems.append(f"{where}: a bucket is [variant] or [variant, weight]")
            continue
        name = bucket[0]
        if isinstance(name, str) and name not in variants:
            problems.append(f"{where}: unknown variant {name!r}{did_you_mean(name, variants)}")
        weight = bucket[1] if len(bucket) == 2 else 1
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            problems.append(f"{where}: weight {weight!r} must be a whole number >= 0")
        else:
            total += weight
    if not problems and not 0 < total <= MAX_WEIGHT_SUM:
        problems.append(f"{path}: the weights sum to {total}, not within 1..{MAX_WEIGHT_SUM}")
    return problems
