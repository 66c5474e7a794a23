"""Generated fleets for the planner benchmark: clusters over real cities and catalog regions, datasets
with residency, services of every pattern and jobs, with quotas sized to bind."""

from __future__ import annotations

import random
from typing import Any

from polycloud.catalog import Catalog

Doc = dict[str, Any]
SEED = 20_240_601

CITIES = [
    ("frankfurt", 50.11, 8.68, "EU"),
    ("paris", 48.86, 2.35, "EU"),
    ("amsterdam", 52.37, 4.90, "EU"),
    ("ashburn", 39.04, -77.49, "US"),
    ("dallas", 32.78, -96.80, "US"),
    ("london", 51.51, -0.13, "UK"),
    ("tokyo", 35.68, 139.69, "JP"),
    ("singapore", 1.35, 103.82, "SG"),
]
RESOURCES: list[tuple[float, Doc]] = [
    (0.20, {"vcpus": 2, "memoryGiB": 4}),
    (0.15, {"vcpus": 4, "memoryGiB": 16}),
    (0.10, {"vcpus": 8, "memoryGiB": 32}),
    (0.15, {"accelerator": "T4", "vcpus": 4, "memoryGiB": 15}),
    (0.10, {"accelerator": "L4"}),
    (0.10, {"accelerator": "A100", "acceleratorCount": 1}),
    (0.12, {"accelerator": "A100", "acceleratorCount": 8}),
    (0.08, {"accelerator": "H100", "acceleratorCount": 8}),
]
PRIVATE_INSTANCES: list[Doc] = [
    {"name": "cpu-node", "vcpus": 32, "memoryGiB": 128, "hourlyUSD": 0.40},
    {
        "name": "t4-node",
        "accelerator": "T4",
        "acceleratorCount": 1,
        "vcpus": 16,
        "memoryGiB": 64,
        "hourlyUSD": 0.55,
    },
    {
        "name": "l4-node",
        "accelerator": "L4",
        "acceleratorCount": 1,
        "vcpus": 16,
        "memoryGiB": 64,
        "hourlyUSD": 0.70,
    },
    {
        "name": "a100-1",
        "accelerator": "A100",
        "acceleratorCount": 1,
        "vcpus": 12,
        "memoryGiB": 85,
        "hourlyUSD": 2.6,
    },
    {
        "name": "dgx-a100",
        "accelerator": "A100",
        "acceleratorCount": 8,
        "vcpus": 128,
        "memoryGiB": 1024,
        "hourlyUSD": 16.0,
    },
    {
        "name": "dgx-h100",
        "accelerator": "H100",
        "acceleratorCount": 8,
        "vcpus": 192,
        "memoryGiB": 2048,
        "hourlyUSD": 40.0,
    },
]
PATTERNS = ["single", "active-active", "active-passive", "burst"]


# -- fleets -----------------------------------------------------------------------------------------------


def document(kind: str, name: str, spec: Doc) -> Doc:
    return {"apiVersion": "polycloud/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def generate(workloads: int, clusters: int, catalog: Catalog, seed: int = SEED) -> list[Doc]:
    """A fleet as spec documents: `clusters` clusters, `workloads` services and jobs, datasets, quotas."""
    rng = random.Random(f"{seed}-{workloads}-{clusters}")
    regions = [r for r in catalog.regions() if catalog.offerings(r.provider, r.region)]
    rng.shuffle(regions)
    cluster_docs: list[Doc] = []
    per_cluster = max(1, workloads // clusters)
    for i in range(clusters):
        quotas: dict[str, int] = {}
        if rng.random() < 0.2:  # a private site with its own hardware and prices
            city, lat, lon, jurisdiction = rng.choice(CITIES)
            instances = [
                {**item, "hourlyUSD": round(item["hourlyUSD"] * rng.uniform(0.6, 1.3), 4)}
                for item in rng.sample(PRIVATE_INSTANCES, rng.randint(2, len(PRIVATE_INSTANCES)))
            ]
            spec: Doc = {
                "provider": rng.choice(["onprem", "colo"]),
                "region": f"{city}-dc{i}",
                "location": {"lat": lat, "lon": lon, "jurisdiction": jurisdiction},
                "network": {"internetEgressUSDPerGB": round(rng.uniform(0.0, 0.05), 3)},
                "instances": instances,
            }
            accelerators = {item["accelerator"] for item in instances if "accelerator" in item}
        else:
            region = regions[i % len(regions)]
            spec = {"provider": region.provider, "region": region.region}
            accelerators = {
                o.accelerator for o in catalog.offerings(region.provider, region.region) if o.accelerator
            }
        for accelerator in sorted(a for a in accelerators if a in ("T4", "L4", "A100", "H100")):
            if rng.random() < 0.7:  # small enough that the cheapest clusters run out
                quotas[accelerator] = rng.choice([0, 8, 8, 16, 16, 32]) * max(1, per_cluster // 40)
        if quotas:
            spec["quotas"] = quotas
        cluster_docs.append(document("Cluster", f"c{i}-{spec['provider']}", spec))
    names = [c["metadata"]["name"] for c in cluster_docs]
    jurisdiction_of = {c["metadata"]["name"]: _jurisdiction(c, catalog) for c in cluster_docs}
    datasets: list[Doc] = []
    for i in range(max(4, workloads // 25)):
        where = rng.choice(names)
        data: Doc = {"cluster": where, "sizeGB": rng.randint(10, 5_000)}
        if jurisdiction_of[where] == "EU" and rng.random() < 0.5:
            data["residency"] = "EU"
        datasets.append(document("Dataset", f"data-{i}", data))
    traffic_regions = [f"{r.provider}/{r.region}" for r in regions]
    providers = sorted({c["spec"]["provider"] for c in cluster_docs})
    workload_docs = [
        _service(rng, i, datasets, traffic_regions, providers)
        if rng.random() < 0.7
        else _job(rng, i, datasets)
        for i in range(workloads)
    ]
    return [*cluster_docs, *datasets, *workload_docs]


def _jurisdiction(cluster: Doc, catalog: Catalog) -> str | None:
    spec = cluster["spec"]
    if "location" in spec:
        return str(spec["location"]["jurisdiction"])
    region = catalog.region(spec["provider"], spec["region"])
    return region.jurisdiction if region else None


def _resources(rng: random.Random) -> Doc:
    weights = [w for w, _ in RESOURCES]
    return dict(rng.choices([r for _, r in RESOURCES], weights)[0])


def _service(
    rng: random.Random, i: int, datasets: list[Doc], regions: list[str], providers: list[str]
) -> Doc:
    spec: Doc = {
        "model": {"uri": f"s3://models/model-{i % 50}.onnx"},
        "resources": _resources(rng),
        "replicas": rng.randint(1, 3),
        "pattern": rng.choice(PATTERNS),
    }
    if spec["pattern"] == "burst":
        spec["burstHoursPerMonth"] = rng.choice([12, 24, 72])
    if rng.random() < 0.6:
        sources = rng.sample(regions, rng.randint(1, 2))
        spec["traffic"] = [{"region": s, "share": 1 / len(sources)} for s in sources]
        if rng.random() < 0.6:
            spec["latency"] = {"maxRttMs": rng.choice([60, 100, 150, 250])}
    if rng.random() < 0.4:
        spec["reads"] = [
            {"dataset": rng.choice(datasets)["metadata"]["name"], "gbPerMonth": rng.randint(10, 2_000)}
        ]
    if rng.random() < 0.1:
        spec["placement"] = {"providers": rng.sample(providers, max(2, len(providers) // 2))}
    return document("Service", f"svc-{i}", spec)


def _job(rng: random.Random, i: int, datasets: list[Doc]) -> Doc:
    spec: Doc = {
        "resources": _resources(rng),
        "nodes": rng.choice([1, 1, 2, 4]),
        "hours": rng.randint(1, 200),
        "spot": rng.random() < 0.5,
    }
    if rng.random() < 0.4:
        spec["reads"] = [{"dataset": rng.choice(datasets)["metadata"]["name"]}]
    return document("Job", f"job-{i}", spec)


# -- the greedy baseline -------------------------------------------------------------------------------
