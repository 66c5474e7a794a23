"""Random small fleets as spec documents (plain dicts), for the property tests of the planner.

Each fleet has 2–5 clusters (real catalog regions and private sites with their own instances, location
and network prices), optional quotas small enough to bind, 0–2 datasets (some with residency), 1–4
workloads of every pattern and Jobs (spot or not), traffic sources with latency budgets, placement
allow-lists and, now and then, a Policy. Everything is drawn from small menus so that constraints
actually bite: the same accelerators recur, quotas are a few GPUs, budgets sit near real RTTs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Doc = dict[str, Any]

CATALOG_REGIONS: list[tuple[str, str]] = [
    ("aws", "us-east-1"),
    ("aws", "eu-west-1"),
    ("gcp", "europe-west4"),
    ("gcp", "us-central1"),
    ("azure", "westeurope"),
    ("azure", "eastus"),
]
PRIVATE_PROVIDERS = ["onprem", "colo"]
CITIES: list[tuple[str, float, float, str]] = [
    ("frankfurt", 50.11, 8.68, "EU"),
    ("paris", 48.86, 2.35, "EU"),
    ("ashburn", 39.04, -77.49, "US"),
    ("london", 51.51, -0.13, "UK"),
    ("dublin", 53.35, -6.26, "EU"),
]
TRAFFIC_REGIONS = [
    "aws/us-east-1",
    "aws/eu-west-1",
    "gcp/europe-west4",
    "gcp/us-central1",
    "azure/westeurope",
    "azure/eastus",
    "aws/ap-northeast-1",
]
TRAFFIC_PLACES = [(48.86, 2.35), (40.71, -74.0), (52.52, 13.40), (1.35, 103.82)]
BUDGETS_MS = [10, 25, 50, 90, 120, 180, 250]
JURISDICTIONS = ["EU", "US", "UK"]
RESOURCES: list[dict[str, Any]] = [
    {"vcpus": 2, "memoryGiB": 4},
    {"vcpus": 4, "memoryGiB": 16},
    {"accelerator": "T4", "vcpus": 4, "memoryGiB": 16},
    {"accelerator": "t4"},
    {"accelerator": "A100", "acceleratorCount": 1},
    {"accelerator": "A100", "acceleratorCount": 8},
]
PATTERNS = ["single", "active-active", "active-passive", "burst"]


def cents(lo: int, hi: int) -> st.SearchStrategy[float]:
    """Dollar amounts between lo and hi cents, in whole cents (exact in YAML and JSON)."""
    return st.integers(lo, hi).map(lambda c: c / 100)


@st.composite
def private_instances(draw: st.DrawFn) -> list[Doc]:
    """1–3 instance types of a private site, with prices near the clouds' so both sides win sometimes."""
    menu: list[Doc] = [
        {"name": "cpu-node", "vcpus": 32, "memoryGiB": 128, "hourlyUSD": draw(cents(5, 40))},
        {
            "name": "t4-node",
            "accelerator": "T4",
            "acceleratorCount": 1,
            "vcpus": 16,
            "memoryGiB": 64,
            "hourlyUSD": draw(cents(20, 110)),
        },
        {
            "name": "a100-1",
            "accelerator": "A100",
            "acceleratorCount": 1,
            "vcpus": 12,
            "memoryGiB": 85,
            "hourlyUSD": draw(cents(100, 450)),
        },
        {
            "name": "a100-8",
            "accelerator": "A100",
            "acceleratorCount": 8,
            "vcpus": 128,
            "memoryGiB": 1024,
            "hourlyUSD": draw(cents(500, 3000)),
        },
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(menu))), min_size=1, max_size=3, unique=True))
    instances = []
    for i in sorted(chosen):
        item = dict(menu[i])
        if draw(st.booleans()):
            item["spotHourlyUSD"] = round(item["hourlyUSD"] * draw(st.sampled_from([0.3, 0.6, 1.0])), 2)
        instances.append(item)
    return instances


@st.composite
def quotas(draw: st.DrawFn, tight: bool = False) -> dict[str, int] | None:
    """No quotas, or a few accelerators' worth (spelt in either case) so that quotas bind.

    `tight` gives every cluster small but non-zero quotas on both accelerators, so that several
    workloads fit one at a time but not all together.
    """
    if tight:
        return {
            draw(st.sampled_from(["A100", "a100"])): draw(st.sampled_from([1, 8, 9, 16, 24])),
            draw(st.sampled_from(["T4", "t4"])): draw(st.integers(1, 8)),
        }
    if draw(st.booleans()):
        return None
    out: dict[str, int] = {}
    if draw(st.booleans()):
        out[draw(st.sampled_from(["A100", "a100"]))] = draw(st.sampled_from([0, 1, 8, 9, 16]))
    if draw(st.booleans()):
        out[draw(st.sampled_from(["T4", "t4"]))] = draw(st.integers(0, 5))
    return out or None


@st.composite
def cluster_doc(draw: st.DrawFn, name: str, tight_quotas: bool = False) -> Doc:
    """A Cluster: a catalog region (sometimes with network prices overridden) or a private site."""
    spec: Doc
    if draw(st.integers(0, 2)) > 0:
        provider, region = draw(st.sampled_from(CATALOG_REGIONS))
        spec = {"provider": provider, "region": region}
        if draw(st.integers(0, 3)) == 0:
            spec["network"] = {"internetEgressUSDPerGB": draw(cents(0, 15))}
    else:
        city, lat, lon, jurisdiction = draw(st.sampled_from(CITIES))
        spec = {
            "provider": draw(st.sampled_from(PRIVATE_PROVIDERS)),
            "region": f"{city}-dc{draw(st.integers(1, 2))}",
            "location": {"lat": lat, "lon": lon, "jurisdiction": jurisdiction},
            "instances": draw(private_instances()),
        }
        network: Doc = {}
        if draw(st.booleans()):
            network["internetEgressUSDPerGB"] = draw(cents(0, 10))
        if draw(st.booleans()):
            network["interRegionUSDPerGB"] = draw(cents(0, 5))
        if network:
            spec["network"] = network
    limits = draw(quotas(tight_quotas))
    if limits:
        spec["quotas"] = limits
    return document("Cluster", name, spec)


def document(kind: str, name: str, spec: Doc) -> Doc:
    """A spec v1 document."""
    return {"apiVersion": "polycloud/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@st.composite
def placement_rules(draw: st.DrawFn, clusters: list[Doc]) -> Doc | None:
    """Usually no allow-lists; sometimes one or two of providers, clusters, jurisdictions."""
    if draw(st.integers(0, 3)) > 0:
        return None
    names = [c["metadata"]["name"] for c in clusters]
    providers = sorted({c["spec"]["provider"] for c in clusters})
    rules: Doc = {}
    if draw(st.booleans()):
        rules["providers"] = draw(st.lists(st.sampled_from(providers), min_size=1, unique=True))
    if draw(st.booleans()):
        rules["clusters"] = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    if draw(st.booleans()):
        rules["jurisdictions"] = draw(st.lists(st.sampled_from(JURISDICTIONS), min_size=1, unique=True))
    return rules or None


@st.composite
def traffic(draw: st.DrawFn) -> list[Doc]:
    """No traffic, one source, or two sources sharing it evenly; regions or raw coordinates."""
    count = draw(st.integers(0, 2))
    sources: list[Doc] = []
    for _ in range(count):
        if draw(st.booleans()):
            sources.append({"region": draw(st.sampled_from(TRAFFIC_REGIONS))})
        else:
            lat, lon = draw(st.sampled_from(TRAFFIC_PLACES))
            sources.append({"location": {"lat": lat, "lon": lon}})
    for s in sources:
        s["share"] = 1.0 / count
    return sources


@st.composite
def service_doc(
    draw: st.DrawFn, name: str, clusters: list[Doc], datasets: list[str], resources: list[Doc]
) -> Doc:
    """A Service of any pattern, with traffic, a latency budget, reads and allow-lists drawn at random."""
    spec: Doc = {
        "model": {"uri": "s3://models/model.onnx"},
        "resources": draw(st.sampled_from(resources)),
        "replicas": draw(st.integers(1, 3)),
        "pattern": draw(st.sampled_from(PATTERNS)),
    }
    if spec["pattern"] == "burst" and draw(st.booleans()):
        spec["burstHoursPerMonth"] = draw(st.integers(0, 200))
    sources = draw(traffic())
    if sources:
        spec["traffic"] = sources
    if draw(st.integers(0, 2)) == 0:
        spec["latency"] = {"maxRttMs": draw(st.sampled_from(BUDGETS_MS))}
    reads = draw(st.lists(st.sampled_from(datasets), unique=True)) if datasets else []
    if reads:
        spec["reads"] = [{"dataset": d, "gbPerMonth": draw(st.integers(0, 2000))} for d in reads]
    rules = draw(placement_rules(clusters))
    if rules:
        spec["placement"] = rules
    return document("Service", name, spec)


@st.composite
def job_doc(
    draw: st.DrawFn, name: str, clusters: list[Doc], datasets: list[str], resources: list[Doc]
) -> Doc:
    """A Job: some nodes for some hours, on spot or not, reading whole datasets."""
    spec: Doc = {
        "resources": draw(st.sampled_from(resources)),
        "nodes": draw(st.integers(1, 3)),
        "hours": draw(st.integers(1, 48)),
        "spot": draw(st.booleans()),
    }
    reads = draw(st.lists(st.sampled_from(datasets), unique=True)) if datasets else []
    if reads:
        spec["reads"] = [{"dataset": d} for d in reads]
    rules = draw(placement_rules(clusters))
    if rules:
        spec["placement"] = rules
    return document("Job", name, spec)


@st.composite
def fleets(
    draw: st.DrawFn,
    max_clusters: int = 5,
    max_workloads: int = 4,
    resources: list[Doc] | None = None,
    tight_quotas: bool = False,
) -> list[Doc]:
    """A whole random fleet as a list of documents (valid by construction).

    `resources` narrows what workloads ask for (e.g. GPUs only) and `tight_quotas` gives every cluster small
    quotas: together they make fleets where workloads compete for the same few accelerators.
    """
    menu = resources or RESOURCES
    count = draw(st.integers(2, max_clusters))
    clusters = [draw(cluster_doc(f"c{i}", tight_quotas)) for i in range(count)]
    names = [c["metadata"]["name"] for c in clusters]
    datasets = []
    for i in range(draw(st.integers(0, 2))):
        spec: Doc = {"cluster": draw(st.sampled_from(names)), "sizeGB": draw(st.integers(0, 3000))}
        residency = draw(st.sampled_from([None, None, None, "EU", "US"]))
        if residency:
            spec["residency"] = residency
        datasets.append(document("Dataset", f"d{i}", spec))
    dataset_names = [d["metadata"]["name"] for d in datasets]
    workloads = []
    for i in range(draw(st.integers(1, max_workloads))):
        make = service_doc if draw(st.integers(0, 2)) > 0 else job_doc
        workloads.append(draw(make(f"w{i}", clusters, dataset_names, menu)))
    policies = []
    if draw(st.integers(0, 5)) == 0:
        providers = sorted({c["spec"]["provider"] for c in clusters})
        rule = draw(st.sampled_from(["providers", "jurisdictions"]))
        allowed = providers if rule == "providers" else JURISDICTIONS
        policy = {rule: draw(st.lists(st.sampled_from(allowed), min_size=1, unique=True))}
        policies.append(document("Policy", "org", policy))
    return [*clusters, *datasets, *workloads, *policies]
