"""`StoreSpecs`: the declared specs a driver may read (`drivers.base.DeclaredSpecs`), from the store."""

from __future__ import annotations

from polycloud.errors import NotFoundError
from polycloud.spec.models import Cluster, Service
from polycloud.state import Store


class StoreSpecs:
    """Clusters and Service revisions as recorded; validated into spec models on each read."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def cluster(self, name: str) -> Cluster | None:
        found = next((d for d in self._store.documents("Cluster") if d.name == name), None)
        return Cluster.model_validate(found.spec) if found is not None else None

    def service(self, name: str, revision: int) -> Service | None:
        try:
            record = self._store.revision(name, revision)
        except NotFoundError:
            return None
        return Service.model_validate(record.spec) if record.kind == "Service" else None
