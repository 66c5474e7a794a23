"""The Open Inference Protocol v2 (KServe v2) JSON bodies: strict request checks, responses, metadata.

An inference request is checked against the model before it runs; every problem is an `InvalidRequest`
whose message names the offending input, and becomes a 400 `{"error": "..."}` answer:

- the body is not a JSON object, `inputs` is missing or not a list, an entry is malformed;
- an input the model does not have, one it needs that is missing, or one given twice;
- a datatype other than the model's, a shape of another rank or with a fixed dimension that differs;
- data whose element count is not the product of the shape, or whose values do not fit the datatype
  (strings for numbers, fractions or out-of-range values for integers, ...);
- a requested output the model does not have.

`data` may be flat (row-major) or nested; nested data must have exactly the declared shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polycloud import __version__
from polycloud.errors import UserError
from polycloud.serving.model import ModelInfo, OutputTensor, TensorInfo
from polycloud.serving.onnxtypes import NUMPY_TYPES

_INT_DATATYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
_FLOAT_DATATYPES = {"FP16", "FP32", "FP64"}


class InvalidRequest(UserError):
    """A request that does not fit the protocol or the model (HTTP 400)."""


class NonFiniteOutput(UserError):
    """The model answered NaN or infinity for these inputs, which JSON cannot carry (HTTP 422: the same
    inputs give the same answer on every replica, so it must not count against this one)."""


@dataclass(frozen=True)
class InferRequest:
    """A checked inference request."""

    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: tuple[str, ...] | None
    """The outputs asked for, in the model's order; None for all."""


def server_metadata() -> dict[str, Any]:
    """The answer to `GET /v2`."""
    return {"name": "polycloud", "version": __version__, "extensions": []}


def model_metadata(name: str, version: str, info: ModelInfo) -> dict[str, Any]:
    """The answer to `GET /v2/models/{name}`.

    Args:
        name: The model name clients use (the Service's name).
        version: The one version served.
        info: What the model takes and answers.
    """
    return {
        "name": name,
        "versions": [version],
        "platform": "onnxruntime",
        "inputs": [t.to_json() for t in info.inputs],
        "outputs": [t.to_json() for t in info.outputs],
    }


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _field(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequest(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _request_shape(entry: dict[str, Any], where: str) -> tuple[int, ...]:
    shape = _field(entry, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidRequest(f"{where}: 'shape' must be a list of non-negative integers")
    return tuple(shape)


def _check_shape(shape: tuple[int, ...], model: TensorInfo, where: str) -> None:
    if not model.shape:
        return  # a scalar, or a rank the model does not declare: onnxruntime checks it
    if len(shape) != len(model.shape):
        raise InvalidRequest(
            f"{where}: shape {_shape_text(shape)} has rank {len(shape)}, "
            f"the model expects rank {len(model.shape)} ({_shape_text(model.shape)})"
        )
    for axis, (got, want) in enumerate(zip(shape, model.shape, strict=True)):
        if want >= 0 and got != want:
            raise InvalidRequest(
                f"{where}: shape {_shape_text(shape)} does not fit the model's {_shape_text(model.shape)} "
                f"(dimension {axis} must be {want})"
            )


def _all_strings(data: Any) -> bool:
    if isinstance(data, list):
        return all(_all_strings(item) for item in data)
    return isinstance(data, str)


def _array(data: list[Any], datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray[Any, Any]:
    try:
        raw = np.asarray(data)
    except (ValueError, OverflowError) as e:
        raise InvalidRequest(f"{where}: 'data' is ragged or holds values that do not fit {datatype}") from e
    count = math.prod(shape)
    if raw.ndim > 1 and raw.shape != shape:
        raise InvalidRequest(
            f"{where}: nested 'data' has shape {_shape_text(raw.shape)}, not {_shape_text(shape)}"
        )
    if raw.size != count:
        raise InvalidRequest(
            f"{where}: 'data' has {raw.size} elements, shape {_shape_text(shape)} needs {count}"
        )
    if raw.size and not _fits(raw, data, datatype):
        raise InvalidRequest(f"{where}: 'data' holds values that are not valid {datatype}")
    return raw.astype(NUMPY_TYPES[datatype], copy=False).reshape(shape)


def _fits(raw: np.ndarray[Any, Any], data: list[Any], datatype: str) -> bool:
    kind = raw.dtype.kind
    if datatype == "BYTES":
        return kind == "U" and _all_strings(data)
    if datatype == "BOOL":
        return bool(kind == "b")
    if datatype in _FLOAT_DATATYPES:
        return kind in "iu" or (kind == "f" and bool(np.isfinite(raw).all()))  # 1e999 decodes as inf
    if datatype in _INT_DATATYPES and kind in "iu":
        limits = np.iinfo(np.dtype(NUMPY_TYPES[datatype]))
        return int(raw.min()) >= limits.min and int(raw.max()) <= limits.max
    return False


def _parse_input(entry: Any, index: int, info: ModelInfo) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(entry, dict):
        raise InvalidRequest(f"inputs[{index}] must be an object")
    name = _field(entry, "name", str, f"inputs[{index}]")
    where = f"input {name!r}"
    model = info.input(name)
    if model is None:
        known = ", ".join(repr(t.name) for t in info.inputs)
        raise InvalidRequest(f"{where}: the model has no such input (its inputs: {known})")
    datatype = _field(entry, "datatype", str, where)
    if datatype != model.datatype:
        raise InvalidRequest(f"{where}: datatype {datatype} does not match the model's {model.datatype}")
    shape = _request_shape(entry, where)
    _check_shape(shape, model, where)
    data = entry.get("data")
    if not isinstance(data, list):
        raise InvalidRequest(f"{where}: 'data' must be a list")
    return name, _array(data, datatype, shape, where)


def _requested_outputs(body: dict[str, Any], info: ModelInfo) -> tuple[str, ...] | None:
    entries = body.get("outputs")
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise InvalidRequest("'outputs' must be a list")
    wanted: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"outputs[{index}] must be an object")
        name = _field(entry, "name", str, f"outputs[{index}]")
        if info.output(name) is None:
            known = ", ".join(repr(t.name) for t in info.outputs)
            raise InvalidRequest(f"output {name!r}: the model has no such output (its outputs: {known})")
        wanted.add(name)
    return tuple(t.name for t in info.outputs if t.name in wanted) or None


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest(f"the body is not valid JSON: {name} is not a JSON number")


def decode_json(body: bytes) -> Any:
    """Decode a request body as strict JSON: NaN and Infinity are refused, as is nesting too deep for the
    decoder (a client's error, so a 400 — never a 500 that would count against the replica).

    Raises:
        InvalidRequest: The body is not valid JSON.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as e:
        raise InvalidRequest("the body is not valid JSON: it is nested too deeply") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"the body is not valid JSON: {e}") from e


def parse_infer_request(body: bytes, info: ModelInfo) -> InferRequest:
    """Decode and check an inference request against the model.

    Args:
        body: The raw JSON body.
        info: The model the request is for.

    Raises:
        InvalidRequest: Anything wrong with the request (see the module docstring).
    """
    decoded = decode_json(body)
    if not isinstance(decoded, dict):
        raise InvalidRequest("the body must be a JSON object")
    request_id = decoded.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    entries = decoded.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise InvalidRequest("'inputs' must be a non-empty list")
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for index, entry in enumerate(entries):
        name, array = _parse_input(entry, index, info)
        if name in inputs:
            raise InvalidRequest(f"input {name!r}: given more than once")
        inputs[name] = array
    missing = [t.name for t in info.inputs if t.name not in inputs]
    if missing:
        raise InvalidRequest(f"input {missing[0]!r}: missing (the model needs it)")
    return InferRequest(request_id, inputs, _requested_outputs(decoded, info))


def _output_json(tensor: OutputTensor) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.array.shape),
        "data": tensor.array.ravel().tolist(),
    }
    if tensor.keys:
        data["parameters"] = {"keys": tensor.keys}
    return data


def encode_infer_response(
    model_name: str, model_version: str, request_id: str | None, outputs: Sequence[OutputTensor]
) -> bytes:
    """The JSON body answering an inference request (`data` flattened row-major).

    Args:
        model_name: The served model's name.
        model_version: Its version.
        request_id: The request's `id`, echoed when given.
        outputs: The computed outputs.
    """
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = [_output_json(t) for t in outputs]
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as e:
        raise NonFiniteOutput("the model produced NaN or infinite values for these inputs") from e


def error_body(message: str) -> bytes:
    """The JSON body of an error answer: `{"error": message}`."""
    return json.dumps({"error": message}).encode()
