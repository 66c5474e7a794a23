"""ONNX value types as the Open Inference Protocol sees them: datatypes, and non-tensor outputs as tensors.

onnxruntime describes each graph input and output with a type string: `tensor(float)`,
`seq(map(int64,tensor(float)))`, `optional(tensor(int64))`, ... The protocol only knows tensors of one
OIP datatype (`FP32`, `INT64`, `BYTES`, ...), so this module maps element types to OIP datatypes and
numpy dtypes, and turns every output type a model may produce into a tensor (`OutputPlan`):

    tensor(T)                 served as is
    seq(map(K, tensor(V)))    [items, keys]: one row per item, columns are the keys in ascending order
                              (what scikit-learn classifiers exported with ZipMap answer)
    map(K, tensor(V))         [keys]: the values, keys in ascending order
    seq(tensor(T))            the tensors stacked along a new first axis (all must have one shape)
    optional(X)               as X; an absent value is an empty tensor

Inputs must be tensors (optionally `optional(tensor(T))`); sparse tensors and element types JSON cannot
carry (bfloat16, float8, int4, complex) are refused when the model is loaded, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from polycloud.errors import PermanentError

ELEMENT_TYPES: dict[str, tuple[str, type[np.generic]]] = {
    "bool": ("BOOL", np.bool_),
    "uint8": ("UINT8", np.uint8),
    "uint16": ("UINT16", np.uint16),
    "uint32": ("UINT32", np.uint32),
    "uint64": ("UINT64", np.uint64),
    "int8": ("INT8", np.int8),
    "int16": ("INT16", np.int16),
    "int32": ("INT32", np.int32),
    "int64": ("INT64", np.int64),
    "float16": ("FP16", np.float16),
    "float": ("FP32", np.float32),
    "double": ("FP64", np.float64),
    "string": ("BYTES", np.object_),
}
"""ONNX element type name (as in `tensor(<name>)`) -> (OIP datatype, numpy scalar type)."""

NUMPY_TYPES: dict[str, type[np.generic]] = dict(ELEMENT_TYPES.values())
"""OIP datatype -> numpy scalar type used to build input arrays."""


@dataclass(frozen=True)
class OnnxType:
    """A parsed onnxruntime type string: `kind` is tensor, sparse_tensor, seq, map or optional."""

    kind: str
    element: str = ""
    """The element type name of a tensor or sparse_tensor, or the key type of a map."""
    args: tuple[OnnxType, ...] = ()
    """The contained type of seq and optional; the value type of a map."""

    def __str__(self) -> str:
        if self.kind in ("tensor", "sparse_tensor"):
            return f"{self.kind}({self.element})"
        if self.kind == "map":
            return f"map({self.element},{self.args[0]})"
        return f"{self.kind}({self.args[0]})"


def parse_type(text: str) -> OnnxType:
    """Parse an onnxruntime type string such as `seq(map(int64,tensor(float)))`.

    Raises:
        PermanentError: The string is not a type this module understands.
    """
    parsed, rest = _parse(text.replace(" ", ""))
    if rest:
        raise PermanentError(f"unrecognised ONNX type {text!r}")
    return parsed


def _parse(text: str) -> tuple[OnnxType, str]:
    kind, paren, rest = text.partition("(")
    if not paren:
        raise PermanentError(f"unrecognised ONNX type {text!r}")
    if kind in ("tensor", "sparse_tensor"):
        element, close, rest = rest.partition(")")
        if not close:
            raise PermanentError(f"unrecognised ONNX type {text!r}")
        return OnnxType(kind, element=element), rest
    if kind == "map":
        key, comma, rest = rest.partition(",")
        value, rest = _parse(rest) if comma else (None, "")
        if value is None or not rest.startswith(")"):
            raise PermanentError(f"unrecognised ONNX type {text!r}")
        return OnnxType(kind, element=key, args=(value,)), rest[1:]
    if kind in ("seq", "optional"):
        inner, rest = _parse(rest)
        if not rest.startswith(")"):
            raise PermanentError(f"unrecognised ONNX type {text!r}")
        return OnnxType(kind, args=(inner,)), rest[1:]
    raise PermanentError(f"unrecognised ONNX type {text!r}")


def _datatype(element: str, what: str) -> str:
    found = ELEMENT_TYPES.get(element)
    if found is None:
        raise PermanentError(f"{what} has element type {element!r}, which JSON tensors cannot carry")
    return found[0]


def input_datatype(type_text: str, name: str) -> str:
    """The OIP datatype of a model input.

    Args:
        type_text: onnxruntime's type string of the input.
        name: The input's name, for the message.

    Raises:
        PermanentError: The input is not a tensor of a supported element type.
    """
    parsed = parse_type(type_text)
    if parsed.kind == "optional":
        parsed = parsed.args[0]
    if parsed.kind != "tensor":
        raise PermanentError(f"input {name!r} has type {type_text}; only tensor inputs can be served")
    return _datatype(parsed.element, f"input {name!r}")


Converter = Callable[[Any], "np.ndarray[Any, Any]"]


@dataclass(frozen=True)
class OutputPlan:
    """How one model output is served as an OIP tensor."""

    datatype: str
    shape: tuple[int, ...] | None
    """The shape to announce; None means use the one onnxruntime reports (plain tensors)."""
    convert: Converter
    """Turns what onnxruntime returns for this output into a numpy array of `datatype`."""
    note: str = ""
    """Says how a non-tensor output was converted; empty for plain tensors."""
    keyed: bool = False
    """Whether the columns come from map keys (each response then lists them)."""


def _as_array(value: Any) -> np.ndarray[Any, Any]:
    return np.asarray(value)


def _map_values(value: dict[Any, Any], dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    return np.asarray([value[k] for k in sorted(value)], dtype=dtype)


def map_keys(value: Any) -> list[Any]:
    """The keys, ascending, of a converted map output's first item (what the columns mean)."""
    first = value[0] if isinstance(value, list) and value else value
    return sorted(first) if isinstance(first, dict) else []


def _seq_of_maps(dtype: type[np.generic]) -> Converter:
    def convert(value: Any) -> np.ndarray[Any, Any]:
        items: list[dict[Any, Any]] = list(value or [])
        if not items:
            return np.zeros((0, 0), dtype=dtype)
        keys = sorted(items[0])
        if any(sorted(item) != keys for item in items):
            raise PermanentError("the model answered maps with different keys; they cannot form a tensor")
        return np.asarray([[item[k] for k in keys] for item in items], dtype=dtype)

    return convert


def _seq_of_tensors(dtype: type[np.generic]) -> Converter:
    def convert(value: Any) -> np.ndarray[Any, Any]:
        items = [np.asarray(v, dtype=dtype) for v in value or []]
        if not items:
            return np.zeros((0,), dtype=dtype)
        if any(item.shape != items[0].shape for item in items):
            raise PermanentError("the model answered tensors of different shapes; they cannot be stacked")
        return np.stack(items)

    return convert


def _optional(inner: Converter, dtype: type[np.generic]) -> Converter:
    def convert(value: Any) -> np.ndarray[Any, Any]:
        return np.zeros((0,), dtype=dtype) if value is None else inner(value)

    return convert


def output_plan(type_text: str, name: str) -> OutputPlan:
    """Decide how a model output is served.

    Args:
        type_text: onnxruntime's type string of the output.
        name: The output's name, for messages.

    Raises:
        PermanentError: The output cannot be turned into a tensor (sparse, or an unsupported element).
    """
    return _plan(parse_type(type_text), name, type_text)


def _plan(parsed: OnnxType, name: str, type_text: str) -> OutputPlan:
    what = f"output {name!r}"
    if parsed.kind == "tensor":
        return OutputPlan(_datatype(parsed.element, what), None, _as_array)
    if parsed.kind == "optional":
        inner = _plan(parsed.args[0], name, type_text)
        dtype = NUMPY_TYPES[inner.datatype]
        return OutputPlan(
            inner.datatype, inner.shape, _optional(inner.convert, dtype), inner.note, inner.keyed
        )
    if parsed.kind == "map" and parsed.args[0].kind == "tensor":
        datatype = _datatype(parsed.args[0].element, what)
        dtype = NUMPY_TYPES[datatype]
        note = f"converted from {type_text}: the values, keys in ascending order"
        return OutputPlan(datatype, (-1,), lambda v: _map_values(v, dtype), note, keyed=True)
    if parsed.kind == "seq":
        inner_type = parsed.args[0]
        if inner_type.kind == "map" and inner_type.args[0].kind == "tensor":
            datatype = _datatype(inner_type.args[0].element, what)
            note = f"converted from {type_text}: one row per item, columns are the keys in ascending order"
            return OutputPlan(datatype, (-1, -1), _seq_of_maps(NUMPY_TYPES[datatype]), note, keyed=True)
        if inner_type.kind == "tensor":
            datatype = _datatype(inner_type.element, what)
            note = f"converted from {type_text}: the tensors stacked along a new first axis"
            return OutputPlan(datatype, (-1,), _seq_of_tensors(NUMPY_TYPES[datatype]), note)
    raise PermanentError(f"{what} has type {type_text}, which cannot be served as a tensor")
