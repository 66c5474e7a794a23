"""`ApiClient`: one method per API call; HTTP failures become polycloud errors with the server's reason."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

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

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 60.0,
        trust: Path | None = None,
        project: str | None = None,
    ) -> None:
        """`trust`: a PEM certificate to accept besides the system's CAs (a self-signed server's);
        `project`: the project a person signed in by SSO acts in, when bound in several."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if project:
            headers["x-polycloud-project"] = project
        self.base_url = base_url.rstrip("/")
        tls = tls_context(trust, system_cas=urlsplit(self.base_url).scheme != "http")
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1", headers=headers, timeout=timeout_s, verify=tls
        )

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

    def flags(self) -> list[dict[str, Any]]:
        return self._call("GET", "/flags")  # type: ignore[no-any-return]

    def flag_history(self, name: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/flags/{name}/history")  # type: ignore[no-any-return]

    def set_flag_state(self, name: str, state: str) -> dict[str, Any]:
        return self._call("POST", f"/flags/{name}/state", {"state": state})  # type: ignore[no-any-return]

    def rollback_flag(self, name: str, to: int | None) -> dict[str, Any]:
        return self._call("POST", f"/flags/{name}/rollback", {"to": to})  # type: ignore[no-any-return]

    def rollouts(self, service: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if service:
            params["service"] = service
        return self._call("GET", "/rollouts", params=params)  # type: ignore[no-any-return]

    def lineage(self, name: str, depth: int) -> dict[str, Any]:
        path = f"/lineage/{quote(name, safe=':')}"
        return self._call("GET", path, params={"depth": depth})  # type: ignore[no-any-return]

    def control_rollout(self, service: str, action: str) -> dict[str, Any]:
        return self._call("POST", f"/rollouts/{service}/{action}")  # type: ignore[no-any-return]

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

    # training jobs

    def jobs_status(self) -> dict[str, Any]:
        return self._call("GET", "/jobs")  # type: ignore[no-any-return]

    def job_logs(self, name: str, tail: int = 100) -> list[str]:
        return self._call("GET", f"/jobs/{name}/logs", params={"tail": tail})["lines"]  # type: ignore[no-any-return]

    def cancel_job(self, name: str) -> None:
        self._call("POST", f"/jobs/{name}/cancel")

    def preempt_job(self, name: str, grace_s: float) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{name}/preempt", {"graceSeconds": grace_s})  # type: ignore[no-any-return]

    def secrets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/secrets")  # type: ignore[no-any-return]

    def set_secret(self, name: str, value: str, project: str | None) -> dict[str, Any]:
        params = {"project": project} if project else None
        return self._call("PUT", f"/secrets/{name}", {"value": value}, params=params)  # type: ignore[no-any-return]

    def delete_secret(self, name: str, project: str | None) -> None:
        self._call("DELETE", f"/secrets/{name}", params={"project": project} if project else None)

    def issue_certificate(self) -> dict[str, Any]:
        return self._call("POST", "/certificates")  # type: ignore[no-any-return]

    def rotate_authority(self) -> dict[str, Any]:
        return self._call("POST", "/certificates/rotate")  # type: ignore[no-any-return]

    def rotate_workload_key(self) -> dict[str, Any]:
        return self._call("POST", "/identity/rotate")  # type: ignore[no-any-return]

    def rotate_master_key(self) -> dict[str, Any]:
        return self._call("POST", "/secrets/rotate-master")  # type: ignore[no-any-return]

    def create_key(self, service: str, **limits: Any) -> dict[str, Any]:
        return self._call("POST", "/keys", {"service": service, **limits})  # type: ignore[no-any-return]

    def keys(self, service: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/keys", params={"service": service} if service else None)  # type: ignore[no-any-return]

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/keys/{key_id}")  # type: ignore[no-any-return]

    def create_token(
        self, *, role: str, project: str | None, expires: str | None, name: str | None
    ) -> dict[str, Any]:
        body = {"role": role, "project": project, "expires": expires, "name": name}
        return self._call("POST", "/tokens", body)  # type: ignore[no-any-return]

    def login_code(self) -> dict[str, Any]:
        """A single-use dashboard login code standing for this client's token."""
        return self._call("POST", "/session/codes")  # type: ignore[no-any-return]

    def tokens(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tokens")  # type: ignore[no-any-return]

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/tokens/{token_id}")  # type: ignore[no-any-return]

    def audit_log(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self._call("GET", "/audit", params=params)  # type: ignore[no-any-return]

    def verify_audit(self) -> dict[str, Any]:
        return self._call("GET", "/audit/verify")  # type: ignore[no-any-return]

    # cost showback and advice

    def cost(self, by: str = "service", since: str | None = None) -> dict[str, Any]:
        params = {"by": by, **({"since": since} if since else {})}
        return self._call("GET", "/cost", params=params)  # type: ignore[no-any-return]

    def cost_export(self, label: str, since: str | None = None) -> dict[str, Any]:
        params = {"label": label, **({"since": since} if since else {})}
        return self._call("GET", "/cost/export", params=params)  # type: ignore[no-any-return]

    def budgets(self) -> dict[str, Any]:
        return self._call("GET", "/cost/budgets")  # type: ignore[no-any-return]

    def advice(self) -> dict[str, Any]:
        return self._call("GET", "/advice")  # type: ignore[no-any-return]

    def slo(self) -> dict[str, Any]:
        """Every service's SLO report (`GET /api/v1/slo`)."""
        result: dict[str, Any] = self._call("GET", "/slo")
        return result

    def incidents(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Incidents, newest first, with their timelines (`GET /api/v1/incidents`)."""
        params: dict[str, Any] = {"limit": limit} if state is None else {"limit": limit, "state": state}
        result: list[dict[str, Any]] = self._call("GET", "/incidents", params=params)
        return result

    def anomalies(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Anomalies of the last `minutes`, newest first (`GET /api/v1/anomalies`)."""
        result: list[dict[str, Any]] = self._call("GET", "/anomalies", params={"minutes": minutes})
        return result

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


def tls_context(trust: Path | None, *, system_cas: bool = True) -> ssl.SSLContext:
    """The system's CAs, plus `trust` when given (POLYCLOUD_TLS_CERT: the control plane's own certificate).

    Without `system_cas` (for a control plane on plain HTTP, where no TLS connection is made) the context
    verifies certificates and host names as strictly but trusts only `trust`: loading the system's CAs
    would cost every CLI command about 50 ms for nothing.
    """
    context = ssl.create_default_context() if system_cas else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if trust is not None:
        try:
            context.load_verify_locations(cafile=str(trust))
        except (OSError, ssl.SSLError) as e:
            raise UserError(f"cannot use {trust} as a trusted certificate: {e}") from e
    return context


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
    violations = data.get("violations") if isinstance(data, dict) else None
    if code == 422 and isinstance(violations, list):
        # Imported here: the policy engine (and the spec models under it) is most of a second of every
        # CLI command's start, and only this answer needs it.
        from polycloud.policy import PolicyViolationError, Violation

        try:
            return PolicyViolationError([Violation.from_json(v) for v in violations])
        except (KeyError, TypeError, AttributeError):
            pass  # not the shape we know: fall back to the plain message
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
