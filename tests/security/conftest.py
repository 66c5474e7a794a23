"""A live control plane to probe, as a careful attacker on the same host would find it.

`probed` starts the real thing through the real CLI under the common umask 022: `polycloud secret set`
plants a secret (which starts the control plane in the background), `apply` runs a service that reads
it, and a little inference goes through the gateway. Every CLI output is kept in `Probed.outputs` for
the leak check. The fixture is per module: the API fuzz and the leak and permission checks share one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import IRIS_MODEL, POLYCLOUD, CliResult, Polycloud
from tests.e2e.fleets import Fleet, ServiceDecl

from polycloud.homefiles import write_token
from polycloud.state import Store

SECRET_NAME = "api-key"
INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


@dataclass
class Probed:
    """One probed home: the CLI around it, the planted value, and every output seen so far."""

    polycloud: Polycloud
    fleet: Fleet
    secret: str
    store: Store
    outputs: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.polycloud.home

    def keep(self, result: CliResult) -> CliResult:
        self.outputs.extend((result.stdout, result.stderr))
        return result

    def admin_token(self) -> str:
        """A fresh fleet-wide admin token (fuzzed calls may revoke the ones before)."""
        secret, _ = self.store.create_token(name="probe", role="admin", project=None, expires_at=None)
        return secret

    def restore_admin(self) -> None:
        """Give the home a lasting admin token again: the fuzz may have revoked the one `up` wrote."""
        write_token(self.home, self.admin_token())
        self.polycloud._api = None  # its cached client holds the old token

    def api_url(self) -> str:
        info = self.polycloud.runinfo()
        assert info is not None, "no control plane runs"
        return str(info["api_url"])

    def gateway_url(self) -> str:
        info = self.polycloud.runinfo()
        assert info is not None, "no control plane runs"
        return str(info["gateway_url"])


def set_secret(polycloud: Polycloud, name: str, value: str) -> CliResult:
    """`printf VALUE | polycloud secret set NAME`: the value never on a command line."""
    done = subprocess.run(
        [str(POLYCLOUD), "secret", "set", name],
        cwd=polycloud.root,
        env=polycloud.env,
        input=value,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probed]:
    root = tmp_path_factory.mktemp("probed")
    model = Path(shutil.copy(IRIS_MODEL, root / "iris.onnx"))
    service = ServiceDecl("alpha", ("acme",), replicas=1, secrets={"API_KEY": SECRET_NAME})
    fleet = Fleet(root, model, ("acme",), (service,))
    polycloud = Polycloud(root)
    before = os.umask(0o022)  # what most users have: polycloud must not depend on a tight one
    try:
        value = f"planted-{uuid.uuid4().hex}"
        planted = set_secret(polycloud, SECRET_NAME, value)
        assert planted.rc == 0, planted.stderr
        with Store.open(f"sqlite:///{polycloud.home / 'state.db'}", migrate=False) as store:
            probe = Probed(polycloud, fleet, value, store)
            probe.keep(planted)
            probe.keep(polycloud.ok("apply", fleet.write(), "--yes"))
            polycloud.expect_exactly(fleet)
            with httpx.Client(trust_env=False, timeout=30.0) as client:
                for _ in range(20):
                    answer = client.post(f"{probe.gateway_url()}/v2/models/alpha/infer", json=INFER)
                    assert answer.status_code == 200, answer.text
                    probe.outputs.append(answer.text)
            yield probe
    finally:
        os.umask(before)
        errors = polycloud.close()
        assert not errors, errors
