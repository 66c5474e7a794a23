"""Workload identity token files of local replicas and jobs, as Kubernetes projects service-account
tokens: written by the control plane before the process starts, named by `POLYCLOUD_IDENTITY_TOKEN_FILE`
in its environment, replaced (atomically, 0600) once past half their life by the driver's listings."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from polycloud.errors import PolycloudError
from polycloud.pki import workload as wl

_log = logging.getLogger(__name__)


class LocalIdentity:
    """The token files of one cluster of a home; does nothing without an issuer."""

    def __init__(self, tokens: wl.WorkloadTokens | None, home: Path, cluster: str) -> None:
        self.tokens = tokens
        self.cluster = cluster
        self._replicas = home / "identity" / cluster

    def replica_token(self, replica_id: str) -> Path:
        return self._replicas / replica_id / wl.TOKEN_FILE

    def issue(self, kind: wl.Kind, name: str, revision: int, path: Path) -> dict[str, str]:
        """Write a fresh token to `path`; the variables that point the workload at it (none without an
        issuer).

        Raises:
            PermanentError: The workload or its cluster is not declared (no identity to give).
        """
        if self.tokens is None:
            return {}
        wl.write_token(path, self.tokens.token(kind, name, revision, self.cluster))
        return {wl.TOKEN_ENV: str(path)}

    def refresh(self, kind: wl.Kind, name: str, revision: int, path: Path) -> None:
        """Replace the token at `path` when past half its life; a failure is logged, never raised (the
        current token stays valid until it expires, and the next listing tries again)."""
        if self.tokens is None or not path.parent.is_dir():
            return
        try:
            wl.refresh(self.tokens, path, kind, name, revision, self.cluster)
        except (PolycloudError, OSError) as e:
            _log.warning("identity token of %s %s in %s not renewed: %s", kind, name, self.cluster, e)

    def forget_replicas(self, keep: set[str]) -> None:
        """Remove the token folders of replicas that are gone."""
        if not self._replicas.is_dir():
            return
        for folder in self._replicas.iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
