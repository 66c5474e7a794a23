"""`ApiClient`: one method per API call; HTTP failures become polycloud errors with the server's reason."""

from __future__ import annotations

from typing import Any

import httpx

from polycloud.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    PolycloudError,
    TransientError,
    UserError,
)


class ApiClient:
    """Talks to one control plane at `base_url` with a bearer token."""

    def __init__(self, base_url: str, token: str | None, *, timeout_s: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def health(self) -> bool:
        try:
            return self._http.get("/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")  # type: ignore[no-any-return]

    def plan(self, documents: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/plan", {"documents": documents})  # type: ignore[no-any-return]

    def apply(self, documents: list[dict[str, Any]], *, dry_run: bool, message: str = "") -> dict[str, Any]:
        body = {"documents": documents, "dryRun": dry_run, "message": message}
        return self._call("POST", "/apply", body)  # type: ignore[no-any-return]

    def history(self, workload: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/workloads/{workload}/history")  # type: ignore[no-any-return]

    def rollback(self, workload: str, to: int | None) -> dict[str, Any]:
        return self._call("POST", f"/workloads/{workload}/rollback", {"to": to})  # type: ignore[no-any-return]

    def events(self, workload: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if workload:
            params["workload"] = workload
        return self._call("GET", "/events", params=params)  # type: ignore[no-any-return]

    def inject_fault(self, cluster: str, kind: str, **fields: Any) -> None:
        self._call("POST", "/faults", {"cluster": cluster, "kind": kind, **fields})

    def clear_faults(self, cluster: str) -> None:
        self._call("DELETE", f"/faults/{cluster}")

    def shutdown(self) -> None:
        self._call("POST", "/shutdown")

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.TimeoutException as e:
            raise TransientError(f"control plane at {self.base_url} did not answer in time") from e
        except httpx.HTTPError as e:
            raise TransientError(f"control plane at {self.base_url} is not reachable: {e}") from e
        if response.status_code < 400:
            return response.json()
        raise error_from(response)


def error_from(response: httpx.Response) -> PolycloudError:
    """The polycloud error matching an HTTP error answer, carrying the server's reason."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    reason = str(data.get("error") or data.get("detail") or response.text or response.reason_phrase)
    issues = data.get("issues") if isinstance(data, dict) else None
    if issues:
        reason += "\n" + "\n".join(f"  {i}" for i in issues)
    code = response.status_code
    if code in (401, 403):
        return UserError(f"not allowed ({code}): {reason}")
    if code == 404:
        return NotFoundError(reason)
    if code == 409:
        return ConflictError(reason)
    if code < 500:
        return UserError(reason)
    if code == 503:
        return TransientError(reason)
    return PermanentError(f"control plane error ({code}): {reason}")
