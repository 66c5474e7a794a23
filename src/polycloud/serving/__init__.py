"""The model server a replica runs: one ONNX model over the Open Inference Protocol v2 (KServe v2) REST.

    model       check (sha256) and load an ONNX file with onnxruntime; describe inputs and outputs
    onnxtypes   ONNX types -> OIP datatypes; non-tensor outputs (seq(map), ...) served as tensors
    protocol    OIP JSON bodies: strict request checks (400 reasons), responses, metadata
    faults      simulated network delay and injected errors (`/_polycloud/faults`)
    metrics     Prometheus metrics in a registry of the replica's own
    app         the Starlette routes and the middleware that applies faults and metrics
    server      sockets (inherited `--fd` or bound), uvicorn, graceful SIGTERM
    events      lifecycle events as JSON lines on stdout
    cli         `python -m polycloud.serving ...`

Other packages use `inspect_model` to check a model without serving it.
"""

from polycloud.serving.model import Model, ModelInfo, TensorInfo, inspect_model, load_model

__all__ = ["Model", "ModelInfo", "TensorInfo", "inspect_model", "load_model"]
