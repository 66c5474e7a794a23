"""Carrying a job's checkpoint between clusters without ever handing it a torn one.

The contract with the job (docs/spec.md, "Checkpoints"): it commits a checkpoint by writing a temporary
file in `$POLYCLOUD_CHECKPOINT_DIR`, fsyncing it and renaming it over the final name. Whatever is named
`.*` or `*.tmp` is uncommitted: polycloud never carries it and deletes it before an attempt starts, so a
write cut short by a preemption is never seen again.

polycloud's side: `carry` copies the committed files into a staging folder next to the destination,
with a manifest of sizes and sha256 digests, verifies the copy against it and only then renames the
staging folder into place; a copy cut short stays a staging folder and is discarded. `prepare`, run just
before an attempt starts, verifies a carried checkpoint against its manifest once more and discards it
when it does not match, so the job resumes from a verified checkpoint or starts from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from polycloud.errors import TransientError

MANIFEST = ".polycloud-manifest.json"
STAGING_PREFIX = ".checkpoint-"
BYTES_PER_GB = 1e9
"""Egress is priced per GB; cloud price lists use decimal gigabytes for transfer."""


@dataclass(frozen=True)
class Carried:
    """What `carry` moved."""

    files: int
    bytes: int


def is_committed(path: Path, root: Path) -> bool:
    """Whether `path` (inside `root`) is part of a committed checkpoint under the contract."""
    parts = path.relative_to(root).parts
    return not any(p.startswith(".") for p in parts) and not path.name.endswith(".tmp")


def committed_files(root: Path) -> list[Path]:
    """Every committed regular file under `root`, sorted (none when `root` does not exist)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_committed(p, root))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_of(root: Path) -> dict[str, dict[str, int | str]]:
    """`{relative path: {size, sha256}}` of the committed files under `root`."""
    return {
        str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": sha256_of(p)}
        for p in committed_files(root)
    }


def matches(root: Path, manifest: dict[str, dict[str, int | str]]) -> bool:
    """Whether the committed files under `root` are exactly those of `manifest`, byte for byte."""
    return manifest_of(root) == manifest


def carry(src: Path, dst: Path) -> Carried:
    """Replace the checkpoint at `dst` with the committed files of `src`, verified, or leave it alone.

    Raises:
        TransientError: The copy did not match the source (it is discarded; `dst` is unchanged).
    """
    discard_staging(dst)
    manifest = manifest_of(src)
    staging = dst.parent / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    for name in manifest:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, target)
        _fsync(target)
    if not matches(staging, manifest):
        shutil.rmtree(staging, ignore_errors=True)
        raise TransientError(f"checkpoint copy from {src} did not match its source; discarded")
    (staging / MANIFEST).write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    _fsync(staging / MANIFEST)
    if dst.exists():
        old = dst.parent / f"{STAGING_PREFIX}old-{uuid.uuid4().hex}"
        dst.rename(old)
        staging.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(dst)
    return Carried(len(manifest), sum(int(m["size"]) for m in manifest.values()))


def prepare(root: Path) -> str | None:
    """Make `root` safe to resume from: drop uncommitted files, verify a carried checkpoint.

    Returns:
        Why the checkpoint was discarded (the job then starts from scratch), or None.
    """
    discard_staging(root)
    root.mkdir(parents=True, exist_ok=True)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.name == MANIFEST or is_committed(path, root):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    ok = isinstance(manifest, dict) and matches(root, manifest)
    if not ok:
        for path in committed_files(root):
            path.unlink()
    manifest_path.unlink()  # the job writes new checkpoints from here on; the manifest was for the copy
    return None if ok else "the carried checkpoint did not match its manifest; discarded"


def clear(root: Path) -> None:
    """Empty `root` (created when missing): a run's first attempt starts from nothing."""
    discard_staging(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)


def discard_staging(dst: Path) -> None:
    """Delete copies cut short (staging folders) next to `dst`."""
    if dst.parent.is_dir():
        for leftover in dst.parent.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
