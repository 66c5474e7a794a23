"""Train the example models on data sets bundled with scikit-learn and export them to ONNX.

    .venv/bin/python examples/models/train.py [--out examples/fleet/models]

Writes `iris.onnx` (LogisticRegression on the iris flowers), `cancer.onnx` (GradientBoosting on the
Wisconsin breast-cancer diagnostics) and `SHA256SUMS` into the output folder, and prints each model's
accuracy on a held-out split. Everything is deterministic (fixed `random_state`), so running it again
gives the same models. Each ONNX model takes one FP32 input named `input` of shape [-1, n_features]
and answers two plain tensors: `label` (INT64, [-1]) and `probabilities` (FP32, [-1, n_classes]).
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

SEED = 0
TEST_SIZE = 0.25
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""Opsets every onnxruntime >= 1.14 runs."""

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "fleet" / "models"


@dataclass(frozen=True)
class Trained:
    """A fitted estimator, its held-out split and its accuracy there."""

    name: str
    estimator: Any
    n_features: int
    test_accuracy: float
    n_train: int
    x_test: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    return x_train, x_test, y_train, y_test


def train_iris() -> Trained:
    """Fit a multinomial LogisticRegression on the iris data set (150 flowers, 4 features, 3 species).

    Returns:
        The estimator fitted on 75 % of the data, with its accuracy on the other 25 %.
    """
    data = load_iris()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = _split(x, data.target)
    model = LogisticRegression(max_iter=1000, random_state=SEED)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    return Trained("iris", model, x.shape[1], accuracy, len(y_train), x_test, y_test)


def train_cancer() -> Trained:
    """Fit a GradientBoostingClassifier on the breast-cancer data set (569 tumours, 30 features).

    Returns:
        The estimator fitted on 75 % of the data, with its accuracy on the other 25 %.
    """
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = _split(x, data.target)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=SEED)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    return Trained("cancer", model, x.shape[1], accuracy, len(y_train), x_test, y_test)


def to_onnx(trained: Trained) -> bytes:
    """Export a fitted classifier as ONNX: input `input` FP32 [-1, n]; outputs `label`, `probabilities`.

    Args:
        trained: The fitted model.

    Returns:
        The serialised ONNX model (ZipMap disabled, so both outputs are plain tensors).
    """
    onx = convert_sklearn(
        trained.estimator,
        name=trained.name,
        initial_types=[("input", FloatTensorType([None, trained.n_features]))],
        options={id(trained.estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        final_types=[
            ("label", None),
            ("probabilities", None),
        ],
    )
    onx.producer_version = ""
    data: bytes = onx.SerializeToString()
    return data


def onnx_accuracy(blob: bytes, trained: Trained) -> float:
    """Accuracy of the exported model on the held-out split, run by onnxruntime (checks the export)."""
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"input": trained.x_test})[0]
    return float(np.mean(labels == trained.y_test))


def main() -> None:
    """Train both models, write them and their SHA256SUMS, and print the held-out accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sums: list[str] = []
    for trained in (train_iris(), train_cancer()):
        blob = to_onnx(trained)
        path = out / f"{trained.name}.onnx"
        path.write_bytes(blob)
        sums.append(f"{hashlib.sha256(blob).hexdigest()}  {path.name}")
        print(
            f"{path}: {len(blob)} bytes, trained on {trained.n_train}; held-out accuracy on "
            f"{len(trained.y_test)}: scikit-learn {trained.test_accuracy:.4f}, "
            f"ONNX {onnx_accuracy(blob, trained):.4f}"
        )
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main()
