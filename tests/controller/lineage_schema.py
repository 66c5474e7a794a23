"""Validate lineage events with the OpenLineage client's own models (the `openlineage-python` package).

`conforms(payload)` rebuilds a RunEvent from the JSON with the client's attrs classes, whose validators
check the run id is a UUID, the event time ISO 8601 with a time, the event type one of the spec's, and
every facet's producer and schema URL; the rebuilt event, serialised by the client, must equal the
payload exactly (standard facets with the spec's schema URLs; polycloud's own `polycloud_*` facets as
custom facets with extra properties).
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import base, parent_run
from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
from openlineage.client.serde import Serde

from polycloud.controller import lineage_events as ol


@attr.define
class CustomRunFacet(base.RunFacet):
    @staticmethod
    def _get_schema() -> str:
        return ol.CUSTOM_SCHEMA


@attr.define
class CustomDatasetFacet(base.DatasetFacet):
    @staticmethod
    def _get_schema() -> str:
        return ol.CUSTOM_SCHEMA


def _fields(facet: dict[str, Any]) -> dict[str, Any]:
    assert facet["_producer"] == ol.PRODUCER
    return {k: v for k, v in facet.items() if not k.startswith("_")}


def _run_facet(name: str, facet: dict[str, Any]) -> base.RunFacet:
    fields = _fields(facet)
    if name == "parent":
        run, job = fields["run"], fields["job"]
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run["runId"]),
            job=parent_run.Job(namespace=job["namespace"], name=job["name"]),
            producer=ol.PRODUCER,
        )
    if name == "errorMessage":
        return ErrorMessageRunFacet(producer=ol.PRODUCER, **fields)
    assert name.startswith("polycloud_"), name
    return CustomRunFacet(producer=ol.PRODUCER).with_additional_properties(**fields)  # type: ignore[return-value]


def _dataset_facet(name: str, facet: dict[str, Any]) -> base.DatasetFacet:
    fields = _fields(facet)
    if name == "version":
        return DatasetVersionDatasetFacet(producer=ol.PRODUCER, **fields)
    assert name.startswith("polycloud_"), name
    return CustomDatasetFacet(producer=ol.PRODUCER).with_additional_properties(**fields)  # type: ignore[return-value]


def _facets(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _dataset_facet(k, v) for k, v in item.get("facets", {}).items()}


def conforms(payload: dict[str, Any]) -> RunEvent:
    """The event as the OpenLineage client's RunEvent; fails the test unless it round-trips exactly."""
    run = payload["run"]
    event = RunEvent(
        eventType=RunState(payload["eventType"]),
        eventTime=payload["eventTime"],
        run=Run(runId=run["runId"], facets={k: _run_facet(k, v) for k, v in run["facets"].items()}),
        job=Job(namespace=payload["job"]["namespace"], name=payload["job"]["name"]),
        inputs=[InputDataset(i["namespace"], i["name"], facets=_facets(i)) for i in payload["inputs"]],
        outputs=[OutputDataset(o["namespace"], o["name"], facets=_facets(o)) for o in payload["outputs"]],
        producer=payload["producer"],
    )
    assert Serde.to_dict(event) == _without_nulls(payload)
    return event


def _without_nulls(value: Any) -> Any:
    """The payload as the client serialises it: without None values."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
