"""A real training job for tests and the bench: linear regression by mini-batch SGD, with checkpoints.

Deterministic: the data comes from a fixed seed and step `s` draws its batch from seed `1000 + s`, so a
run resumed from a checkpoint at step `s` ends with exactly the weights of a run never interrupted.

It follows polycloud's checkpoint contract: every `--every` steps it writes `.ckpt.npz.tmp` in
`$POLYCLOUD_CHECKPOINT_DIR`, fsyncs it and renames it over `ckpt.npz`. On SIGTERM it commits a last
checkpoint and exits 143. Files in `--control DIR` let a test stop it at exact points, without sleeps:

- `pause-a<attempt>-at-<step>`: before that step, create `paused-a<attempt>-<step>` and idle until
  signalled (a SIGTERM then checkpoints at that step);
- `hold-a<attempt>-at-<step>`: write half of that step's checkpoint, create `holding-a<attempt>-<step>`
  and hang in the middle of the write, ignoring SIGTERM (only SIGKILL ends it: a torn write);
- `fail-a<attempt>-at-<step>`: exit 3 before that step (a crash).

Every start and commit is appended to `trace.jsonl` in the control folder; the end writes `result.json`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import numpy as np

FEATURES = 8
SAMPLES = 512
BATCH = 32
LR = 0.05
CHECKPOINT = "ckpt.npz"
TEMP = ".ckpt.npz.tmp"

stop_requested = False


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES))
    truth = np.arange(1, FEATURES + 1, dtype=float)
    return x, x @ truth + rng.normal(scale=0.1, size=SAMPLES)


def sgd_step(w: np.ndarray, step: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    idx = np.random.default_rng(1000 + step).integers(0, SAMPLES, size=BATCH)
    xb, yb = x[idx], y[idx]
    grad = 2.0 * xb.T @ (xb @ w - yb) / BATCH
    return w - LR * grad


def reference(steps: int) -> list[float]:
    """The weights of an uninterrupted run of `steps` steps."""
    x, y = data()
    w = np.zeros(FEATURES)
    for step in range(steps):
        w = sgd_step(w, step, x, y)
    return [float(v) for v in w]


def trace(control: Path | None, **entry: object) -> None:
    if control is not None:
        with (control / "trace.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def load(ckpt_dir: Path) -> tuple[int, np.ndarray]:
    path = ckpt_dir / CHECKPOINT
    if not path.exists():
        return 0, np.zeros(FEATURES)
    with np.load(path) as saved:  # a torn file raises here: the tests check that never happens
        return int(saved["step"]), saved["w"].copy()


def save(
    ckpt_dir: Path, step: int, w: np.ndarray, state: np.ndarray, hold: Path | None, held: Path | None
) -> None:
    tmp = ckpt_dir / TEMP
    with tmp.open("wb") as f:
        if hold is not None and held is not None and hold.exists():
            buf = io.BytesIO()
            np.savez(buf, step=step, w=w, state=state)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            held.touch()
            while True:  # hang mid-write; SIGTERM is ignored here, SIGKILL ends it
                time.sleep(0.01)
        np.savez(f, step=step, w=w, state=state)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, ckpt_dir / CHECKPOINT)
    fd = os.open(ckpt_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def on_term(signum: int, frame: FrameType | None) -> None:
    global stop_requested
    stop_requested = True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="checkpoint every N steps (0: never)")
    parser.add_argument("--step-ms", type=float, default=0.0, help="simulated compute per step")
    parser.add_argument("--control", type=Path, default=None)
    parser.add_argument("--trace-steps", action="store_true", help="trace every step (for the bench)")
    parser.add_argument("--state-mb", type=float, default=0.0, help="optimizer-state ballast per checkpoint")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    ckpt_dir = Path(os.environ["POLYCLOUD_CHECKPOINT_DIR"])
    attempt = int(os.environ.get("POLYCLOUD_JOB_ATTEMPT", "1"))
    control: Path | None = args.control
    x, y = data()
    state = np.zeros(int(args.state_mb * 1e6 / 8))  # stands in for optimizer state: makes checkpoints big
    try:
        step, w = load(ckpt_dir) if args.every else (0, np.zeros(FEATURES))
    except (OSError, ValueError, KeyError) as e:
        trace(control, event="torn", attempt=attempt, error=str(e))
        print(f"torn checkpoint: {e}", flush=True)
        return 4
    trace(control, event="start", attempt=attempt, resumed_from=step)
    print(f"attempt {attempt}: resuming at step {step}", flush=True)

    def flag(kind: str, at: int) -> Path | None:
        return None if control is None else control / f"{kind}-a{attempt}-at-{at}"

    def commit(at: int) -> None:
        held = None if control is None else control / f"holding-a{attempt}-{at}"
        save(ckpt_dir, at, w, state, flag("hold", at), held)
        trace(control, event="checkpoint", attempt=attempt, step=at)

    while step < args.steps:
        pause = flag("pause", step)
        if pause is not None and pause.exists() and control is not None:
            (control / f"paused-a{attempt}-{step}").touch()
            while not stop_requested:
                time.sleep(0.01)
        fail = flag("fail", step)
        if fail is not None and fail.exists():
            print(f"injected failure at step {step}", flush=True)
            return 3
        if stop_requested:
            if args.every:
                commit(step)
            print(f"SIGTERM at step {step}: checkpointed, exiting", flush=True)
            return 143
        w = sgd_step(w, step, x, y)
        step += 1
        if args.trace_steps:
            trace(control, event="step", attempt=attempt, step=step)
        if args.step_ms:
            time.sleep(args.step_ms / 1000)
        if args.every and step % args.every == 0:
            commit(step)
    if control is not None:
        (control / "result.json").write_text(json.dumps({"w": [float(v) for v in w], "attempt": attempt}))
    trace(control, event="done", attempt=attempt, step=step)
    print(f"done after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
