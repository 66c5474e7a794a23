"""Read spec files into a `Fleet`, turning every problem into `FILE:LINE:COL: path: message`.

Each file is parsed once by libyaml (`fastyaml`: PyYAML's C parser), which gives every document's
values together with the line and column of each key and value; pydantic then validates each document
and its error locations are mapped back onto those positions. A file the fast path declines (any YAML
error, tags, directives, merge keys, deep nesting, odd line breaks) is read by PyYAML's pure-Python
composer instead, the reference whose messages and positions the fast path reproduces exactly
(tests/spec/test_fastyaml.py compares the two).
"""

from __future__ import annotations

import gc
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from polycloud.errors import SpecError, SpecIssue
from polycloud.spec import fastyaml
from polycloud.spec.fleet import FieldPath, Fleet, Positions, dotted
from polycloud.spec.hints import did_you_mean
from polycloud.spec.models import KINDS

SPEC_SUFFIXES = (".yaml", ".yml")
MAX_NODES = 200_000
"""Largest document accepted, counted in values after alias expansion (spec files are small)."""
MAX_FILE_BYTES = 2**20
"""Largest spec file read: the biggest real fleets are tens of kB, and the API takes 8 MiB per apply, so
an oversized file is refused here, naming it, rather than at apply without a name."""


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their YAML files (recursively, sorted); keep files as given."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()))
        else:
            files.append(path)
    return files


def read_documents(
    paths: Iterable[str | Path], model_roots: tuple[Path, ...] = ()
) -> tuple[Fleet, list[SpecIssue]]:
    """Parse and validate every document; return the fleet of valid ones and the problems found.

    A Service's model file must lie under its spec file's folder or one of `model_roots`.
    """
    fleet = Fleet()
    issues: list[SpecIssue] = []
    files = spec_files(paths)
    if not files:
        issues.append(SpecIssue("<args>", 1, 1, "", "no spec files given"))
    collecting = gc.isenabled()
    gc.disable()  # a large fleet is ~10^5 new containers, none in a cycle: collections only cost (~15 %)
    try:
        for file in files:
            for data, positions in _documents_in(file, issues, model_roots):
                add_document(data, positions, fleet, issues)
    finally:
        if collecting:
            gc.enable()
    return fleet, issues


def _documents_in(
    file: Path, issues: list[SpecIssue], model_roots: tuple[Path, ...]
) -> Iterator[tuple[Any, Positions]]:
    name = str(file)
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never more, whatever the file's size (or a FIFO's)
        if len(raw) > MAX_FILE_BYTES:
            issues.append(SpecIssue(name, 1, 1, "", f"file too large: a spec file may hold at most {_mib()}"))
            return
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        issues.append(SpecIssue(name, 1, 1, "", f"cannot read file: {getattr(e, 'strerror', None) or e}"))
        return
    try:
        parsed = fastyaml.documents(text)
    except fastyaml.Unusual:
        yield from _reference_documents(file, text, issues, model_roots)
        return
    folder: Path | None = None
    for doc in parsed:
        if doc.size > MAX_NODES:
            issues.append(SpecIssue(name, *doc.start, "", _too_large(doc.size)))
            continue
        if doc.data is None:
            continue
        folder = folder or file.resolve().parent
        positions = Positions(name, folder, (folder, *model_roots), keys=doc.keys, values=doc.values)
        yield doc.data, positions


def _reference_documents(
    file: Path, text: str, issues: list[SpecIssue], model_roots: tuple[Path, ...]
) -> Iterator[tuple[Any, Positions]]:
    """The documents of `text` through PyYAML's pure-Python composer: what `fastyaml` must match, and
    the path of every file it declines (YAML errors among them, whose messages and places are these)."""
    name = str(file)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as e:  # characters YAML forbids are found when the reader starts
        issues.append(SpecIssue(name, *_yaml_position(e), "", f"invalid YAML: {_yaml_problem(e)}"))
        return
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            size = _expanded_size(node, {})
            if size > MAX_NODES:
                line, col = node.start_mark.line + 1, node.start_mark.column + 1
                issues.append(SpecIssue(name, line, col, "", _too_large(size)))
                continue
            folder = file.resolve().parent
            positions = Positions(file=name, base_dir=folder, model_roots=(folder, *model_roots))
            _record_positions(node, (), positions, set())
            try:
                data = loader.construct_document(node)
            except (ValueError, OverflowError) as e:  # a 13th month, an integer of 5,000 digits
                issues.append(_unconstructable(name, loader, node, e))
                return
            if data is None:
                continue
            yield data, positions
    except yaml.YAMLError as e:
        issues.append(SpecIssue(name, *_yaml_position(e), "", f"invalid YAML: {_yaml_problem(e)}"))
    except RecursionError:
        issues.append(SpecIssue(name, 1, 1, "", "invalid YAML: nested too deeply"))
    finally:
        loader.dispose()


def _unconstructable(name: str, loader: yaml.SafeLoader, root: yaml.Node, error: Exception) -> SpecIssue:
    """The issue for the first scalar under `root` that YAML's types refuse although its text matches
    one (`2024-13-01` looks like a date; `0x_` like an integer)."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(reversed([n for pair in node.value for n in pair]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.ScalarNode) and node.tag in loader.yaml_constructors:
            try:
                loader.yaml_constructors[node.tag](loader, node)
            except (ValueError, OverflowError) as e:
                error, root = e, node
                break
    shown = root.value if isinstance(root, yaml.ScalarNode) else ""
    shown = f"{shown[:40]}…" if len(shown) > 40 else shown
    what = f"cannot read {shown!r} as {root.tag.rsplit(':', 1)[-1]}: " if shown else ""
    line, col = root.start_mark.line + 1, root.start_mark.column + 1
    return SpecIssue(name, line, col, "", f"invalid YAML: {what}{error}")


def _too_large(size: int) -> str:
    return f"document too large: {size} values once aliases are expanded (at most {MAX_NODES})"


def _mib() -> str:
    return f"{MAX_FILE_BYTES / 2**20:g} MiB ({MAX_FILE_BYTES:,} bytes); split the fleet into several files"


def _yaml_position(e: yaml.YAMLError) -> tuple[int, int]:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _yaml_problem(e: yaml.YAMLError) -> str:
    return str(getattr(e, "problem", None) or e).replace("\n", " ")


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values `node` stands for once aliases are expanded (an alias bomb is small on disk)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, memo) for item in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def _record_positions(node: yaml.Node, path: FieldPath, positions: Positions, seen: set[int]) -> None:
    positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if id(node) in seen:
        return  # an alias of a node already walked: its fields point at the anchor's lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            positions.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _record_positions(value_node, child, positions, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*path, index), positions, seen)


def add_document(data: Any, positions: Positions, fleet: Fleet, issues: list[SpecIssue]) -> None:
    """Validate one document's data and add it to `fleet`, or append its problems to `issues`."""
    if not isinstance(data, dict):
        issues.append(
            positions.issue((), "a document must be a mapping with apiVersion, kind, metadata, spec")
        )
        return
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = did_you_mean(str(kind), KINDS)
        issues.append(positions.issue(("kind",), f"unknown kind {kind!r}{hint}; one of {', '.join(KINDS)}"))
        return
    _resolve_model_path(data, positions.base_dir)
    _resolve_output_paths(data, positions.base_dir)
    _resolve_command_paths(data, positions.base_dir)
    try:
        doc = model.model_validate(data)
    except ValidationError as e:
        issues.extend(_issue_for(err, model, positions) for err in e.errors(include_url=False))
        return
    name = doc.metadata.name
    if fleet.has(doc.kind, name) or (
        doc.kind in ("Service", "Job") and fleet.has("Job" if doc.kind == "Service" else "Service", name)
    ):
        first = next(p for (k, n), p in fleet.positions.items() if n == name and k in _clashing(doc.kind))
        line, _ = first.at(("metadata", "name"))
        issues.append(
            positions.issue(
                ("metadata", "name"), f"duplicate name {name!r} (first defined at {first.file}:{line})"
            )
        )
        return
    fleet.add(doc, positions)


def _clashing(kind: str) -> tuple[str, ...]:
    """Kinds that share a namespace: services and jobs are both workloads."""
    return ("Service", "Job") if kind in ("Service", "Job") else (kind,)


def _resolve_model_path(data: dict[str, Any], base_dir: Path) -> None:
    """Make a Service's relative model path absolute, relative to its spec file's folder."""
    spec = data.get("spec")
    model = spec.get("model") if isinstance(spec, dict) else None
    path = model.get("path") if isinstance(model, dict) else None
    if isinstance(model, dict) and isinstance(path, str) and path and not Path(path).is_absolute():
        model["path"] = str((base_dir / path).resolve())


def _resolve_output_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make a Job's relative output paths absolute, relative to its spec file's folder (as models)."""
    spec = data.get("spec")
    outputs = spec.get("outputs") if isinstance(spec, dict) and data.get("kind") == "Job" else None
    for output in outputs if isinstance(outputs, list) else []:
        path = output.get("path") if isinstance(output, dict) else None
        if isinstance(path, str) and path and not Path(path).is_absolute():
            output["path"] = str((base_dir / path).resolve())


def _resolve_command_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make a Job's (or a Service runtime's) argv entries that name files next to its spec file
    absolute (`train.py`).

    Only existing files are rewritten, so flags, numbers and names found on PATH (`python`) stay as
    written; the job runs elsewhere than the spec file, so a relative script would not be found.
    """
    spec = data.get("spec")
    command = spec.get("command") if isinstance(spec, dict) and data.get("kind") == "Job" else None
    runtime = spec.get("runtime") if isinstance(spec, dict) and data.get("kind") == "Service" else None
    if isinstance(runtime, dict):
        command = runtime.get("command")
    if not isinstance(command, list):
        return
    for i, arg in enumerate(command):
        if isinstance(arg, str) and arg and not arg.startswith("-") and not Path(arg).is_absolute():
            candidate = base_dir / arg
            if candidate.is_file():
                command[i] = str(candidate.resolve())


def _issue_for(err: ErrorDetails, model: type[BaseModel], positions: Positions) -> SpecIssue:
    loc: FieldPath = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        field = str(loc[-1])
        allowed = _fields_at(model, loc[:-1])
        return positions.issue(loc, f"unknown field {field!r}{did_you_mean(field, allowed)}", key=True)
    if kind == "missing":
        line, col = positions.at(loc[:-1])
        return SpecIssue(positions.file, line, col, dotted(loc), "required field is missing")
    message = err["msg"]
    if kind == "bool_type":  # pydantic's "a valid boolean" does not say what is valid
        message = f"must be true or false, not {err['input']!r}"
    elif kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    return positions.issue(loc, message)


def _fields_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """Field names of the model found at `path` inside `model` (for "did you mean" hints)."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    return next((list(c.model_fields) for c in _unwrap(current) if _is_model(c)), [])  # Optional too


def _step(annotation: Any, part: str | int) -> Any:
    for candidate in _unwrap(annotation):
        if _is_model(candidate) and isinstance(part, str) and part in candidate.model_fields:
            return candidate.model_fields[part].annotation
        origin = typing.get_origin(candidate)
        if origin is list and isinstance(part, int):
            return typing.get_args(candidate)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(candidate)[1]
    return None


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [u for arg in typing.get_args(annotation) for u in _unwrap(arg)]
    return [annotation]


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def raise_if(issues: list[SpecIssue]) -> None:
    """Raise a `SpecError` holding `issues`, if there are any."""
    if issues:
        raise SpecError(issues)
