"""Fleet certificates for a cluster's replicas, kept in one TLS Secret per service.

Every replica of a service on a cluster shares one identity (`identities.replica`) and one Service
DNS name, so they share one certificate: the Secret `manifests.tls_secret_name(service)`, which their
pods mount (`manifests.TLS_DIR`). The key is made by the fleet CA's holder in a temporary folder that
is gone once the Secret is applied; it reaches the API server and the pods, never a log.

The Secret is read back from the API before every decision (at a replica's start, and in a renewal
pass every `RENEW_INTERVAL_S` or as soon as the fleet's trust bundle changes), so a control plane that
restarted, or a Secret deleted meanwhile, is handled like a first start. It is applied only when
something changed:
missing or unreadable, a certificate due for renewal (past half its life, or not from the CA that signs
now), or a trust bundle that is no longer the fleet's (a new CA: the certificate and key stay). The
kubelet refreshes mounted Secrets within about a minute and the model server reloads its files within
5 s, so renewed certificates reach running pods without a restart.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from polycloud.drivers.kubernetes import manifests as m
from polycloud.drivers.kubernetes.api import KubeApi
from polycloud.errors import PermanentError, TransientError
from polycloud.pki import identities
from polycloud.pki.contexts import FleetTls

RENEW_INTERVAL_S = 30.0
"""Least time between two renewal passes over a cluster's TLS Secrets."""

_log = logging.getLogger(__name__)


class ReplicaCertificates:
    """Issues and renews the TLS Secrets of one cluster's services. Not thread-safe: the driver
    calls it under its write lock."""

    def __init__(
        self, tls: FleetTls, api: KubeApi, target: m.Target, *, interval_s: float = RENEW_INTERVAL_S
    ) -> None:
        """Certificates from `tls`, Secrets through `api` in `target`'s namespace; `renew` looks at
        most every `interval_s`."""
        self._tls = tls
        self._api = api
        self._target = target
        self._interval_s = interval_s
        self._renewed_at = float("-inf")
        self._bundle_seen: str | None = None
        self._failing = False

    def ensure(self, service: str) -> bool:
        """Make the service's TLS Secret hold a certificate that is not due and the current trust
        bundle; returns whether it was applied.

        Raises:
            PermanentError: The fleet CA cannot issue, or the API refuses the Secret (RBAC).
            TransientError: The API is unreachable.
        """
        name = m.tls_secret_name(service)
        found = self._api.get("Secret", name)
        values = m.tls_values(found) if found is not None else {}
        certificate, key = values.get("tls.crt"), values.get("tls.key")
        bundle = self._tls.trust_bundle()
        if certificate is None or key is None or self._tls.due(certificate):
            certificate, key, bundle = self._issue(service)
            _log.info("cluster %s: service %s has a new certificate", self._target.cluster, service)
        elif values.get("ca.crt") == bundle:
            return False
        else:
            _log.info("cluster %s: service %s trusts a new CA bundle", self._target.cluster, service)
        self._api.apply(m.tls_secret(self._target, service, certificate, key, bundle))
        return True

    def renew(self, services: Iterable[str]) -> None:
        """`ensure` each service's Secret every `interval_s`, and at once when the fleet's trust bundle
        changed (a new CA must reach the pods before it signs); an error postpones the pass by
        `interval_s` (a certificate is renewed at half its life, so there is time): it is logged,
        never raised.

        Also renews the control plane's own client certificate when due, as the local driver does.
        """
        waited = time.monotonic() - self._renewed_at >= self._interval_s
        if self._failing and not waited:
            return
        try:
            bundle = self._tls.trust_bundle()  # held in memory by the fleet CA: cheap to ask often
            if bundle == self._bundle_seen and not waited:
                return
            self._renewed_at, self._bundle_seen = time.monotonic(), bundle
            for service in sorted(set(services)):
                self.ensure(service)
            self._tls.client_context()
        except (TransientError, PermanentError) as e:
            self._renewed_at, self._failing = time.monotonic(), True
            _log.warning("cluster %s: certificate renewal postponed: %s", self._target.cluster, e)
        else:
            self._failing = False

    def _issue(self, service: str) -> tuple[str, str, str]:
        """A fresh (certificate, key, trust bundle) for the service's replicas, named for its
        Service's DNS names."""
        identity = identities.replica(None, service, self._target.cluster)
        hosts = m.service_hosts(self._target, service)
        with tempfile.TemporaryDirectory(prefix="polycloud-tls-") as folder:
            files = self._tls.replica_files(identity, hosts, Path(folder))
            return files.cert.read_text(), files.key.read_text(), files.ca.read_text()
