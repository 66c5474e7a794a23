"""Required labels, approved model digests and required secrets: each rule passes and fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

from polycloud.catalog import Catalog

from .support import CLUSTERS, DIGEST_A, DIGEST_B, SERVICE, check, line_of, only, policy, write


def test_workloads_carrying_every_required_label_pass(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy("requiredLabels: [team, env]"))
    assert check(catalog, path, planned=True).violations == []


def test_a_missing_label_names_the_line_of_the_labels_and_the_remedy(
    catalog: Catalog, tmp_path: Path
) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy("requiredLabels: [team, owner]"))
    v = only(check(catalog, path))
    assert (v.rule, v.field, v.line) == ("requiredLabels[1]", "metadata.labels", line_of(path, "name: api"))
    assert v.message == "lacks label owner"
    assert v.remedy == "add label owner to metadata.labels"


def test_an_approved_pinned_digest_passes(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy(f"approvedModels: [{DIGEST_A}]"))
    assert check(catalog, path).violations == []


def test_an_unapproved_digest_points_at_the_sha256(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_B, policy(f"approvedModels: [{DIGEST_A}]"))
    v = only(check(catalog, path))
    assert (v.rule, v.field, v.line) == ("approvedModels", "spec.model.sha256", line_of(path, "model:"))
    assert v.remedy.startswith(f"pin model sha256 to one of {DIGEST_A}")


def test_a_model_uri_without_digest_cannot_be_approved(catalog: Catalog, tmp_path: Path) -> None:
    text = (SERVICE % DIGEST_A).replace(f', sha256: "{DIGEST_A}"', "")
    path = write(tmp_path, CLUSTERS, text, policy(f"approvedModels: [{DIGEST_A}]"))
    assert "has no sha256" in only(check(catalog, path)).message


def test_a_model_file_is_judged_by_the_digest_the_caller_computed(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model bytes")
    digest = hashlib.sha256(b"model bytes").hexdigest()
    text = (SERVICE % DIGEST_A).replace(
        f'{{uri: "s3://models/api.onnx", sha256: "{DIGEST_A}"}}', "{path: m.onnx}"
    )
    path = write(tmp_path, CLUSTERS, text, policy(f"approvedModels: [{digest}]"))
    assert check(catalog, path, digests={"api": digest}).violations == []
    v = only(check(catalog, path, digests={"api": DIGEST_B}))
    assert v.field == "spec.model.path"
    unknown = check(catalog, path)
    assert unknown.violations == []
    assert [n.rule for n in unknown.notes] == ["approvedModels"]


def test_existing_required_secrets_pass(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy("requiredSecrets: [hf-token]"))
    assert check(catalog, path, secrets={"hf-token", "other"}).violations == []


def test_a_missing_secret_points_at_the_policy_entry(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy("requiredSecrets: [hf-token, db-pass]"))
    v = only(check(catalog, path, secrets={"hf-token"}))
    assert (v.kind, v.document, v.field) == ("Policy", "org", "spec.requiredSecrets[1]")
    assert v.line == line_of(path, "requiredSecrets")
    assert v.remedy == "create it: polycloud secret set db-pass"


def test_secrets_without_a_store_are_a_note_not_a_violation(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS, SERVICE % DIGEST_A, policy("requiredSecrets: [hf-token]"))
    report = check(catalog, path)
    assert report.violations == []
    (note,) = report.notes
    assert "cannot check" in note.message
    assert "hf-token" in note.message
