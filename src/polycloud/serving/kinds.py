"""The three kinds of replica `python -m polycloud.serving` runs, chosen by its options:

- polycloud's ONNX server over the Open Inference Protocol (the default);
- the built-in LLM runtime over the OpenAI API (`--protocol openai`, a trigram model file);
- a sidecar in front of the user's own server (`--runtime-command`, or `--runtime-port` for a server
  started beside it, as a second container of a pod), either protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp

from polycloud.errors import PermanentError
from polycloud.serving.app import Replica, ServedModel, create_app
from polycloud.serving.control import ReplicaBase
from polycloud.serving.faults import Faults
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.tracing import ReplicaTracer


@dataclass(frozen=True)
class Built:
    """A replica's state and application, and the digest of what it serves ("" for none)."""

    replica: ReplicaBase
    app: ASGIApp
    sha256: str


def parse_runtime(text: str) -> tuple[str, ...]:
    """The argv of `--runtime-command` (a JSON list of strings).

    Raises:
        PermanentError: Not a non-empty JSON list of strings.
    """
    try:
        argv = json.loads(text)
    except ValueError as e:
        raise PermanentError(f"--runtime-command must be a JSON list of strings: {e}") from e
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        raise PermanentError("--runtime-command must be a non-empty JSON list of non-empty strings")
    return tuple(argv)


def build(
    *,
    name: str,
    revision: str,
    protocol: str,
    model: str | None,
    sha256: str | None,
    runtime: tuple[str, ...] | None,
    readiness_path: str,
    runtime_port: int | None,
    faults: Faults,
    metrics: ReplicaMetrics,
    tracer: ReplicaTracer | None,
    mutual_tls: bool,
) -> Built:
    """Load what the replica serves and build its application.

    Raises:
        PermanentError: The model cannot be loaded, or is not the pinned bytes.
    """
    if runtime is not None or runtime_port is not None:
        from polycloud.serving.sidecar import RuntimeCommand, RuntimeReplica, create_sidecar_app

        where = model or ""
        command = RuntimeCommand(runtime or (), readiness_path, where, protocol, runtime_port)
        sidecar = RuntimeReplica(command, faults, metrics, tracer=tracer, mutual_tls=mutual_tls)
        return Built(sidecar, create_sidecar_app(sidecar), sha256 or "")
    if model is None:
        raise PermanentError("--model is required unless --runtime-command is given")
    if protocol == "openai":
        from polycloud.serving.llm.lm import load
        from polycloud.serving.llm.runtime import LlmReplica, create_llm_app

        language_model, digest = load(Path(model))
        if sha256 is not None and digest != sha256:
            raise PermanentError(f"model {model} has sha256 {digest}, not the pinned {sha256}")
        llm = LlmReplica(name, language_model, faults, metrics, tracer=tracer, mutual_tls=mutual_tls)
        return Built(llm, create_llm_app(llm), digest)
    from polycloud.serving.model import load_model

    onnx = load_model(Path(model), sha256)
    replica = Replica(
        ServedModel(name, revision or "1", onnx), faults, metrics, tracer=tracer, mutual_tls=mutual_tls
    )
    return Built(replica, create_app(replica), onnx.info.sha256)
