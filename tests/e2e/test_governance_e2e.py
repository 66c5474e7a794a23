"""Tokens, project scoping and the audit trail as a user meets them, on a real control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.e2e.conftest import Polycloud
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e


def write_projects(root: Path, model: Path) -> Path:
    """One site and two single-replica services: alpha in project alpha, beta in project beta."""
    fleet = Fleet(
        root, model, ("acme",), (ServiceDecl("alpha", ("acme",), 1), ServiceDecl("beta", ("acme",), 1))
    )
    docs = fleet.documents()
    for doc in docs:
        if doc["kind"] == "Service":
            doc["metadata"]["labels"] = {"project": doc["metadata"]["name"]}
    path = root / "projects.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_a_project_token_is_confined_and_everything_is_audited(polycloud: Polycloud, model: Path) -> None:
    polycloud.ok("apply", write_projects(polycloud.root, model), "--yes")
    made = polycloud.ok("token", "create", "--role", "deployer", "--project", "alpha", "--expires", "1d")
    secret = made.stdout.strip()
    assert secret.startswith("pc_") and secret not in polycloud.ok("token", "list", "--json").stdout

    admin_env = dict(polycloud.env)
    polycloud.env["POLYCLOUD_TOKEN"] = secret
    try:
        seen = json.loads(polycloud.ok("status", "--json").stdout)
        assert [s["name"] for s in seen["services"]] == ["alpha"]
        rc, out, err = polycloud.cli("rollback", "beta", "--to", "1", "--no-wait")
        assert rc == 1 and "not allowed (403)" in err and "Traceback" not in out + err
        rc, _, err = polycloud.cli("audit", "verify")
        assert rc == 1 and "403" in err  # the trail is for fleet-wide admins
    finally:
        polycloud.env = admin_env

    verified = polycloud.ok("audit", "verify")
    assert "audit trail intact" in verified.stdout
    entries = json.loads(polycloud.ok("audit", "log", "--json").stdout)
    seen_actions = {(e["action"], e["outcome"], e["target"]) for e in entries}
    assert ("apply", "ok", "fleet") in seen_actions
    assert ("auth.forbidden", "denied", "POST /api/v1/workloads/beta/rollback") in seen_actions
    created = next(e for e in entries if e["action"] == "token.create")
    assert created["detail"]["project"] == "alpha" and created["actor"] == "admin#1"
    assert all(secret not in json.dumps(e) for e in entries)
