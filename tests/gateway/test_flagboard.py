"""The gateway's flag evaluation: flagd's evaluator over the route table's flags, answers in OFREP's
shapes, counted per flag, variant and reason."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature.evaluation_context import EvaluationContext

from polycloud.gateway.flagboard import FlagBoard
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.routes import FlagRoute, FlagSplit, RouteTable, ServiceRoutes
from polycloud.gateway.snapshot import SavedRoutes, saved_routes

RANKER: dict[str, Any] = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"if": [{"==": [{"var": "region"}, "eu"]}, "on", {"fractional": [["on", 30], ["off", 70]]}]},
}


def flags(**definitions: dict[str, Any]) -> dict[str, FlagRoute]:
    return {key: FlagRoute(key, definition) for key, definition in definitions.items()}


def board(**definitions: dict[str, Any]) -> tuple[FlagBoard, GatewayMetrics]:
    metrics = GatewayMetrics()
    b = FlagBoard(metrics)
    b.apply(flags(**definitions))
    return b, metrics


def simple(variants: dict[str, Any], default: str | None, **more: Any) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": variants, "defaultVariant": default, **more}


def test_each_type_answers_its_value_variant_and_reason() -> None:
    b, _ = board(
        s=simple({"a": "x"}, "a"),
        i=simple({"a": 7}, "a"),
        f=simple({"a": 1, "b": 2.5}, "a"),
        o=simple({"a": {"k": [1]}}, "a"),
        r=RANKER,
    )
    ctx = EvaluationContext("user-1", {"region": "eu"})
    bodies = {key: b.evaluate(key, ctx).body for key in ("s", "i", "f", "o", "r")}
    assert bodies["s"] == {"key": "s", "reason": "STATIC", "variant": "a", "value": "x"}
    assert bodies["i"]["value"] == 7 and type(bodies["i"]["value"]) is int
    assert bodies["f"]["value"] == 1.0 and type(bodies["f"]["value"]) is float  # a float flag answers floats
    assert bodies["o"]["value"] == {"k": [1]}
    assert bodies["r"] == {"key": "r", "reason": "TARGETING_MATCH", "variant": "on", "value": True}


def test_a_disabled_flag_and_a_null_default_defer_to_the_code_default() -> None:
    b, _ = board(k={**RANKER, "state": "DISABLED"}, n=simple({"a": 1}, None))
    disabled = b.evaluate("k", EvaluationContext("u", {"region": "eu"}))
    assert disabled.status == 200 and disabled.body == {"key": "k", "reason": "DISABLED", "variant": ""}
    assert b.evaluate("n", EvaluationContext()).body == {"key": "n", "reason": "DEFAULT", "variant": ""}


def test_fractional_splits_by_targeting_key_stably_and_within_binomial_bounds() -> None:
    b, _ = board(r=RANKER)
    n = 2000
    variants = [b.evaluate("r", EvaluationContext(f"user-{i}")).body["variant"] for i in range(n)]
    on = Counter(variants)["on"]
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(on - 0.3 * n) <= 3 * sigma, on
    again, _ = board(r=RANKER)  # another gateway (or a restart) buckets every key the same way
    assert [again.evaluate("r", EvaluationContext(f"user-{i}")).body["variant"] for i in range(n)] == variants


def test_without_a_targeting_key_a_split_answers_the_default_variant() -> None:
    b, _ = board(r=RANKER)
    assert b.evaluate("r", EvaluationContext()).body == {
        "key": "r",
        "reason": "DEFAULT",
        "variant": "off",
        "value": False,
    }


def test_flagd_s_string_and_semver_operations() -> None:
    rule = {
        "if": [
            {
                "and": [
                    {"ends_with": [{"var": "email"}, "@acme.eu"]},
                    {"sem_ver": [{"var": "v"}, ">=", "2.1"]},
                ]
            },
            "new",
            {"starts_with": [{"var": "email"}, "beta-"]},
            "new",
            "old",
        ]
    }
    b, _ = board(ui=simple({"new": "v2", "old": "v1"}, "old", targeting=rule))

    def variant(**attributes: Any) -> str:
        return str(b.evaluate("ui", EvaluationContext("u", attributes)).body["variant"])

    assert variant(email="ana@acme.eu", v="2.3.0") == "new"
    assert variant(email="ana@acme.eu", v="v1.9") == "old"
    assert variant(email="beta-bob@x.org", v="1.0") == "new"


def test_unknown_and_broken_flags_fail_alone() -> None:
    b, _ = board(good=simple({"a": 1}, "a"), bad={"state": "SOMETIMES", "variants": {"a": 1}})
    missing = b.evaluate("nope", EvaluationContext())
    assert missing.status == 404
    assert missing.body == {"key": "nope", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "no flag 'nope'"}
    broken = b.evaluate("bad", EvaluationContext())
    assert broken.status == 400 and broken.body["errorCode"] == "PARSE_ERROR"
    assert b.evaluate("good", EvaluationContext()).status == 200
    bulk = json.loads(b.evaluate_all(EvaluationContext()).body)["flags"]
    assert [body["key"] for body in bulk] == ["bad", "good"]


def test_apply_rebuilds_only_on_change_and_evaluations_are_counted() -> None:
    b, metrics = board(r=RANKER)
    assert not b.apply(flags(r=RANKER)) and b.version == 1
    assert b.apply(flags(r={**RANKER, "state": "DISABLED"})) and b.version == 2
    for _ in range(3):
        b.evaluate("r", EvaluationContext("u"))
    b.evaluate("missing", EvaluationContext())
    text = metrics.render().decode()
    assert 'polycloud_gateway_flag_evaluations_total{flag="r",reason="DISABLED",variant=""} 3.0' in text
    assert 'polycloud_gateway_flag_evaluations_total{flag="",reason="FLAG_NOT_FOUND",variant=""} 1.0' in text


def test_flags_are_saved_with_the_routes_and_older_copies_still_load(tmp_path: Path) -> None:
    routed = ServiceRoutes("ranker", project="ranking", routing=FlagSplit("r", (("on", "ranker-v2"),)))
    table = RouteTable.of([routed], [], [FlagRoute("r", RANKER)])
    assert saved_routes(tmp_path).save(SavedRoutes.of(table))
    loaded = saved_routes(tmp_path).load()
    assert loaded is not None and loaded[0].table() == table
    path = tmp_path / "gateway" / "routes.json"
    document = json.loads(path.read_text())
    del document["flags"]  # as a gateway saved it before flags existed
    path.write_text(json.dumps(document))
    older = saved_routes(tmp_path).load()
    assert older is not None and older[0].table().flags == {}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
RULES = {
    "ratio": {"if": [{">": [{"/": [10, {"var": "n"}]}, 3]}, "a", "b"]},
    "rest": {"if": [{"==": [{"%": [10, {"var": "n"}]}, 0]}, "a", "b"]},
    "words": {"if": [{"in": [{"var": "n"}, {"merge": [{"var": "n"}, "x"]}]}, "a", "b"]},
    "text": {"if": [{"starts_with": [{"cat": [{"var": "n"}]}, "a"]}, "a", "b"]},
    "version": {"if": [{"sem_ver": [{"var": "n"}, "^", "1.0"]}, "a", "b"]},
    "split": {"fractional": [{"var": "n"}, ["a", 50], ["b", 50]]},
    "order": {"if": [{"<": [{"var": "n"}, 18, {"var": "n"}]}, "a", "b"]},
}
FUZZED, _ = board(**{k: simple({"a": 1, "b": 2}, "a", targeting=r) for k, r in RULES.items()})


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(RULES)), JSON, st.one_of(st.none(), st.text(max_size=6)))
def test_any_context_gets_an_answer_or_a_reason_never_an_exception(
    key: str, value: Any, targeting: str | None
) -> None:
    answer = FUZZED.evaluate(key, EvaluationContext(targeting, {"n": value}))
    assert answer.status in (200, 400), answer
    if answer.status == 400:
        assert answer.body["errorCode"] == "GENERAL" and answer.body["errorDetails"]  # the reason, said


def test_a_rule_dividing_by_the_context_s_zero_is_a_general_error() -> None:
    answer = FUZZED.evaluate("ratio", EvaluationContext("u", {"n": 0}))
    assert answer.status == 400 and answer.body["errorDetails"].endswith(
        "ZeroDivisionError: division by zero"
    )


def test_a_bulk_answer_is_kept_for_its_context_until_the_flags_change() -> None:
    b, metrics = board(r=RANKER, s=simple({"a": "x"}, "a"))
    first = b.evaluate_all(EvaluationContext("u", {"region": "eu"}))
    again = b.evaluate_all(EvaluationContext("u", {"region": "eu"}))
    assert again is first  # not evaluated again
    text = metrics.render().decode()
    assert '_flag_evaluations_total{flag="r",reason="TARGETING_MATCH",variant="on"} 2.0' in text  # counted
    assert b.evaluate_all(EvaluationContext("u", {"region": "us"})) is not first
    b.apply(flags(r={**RANKER, "defaultVariant": "on"}, s=simple({"a": "x"}, "a")))
    assert b.evaluate_all(EvaluationContext("u", {"region": "eu"})) is not first


def test_answers_of_rules_that_read_the_clock_are_never_kept() -> None:
    late = {"if": [{">": [{"var": "$flagd.timestamp"}, 0]}, "a", "b"]}
    b, _ = board(t=simple({"a": 1, "b": 2}, "a", targeting=late))
    context = EvaluationContext("u")
    assert b.evaluate_all(context) is not b.evaluate_all(context)
    assert json.loads(b.evaluate_all(context).body)["flags"][0]["variant"] == "a"
