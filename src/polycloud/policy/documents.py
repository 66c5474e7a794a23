"""Rules about what documents carry: required labels, approved model digests, secrets that must exist."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from polycloud.policy.context import Context, listing
from polycloud.spec.models import Service


def check_labels(ctx: Context) -> None:
    """Every selected workload carries every `requiredLabels` key (showback groups costs by them)."""
    for workload in ctx.workloads:
        labels = workload.metadata.labels
        for i, key in enumerate(ctx.policy.spec.requiredLabels):
            if key not in labels:
                ctx.report(
                    ("requiredLabels", i),
                    workload,
                    ("metadata", "labels"),
                    f"lacks label {key}",
                    f"add label {key} to metadata.labels",
                )


def check_models(ctx: Context, digests: Mapping[str, str] | None) -> None:
    """Every selected Service serves a model whose sha256 is in `approvedModels`.

    `digests` maps a Service to the sha256 of its model file, for services whose spec gives none.
    """
    approved = ctx.policy.spec.approvedModels
    if approved is None:
        return
    unknown = []
    for service in ctx.workloads:
        if not isinstance(service, Service):
            continue
        model = service.spec.model
        if model is None:  # a runtime that brings its own weights: nothing to check, so not approved
            why = "the service's runtime brings its own weights (no model): they cannot be checked"
            ctx.report(("approvedModels",), service, ("spec",), why, "declare spec.model with its sha256")
            continue
        digest = model.sha256 or (digests or {}).get(service.metadata.name)
        if digest is None and model.path is not None:
            unknown.append(service.metadata.name)
            continue
        if digest in approved:
            continue
        pin = f"pin model sha256 to one of {listing(approved, 3)}"
        if digest is None:
            ctx.report(
                ("approvedModels",), service, ("spec", "model"), f"model {model.uri} has no sha256", pin
            )
        else:
            path = ("spec", "model", "sha256" if model.sha256 else "path")
            ctx.report(
                ("approvedModels",),
                service,
                path,
                f"model digest {digest} is not approved",
                f"{pin}, or add {digest} to approvedModels of policy {ctx.name}",
            )
    if unknown:
        ctx.note("approvedModels", f"cannot check the model digests of {listing(unknown)}: not computed")


def check_secrets(ctx: Context, secrets: Collection[str] | None) -> None:
    """Every `requiredSecrets` name exists; without the store's list, say it cannot be checked."""
    required = ctx.policy.spec.requiredSecrets
    if not required:
        return
    if secrets is None:
        ctx.note(
            "requiredSecrets",
            f"cannot check that {listing(required)} exist without the control plane; apply checks it",
        )
        return
    for i, name in enumerate(required):
        if name not in secrets:
            ctx.report(
                ("requiredSecrets", i),
                ctx.policy,
                ("spec", "requiredSecrets", i),
                f"requires secret {name}, which does not exist",
                f"create it: polycloud secret set {name}",
            )
