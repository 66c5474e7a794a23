"""Lifecycle events of a replica, one JSON object per line on stdout (the local driver keeps them).

    {"ts": "2025-01-01T12:00:00.123Z", "event": "ready", "replica": "fraud-aws-use1-0", ...}

Events: `loading`, `ready`, `stopping`, `stopped`, `failed`. Each carries the replica's identity, so a
line is understood on its own when logs of many replicas are merged.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def _timestamp(now: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{whole}.{int(now % 1 * 1000):03d}Z"


class EventLog:
    """Writes lifecycle events of one replica."""

    def __init__(self, identity: Mapping[str, Any], stream: TextIO | None = None) -> None:
        """Create the log.

        Args:
            identity: Fields added to every event (replica id, service, cluster, revision, ...).
            stream: Where lines go; stdout by default.
        """
        self._identity = dict(identity)
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line and flush it.

        Args:
            event: The event name.
            **fields: Event-specific fields (JSON-serialisable).
        """
        line = {"ts": _timestamp(time.time()), "event": event, **self._identity, **fields}
        stream = self._stream or sys.stdout
        stream.write(json.dumps(line, default=str) + "\n")
        stream.flush()
