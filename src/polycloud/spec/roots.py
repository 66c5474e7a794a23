"""Model files confined to allowed folders: the spec file's own folder, plus any the operator allows.

A path is checked once symlinks and `..` are resolved, so neither a `../../etc/passwd` nor a link in
the spec folder that points outside it gets through. The digest pinned at apply then guarantees that
the bytes a replica loads are the bytes that were checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ROOTS_VARIABLE = "POLYCLOUD_MODEL_ROOTS"


def outside_roots(path: str, roots: Sequence[Path]) -> str | None:
    """Why model file `path` is not allowed, or None when it lies under one of `roots` (or none is set)."""
    if not roots:
        return None
    real = Path(path).resolve()
    if any(real.is_relative_to(root.resolve()) for root in roots):
        return None
    shown = f"{path} (really {real})" if str(real) != path else path
    folders = ", ".join(str(r) for r in roots)
    return (
        f"model file {shown} is outside the allowed folders ({folders}); move it under the spec's "
        f"folder or add its folder to {ROOTS_VARIABLE}"
    )
