"""Alerts to a webhook (`POLYCLOUD_ALERT_WEBHOOK`): one JSON POST per alert, from a worker thread.

    {"kind": "anomaly" | "incident" | "slo-burn", "summary": "...", "detail": {...}}

A failed delivery is logged (once per distinct error) and dropped; alerting never blocks the
observer.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

log = logging.getLogger(__name__)
TIMEOUT_S = 3.0


class Webhook:
    """Posts alerts to one URL."""

    def __init__(self, url: str, *, client: httpx.Client | None = None) -> None:
        """Post to `url` (http or https).

        Raises:
            ValueError: `url` is not an http(s) URL.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"POLYCLOUD_ALERT_WEBHOOK must be an http(s) URL, not {url!r}")
        self.url = url
        self._client = client or httpx.Client(timeout=TIMEOUT_S)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-webhook")
        self._last_error: str | None = None
        self.sent = 0

    def send(self, kind: str, summary: str, detail: dict[str, Any]) -> None:
        """Queue one alert."""
        self._executor.submit(self._post, {"kind": kind, "summary": summary, "detail": detail})

    def _post(self, body: dict[str, Any]) -> None:
        try:
            self._client.post(self.url, json=body).raise_for_status()
            self.sent += 1
            self._last_error = None
        except httpx.HTTPError as e:
            message = f"{type(e).__name__}: {e}"
            if message != self._last_error:
                log.warning("alert webhook %s failed: %s", self.url, message)
                self._last_error = message

    def close(self) -> None:
        """Deliver what is queued (bounded by the timeout) and stop."""
        self._executor.shutdown(wait=True)
        self._client.close()
