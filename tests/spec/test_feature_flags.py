"""FeatureFlag documents: flagd's flag format, checked at validate time with FILE:LINE:COL errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from polycloud.catalog import load_catalog
from polycloud.cli.main import app
from polycloud.errors import SpecError
from polycloud.spec import load_fleet
from polycloud.spec.flagd import flag_type, targeting_problems
from polycloud.spec.schema import fleet_json_schema

FLAG = """\
apiVersion: polycloud/v1
kind: FeatureFlag
metadata: {name: new-ranker}
spec:
  state: ENABLED
  variants: {"on": true, "off": false}
  defaultVariant: "off"
  targeting: {"if": [{"==": [{"var": "region"}, "eu"]}, "on", {"fractional": [["on", 30], ["off", 70]]}]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text(text)
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_fleet([path], load_catalog())
    return [str(i).removeprefix(f"{path}:") for i in caught.value.issues]


def test_the_issue_s_example_flag_loads_unchanged(tmp_path: Path) -> None:
    fleet = load_fleet([write(tmp_path, FLAG)], load_catalog())
    flag = fleet.flags["new-ranker"]
    assert flag.spec.flag_type == "boolean" and flag.spec.defaultVariant == "off"
    dumped = flag.model_dump(mode="json")["spec"]
    assert dumped["variants"] == {"on": True, "off": False}  # what the gateway hands flagd, as written
    assert dumped["targeting"]["if"][2] == {"fractional": [["on", 30], ["off", 70]]}


def test_every_variant_type_and_a_null_default_are_accepted(tmp_path: Path) -> None:
    docs = [
        ("s", '{"a": "x", "b": "y"}', '"a"'),
        ("i", '{"a": 1, "b": 2}', '"b"'),
        ("f", '{"a": 1, "b": 2.5}', '"a"'),
        ("o", '{"a": {"k": [1, 2]}, "b": [3]}', "null"),
    ]
    text = "---\n".join(
        FLAG.replace("new-ranker", name)
        .replace('{"on": true, "off": false}', variants)
        .replace('"off"\n', f"{default}\n")
        .split("  targeting")[0]
        for name, variants, default in docs
    )
    fleet = load_fleet([write(tmp_path, text)], load_catalog())
    types = {name: fleet.flags[name].spec.flag_type for name, _, _ in docs}
    assert types == {"s": "string", "i": "integer", "f": "float", "o": "object"}


def test_a_default_variant_that_is_not_a_variant_names_its_line(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, FLAG.replace('defaultVariant: "off"', 'defaultVariant: "of"'))
    assert msg == "7:19: spec.defaultVariant: defaultVariant 'of' is not one of the variants: on, off"


def test_an_unknown_state_is_refused(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, FLAG.replace("state: ENABLED", "state: enabled"))
    assert msg.startswith("5:10: spec.state: ") and "'ENABLED' or 'DISABLED'" in msg


def test_variants_of_mixed_types_are_refused(tmp_path: Path) -> None:
    text = FLAG.replace('"off": false', '"off": "no"').split("  targeting")[0]
    (msg,) = errors(tmp_path, text)
    assert msg.startswith("6:13: spec.variants: variants mix types: boolean ('on'), string ('off')")


def test_unquoted_on_and_off_are_explained(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, FLAG.replace('{"on": true, "off": false}', "{on: true, off: false}"))
    assert msg.startswith("6:13: spec.variants: variant name True is not a string")
    assert 'quote the name (e.g. "on")' in msg


def test_targeting_mistakes_are_found_before_any_request(tmp_path: Path) -> None:
    text = FLAG.replace('{"==":', '{"equals":').replace('["off", 70]', '["of", 70.5]')
    (msg,) = errors(tmp_path, text)
    assert msg.startswith("8:14: spec.targeting: ")
    assert "targeting.if[0]: unknown JsonLogic operation 'equals'" in msg
    assert "targeting.if[2].fractional[1]: unknown variant 'of' (did you mean 'off'?)" in msg
    assert "weight 70.5 must be a whole number" in msg


def test_a_rule_answering_an_unknown_variant_is_refused(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, FLAG.replace('"eu"]}, "on",', '"eu"]}, "onn",'))
    assert "targeting.if[1]: unknown variant 'onn' (did you mean 'on'?)" in msg


def test_non_json_values_are_refused(tmp_path: Path) -> None:
    text = FLAG.replace('{"on": true, "off": false}', '{"a": 2024-01-01}').replace('"off"\n', '"a"\n')
    (msg,) = errors(tmp_path, text.split("  targeting")[0])
    assert "variant 'a': datetime.date(2024, 1, 1) is a date, not a JSON value (quote it)" in msg


def test_flagd_s_operations_and_helpers() -> None:
    variants = {"a": 1, "b": 2}
    rule = {
        "if": [
            {"and": [{"starts_with": [{"var": "email"}, "x"]}, {"sem_ver": [{"var": "v"}, ">=", "1.2"]}]},
            {"fractional": [{"var": "email"}, ["a", 50], ["b", 50]]},
            {"ends_with": [{"var": "email"}, ".eu"]},
            "b",
            None,
        ]
    }
    assert targeting_problems(rule, variants) == []
    assert targeting_problems({"fractional": []}, variants) == [
        "targeting.fractional: fractional needs at least one [variant, weight] bucket"
    ]
    assert "sum to 0" in targeting_problems({"fractional": [["a", 0]]}, variants)[0]
    with pytest.raises(ValueError, match="at least one variant"):
        flag_type({})


def test_validate_counts_flags_and_the_schema_knows_the_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(write(tmp_path, FLAG))])
    assert result.exit_code == 0, result.output
    assert "1 flags" in result.output
    schema = fleet_json_schema()
    assert "FeatureFlag" in str(schema)


ROUTED = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: ranker}
spec:
  model: {path: m.onnx}
  routing: {flag: new-ranker, variants: {"on": ranker-v2}}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: ranker-v2}
spec:
  model: {path: m.onnx}
---
"""


def test_a_service_routed_by_a_flag_names_what_exists(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    fleet = load_fleet([write(tmp_path, ROUTED + FLAG)], load_catalog())
    routing = fleet.services["ranker"].spec.routing
    assert routing is not None and routing.variants == {"on": "ranker-v2"}
    wrong = ROUTED.replace("flag: new-ranker", "flag: new-rankr").replace("ranker-v2}", "ranker-v3}")
    (msg,) = errors(tmp_path, wrong + FLAG)
    assert msg == "15:19: spec.routing.flag: unknown FeatureFlag 'new-rankr' (did you mean 'new-ranker'?)"
    bad = ROUTED.replace('{"on": ranker-v2}', '{"onn": ranker-v3, "off": ranker}')
    assert errors(tmp_path, bad + FLAG) == [
        "15:42: spec.routing.variants.onn: flag 'new-ranker' has no variant 'onn'",
        "15:67: spec.routing.variants.off: 'ranker' must be another oip-v2 service that routes by no flag",
    ]
    openai = ROUTED.replace("  routing:", "  protocol: openai\n  routing:")
    (msg,) = errors(tmp_path, openai + FLAG)
    assert "routing by a flag rewrites OIP model paths: it needs protocol: oip-v2" in msg
