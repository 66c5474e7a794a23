"""JSON logs with structlog, written by a background thread so that logging never blocks a request.

    {"event": "request", "level": "info", "timestamp": "2026-11-23T22:00:00.123Z",
     "request_id": "4bf9...", "trace_id": "4bf9...", "service": "fraud", "cluster": "aws-use1",
     "status": 200, "ms": 3.2}

`configure(stream)` sets structlog up once per process; `request_logger(name)` is the logger request
logs go to. A line costs the event loop one JSON encoding and one queue put.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from typing import Any, TextIO

import structlog


class QueuedWriter:
    """A line sink: `msg` appends to a deque; a daemon thread writes what gathered every `interval_s`.

    The thread is never woken per line: a wake-up per request would hand the GIL back and forth
    between it and the event loop on every answer, which costs far more than the write itself.
    """

    def __init__(self, stream: TextIO, *, interval_s: float = 0.2) -> None:
        """Write to `stream` from a thread of its own."""
        self._stream = stream
        self._lines: deque[str] = deque()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="json-logs", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def msg(self, message: str) -> None:
        """Queue one rendered line (thread-safe)."""
        self._lines.append(message)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=2)
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._drain()

    def _drain(self) -> None:
        lines = []
        while self._lines:
            lines.append(self._lines.popleft())
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # the stream is gone (closed at exit): logs are best effort


class _QueuedLogger:
    """The structlog "logger" at the end of the chain: every level method queues the rendered line."""

    def __init__(self, writer: QueuedWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.msg(message)

    info = debug = warning = error = critical = exception = log = msg


def configure(stream: TextIO, **static: Any) -> QueuedWriter:
    """Make every structlog logger of this process write JSON lines to `stream` (off the caller's
    thread), each carrying `static` fields (component, replica id, ...). Returns the writer."""
    writer = QueuedWriter(stream)
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if static:
        processors.append(_Static(static))
    processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        logger_factory=lambda *args: _QueuedLogger(writer),
        wrapper_class=structlog.make_filtering_bound_logger(20),
        cache_logger_on_first_use=True,
    )
    return writer


class _Static:
    """A processor adding fixed fields to every line."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in self._fields.items():
            event.setdefault(key, value)
        return event


def request_logger(name: str) -> Any:
    """The structlog logger request logs of `name` go to (JSON once `configure` ran)."""
    return structlog.get_logger(name)
