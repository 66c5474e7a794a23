"""The fast path (libyaml's events, `spec.fastyaml`) against the reference (PyYAML's pure-Python composer):
the same values, the same line and column for every key and value, the same expanded sizes, and the
same issues from `read_documents` — on the example fleet, a generated 100-workload fleet, a corpus of
odd and broken files, and the spec fuzzers' mutations (`POLYCLOUD_FUZZ_EXAMPLES` scales them).

Where the fast path declines a file (`Unusual`) the loader reads it the reference way, so a decline is
always safe; what must never happen is the fast path accepting a file and reading it differently.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st
from tests.spec import test_fuzz as fuzz

from polycloud.catalog import load_catalog
from polycloud.errors import SpecIssue
from polycloud.spec import fastyaml, loading
from polycloud.spec.fleet import Fleet, Positions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "fleet"

pytestmark = pytest.mark.skipif(not fastyaml.AVAILABLE, reason="PyYAML without libyaml: no fast path")


# -- the two readings -------------------------------------------------------------------------------------


def reference(text: str) -> list[fastyaml.Document]:
    """What the pure-Python composer and constructor make of `text` (raises as they do)."""
    loader = yaml.SafeLoader(text)
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None
            size = loading._expanded_size(node, {})
            positions = Positions(file="-", base_dir=Path("/"))
            loading._record_positions(node, (), positions, set())
            data = loader.construct_document(node)
            start = (node.start_mark.line + 1, node.start_mark.column + 1)
            found.append(fastyaml.Document(data, positions.keys, positions.values, size, start))
    finally:
        loader.dispose()
    return found


def same(a: Any, b: Any, seen: set[tuple[int, int]] | None = None) -> bool:
    """Equal values of equal types (1, 1.0 and True differ), dict order included; NaN equals NaN."""
    seen = set() if seen is None else seen
    if type(a) is not type(b):
        return False
    if isinstance(a, dict | list):
        if (id(a), id(b)) in seen:  # aliases share values: compare each pair once
            return True
        seen.add((id(a), id(b)))
        if isinstance(a, dict):
            return len(a) == len(b) and all(
                same(ka, kb, seen) and same(a[ka], b[kb], seen) for ka, kb in zip(a, b, strict=True)
            )
        return len(a) == len(b) and all(same(x, y, seen) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b)
    return bool(a == b)


def compare(text: str) -> str:
    """`fast` when the fast path reads `text` exactly as the reference does, `declined` when it leaves
    the file to the reference; fails when it reads it otherwise."""
    try:
        fast = fastyaml.documents(text)
    except fastyaml.Unusual:
        return "declined"
    try:
        ref = reference(text)
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        pytest.fail(f"the fast path accepted what the reference refuses ({e!r}):\n{text!r}")
    assert len(fast) == len(ref), text
    for f, r in zip(fast, ref, strict=True):
        assert same(f.data, r.data), (f.data, r.data)
        assert (f.keys, f.values, f.size, f.start) == (r.keys, r.values, r.size, r.start)
    return "fast"


def read(path: Path, *, fast: bool) -> tuple[Fleet, list[SpecIssue]]:
    """`read_documents` of one file, by the loader's own choice (fast) or the reference way."""
    fleet, issues = Fleet(), list[SpecIssue]()
    if fast:
        docs = loading._documents_in(path, issues, ())
    else:
        docs = loading._reference_documents(path, path.read_bytes().decode(), issues, ())
    for data, positions in docs:
        loading.add_document(data, positions, fleet, issues)
    return fleet, issues


def assert_same_issues(folder: Path, name: str, text: str | bytes) -> list[SpecIssue]:
    """Both ways give the same issues, fleet and positions; returns the issues."""
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogatepass"))
    try:
        path.read_bytes().decode()
    except UnicodeDecodeError:
        return []  # refused before either way runs
    ref_fleet, ref_issues = read(path, fast=False)
    fleet, issues = read(path, fast=True)
    assert issues == ref_issues
    assert fleet.documents() == ref_fleet.documents()
    assert {k: (p.keys, p.values) for k, p in fleet.positions.items()} == {
        k: (p.keys, p.values) for k, p in ref_fleet.positions.items()
    }
    return issues


# -- valid fleets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(fuzz.SOURCES))
def test_the_example_files_take_the_fast_path_and_read_alike(name: str, tmp_path: Path) -> None:
    text = fuzz.SOURCES[name]
    assert compare(text) == "fast"
    assert_same_issues(tmp_path, name, text)


def test_a_generated_fleet_takes_the_fast_path_and_reads_alike(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fleetgen", ROOT / "bench" / "fleetgen.py")
    assert spec is not None and spec.loader is not None
    fleetgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fleetgen)
    text = yaml.safe_dump_all(fleetgen.generate(100, 10, load_catalog()), sort_keys=False)
    assert compare(text) == "fast"
    assert compare(text.replace("\n", "\r\n")) == "fast"  # written on Windows
    assert assert_same_issues(tmp_path, "fleet.yaml", text) == []


# -- a corpus of odd and broken files ---------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)
)
"""An alias bomb: 10 values, each level ten aliases of the one before, 1,234,573 values in all."""
DATASET = "apiVersion: polycloud/v1\nkind: Dataset\nmetadata: {name: d}\nspec: {cluster: c, sizeGB: SIZE}\n"

ODD: dict[str, str] = {
    "empty": "",
    "comment only": "# nothing\n",
    "empty documents": "---\n---\n...\n",
    "null document": "~\n---\nnull\n",
    "scalar document": "just text\n",
    "list document": "- 1\n- 2\n",
    "duplicate keys": "a: 1\nb: {x: 1, y: 2}\na: 3\nb: {z: 3}\n",
    "keys of every type": "1: a\n1.5: b\ntrue: c\nnull: d\n2024-01-02: e\n~: f\n0x1F: g\nyes: h\n",
    "keys that collide": "1: a\ntrue: b\n1.0: c\n",
    "plain scalars of every type": (
        "a: [1, -2, +3, 0o17, 017, 0x1F, 0b101, 1_000, '1', 190:20:30, 1.5, -.5, 1e3, 1.0e+3, .inf, "
        "-.Inf, .nan, 1:30.5, yes, No, on, OFF, y, n, null, ~, Null, 2024-01-02, "
        "2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10, 2001-12-15T02:59:43.1Z, 0., ., -, +, '']\n"
    ),
    "quoted and block scalars": (
        "a: 'it''s'\nb: \"tab\\tnl\\n\\x41\\u00e9\\U0001F600\\/\\N\\_\"\nc: |\n  one\n   two\n\n"
        "d: >-\n  folded\n  text\n\n  para\ne: |+\n  keep\n\nf: plain\n  continued\n  again\n"
    ),
    "empty values": "a:\nb: \nc: []\nd: {}\ne: ''\nf:\n- \n-\n- x\n",
    "flow styles": "{a: 1, b: [x, {c: d}], 'e': \"f\"}\n",
    "anchors and aliases": "a: &x {k: 1, l: [2, 3]}\nb: *x\nc: &s text\nd: [*s, *x]\n*s : 5\n",
    "an anchored key": "&k key: 1\nother: *k\n",
    "an alias bomb": BOMB,
    "an undefined alias": "a: *nope\n",
    "a recursive alias": "a: &a [1, *a]\n",
    "a repeated anchor": "a: &a 1\nb: &a 2\n",
    "anchors across documents": "a: &a 1\n---\nb: *a\n",
    "a merge key": "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n",
    "an = value": "a: =\n",
    "an = key": "=: a\n",
    "explicit tags": "a: !!str 1\nb: !!int '2'\n",
    "a python tag": "a: !!python/object:os.system x\n",
    "a local tag": "a: !thing x\n",
    "a non-specific tag": "a: ! 12\n",
    "a set": "--- !!set\n? a\n? b\n",
    "a binary": "a: !!binary aGVsbG8=\n",
    "a yaml directive": "%YAML 1.1\n---\na: 1\n",
    "a 1.2 directive": "%YAML 1.2\n---\na: 1\n",
    "a tag directive": "%TAG !e! tag:example.com,2000:\n---\na: 1\n",
    "complex keys": "? [a, b]\n: c\n",
    "a mapping key": "? {a: 1}\n: c\n",
    "a complex scalar key": "? a\n: b\n",
    "a 13th month": "a: 2024-13-01\n",
    "an offset of a day": "a: 2001-12-14 21:59:43.10 +25:00\n",
    "a huge integer": "a: " + "9" * 5000 + "\n",
    "a long integer": "a: " + "9" * 4000 + "\n",
    "a byte-order mark": "\ufeffa: 1\n",
    "a byte-order mark inside": "a: 1\n\ufeffb: 2\n",
    "next-line breaks": "a: x\x85b: y\n",
    "line separators": "a: 'x\u2028y'\nb: 1\n",
    "paragraph separators": "a: x\u2029b: 2\n",
    "carriage returns": "a: 1\rb: 2\r",
    "CRLF": "a: 1\r\nb:\r\n  c: [1,\r\n    2]\r\n",
    "tabs": "a:\t1\nb: [1,\t2]\nc:\n\t- x\n",
    "non-ASCII columns": "é: ü\nbé: 😀 x\n  y\nc: {日本: 語, k: -1}\ne: {😀: 1, b: 2}\nd: [é, 😀, ü, x]\n",
    "document end markers": "a: 1\n...\n---\nb: 2\n...\n",
    "content after document end": "a: 1\n...\nb: 2\n",
    "a mapping value on one line": "a: b: c\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "unclosed flow": "kind: [unclosed\n",
    "unclosed quote": "a: 'open\n",
    "a long key": "k" * 1100 + ": 1\n",
    "control characters": "a: 1\nb: \x07\n",
    "a NUL": "a: \x00\n",
    "deep but fine": "a: " + "[" * 60 + "]" * 60 + "\n",
    "at the depth limit": "[" * fastyaml.MAX_DEPTH + "]" * fastyaml.MAX_DEPTH + "\n",
    "past the depth limit": "[" * (fastyaml.MAX_DEPTH + 1) + "]" * (fastyaml.MAX_DEPTH + 1) + "\n",
    "too deep for the fast path": "a: " + "[" * 200 + "]" * 200 + "\n",
    "block nesting": "".join("  " * i + f"k{i}:\n" for i in range(50)) + "  " * 50 + "v\n",
    "a dataset": DATASET.replace("SIZE", "1"),
    "a dataset with a bad size": DATASET.replace("SIZE", "-1"),
    "a dataset with a string size": DATASET.replace("SIZE", "'1'"),
    "a dataset with an aliased spec": DATASET.replace("SIZE", "1").replace("spec:", "x: &s 1\nspec:")
    + "---\n"
    + DATASET.replace("metadata: {name: d}", "metadata: &m {name: e, labels: {a: b}}").replace("SIZE", "2")
    + "extra: *m\n",
    "a dataset with duplicate fields": DATASET.replace("SIZE", "1").replace("kind:", "kind: X\nkind:"),
    "a dataset then a syntax error": DATASET.replace("SIZE", "-1") + "---\na: [\n",
    "a dataset with a typo and a tag": DATASET.replace("SIZE", "1").replace("cluster", "clustre")
    + "---\n"
    + DATASET.replace("SIZE", "!!float 1"),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_files_read_alike(name: str, tmp_path: Path) -> None:
    compare(ODD[name])
    assert_same_issues(tmp_path, "f.yaml", ODD[name])


@pytest.mark.parametrize(
    "name",
    [
        "duplicate keys",
        "keys of every type",
        "keys that collide",
        "plain scalars of every type",
        "quoted and block scalars",
        "anchors and aliases",
        "an anchored key",
        "an alias bomb",
        "CRLF",
        "non-ASCII columns",
        "at the depth limit",
        "block nesting",
        "a dataset with an aliased spec",
        "a dataset with duplicate fields",
    ],
)
def test_the_fast_path_takes_the_common_road(name: str) -> None:
    assert compare(ODD[name]) == "fast"


def test_what_the_fast_path_declines_is_read_the_reference_way(tmp_path: Path) -> None:
    for name in ("a merge key", "explicit tags", "past the depth limit", "unclosed flow", "a 13th month"):
        with pytest.raises(fastyaml.Unusual):
            fastyaml.documents(ODD[name])
    (issue,) = assert_same_issues(tmp_path, "f.yaml", ODD["unclosed flow"])
    assert (issue.line, issue.col) == (2, 1)
    assert "expected ',' or ']', but got '<stream end>'" in issue.message


def test_a_document_too_large_is_refused_where_it_starts(tmp_path: Path) -> None:
    second = DATASET.replace("name: d", "name: e").replace("SIZE", "-2")
    text = DATASET.replace("SIZE", "-1") + "---\n" + BOMB + "---\n" + second
    assert compare(text) == "fast"
    issues = [str(i) for i in assert_same_issues(tmp_path, "f.yaml", text)]
    assert len(issues) == 3
    assert ":4:" in issues[0] and "spec.sizeGB" in issues[0]
    assert issues[1].endswith(
        "f.yaml:6:1: document too large: 1234573 values once aliases are expanded (at most 200000)"
    )
    assert ":16:" in issues[2] and "spec.sizeGB" in issues[2]


# -- fuzzed files -------------------------------------------------------------------------------------------


@fuzz.fuzz_settings(150)
@given(st.one_of(fuzz.structural(), fuzz.textual()))
def test_fuzzed_files_read_alike(case: tuple[str, str]) -> None:
    name, text = case
    note(f"{name}:\n{text!r}")
    compare(text)
    with tempfile.TemporaryDirectory() as tmp:
        assert_same_issues(Path(tmp), name, text)
