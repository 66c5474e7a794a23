"""A spec file's documents in one pass over libyaml's events: Python values, the line and column of every
key and value, and each document's size once aliases are expanded.

This is what `loading` would otherwise get from PyYAML's pure-Python composer, constructor and two
walks of its node tree, at the speed of the C parser (PyYAML's `CSafeLoader`, whose events carry their
marks): about ten times faster. It must give the same values and positions, so it takes only the
common road — plain scalars resolved by YAML 1.1's implicit rules (null, booleans, integers, floats,
timestamps, strings) and constructed by PyYAML's own `SafeLoader`, quoted and block scalars, mappings
with scalar keys (repeated keys: the last wins, as in PyYAML), sequences, anchors and aliases, nesting
up to `MAX_DEPTH` — and raises `Unusual` for anything else, so that the caller reads the file with the
pure-Python composer, whose messages and positions are the reference:

- every YAML error (libyaml words and places some of them differently);
- an explicit tag or a directive; a merge key (`<<`) or `=`; a key that is a mapping or a sequence;
  an undefined, repeated or recursive anchor; a plain scalar the constructor refuses (`2024-13-01`);
- where the two parsers read the same text differently: a tab anywhere (libyaml takes `a\tb` for one
  plain scalar, PyYAML refuses it), `?` inside a plain scalar in flow style (PyYAML ends the scalar
  there), a block scalar's header followed by `#` (`|#`), an empty value in flow style (`{a: }`:
  PyYAML places it after the colon, libyaml at the next indicator), a byte-order mark, and a line
  break other than CR and LF (`\x85`, `\u2028`, `\u2029`, which they count differently).

libyaml places the end of a text that lacks a final line break on one more line; an empty value there
(`a:` at the very end) is moved to where PyYAML puts it. tests/spec/test_fastyaml.py compares the two
readings on the example fleet, a generated fleet, a corpus of odd files and the spec fuzzers' mutations.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from polycloud.spec.fleet import FieldPath

MAX_DEPTH = 64
"""Deepest nesting taken here; deeper documents go the reference way, which decides when a document is
"nested too deeply" (spec documents are about six levels deep)."""
AVAILABLE: bool = getattr(yaml, "__with_libyaml__", False)
"""Whether PyYAML was built with libyaml; without it every file takes the reference path."""

Where = tuple[int, int]
"""1-based line and column."""
Table = dict[FieldPath, Where]

_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp", "str")
)
_STR = "tag:yaml.org,2002:str"
_RISKY = ("\t", "\ufeff", "\x85", "\u2028", "\u2029")
_COMMENTED_HEADER = re.compile(r"[|>][-+0-9]*#")
"""`|#`: libyaml takes the `#` for a comment, PyYAML refuses it (it wants a space first)."""
_NO_KEY: Any = object()


class Unusual(Exception):
    """The file needs the reference (pure-Python) path: the reason is the message."""


class Document:
    """One document: its value, where each key and each value was written, its expanded size."""

    __slots__ = ("data", "keys", "size", "start", "values")

    def __init__(self, data: Any, keys: Table, values: Table, size: int, start: Where) -> None:
        self.data = data
        self.keys = keys
        self.values = values
        self.size = size
        """How many values the document stands for once aliases are expanded."""
        self.start = start


class _Node:
    """A finished node: its value, expanded size, start and, for a scalar, the text written."""

    __slots__ = ("raw", "size", "value", "where")

    def __init__(self, value: Any, size: int, where: Where, raw: str | None) -> None:
        self.value = value
        self.size = size
        self.where = where
        self.raw = raw


class _Open:
    """A mapping or sequence being filled (plain classes, not dataclasses: they import faster)."""

    __slots__ = ("anchor", "flow", "key", "key_raw", "mapping", "path", "size", "value", "where")

    def __init__(
        self, value: Any, path: FieldPath, where: Where, anchor: str | None, mapping: bool, flow: bool
    ) -> None:
        self.value = value
        self.path = path
        self.where = where
        self.anchor = anchor
        self.mapping = mapping
        self.flow = flow
        self.size = 1
        self.key: Any = _NO_KEY
        """The key waiting for its value (a mapping's), or `_NO_KEY`."""
        self.key_raw = ""


def documents(text: str) -> list[Document]:
    """Every document of `text`, in order; raises `Unusual` when the reference path must read it."""
    if not AVAILABLE:
        raise Unusual("PyYAML has no libyaml")
    for char in _RISKY:
        if char in text:
            raise Unusual(f"text holds {char!r}")
    if _COMMENTED_HEADER.search(text):
        raise Unusual("a block scalar's header followed by '#'")
    parser = yaml.CSafeLoader(text)
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of new, acyclic containers: collections would only cost (~20 %)
    try:
        return _Composer(parser, _ends(text)).run()
    except yaml.YAMLError as e:
        raise Unusual(f"libyaml: {e}") from e
    finally:
        if collecting:
            gc.enable()
        parser.dispose()


def _ends(text: str) -> dict[Where, Where]:
    """Where the two parsers put the end of a text that does not end with a line break: libyaml at the
    start of one more line, PyYAML where the text stops (an empty value at the very end sits there)."""
    if not text or text[-1] in "\r\n":
        return {}
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    last = max(text.rfind("\n"), text.rfind("\r"))
    return {(breaks + 2, 1): (breaks + 1, len(text) - last)}


class _Composer:
    def __init__(self, parser: yaml.CSafeLoader, ends: dict[Where, Where]) -> None:
        self.parser = parser
        self.ends = ends
        self.loader = yaml.SafeLoader("")
        """Resolves and constructs plain scalars exactly as the reference path's loader does."""
        self.scalars: dict[str, Any] = {}
        """Plain scalars already constructed, by their text (the same text always gives the same value)."""
        self.stack: list[_Open] = []
        self.anchors: dict[str, _Node | None] = {}
        """This document's anchors; None while the anchored collection is still open."""
        self.keys: Table = {}
        self.values: Table = {}
        self.root: _Node | None = None

    def run(self) -> list[Document]:
        found: list[Document] = []
        get_event: Callable[[], Any] = self.parser.get_event  # events, typed loosely: checked by type
        scalars = self.scalars
        stack = self.stack
        keys, values = self.keys, self.values
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:  # most events: handled here, without a call per scalar
                if event.tag is not None:
                    raise Unusual("an explicit tag")
                raw: str = event.value
                value: Any = raw
                if event.implicit[0]:  # plain: YAML 1.1's implicit types
                    if "?" in raw and stack and stack[-1].flow:
                        raise Unusual("'?' in a plain scalar in flow style")  # PyYAML ends it there
                    value = scalars.get(raw, _NO_KEY)
                    if value is _NO_KEY:
                        value = scalars[raw] = self.construct(raw)
                mark = event.start_mark
                where = (mark.line + 1, mark.column + 1)
                if not raw and event.implicit[0]:  # a value left empty
                    where = self.empty(where)
                if event.anchor is not None:
                    self.anchor(event.anchor, _Node(value, 1, where, raw))
                if not stack:
                    values[()] = where
                    self.root = _Node(value, 1, where, raw)
                    continue
                top = stack[-1]
                top.size += 1
                if not top.mapping:
                    values[(*top.path, len(top.value))] = where
                    top.value.append(value)
                elif top.key is _NO_KEY:
                    top.key, top.key_raw = value, raw
                    keys[(*top.path, raw)] = where
                else:
                    values[(*top.path, top.key_raw)] = where
                    top.value[top.key] = value
                    top.key = _NO_KEY
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self.open(event, mapping=kind is MappingStartEvent)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self.close()
            elif kind is AliasEvent:
                self.alias(event)
            elif kind is DocumentStartEvent:
                if event.version is not None or event.tags:
                    raise Unusual("a directive")
                self.anchors, self.root = {}, None
                self.keys = keys = {}
                self.values = values = {}
            elif kind is DocumentEndEvent:
                if self.root is None:
                    raise Unusual("a document without a node")
                root = self.root
                found.append(Document(root.value, keys, values, root.size, root.where))
            elif kind is StreamEndEvent:
                return found
            elif kind is not StreamStartEvent:
                raise Unusual(f"unexpected event {event!r}")

    def empty(self, where: Where) -> Where:
        """Where PyYAML puts an empty value that libyaml puts at `where`.

        They agree in block style, but at the end of a text without a final line break (see `_ends`);
        in flow style (`{a: }`) PyYAML puts it after the `:` and libyaml at the next `,` or `}`.
        """
        if self.stack and self.stack[-1].flow:
            raise Unusual("an empty value in flow style")
        return self.ends.get(where, where)

    def child_path(self) -> FieldPath | None:
        """Path of the node starting now; None when it is a mapping's key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.mapping:
            return None if top.key is _NO_KEY else (*top.path, top.key_raw)
        return (*top.path, len(top.value))

    def construct(self, raw: str) -> Any:
        tag: str = self.loader.resolve(yaml.ScalarNode, raw, (True, False))  # type: ignore[no-untyped-call]
        if tag == _STR:
            return raw
        if tag not in _SCALAR_TAGS:
            raise Unusual(f"the tag {tag}")
        make = self.loader.yaml_constructors[tag]
        try:
            return make(self.loader, yaml.ScalarNode(tag, raw))
        except (ValueError, OverflowError, yaml.YAMLError) as e:  # e.g. a 13th month: the reference says
            raise Unusual(f"cannot construct {raw!r}: {e}") from e

    def open(self, event: MappingStartEvent | SequenceStartEvent, *, mapping: bool) -> None:
        if event.tag is not None:
            raise Unusual("an explicit tag")
        path = self.child_path()
        if path is None:
            raise Unusual("a key that is a mapping or a sequence")
        if len(self.stack) >= MAX_DEPTH:
            raise Unusual("nested deeper than MAX_DEPTH")
        mark = event.start_mark
        assert mark is not None
        where = (mark.line + 1, mark.column + 1)
        self.values[path] = where
        if event.anchor is not None:
            if event.anchor in self.anchors:
                raise Unusual("a repeated anchor")
            self.anchors[event.anchor] = None
        flow = bool(event.flow_style)
        self.stack.append(_Open({} if mapping else [], path, where, event.anchor, mapping, flow))

    def close(self) -> None:
        done = self.stack.pop()
        node = _Node(done.value, done.size, done.where, None)
        if done.anchor is not None:
            self.anchors[done.anchor] = node
        self.finish(node, done.path, recorded=True)

    def alias(self, event: AliasEvent) -> None:
        node = self.anchors.get(event.anchor or "", _NO_KEY)
        if node is _NO_KEY or node is None:
            raise Unusual("an undefined or recursive alias")
        self.finish(node, self.child_path())

    def anchor(self, name: str | None, node: _Node) -> None:
        if name is not None:
            if name in self.anchors:
                raise Unusual("a repeated anchor")
            self.anchors[name] = node

    def finish(self, node: _Node, path: FieldPath | None, *, recorded: bool = False) -> None:
        """Hand a finished node to its parent (as a key, a value or an item), recording where it was."""
        if not self.stack:
            if not recorded:
                self.values[()] = node.where
            self.root = node
            return
        top = self.stack[-1]
        top.size += node.size
        if path is None:  # a key
            if node.raw is None:
                raise Unusual("a key that is a mapping or a sequence")
            top.key, top.key_raw = node.value, node.raw
            self.keys[(*top.path, node.raw)] = node.where
            return
        if not recorded:
            self.values[path] = node.where
        if top.mapping:
            top.value[top.key] = node.value
            top.key = _NO_KEY
        else:
            top.value.append(node.value)
