"""Every manifest the driver applies or export writes is valid against Kubernetes' own OpenAPI schemas."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from polycloud.drivers.kubernetes import jobs, manifests
from polycloud.drivers.kubernetes.identity import identity_secret
from polycloud.drivers.kubernetes.manifests import Serving, Target
from polycloud.spec.models import EnvVar, Job, ModelRef, Resources, Runtime

TARGET = Target(
    cluster="gke-euw4", namespace="ml", image="europe-docker.pkg.dev/acme/ml/polycloud-server:0.1.0"
)
K8S_VERSION = "1.30.0"


def valid(manifest: dict[str, Any]) -> None:
    """Strict validation: unknown fields are errors too, as with `kubectl apply --validate=strict`."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def serving(**changes: Any) -> Serving:
    base: dict[str, Any] = {
        "service": "diagnosis",
        "revision": 3,
        "role": "active",
        "spec_hash": "0123456789abcdef",
        "model": ModelRef(path="models/cancer.onnx", sha256="b" * 64),
        "resources": Resources(accelerator="T4", acceleratorCount=2, vcpus=3.5, memoryGiB=12),
        "env": (EnvVar(name="LOG_LEVEL", value="info"), EnvVar(name="API_TOKEN", secret="diagnosis_token")),
    }
    return Serving(**(base | changes))


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"resources": Resources()},
        {"resources": Resources(accelerator="tpu-v5p-8", acceleratorCount=4)},
        {"resources": Resources(accelerator="MI300X", acceleratorCount=0.5, memoryGiB=0.5)},
        {"model": ModelRef(uri="https://models.example.com/cancer.onnx?sig=x", sha256="c" * 64)},
        {"env": ()},
        {"role": "standby"},
    ],
)
def test_deployment_is_valid(variant: dict[str, Any]) -> None:
    valid(manifests.deployment(TARGET, serving(**variant), ["diagnosis-gke-euw4-1", "diagnosis-gke-euw4-0"]))


def test_deployment_carries_probes_labels_resources_and_secret_refs() -> None:
    dep = manifests.deployment(TARGET, serving(), ["diagnosis-gke-euw4-1", "diagnosis-gke-euw4-0"])
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "polycloud"
    assert (labels["polycloud.dev/service"], labels["polycloud.dev/revision"]) == ("diagnosis", "3")
    assert (labels["polycloud.dev/cluster"], labels["polycloud.dev/spec-hash"]) == (
        "gke-euw4",
        "0123456789abcdef",
    )
    assert dep["spec"]["replicas"] == 2
    assert json.loads(dep["metadata"]["annotations"]["polycloud.dev/replica-ids"]) == [
        "diagnosis-gke-euw4-0",
        "diagnosis-gke-euw4-1",
    ]
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["resources"] == {
        "requests": {"cpu": "3500m", "memory": "12288Mi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "12288Mi", "nvidia.com/gpu": "2"},
    }
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    secret_env = next(e for e in server["env"] if e["name"] == "API_TOKEN")
    ref = secret_env["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "value" and ref["name"].startswith("polycloud-diagnosis-token-")  # made DNS-safe
    assert "value" not in secret_env
    assert server["args"][:2] == ["--model", "/models/cancer.onnx"] and "b" * 64 in server["args"]


def test_a_uri_model_is_fetched_into_a_shared_volume() -> None:
    uri = ModelRef(uri="https://models.example.com/cancer.onnx?sig=x")
    pod = manifests.deployment(TARGET, serving(model=uri), ["a"])["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    assert fetch["command"][-2:] == ["https://models.example.com/cancer.onnx?sig=x", "/models/cancer.onnx"]
    assert pod["volumes"] == [{"name": "models", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"][0]["readOnly"] is True


def test_service_and_secret_are_valid() -> None:
    svc = manifests.service(TARGET, "diagnosis")
    valid(svc)
    assert svc["spec"]["selector"]["polycloud.dev/service"] == "diagnosis"
    assert "polycloud.dev/spec-hash" not in svc["spec"]["selector"]  # old and new pods serve during a roll
    secret = manifests.secret(TARGET, "Diagnosis_Token", "hunter2")
    valid(secret)
    assert secret["metadata"]["name"] == manifests.secret_name("Diagnosis_Token")
    assert manifests.secret_name("plain-name") == "polycloud-plain-name"


@pytest.mark.parametrize(
    "variant",
    [{}, {"model": ModelRef(uri="https://models.example.com/cancer.onnx", sha256="c" * 64)}],
    ids=["image-model", "uri-model"],
)
def test_with_tls_pods_mount_their_secret_and_are_probed_on_the_health_port(variant: dict[str, Any]) -> None:
    dep = manifests.deployment(TARGET, serving(tls=True, **variant), ["diagnosis-gke-euw4-0"])
    valid(dep)
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    args = server["args"]
    assert args[args.index("--tls-dir") + 1] == "/etc/polycloud/tls"
    assert args[args.index("--health-port") + 1] == str(manifests.HEALTH_PORT)
    assert server["ports"] == [
        {"name": "https", "containerPort": manifests.PORT, "protocol": "TCP"},
        {"name": "health", "containerPort": manifests.HEALTH_PORT, "protocol": "TCP"},
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["port"] == "health"  # the kubelet has no client certificate
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"] == {
        "secretName": "polycloud-tls.diagnosis",
        "items": [
            {"key": "tls.crt", "path": "cert.pem"},
            {"key": "tls.key", "path": "key.pem"},
            {"key": "ca.crt", "path": "ca.pem"},
        ],
    }
    mount = next(v for v in server["volumeMounts"] if v["name"] == "tls")
    assert mount == {"name": "tls", "mountPath": "/etc/polycloud/tls", "readOnly": True}
    assert "subPath" not in mount  # a subPath mount would never see the renewed files
    assert len(pod["volumes"]) == (2 if "model" in variant else 1)


def test_without_tls_nothing_of_it_appears() -> None:
    dep = manifests.deployment(TARGET, serving(), ["diagnosis-gke-euw4-0"])
    assert dep == manifests.deployment(TARGET, serving(tls=False), ["diagnosis-gke-euw4-0"])
    server = dep["spec"]["template"]["spec"]["containers"][0]
    assert "--tls-dir" not in server["args"] and "--health-port" not in server["args"]
    assert server["ports"] == [{"name": "http", "containerPort": manifests.PORT, "protocol": "TCP"}]
    assert server["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert "volumes" not in dep["spec"]["template"]["spec"] and "volumeMounts" not in server
    port = manifests.service(TARGET, "diagnosis")["spec"]["ports"]
    assert port == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert manifests.service_url(TARGET, "diagnosis") == "http://diagnosis.ml.svc.cluster.local"


def test_tls_service_and_secret() -> None:
    svc = manifests.service(TARGET, "diagnosis", tls=True)
    valid(svc)
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    assert manifests.service_url(TARGET, "diagnosis", tls=True) == "https://diagnosis.ml.svc.cluster.local"
    assert manifests.service_hosts(TARGET, "diagnosis") == [
        "diagnosis",
        "diagnosis.ml",
        "diagnosis.ml.svc",
        "diagnosis.ml.svc.cluster.local",
    ]
    secret = manifests.tls_secret(TARGET, "diagnosis", "CERT", "KEY", "BUNDLE")
    valid(secret)
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "polycloud",
        "polycloud.dev/cluster": "gke-euw4",
        "polycloud.dev/service": "diagnosis",
    }
    assert manifests.tls_values(secret) == {"tls.crt": "CERT", "tls.key": "KEY", "ca.crt": "BUNDLE"}
    assert manifests.tls_values({"data": {"tls.crt": "not base64!"}}) == {}
    # A dot: no polycloud secret's Secret (`secret_name` never keeps one) can be named onto it.
    assert manifests.tls_secret_name("diagnosis") == "polycloud-tls.diagnosis"
    assert "." not in manifests.secret_name("tls.diagnosis")
    assert manifests.tls_secret_name("Odd_Name").startswith("polycloud-tls.odd-name-")


def job(**spec: Any) -> Job:
    doc = {
        "apiVersion": "polycloud/v1",
        "kind": "Job",
        "metadata": {"name": "pretrain"},
        "spec": {"hours": 4, **spec},
    }
    return Job.model_validate(doc)


MANAGED = {
    "resources": {"accelerator": "H100", "acceleratorCount": 8, "vcpus": 96, "memoryGiB": 1024},
    "nodes": 2,
    "spot": True,
    "command": ["python", "train.py", "--epochs", "3"],
    "env": [{"name": "WANDB_KEY", "secret": "wandb"}, {"name": "SEED", "value": "7"}],
    "checkpoint": {"everySeconds": 120},
    "recovery": {"strategy": "next-cheapest", "maxRestarts": 5},
}


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure", "onprem"])
@pytest.mark.parametrize("spec", [{}, MANAGED], ids=["plain", "managed"])
def test_jobs_and_claims_are_valid(provider: str, spec: dict[str, Any]) -> None:
    batch = jobs.batch_job(TARGET, job(**spec), provider)
    valid(batch)
    claim = jobs.checkpoint_claim(TARGET, job(**spec))
    if claim is not None:
        valid(claim)
    workflow = jobs.argo_workflow(TARGET, job(**spec), provider)
    assert workflow["kind"] == "Workflow" and workflow["apiVersion"] == "argoproj.io/v1alpha1"
    # kubernetes-validate knows no CRDs: check the Workflow's pod parts as the Pod they become.
    train = workflow["spec"]["templates"][1]
    pod = {"containers": [train["container"]]}
    pod |= {k: train[k] for k in ("nodeSelector", "tolerations", "volumes") if k in train}
    valid(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pretrain-node-0"},
            "spec": copy.deepcopy(pod),
        }
    )


def test_a_managed_job_maps_every_field() -> None:
    batch = jobs.batch_job(TARGET, job(**MANAGED), "azure")
    spec = batch["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (2, 2, 5)
    pod = spec["template"]["spec"]
    train = pod["containers"][0]
    assert train["command"] == ["python", "train.py", "--epochs", "3"]
    env = {e["name"]: e for e in train["env"]}
    assert env["WANDB_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "polycloud-wandb"
    assert env["POLYCLOUD_CHECKPOINT_DIR"]["value"] == "/checkpoint"
    assert env["POLYCLOUD_CHECKPOINT_EVERY_SECONDS"]["value"] == "120"
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["nodeSelector"] == {"kubernetes.azure.com/scalesetpriority": "spot"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "pretrain-checkpoint"
    workflow = jobs.argo_workflow(TARGET, job(**MANAGED), "gcp")
    train_template = workflow["spec"]["templates"][1]
    assert train_template["retryStrategy"]["limit"] == "5"
    assert {"name": "POLYCLOUD_JOB_ATTEMPT", "value": "{{retries}}"} in train_template["container"]["env"]
    assert workflow["spec"]["templates"][0]["steps"][0][0]["withSequence"] == {"count": "2"}


def test_invalid_manifests_are_caught() -> None:
    """The validator is not a rubber stamp: a typo'd field fails it."""
    bad = manifests.service(TARGET, "diagnosis")
    bad["spec"]["portz"] = bad["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        valid(bad)


VLLM = Runtime(
    image="vllm/vllm-openai:v0.33.0",
    args=["--model", "${MODEL}", "--port", "${PORT}", "--host", "127.0.0.1"],
    port=8000,
    readinessPath="/health",
)


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize(
    ("model", "expected", "fetched"),
    [
        (None, "", False),
        (ModelRef(uri="https://models.example.com/llama.gguf"), "/models/llama.gguf", True),
        (ModelRef(uri="s3://acme-models/llama-3-8b/"), "s3://acme-models/llama-3-8b/", False),
        (ModelRef(path="/models/llama"), "/models/llama", False),
    ],
)
def test_a_runtime_image_runs_beside_polycloud_sidecar(
    tls: bool, model: ModelRef | None, expected: str, fetched: bool
) -> None:
    """The user's server gets the declared resources (GPUs included) and the substituted args; the
    sidecar serves the replica's port, relays to the server on loopback, and is what the probes ask."""
    spec = serving(model=model, protocol="openai", runtime=VLLM, tls=tls)
    dep = manifests.deployment(TARGET, spec, ["chat-gke-euw4-0"])
    valid(dep)
    pod = dep["spec"]["template"]["spec"]
    sidecar, server = pod["containers"]
    assert server["image"] == VLLM.image and server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "ports" not in server  # reached only through the sidecar
    assert server["args"] == ["--model", expected, "--port", "8000", "--host", "127.0.0.1"]
    assert {"name": "MODEL", "value": expected} in server["env"]
    assert sidecar["image"] == TARGET.image
    assert sidecar["args"][sidecar["args"].index("--runtime-port") :][:2] == ["--runtime-port", "8000"]
    assert "--protocol" in sidecar["args"] and "--model" not in sidecar["args"]
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert ("initContainers" in pod) == fetched
    assert all(
        e.get("valueFrom", {}).get("secretKeyRef") is None for e in sidecar["env"]
    )  # secrets: server only


@pytest.mark.parametrize(
    "variant", [{}, {"tls": True}, {"runtime": VLLM, "tls": True}], ids=["plain", "tls", "runtime"]
)
def test_with_identity_the_model_server_mounts_its_token_secret_without_subpath(
    variant: dict[str, Any],
) -> None:
    dep = manifests.deployment(TARGET, serving(identity=True, **variant), ["diagnosis-gke-euw4-0"])
    valid(dep)
    pod = dep["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "identity")
    assert volume["secret"] == {
        "secretName": "polycloud-identity.diagnosis",
        "items": [{"key": "token", "path": "token"}],
    }
    workload = next(c for c in pod["containers"] if c["name"] in ("server", "model-server"))
    mount = next(m for m in workload["volumeMounts"] if m["name"] == "identity")
    assert mount == {"name": "identity", "mountPath": manifests.IDENTITY_DIR, "readOnly": True}
    assert "subPath" not in mount  # the kubelet swaps a renewed token in place
    env = {e["name"]: e.get("value") for e in workload["env"]}
    assert env["POLYCLOUD_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/polycloud/identity/token"
    others = [c for c in pod["containers"] if c is not workload]
    assert all("POLYCLOUD_IDENTITY_TOKEN_FILE" not in json.dumps(c) for c in others)  # the sidecar has none


def test_without_identity_no_token_appears() -> None:
    dep = manifests.deployment(TARGET, serving(), ["diagnosis-gke-euw4-0"])
    assert "identity" not in json.dumps(dep)


def test_identity_secret_is_valid_and_owned() -> None:
    secret = identity_secret(TARGET, "diagnosis", "header.payload.signature")
    valid(secret)
    assert secret["metadata"]["name"] == "polycloud-identity.diagnosis"
    assert secret["metadata"]["labels"]["polycloud.dev/service"] == "diagnosis"
    assert manifests.tls_values(secret) == {"token": "header.payload.signature"}
    assert manifests.identity_secret_name("Diag_1") != manifests.secret_name("identity.diag-1")
