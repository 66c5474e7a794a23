"""Typed models of spec v1 (DESIGN.md §3): one pydantic model per document kind.

Field names follow the YAML exactly (camelCase), so error paths and the JSON Schema match what users
write. Every model forbids unknown fields; the loader turns those errors into "did you mean" hints.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from polycloud import names
from polycloud.spec import bounds as b
from polycloud.spec.access import RoleBindingSpec as RoleBindingSpec
from polycloud.spec.access import Subject as Subject
from polycloud.spec.base import Strict as Strict
from polycloud.spec.flags import FeatureFlagSpec as FeatureFlagSpec

DNS_LABEL = names.DNS_LABEL
CATALOG_PROVIDERS = frozenset({"aws", "gcp", "azure"})


def _secret_name(value: str) -> str:
    if not names.SECRET_NAME.fullmatch(value):
        raise ValueError(f"secret name {value!r} must be {names.SECRET_RULE}")
    return value


class Metadata(Strict):
    name: str = Field(description="DNS-1123 label, unique per kind.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free labels; `project`, `team`, `env`.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not DNS_LABEL.fullmatch(v):
            raise ValueError(f"{v!r} is not a DNS-1123 label (lower-case letters, digits and '-', max 63)")
        return v

    @field_validator("labels")
    @classmethod
    def _project_label(cls, v: dict[str, str]) -> dict[str, str]:
        # A project scopes tokens and secrets, whose doors accept DNS labels only.
        project = v.get("project")
        if project is not None and not names.is_project(project):
            raise ValueError(f"labels.project {project!r} must be {names.PROJECT_RULE}")
        return v


class LatLon(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Location(LatLon):
    jurisdiction: str | None = Field(default=None, description="Legal area, e.g. EU, US, UK.")


class Instance(Strict):
    """An offering of a private site (or one that replaces the catalog's for a cluster)."""

    name: str
    accelerator: str | None = None
    acceleratorCount: b.Accelerators = 0
    vcpus: b.Vcpus = 0
    memoryGiB: b.MemoryGiB = 0
    hourlyUSD: b.HourlyUSD
    spotHourlyUSD: b.HourlyUSD | None = None


class Network(Strict):
    internetEgressUSDPerGB: b.UsdPerGB | None = None
    interRegionUSDPerGB: b.UsdPerGB | None = None


class Driver(Strict):
    type: Literal["local", "kubernetes"] = "local"
    context: str | None = Field(default=None, description="kubeconfig context (kubernetes).")
    namespace: str | None = Field(default=None, description="Namespace for workloads (kubernetes).")
    kubeconfig: str | None = Field(default=None, description="Path of a kubeconfig file (kubernetes).")
    image: str | None = Field(
        default=None, description="Container image of the model server (kubernetes; required there)."
    )
    delayMs: b.Millis | None = Field(
        default=None, description="Simulated network delay of local replicas; default from the latency model."
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_label(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.fullmatch(v):
            raise ValueError(f"namespace {v!r} is not a DNS-1123 label")
        return v


class ClusterIdentity(Strict):
    audience: str = Field(
        default="sts.amazonaws.com",
        min_length=1,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description="`aud` of the workload identity tokens of this cluster's replicas and jobs: "
        "sts.amazonaws.com (AWS), the pool provider's URL (GCP), api://AzureADTokenExchange (Azure).",
    )


class ClusterSpec(Strict):
    provider: str = Field(description="aws | gcp | azure (catalog) or any other name for a private site.")
    region: str
    driver: Driver = Field(default_factory=Driver)
    quotas: dict[str, b.Quota] = Field(
        default_factory=dict, description="Max accelerators of each name in use at once."
    )
    location: Location | None = None
    instances: list[Instance] | None = None
    network: Network | None = None
    identity: ClusterIdentity = Field(
        default_factory=ClusterIdentity, description="Workload identity tokens (docs/identity.md)."
    )

    @property
    def is_catalog_provider(self) -> bool:
        return self.provider in CATALOG_PROVIDERS


class DatasetSpec(Strict):
    cluster: str = Field(description="Cluster where the data lives.")
    sizeGB: b.DataGB
    residency: str | None = Field(default=None, description="Jurisdiction readers must run in, e.g. EU.")


class Resources(Strict):
    accelerator: str | None = None
    acceleratorCount: b.Accelerators = 0
    vcpus: b.Vcpus = 0
    memoryGiB: b.MemoryGiB = 0

    @model_validator(mode="after")
    def _count_needs_name(self) -> Resources:
        if self.accelerator is None and self.acceleratorCount > 0:
            raise ValueError("acceleratorCount is set but accelerator is not")
        return self

    @property
    def accelerators(self) -> float:
        """Requested accelerator count; naming an accelerator without a count means one."""
        if self.accelerator is None:
            return 0.0
        return self.acceleratorCount if self.acceleratorCount > 0 else 1.0


class ModelRef(Strict):
    path: str | None = Field(default=None, description="ONNX file, relative to the spec file's folder.")
    uri: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_source(self) -> ModelRef:
        if (self.path is None) == (self.uri is None):
            raise ValueError("give exactly one of path or uri")
        return self


class TrafficSource(Strict):
    region: str | None = Field(default=None, description='"<provider>/<region>" of a catalog region.')
    location: LatLon | None = None
    share: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _one_origin(self) -> TrafficSource:
        if (self.region is None) == (self.location is None):
            raise ValueError("give exactly one of region or location")
        if self.region is not None and "/" not in self.region:
            raise ValueError(f'region {self.region!r} must be "<provider>/<region>", e.g. "aws/us-east-1"')
        return self


class Latency(Strict):
    maxRttMs: b.PositiveMillis


class ServiceRead(Strict):
    dataset: str
    gbPerMonth: b.DataGB


class JobRead(Strict):
    dataset: str


class PlacementRules(Strict):
    providers: list[str] | None = None
    clusters: list[str] | None = None
    jurisdictions: list[str] | None = None


class Autoscaling(Strict):
    minReplicas: Annotated[int, Field(ge=0, le=b.MAX_REPLICAS)] = 1
    maxReplicas: b.Replicas = 1
    targetInFlight: b.InFlight = 4

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.minReplicas > self.maxReplicas:
            raise ValueError("minReplicas is larger than maxReplicas")
        return self


class Rollout(Strict):
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [5, 25, 50, 100])
    bakeSeconds: b.Seconds = 30
    maxErrorRate: Annotated[float, Field(ge=0, le=1)] = 0.01
    maxP99Ms: b.PositiveMillis | None = None


class Hedging(Strict):
    """Send a second copy of a request to another replica when the first is slower than the service's
    recent `afterPercentile` latency; the first answer wins. Only for idempotent models."""

    afterPercentile: Annotated[float, Field(ge=50, le=99.9)] = 95


class EnvVar(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str | None = None
    secret: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, v: str | None) -> str | None:
        return v if v is None else _secret_name(v)

    @model_validator(mode="after")
    def _one_value(self) -> EnvVar:
        if (self.value is None) == (self.secret is None):
            raise ValueError("give exactly one of value or secret")
        return self


class Slo(Strict):
    availability: Annotated[float, Field(gt=0, lt=1)] = 0.999
    p99Ms: b.PositiveMillis | None = None
    windowDays: Annotated[int, Field(ge=1, le=90, description="The SLO window (error budget period).")] = 30


Pattern = Literal["single", "active-active", "active-passive", "burst"]
Protocol = Literal["oip-v2", "openai"]
PORT_RULE = Annotated[int, Field(ge=1, le=65535)]


class Runtime(Strict):
    """What a Service's replicas run when it is not polycloud's own model server (docs/llm.md)."""

    command: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="argv a local replica runs; ${PORT} and ${MODEL} are substituted (also env PORT "
        "and MODEL); `python` is polycloud's interpreter; relative files are made relative to the "
        "spec file's folder.",
    )
    image: str | None = Field(default=None, min_length=1, description="Container image (kubernetes).")
    args: list[str] = Field(default_factory=list, description="Container arguments (kubernetes).")
    port: PORT_RULE = Field(default=8000, description="The port the container listens on (kubernetes).")
    readinessPath: str = Field(
        default="/health", pattern=r"^/[^\s]*$", description="Polled until it answers 200."
    )

    @model_validator(mode="after")
    def _something_to_run(self) -> Runtime:
        if self.command is None and self.image is None:
            raise ValueError("give a command (local driver), an image (kubernetes driver) or both")
        return self


def _routing_target(value: object) -> object:
    """A variant's target: a Service's name, or a revision number of this service (not a boolean, a
    fraction or a number out of range, which pydantic would report as a puzzling union of both)."""
    if isinstance(value, str) or (type(value) is int and 1 <= value <= b.MAX_REVISION):
        return value
    raise ValueError(f"give a Service's name or a revision number of this service (1 or more), not {value!r}")


RoutingTarget = Annotated[
    str | Annotated[StrictInt, Field(ge=1, le=b.MAX_REVISION)], BeforeValidator(_routing_target)
]


class FlagRouting(Strict):
    """Route a Service's requests by a FeatureFlag: the gateway evaluates `flag` per request and sends
    the request to what its variant names (another service, or a revision of this one); other variants
    (and a disabled flag) stay with the service's current revision."""

    flag: str = Field(description="A FeatureFlag of the fleet.")
    variants: dict[str, RoutingTarget] = Field(
        min_length=1,
        description="Variant name → the Service that serves it (a name), or the revision of this "
        "Service that serves it (a number: its replicas are kept running while a variant names it).",
    )

    def revisions(self) -> set[int]:
        """The revisions of this service that variants name."""
        return {t for t in self.variants.values() if isinstance(t, int)}

    @field_validator("flag")
    @classmethod
    def _flag_name(cls, v: str) -> str:
        if not DNS_LABEL.fullmatch(v):
            raise ValueError(f"{v!r} is not a DNS-1123 label")
        return v


class ServiceSpec(Strict):
    model: ModelRef | None = Field(default=None, description="The model; required unless a runtime is given.")
    protocol: Protocol = Field(
        default="oip-v2", description="What replicas speak: oip-v2 (Open Inference Protocol) or openai."
    )
    runtime: Runtime | None = None
    prefixAffinity: StrictBool = Field(
        default=False,
        description="openai only: requests whose prompts share a prefix prefer the replica that served it "
        "(its KV cache), within the cluster the gateway chose and while that replica is not much busier.",
    )
    resources: Resources = Field(default_factory=Resources)
    replicas: b.Replicas = 1
    pattern: Pattern = "single"
    burstHoursPerMonth: Annotated[float, Field(ge=0, le=730)] = 24
    traffic: list[TrafficSource] = Field(default_factory=list)
    latency: Latency | None = None
    reads: list[ServiceRead] = Field(default_factory=list)
    placement: PlacementRules = Field(default_factory=PlacementRules)
    autoscaling: Autoscaling | None = None
    rollout: Rollout | None = None
    hedging: Hedging | None = None
    env: list[EnvVar] = Field(default_factory=list)
    slo: Slo | None = None
    routing: FlagRouting | None = Field(
        default=None,
        description="oip-v2 only: send each request to the service, or the revision of this service, that "
        "a flag's variant names (docs/flags.md).",
    )

    @model_validator(mode="after")
    def _model_or_runtime(self) -> ServiceSpec:
        if self.model is None and self.runtime is None:
            raise ValueError("give a model (served by polycloud) or a runtime (a server of your own)")
        if self.prefixAffinity and self.protocol != "openai":
            raise ValueError("prefixAffinity routes by the prompt: it needs protocol: openai")
        if self.routing is not None and self.protocol != "oip-v2":
            raise ValueError("routing by a flag rewrites OIP model paths: it needs protocol: oip-v2")
        return self


class Checkpoint(Strict):
    everySeconds: b.PositiveSeconds = Field(
        default=60, description="How often the job should commit a checkpoint (passed to it)."
    )


class Recovery(Strict):
    strategy: Literal["same-cluster", "next-cheapest"] = Field(
        default="same-cluster", description="Where a preempted or failed job restarts."
    )
    maxRestarts: b.Restarts = Field(
        default=3, description="Restarts allowed after the first attempt; then the job fails."
    )


class JobOutput(Strict):
    """An artifact a job writes; lineage records it (a model with its sha256) once an attempt ends."""

    name: str = Field(description="DNS-1123 label, unique within the job.")
    path: str = Field(min_length=1, description="File the job writes, relative to the spec file's folder.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not DNS_LABEL.fullmatch(v):
            raise ValueError(f"{v!r} is not a DNS-1123 label")
        return v


class JobSpec(Strict):
    resources: Resources = Field(default_factory=Resources)
    nodes: b.Nodes = 1
    hours: b.JobHours
    spot: StrictBool = False
    reads: list[JobRead] = Field(default_factory=list)
    placement: PlacementRules = Field(default_factory=PlacementRules)
    command: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="argv the job runs; absent = plan only. Relative paths of existing files are made "
        "relative to the spec file's folder.",
    )
    env: list[EnvVar] = Field(default_factory=list)
    checkpoint: Checkpoint | None = None
    recovery: Recovery = Field(default_factory=Recovery)
    outputs: list[JobOutput] = Field(
        default_factory=list, description="Artifacts the job writes (docs/lineage.md); names unique."
    )

    @field_validator("outputs")
    @classmethod
    def _unique_outputs(cls, v: list[JobOutput]) -> list[JobOutput]:
        names = [o.name for o in v]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"output names must be unique: {', '.join(dupes)} repeated")
        return v


class Budget(Strict):
    label: str = Field(description="Label key, e.g. team.")
    value: str = Field(description="Label value, e.g. fraud.")
    maxMonthlyUSD: b.MonthlyUSD


class Selector(Strict):
    matchLabels: dict[str, str] = Field(
        default_factory=dict, description="Labels a workload must all carry for the policy to apply."
    )


class PolicySpec(Strict):
    """Organisation rules, evaluated at validate, plan and apply (see polycloud.policy)."""

    selector: Selector | None = Field(default=None, description="Workloads it applies to; absent = all.")
    providers: list[str] | None = Field(default=None, description="Allowed providers.")
    regions: list[str] | None = Field(default=None, description='Allowed "<provider>/<region>".')
    jurisdictions: list[str] | None = Field(default=None, description="Allowed jurisdictions.")
    approvedModels: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] | None = None
    requiredLabels: list[str] = Field(default_factory=list)
    requiredSecrets: list[Annotated[str, AfterValidator(_secret_name)]] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    maxEgressUSDPerMonth: b.MonthlyUSD | None = None
    enforceResidency: StrictBool = Field(
        default=True, description="Report placements and pins that contradict a dataset's residency."
    )
    derivedResidency: Literal["inherit", "ignore"] = Field(
        default="inherit",
        description="inherit: a Service serving a model a Job trained stays where the job's datasets must "
        "(docs/lineage.md); ignore: the selected workloads are free of it.",
    )


class _Document(Strict):
    apiVersion: Literal["polycloud/v1"]
    metadata: Metadata


class Cluster(_Document):
    kind: Literal["Cluster"]
    spec: ClusterSpec


class Dataset(_Document):
    kind: Literal["Dataset"]
    spec: DatasetSpec


class Service(_Document):
    kind: Literal["Service"]
    spec: ServiceSpec


class Job(_Document):
    kind: Literal["Job"]
    spec: JobSpec


class Policy(_Document):
    kind: Literal["Policy"]
    spec: PolicySpec


class RoleBinding(_Document):
    kind: Literal["RoleBinding"]
    spec: RoleBindingSpec


class FeatureFlag(_Document):
    kind: Literal["FeatureFlag"]
    spec: FeatureFlagSpec


Document = Cluster | Dataset | Service | Job | Policy | RoleBinding | FeatureFlag
KINDS: dict[
    str,
    type[Cluster]
    | type[Dataset]
    | type[Service]
    | type[Job]
    | type[Policy]
    | type[RoleBinding]
    | type[FeatureFlag],
] = {
    "Cluster": Cluster,
    "Dataset": Dataset,
    "Service": Service,
    "Job": Job,
    "Policy": Policy,
    "RoleBinding": RoleBinding,
    "FeatureFlag": FeatureFlag,
}
Workload = Service | Job
