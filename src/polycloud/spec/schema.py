"""The JSON Schema of spec v1, for editors (`polycloud schema`)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from polycloud.spec.models import Document


def fleet_json_schema() -> dict[str, Any]:
    """One schema accepting any spec v1 document (discriminated by `kind`)."""
    schema = TypeAdapter(Document).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "polycloud spec v1 document"
    return schema
