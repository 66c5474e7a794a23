"""Carrying checkpoints: only committed files travel, copies are verified, torn or partial ones discarded."""

from __future__ import annotations

from pathlib import Path

from polycloud.controller import checkpoints


def make_checkpoint(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "ckpt.npz").write_bytes(b"weights" * 100)
    (root / "meta").mkdir()
    (root / "meta" / "step.json").write_text('{"step": 40}')
    (root / ".ckpt.npz.tmp").write_bytes(b"half a write")  # a write cut short: uncommitted
    (root / "other.tmp").write_bytes(b"also uncommitted")


def test_carry_copies_only_committed_files_with_a_manifest(tmp_path: Path) -> None:
    src, dst = tmp_path / "a" / "checkpoint", tmp_path / "b" / "checkpoint"
    make_checkpoint(src)
    dst.mkdir(parents=True)
    (dst / "stale.npz").write_bytes(b"an older run's checkpoint")

    carried = checkpoints.carry(src, dst)

    assert carried == checkpoints.Carried(files=2, bytes=700 + len('{"step": 40}'))
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == [
        checkpoints.MANIFEST,
        "ckpt.npz",
        "meta/step.json",
    ]
    assert checkpoints.prepare(dst) is None  # verified against the manifest, which is then dropped
    assert not (dst / checkpoints.MANIFEST).exists()
    assert (dst / "ckpt.npz").read_bytes() == (src / "ckpt.npz").read_bytes()


def test_a_carried_checkpoint_that_no_longer_matches_is_discarded_before_resume(tmp_path: Path) -> None:
    src, dst = tmp_path / "a" / "checkpoint", tmp_path / "b" / "checkpoint"
    make_checkpoint(src)
    checkpoints.carry(src, dst)
    (dst / "ckpt.npz").write_bytes(b"weights" * 50)  # torn after the copy (e.g. a disk fault)

    why = checkpoints.prepare(dst)

    assert why is not None and "did not match" in why
    assert checkpoints.committed_files(dst) == []


def test_a_partial_copy_never_becomes_the_checkpoint(tmp_path: Path) -> None:
    src, dst = tmp_path / "a" / "checkpoint", tmp_path / "b" / "checkpoint"
    make_checkpoint(src)
    dst.mkdir(parents=True)
    (dst / "ckpt.npz").write_bytes(b"previous good checkpoint")
    partial = dst.parent / f"{checkpoints.STAGING_PREFIX}cut-short"
    partial.mkdir()
    (partial / "ckpt.npz").write_bytes(b"weig")  # a copy interrupted by a crash

    assert checkpoints.prepare(dst) is None
    assert not partial.exists()
    assert (dst / "ckpt.npz").read_bytes() == b"previous good checkpoint"


def test_prepare_removes_uncommitted_files_before_an_attempt(tmp_path: Path) -> None:
    root = tmp_path / "checkpoint"
    make_checkpoint(root)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x").write_text("scratch")

    assert checkpoints.prepare(root) is None
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["ckpt.npz", "meta", "meta/step.json"]


def test_carrying_an_empty_or_missing_checkpoint_moves_nothing(tmp_path: Path) -> None:
    carried = checkpoints.carry(tmp_path / "missing", tmp_path / "b" / "checkpoint")
    assert carried.bytes == 0 and checkpoints.prepare(tmp_path / "b" / "checkpoint") is None
