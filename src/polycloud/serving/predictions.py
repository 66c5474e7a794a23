"""Sampled model outputs, for drift detection by the control plane (`polycloud.obs.drift`).

Every `every`-th inference, the replica keeps up to `per_request` values of the first numeric output
in a bounded ring (`size` values). The control plane reads them at `GET /_polycloud/predictions`
and compares their distribution with a reference window (population stability index). The cost on
the inference thread is a counter increment, and on sampled requests a slice and a ring append.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from polycloud.serving.model import OutputTensor

NUMERIC_KINDS = frozenset("biuf")


class PredictionSampler:
    """A bounded, thread-safe sample of recent output values."""

    def __init__(self, *, every: int = 4, per_request: int = 8, size: int = 4096) -> None:
        """Keep values from one inference in `every`, at most `per_request` each, `size` in all."""
        if every < 1 or per_request < 1 or size < 1:
            raise ValueError("every, per_request and size must be at least 1")
        self._every = every
        self._per_request = per_request
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seen = 0
        self.sampled = 0
        """Inferences sampled so far."""
        self.total = 0
        """Values kept so far, the ones the ring has dropped included."""

    def observe(self, outputs: Sequence[OutputTensor]) -> None:
        """Consider one inference's outputs (called on an inference thread)."""
        self._seen += 1  # a lost increment between threads only shifts the sampling phase
        if self._seen % self._every:
            return
        for output in outputs:
            array = output.array
            if isinstance(array, np.ndarray) and array.dtype.kind in NUMERIC_KINDS and array.size:
                values = array.reshape(-1)[: self._per_request].astype(float).tolist()
                with self._lock:
                    self._values.extend(values)
                    self.sampled += 1
                    self.total += len(values)
                return

    def snapshot(self) -> tuple[list[float], int]:
        """The values kept, oldest first, and `total`."""
        with self._lock:
            return list(self._values), self.total
