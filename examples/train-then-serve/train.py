"""Train an iris classifier on-prem, checkpointing as polycloud asks, and write it as ONNX.

Real data from a package (scikit-learn's bundled iris measurements), real training (SGD, one epoch per
step), real checkpoints: every `--every` epochs the model's coefficients go to `ckpt.npz` in
`$POLYCLOUD_CHECKPOINT_DIR`, written to a temporary file, fsynced and renamed, so a preempted run
resumes from the last complete checkpoint (polycloud carries the folder if the job moves). At the end
the model is converted with skl2onnx and renamed into place at `--out` (relative to this folder).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
stop = False


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    global stop
    stop = True  # finish this epoch, commit a checkpoint, exit 143


def atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def save(folder: Path, model: SGDClassifier, epoch: int) -> None:
    temp = folder / ".ckpt.npz.tmp"
    with open(temp, "wb") as f:
        np.savez(f, coef=model.coef_, intercept=model.intercept_, epoch=epoch)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, folder / "ckpt.npz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--out", default="models/iris-v2.onnx")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    folder = Path(os.environ.get("POLYCLOUD_CHECKPOINT_DIR", HERE / ".checkpoints"))
    folder.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data.astype(np.float32), iris.target, test_size=0.3, random_state=0, stratify=iris.target
    )
    classes = np.unique(iris.target)
    model = SGDClassifier(loss="log_loss", random_state=0)
    start = 0
    checkpoint = folder / "ckpt.npz"
    if checkpoint.is_file():
        saved = np.load(checkpoint)
        model.partial_fit(x_train[:1], y_train[:1], classes=classes)
        model.coef_, model.intercept_ = saved["coef"], saved["intercept"]
        start = int(saved["epoch"])
        print(
            f"attempt {os.environ.get('POLYCLOUD_JOB_ATTEMPT', '?')}: resuming at epoch {start}", flush=True
        )
    for epoch in range(start, args.epochs):
        order = np.random.default_rng(epoch).permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        if (epoch + 1) % args.every == 0 or stop:
            save(folder, model, epoch + 1)
            print(f"epoch {epoch + 1}: accuracy {model.score(x_test, y_test):.3f} (checkpoint)", flush=True)
        if stop:
            return 143
    onnx = to_onnx(model, x_train[:1], options={id(model): {"zipmap": False}})
    out = Path(args.out) if Path(args.out).is_absolute() else HERE / args.out
    atomic_write(out, onnx.SerializeToString())
    print(f"wrote {out} (test accuracy {model.score(x_test, y_test):.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
