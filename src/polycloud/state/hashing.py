"""Content hashes: one canonical digest per JSON document, so "did it change?" is a string compare."""

from __future__ import annotations

import hashlib
import json

from polycloud.errors import UserError


def canonical_json(obj: object) -> str:
    """Render `obj` as canonical JSON: sorted keys, no whitespace, UTF-8 text, no NaN or infinity.

    Args:
        obj: A plain JSON value (dicts with string keys, lists, strings, numbers, booleans, None).

    Returns:
        The canonical text; equal values always give equal text.

    Raises:
        UserError: `obj` holds something JSON cannot represent (a set, a datetime, NaN...).
    """
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UserError(f"not a plain JSON value: {e}") from e


def content_hash(obj: object) -> str:
    """The sha256 hex digest of `obj`'s canonical JSON (see `canonical_json`).

    Args:
        obj: A plain JSON value.

    Returns:
        64 lowercase hex characters.
    """
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
