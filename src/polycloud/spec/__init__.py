"""Spec v1: typed documents, line-accurate loading and whole-fleet checks.

`load_fleet(paths, catalog)` is the one call most code needs: it returns a valid `Fleet` or raises a
`SpecError` listing every problem as `FILE:LINE:COL: path.to.field: message`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.spec.fleet import Fleet, Positions, dotted
from polycloud.spec.loading import raise_if, read_documents, spec_files
from polycloud.spec.references import check_references

__all__ = ["Fleet", "Positions", "dotted", "load_fleet", "spec_files"]


def load_fleet(paths: Iterable[str | Path], catalog: Catalog, *, model_roots: tuple[Path, ...] = ()) -> Fleet:
    """Read, validate and cross-check every document in `paths` (files or folders).

    Model files must lie under their spec file's folder or one of `model_roots` (POLYCLOUD_MODEL_ROOTS).
    """
    fleet, issues = read_documents(paths, model_roots)
    issues.extend(check_references(fleet, catalog))
    raise_if(issues)
    return fleet
