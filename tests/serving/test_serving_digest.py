"""A replica loads exactly the bytes whose digest it checked: a file swapped after the check is not loaded."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from polycloud.errors import PermanentError
from polycloud.serving import model as serving_model
from polycloud.serving.model import load_model


def test_a_file_swapped_after_the_digest_check_is_not_what_gets_loaded(
    iris_path: Path, cancer_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(shutil.copy(iris_path, tmp_path / "model.onnx"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    checked = serving_model._read_checked

    def then_swap(target: Path, expected: str | None) -> tuple[bytes, str]:
        result = checked(target, expected)
        shutil.copy(cancer_path, target)  # an attacker replaces the file right after the check
        return result

    monkeypatch.setattr(serving_model, "_read_checked", then_swap)
    loaded = load_model(path, digest)
    assert loaded.info.sha256 == digest
    assert [(i.name, i.shape) for i in loaded.info.inputs] == [("input", (-1, 4))]  # iris, not cancer


def test_a_replaced_file_fails_its_pinned_digest(iris_path: Path, cancer_path: Path, tmp_path: Path) -> None:
    path = Path(shutil.copy(iris_path, tmp_path / "model.onnx"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    shutil.copy(cancer_path, path)
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        load_model(path, digest)
