"""Workload identity tokens for a cluster's replicas, one Secret per service (`manifests.
identity_secret_name`), mounted without subPath at `manifests.IDENTITY_DIR`: the kubelet swaps renewed
tokens into running pods, as it does for projected service-account tokens.

Like the TLS Secrets (`certifying`), the Secret is read back before every decision, at a replica's
start and in a renewal pass every `RENEW_INTERVAL_S`, and applied only when the token is missing or
past half its life; the kubelet's refresh (about a minute) is far inside the half life left.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterable

from polycloud.drivers.kubernetes import manifests as m
from polycloud.drivers.kubernetes.api import KubeApi
from polycloud.errors import PermanentError, TransientError
from polycloud.pki import workload as wl

RENEW_INTERVAL_S = 30.0
"""Least time between two renewal passes over a cluster's identity Secrets."""

_log = logging.getLogger(__name__)


def identity_secret(target: m.Target, service: str, token: str) -> m.Manifest:
    """The service's identity Secret: its replicas' token under key `token` (applied by the driver
    only; the owner labels let garbage collection remove it with the service)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": m.identity_secret_name(service),
            "namespace": target.namespace,
            "labels": {**m.owner_labels(target.cluster), m.SERVICE_LABEL: service},
        },
        "type": "Opaque",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


class ReplicaTokens:
    """Issues and renews the identity Secrets of one cluster's services. Not thread-safe: the driver
    calls it under its write lock."""

    def __init__(
        self,
        tokens: wl.WorkloadTokens,
        api: KubeApi,
        target: m.Target,
        *,
        interval_s: float = RENEW_INTERVAL_S,
    ) -> None:
        self._tokens = tokens
        self._api = api
        self._target = target
        self._interval_s = interval_s
        self._renewed_at = float("-inf")

    def ensure(self, service: str, revision: int) -> bool:
        """Make the service's Secret hold a token not yet due; returns whether it was applied.

        Raises:
            PermanentError: The service or cluster is not declared, or the API refuses the Secret.
            TransientError: The API is unreachable.
        """
        found = self._api.get("Secret", m.identity_secret_name(service))
        current = m.tls_values(found).get("token") if found is not None else None
        if current and not wl.due(current):
            return False
        token = self._tokens.token("service", service, revision, self._target.cluster)
        self._api.apply(identity_secret(self._target, service, token))
        _log.info("cluster %s: service %s has a new identity token", self._target.cluster, service)
        return True

    def renew(self, services: Iterable[tuple[str, int]]) -> None:
        """`ensure` each (service, revision) every `interval_s`; errors are logged, never raised (a
        token is renewed at half its life, so there is time)."""
        if time.monotonic() - self._renewed_at < self._interval_s:
            return
        self._renewed_at = time.monotonic()
        for service, revision in sorted(dict(services).items()):
            try:
                self.ensure(service, revision)
            except (TransientError, PermanentError) as e:
                _log.warning(
                    "cluster %s: identity token of %s not renewed: %s", self._target.cluster, service, e
                )
