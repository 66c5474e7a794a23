"""A service whose model is a URI: fetched and its digest pinned at apply, or refused with the reason
before any revision is recorded (issue 18: such a revision used to crash-loop while status said ready)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import EXAMPLE_MODEL

from polycloud.catalog import load_catalog
from polycloud.errors import UserError
from polycloud.services.applying import FleetService
from polycloud.services.documents import fleet_to_documents
from polycloud.spec import load_fleet
from polycloud.state import Store

CLUSTER: dict[str, Any] = {
    "apiVersion": "polycloud/v1",
    "kind": "Cluster",
    "metadata": {"name": "home"},
    "spec": {
        "provider": "dc-home",
        "region": "home",
        "location": {"lat": 38.7, "lon": -9.1, "jurisdiction": "EU"},
        "instances": [{"name": "cpu", "vcpus": 8, "memoryGiB": 32, "hourlyUSD": 0.1}],
    },
}


def service(model: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": "species"},
        "spec": {"model": model, "resources": {"vcpus": 1, "memoryGiB": 1}, "replicas": 1},
    }


@pytest.fixture
def models_site(tmp_path: Path) -> Iterator[str]:
    """An HTTP server (the standard library's) serving a folder holding the example model."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "iris.onnx").write_bytes(EXAMPLE_MODEL.read_bytes())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetService]:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield FleetService(store, load_catalog(), model_cache=tmp_path / "models")
    store.close()


def apply(fleet: FleetService, model: dict[str, str]) -> Any:
    spec = Path(fleet.model_cache or ".").parent / "fleet.yaml"
    spec.write_text(yaml.safe_dump_all([CLUSTER, service(model)]))
    documents = fleet_to_documents(load_fleet([spec], fleet.catalog))
    return fleet.apply(documents, author="test", message="uri", dry_run=False)


def test_a_uri_model_is_fetched_once_and_its_digest_pinned(fleet: FleetService, models_site: str) -> None:
    digest = hashlib.sha256(EXAMPLE_MODEL.read_bytes()).hexdigest()

    apply(fleet, {"uri": f"{models_site}/iris.onnx"})

    [workload] = fleet.store.current()
    assert workload.spec["spec"]["model"] == {
        "uri": f"{models_site}/iris.onnx",
        "sha256": digest,
        "path": None,
    }
    cached = fleet.model_cache / f"{digest}.onnx" if fleet.model_cache else None
    assert cached is not None and cached.read_bytes() == EXAMPLE_MODEL.read_bytes()


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ({"uri": "https://no-such-host.invalid/model.onnx"}, "cannot fetch https://no-such-host.invalid"),
        ({"uri": "{site}/missing.onnx"}, "HTTP 404"),
        ({"uri": "{site}/iris.onnx", "sha256": "0" * 64}, "not the pinned " + "0" * 64),
        ({"uri": "s3://models/iris.onnx"}, "scheme 's3' is not one of https, http, file"),
    ],
)
def test_a_uri_model_that_cannot_be_fetched_is_refused_before_any_revision(
    fleet: FleetService, models_site: str, model: dict[str, str], reason: str
) -> None:
    model = {k: v.replace("{site}", models_site) for k, v in model.items()}

    with pytest.raises(UserError) as refused:
        apply(fleet, model)

    assert str(refused.value).startswith("Service species: ") and reason in str(refused.value)
    assert fleet.store.current() == []
    assert not any(p.suffix == ".part" for p in (fleet.model_cache or Path()).glob("*"))


def test_a_file_uri_works_like_a_path(fleet: FleetService, tmp_path: Path) -> None:
    apply(fleet, {"uri": EXAMPLE_MODEL.resolve().as_uri()})

    assert fleet.store.current()[0].spec["spec"]["model"]["sha256"]
