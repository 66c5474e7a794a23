"""Documents as they travel between CLI and control plane: validated JSON, turned back into a Fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polycloud.catalog import Catalog
from polycloud.errors import SpecError, SpecIssue
from polycloud.spec import Fleet
from polycloud.spec.fleet import Positions
from polycloud.spec.loading import add_document
from polycloud.spec.references import check_references


def fleet_to_documents(fleet: Fleet) -> list[dict[str, Any]]:
    """Every document as normalised JSON (defaults filled in, model paths absolute)."""
    return [doc.model_dump(mode="json") for doc in fleet.documents()]


def documents_to_fleet(documents: list[dict[str, Any]], catalog: Catalog) -> Fleet:
    """Validate documents received as JSON; errors name the document's index and field."""
    fleet = Fleet()
    issues: list[SpecIssue] = []
    for index, data in enumerate(documents):
        positions = Positions(file=f"document[{index}]", base_dir=Path("/"))
        add_document(data, positions, fleet, issues)
    issues.extend(check_references(fleet, catalog))
    if issues:
        raise SpecError(issues)
    return fleet
