"""The model runtime: check and load an ONNX file with onnxruntime, describe it, and run it.

`inspect_model` lets other code (validate, apply) check a model without serving it; `load_model` is
what a replica serves. Both verify the file's sha256 when one is given and raise `PermanentError` with a
one-line message naming the file for a missing, unreadable, corrupt or mismatching model: retrying will
not fix any of these.

Sessions run on the CPU with one intra-op and one inter-op thread and no spinning, because many
replicas share a couple of cores; a replica gets its parallelism from several requests at once
(`InferenceSession.run` is thread-safe and releases the GIL).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from polycloud.errors import PermanentError
from polycloud.serving.onnxtypes import OutputPlan, input_datatype, map_keys, output_plan

_ORT_ERROR_NAMES = (
    "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
    "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail", "NotFound",
)  # fmt: skip


def _ort_errors() -> tuple[type[Exception], ...]:
    found = [getattr(ort_state, name, None) for name in _ORT_ERROR_NAMES]
    return (*(e for e in found if isinstance(e, type) and issubclass(e, Exception)), RuntimeError)


ORT_ERRORS = _ort_errors()
"""The exception types onnxruntime raises (they do not share a base class other than Exception)."""

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as the protocol announces it."""

    name: str
    datatype: str
    """OIP datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES."""
    shape: tuple[int, ...]
    """-1 for a dynamic dimension. An empty shape is a scalar, or a tensor whose rank the model does
    not declare (onnxruntime reports both alike); requests of any shape are then let through."""
    note: str = ""
    """How a non-tensor output is converted to a tensor; empty for plain tensors."""

    def to_json(self) -> dict[str, Any]:
        """The OIP tensor metadata `{"name", "datatype", "shape"}` (plus `parameters.conversion`)."""
        data: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        if self.note:
            data["parameters"] = {"conversion": self.note}
        return data


@dataclass(frozen=True)
class ModelInfo:
    """What a model file takes and answers."""

    path: Path
    sha256: str
    """The file's actual sha256 (lower-case hex)."""
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def input(self, name: str) -> TensorInfo | None:
        """The input called `name`, if any."""
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        """The output called `name`, if any."""
        return next((t for t in self.outputs if t.name == name), None)


@dataclass(frozen=True)
class OutputTensor:
    """One computed output, ready to be encoded."""

    name: str
    datatype: str
    array: np.ndarray[Any, Any]
    keys: list[Any] = field(default_factory=list)
    """For outputs converted from maps: the map key of each column, ascending."""


def _shape(dims: Sequence[object] | None) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims or ())


def file_sha256(path: Path) -> str:
    """The sha256 of a file, as lower-case hex.

    Raises:
        PermanentError: The file is missing or cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError as e:
        raise PermanentError(f"model {path}: file not found") from e
    except IsADirectoryError as e:
        raise PermanentError(f"model {path}: is a directory, not an ONNX file") from e
    except OSError as e:
        raise PermanentError(f"model {path}: cannot read: {e.strerror or e}") from e
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> str:
    """Hash `path` and compare with `expected` (case-insensitive) when given.

    Returns:
        The actual sha256.

    Raises:
        PermanentError: The file is missing or unreadable, `expected` is not 64 hex digits, or the
            digests differ.
    """
    if expected is not None and not _SHA256.fullmatch(expected):
        raise PermanentError(f"model {path}: expected sha256 {expected!r} is not 64 hexadecimal digits")
    actual = file_sha256(path)
    if expected is not None and actual != expected.lower():
        raise PermanentError(f"model {path}: sha256 mismatch: expected {expected.lower()}, file has {actual}")
    return actual


def _read_checked(path: Path, expected: str | None) -> tuple[bytes, str]:
    """The file's bytes and their sha256, checked against `expected` like `check_sha256`."""
    if expected is not None and not _SHA256.fullmatch(expected):
        raise PermanentError(f"model {path}: expected sha256 {expected!r} is not 64 hexadecimal digits")
    try:
        content = path.read_bytes()
    except FileNotFoundError as e:
        raise PermanentError(f"model {path}: file not found") from e
    except IsADirectoryError as e:
        raise PermanentError(f"model {path}: is a directory, not an ONNX file") from e
    except OSError as e:
        raise PermanentError(f"model {path}: cannot read: {e.strerror or e}") from e
    actual = hashlib.sha256(content).hexdigest()
    if expected is not None and actual != expected.lower():
        raise PermanentError(f"model {path}: sha256 mismatch: expected {expected.lower()}, file has {actual}")
    return content, actual


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text) or type(error).__name__


class Model:
    """A loaded model: its description and a way to run it."""

    def __init__(self, session: ort.InferenceSession, info: ModelInfo, plans: Mapping[str, OutputPlan]):
        self.info = info
        self._session = session
        self._plans = dict(plans)

    def run(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str] | None = None
    ) -> list[OutputTensor]:
        """Run the model on validated inputs.

        Args:
            inputs: One array per model input, of the input's datatype and a fitting shape.
            outputs: The outputs to compute, in the model's order; None for all.

        Returns:
            The requested outputs as tensors (non-tensor outputs converted, see `onnxtypes`).

        Raises:
            ValueError: onnxruntime refused the inputs (e.g. a dimension the graph cannot take).
            PermanentError: The model failed in another way, or answered a value that is not servable.
        """
        names = [t.name for t in self.info.outputs] if outputs is None else list(outputs)
        try:
            values = self._session.run(names, dict(inputs))
        except ort_state.InvalidArgument as e:
            raise ValueError(_one_line(e)) from e
        except ORT_ERRORS as e:
            raise PermanentError(f"inference failed: {_one_line(e)}") from e
        result: list[OutputTensor] = []
        for name, value in zip(names, values, strict=True):
            plan = self._plans[name]
            try:
                array = plan.convert(value)
            except (ValueError, TypeError) as e:
                raise PermanentError(f"output {name!r} cannot be served as {plan.datatype}: {e}") from e
            keys = [_plain(k) for k in map_keys(value)] if plan.keyed else []
            result.append(OutputTensor(name, plan.datatype, array, keys))
        return result


def _plain(key: Any) -> Any:
    return key.item() if isinstance(key, np.generic) else key


def _output_info(name: str, dims: Sequence[object] | None, plan: OutputPlan) -> TensorInfo:
    shape = _shape(dims) if plan.shape is None else plan.shape
    return TensorInfo(name, plan.datatype, shape, plan.note)


def load_model(path: Path, sha256: str | None = None) -> Model:
    """Check and load an ONNX model for serving.

    Args:
        path: The ONNX file.
        sha256: The expected sha256 (hex), or None to skip the check.

    Returns:
        The loaded model.

    Raises:
        PermanentError: The file is missing, unreadable, corrupt, not what `sha256` says, or has an
            input or output that cannot be served; the one-line message names the file.
    """
    content, actual = _read_checked(path, sha256)
    try:
        # From the bytes that were hashed, not the path again: a file swapped in between is never loaded.
        session = ort.InferenceSession(content, _session_options(), providers=["CPUExecutionProvider"])
    except ORT_ERRORS as e:
        raise PermanentError(f"model {path}: not a valid ONNX model: {_one_line(e)}") from e
    try:
        inputs = tuple(
            TensorInfo(arg.name, input_datatype(arg.type, arg.name), _shape(arg.shape))
            for arg in session.get_inputs()
        )
        plans = {arg.name: output_plan(arg.type, arg.name) for arg in session.get_outputs()}
    except PermanentError as e:
        raise PermanentError(f"model {path}: {e}") from e
    outputs = tuple(_output_info(arg.name, arg.shape, plans[arg.name]) for arg in session.get_outputs())
    return Model(session, ModelInfo(path, actual, inputs, outputs), plans)


def inspect_model(path: Path, sha256: str | None = None) -> ModelInfo:
    """Check a model file and describe its inputs and outputs, without serving it.

    Args:
        path: The ONNX file.
        sha256: The expected sha256 (hex), or None to skip the check.

    Raises:
        PermanentError: As `load_model`.
    """
    return load_model(path, sha256).info
