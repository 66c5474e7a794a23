"""Models named by URI (`model.uri`): fetched once into a content-addressed cache, digest verified.

`apply` fetches a URI model before it records a revision, so a model that cannot be fetched, is not
the pinned bytes or is not a model is refused with the reason instead of becoming a revision whose
replicas crash-loop. The cache file is named by the sha256 of its bytes (`<cache>/<sha256>.onnx`), so
a replica (or a leader on another host, whose cache is empty) finds or re-fetches exactly the bytes the
revision pinned, whatever the URI serves later.

Schemes: `https`, `http` and `file`. A download is bounded in time and size and written to a temporary
file first, so a failed or partial fetch never leaves a cache entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from polycloud.errors import PermanentError

SCHEMES = ("https", "http", "file")
MAX_MODEL_BYTES = 8 * 2**30
"""Largest model fetched (8 GiB): past it the fetch stops and is refused."""
FETCH_TIMEOUT_S = 30.0
"""Connect and read timeout of a download (per network operation, not for the whole file)."""
_CHUNK = 1 << 20


class ModelFetchError(PermanentError):
    """A model URI that cannot be fetched, or whose bytes are not what was pinned."""


def is_uri(model: str) -> bool:
    """Whether a model reference is a URI (rather than a file path)."""
    return "://" in model


def default_model_cache() -> Path:
    """The cache of a process given none: a private folder in the system's temporary directory."""
    return Path(tempfile.gettempdir()) / f"polycloud-models-{os.getuid()}"


def cached_path(cache: Path, sha256: str) -> Path:
    """Where the model with this digest lives in `cache`."""
    return cache / f"{sha256}.onnx"


def fetch_model(uri: str, cache: Path, sha256: str | None = None) -> tuple[Path, str]:
    """The cached copy of the model at `uri` and its sha256, fetching it unless the pinned digest is
    cached already.

    Args:
        uri: An `https://`, `http://` or `file://` URI.
        cache: The cache folder (created 0700 when missing).
        sha256: The digest the bytes must have; None: whatever they are (the caller pins it).

    Raises:
        ModelFetchError: An unsupported scheme, an unreachable host, an HTTP error, a file over
            `MAX_MODEL_BYTES`, or bytes whose digest is not `sha256` — the message says which.
    """
    if sha256 is not None and cached_path(cache, sha256).is_file():
        return cached_path(cache, sha256), sha256
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in SCHEMES:
        raise ModelFetchError(f"cannot fetch {uri}: scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache, prefix=".fetch-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _download(uri, scheme, out)
        if sha256 is not None and digest != sha256:
            raise ModelFetchError(f"{uri} has sha256 {digest}, not the pinned {sha256}")
        final = cached_path(cache, digest)
        os.replace(temporary, final)
        return final, digest
    finally:
        Path(temporary).unlink(missing_ok=True)


def _download(uri: str, scheme: str, out: BinaryIO) -> str:
    digest = hashlib.sha256()
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > MAX_MODEL_BYTES:
            raise ModelFetchError(f"cannot fetch {uri}: larger than {MAX_MODEL_BYTES} bytes")
        digest.update(chunk)
        out.write(chunk)

    if scheme == "file":
        try:
            with open(unquote(urlsplit(uri).path), "rb") as source:
                while chunk := source.read(_CHUNK):
                    take(chunk)
        except OSError as e:
            raise ModelFetchError(f"cannot fetch {uri}: {e.strerror or e}") from e
        return digest.hexdigest()
    try:
        with httpx.stream("GET", uri, timeout=FETCH_TIMEOUT_S, follow_redirects=True) as answer:
            if answer.status_code != 200:
                raise ModelFetchError(f"cannot fetch {uri}: HTTP {answer.status_code}")
            for chunk in answer.iter_bytes(_CHUNK):
                take(chunk)
    except httpx.HTTPError as e:
        raise ModelFetchError(f"cannot fetch {uri}: {type(e).__name__}: {e}") from e
    return digest.hexdigest()
