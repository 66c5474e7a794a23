"""`polycloud export control-plane`: what production needs to run the control plane (pure; no I/O).

Three roles that run and fail separately (docs/operations.md): `polycloud server init` once per
database, any number of `polycloud server`s on one PostgreSQL database (one holds the leader lease),
and `polycloud gateway`s that serve from their last-known routes whatever else is down. Two formats:

- `systemd`: units for one machine each (enable the server on three machines, the gateway on two),
  the shared environment file and a sysusers entry. The master key reaches the servers as a systemd
  credential (`LoadCredential=`, a 0600 root file), never in a unit or the environment file; gateways
  never get it.
- `k8s`: a Job for `server init`, a Deployment, Service and PodDisruptionBudget for the servers and
  the same for the gateways, all reading the database URL (and the servers the master key) from the
  Secret `polycloud`, which is referenced, never written.

`export_control_plane` returns `{file name: text}`; the CLI writes or prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from polycloud import __version__
from polycloud.errors import UserError

ControlPlaneFormat = Literal["systemd", "k8s"]
Manifest = dict[str, Any]

DEFAULT_IMAGE = f"ghcr.io/polycloud/polycloud:{__version__}"
DEFAULT_NAMESPACE = "polycloud"
DEFAULT_BINARY = "/opt/polycloud/bin/polycloud"
API_PORT = 8700
GATEWAY_PORT = 8080
DRAIN_S = 15
"""The gateway's drain time on SIGTERM (`GatewaySettings.drain_timeout_s`); stop timeouts exceed it."""
STOP_TIMEOUT_S = 30
"""systemd's TimeoutStopSec and Kubernetes' grace period: drain, leaving the members, and slack."""
PRESTOP_S = 5
"""A gateway pod keeps serving this long after deletion, while Services stop sending to it."""
SECRET = "polycloud"
"""The Kubernetes Secret with keys `database-url` and `master-key` (created by the operator)."""
KUBECONFIG_SECRET = "polycloud-kubeconfig"
"""Optional Secret (key `config`) for servers that drive clusters with the kubernetes driver."""
SERVER_HOME = "/var/lib/polycloud"
GATEWAY_HOME = "/var/lib/polycloud-gateway"
RUN_AS = 10001

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class ControlPlaneOptions:
    """What to export. `image`, `namespace`, `servers` and `gateways` shape the k8s manifests;
    `binary` is the `polycloud` command the systemd units run."""

    fmt: ControlPlaneFormat
    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    servers: int = 3
    gateways: int = 2
    binary: str = DEFAULT_BINARY


def export_control_plane(options: ControlPlaneOptions) -> dict[str, str]:
    """The files that run a production control plane, as `{file name: text}` in install order.

    Raises:
        UserError: A count below 1, a namespace that is not a DNS label, an empty image, or a binary
            path that is not absolute.
    """
    if options.fmt == "systemd":
        if not options.binary.startswith("/") or any(c.isspace() for c in options.binary):
            raise UserError(f"--bin must be an absolute path without spaces, not {options.binary!r}")
        return systemd_files(options.binary)
    if options.servers < 1 or options.gateways < 1:
        raise UserError("--servers and --gateways must be at least 1")
    if not _DNS_LABEL.fullmatch(options.namespace):
        raise UserError(f"--namespace must be a DNS label (a-z, 0-9, '-'), not {options.namespace!r}")
    if not options.image.strip():
        raise UserError("--image must name a container image")
    items = k8s_manifests(options)
    # Imported here: the manifest writer imports the planner and the Kubernetes driver, and this module
    # is imported when the CLI starts (its defaults are in `polycloud export control-plane --help`).
    from polycloud.services.exporting import manifest_yaml

    return {f"{m['kind'].lower()}-{m['metadata']['name']}.yaml": manifest_yaml(m) for m in items}


# -- systemd ---------------------------------------------------------------------------------------

_HEADER = f"# Written by `polycloud export control-plane --format systemd` (polycloud {__version__}).\n"

_HARDENING = f"""\
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT_S}s
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077
"""

_WITH_KEY = (
    "LoadCredential=master-key:/etc/polycloud/master.key\n"
    # The key reaches polycloud as POLYCLOUD_MASTER_KEY, read from the credential at start ($$ is `$`).
    """ExecStart=/bin/sh -c 'POLYCLOUD_MASTER_KEY="$$(cat "%d/master-key")" exec {binary} {command}'\n"""
)

_SERVER_HOME = f"""\
Environment=POLYCLOUD_HOME={SERVER_HOME}
EnvironmentFile=/etc/polycloud/polycloud.env
StateDirectory=polycloud
StateDirectoryMode=0700
ReadWritePaths={SERVER_HOME}
"""

_INIT = (
    _HEADER
    + """\
# Prepares the database once: migrations, and the first admin token, kept in
# /var/lib/polycloud/admin.token (0600) and not logged. Run it by hand on one machine, before the
# first `polycloud-server` and again after installing a newer polycloud (servers stopped):
#   systemctl start polycloud-init && cat /var/lib/polycloud/admin.token
[Unit]
Description=polycloud: prepare the state database (migrations, first admin token)
Documentation=https://github.com/polycloud/polycloud/blob/main/docs/operations.md
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User=polycloud
Group=polycloud
"""
    + _SERVER_HOME
    + _WITH_KEY.format(command="server init", binary="{binary}")
    + "# The first admin token is printed once: keep it out of the journal (errors still go there).\n"
    + "StandardOutput=null\n"
    + _HARDENING
)

_SERVER = (
    _HEADER
    + """\
# One control-plane server: the whole API on POLYCLOUD_API_ADDR; the reconciler, jobs, rollouts,
# autoscaling, failover, accounting and observer run only while it holds the leader lease.
# Enable on three machines: systemctl enable --now polycloud-server
[Unit]
Description=polycloud control-plane server
Documentation=https://github.com/polycloud/polycloud/blob/main/docs/operations.md
Wants=network-online.target
After=network-online.target polycloud-init.service
StartLimitIntervalSec=0

[Service]
Type=exec
User=polycloud
Group=polycloud
"""
    + _SERVER_HOME
    + _WITH_KEY.format(command="server", binary="{binary}")
    + "Restart=always\nRestartSec=2s\n"
    + _HARDENING
    + "\n[Install]\nWantedBy=multi-user.target\n"
)

_GATEWAY = (
    _HEADER
    + f"""\
# One gateway: serves inference on POLYCLOUD_GATEWAY_ADDR from its last-known routes, keys and rollout
# weights whatever else is down, and from its on-disk copy in {GATEWAY_HOME} after a restart
# during a database outage. It never needs the master key and never migrates the database.
# Enable on two machines behind a load balancer: systemctl enable --now polycloud-gateway
[Unit]
Description=polycloud gateway
Documentation=https://github.com/polycloud/polycloud/blob/main/docs/operations.md
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
User=polycloud
Group=polycloud
Environment=POLYCLOUD_HOME={GATEWAY_HOME}
EnvironmentFile=/etc/polycloud/polycloud.env
StateDirectory=polycloud-gateway
StateDirectoryMode=0700
ReadWritePaths={GATEWAY_HOME}
ExecStart={{binary}} gateway
# On SIGTERM readiness turns 503 and requests in flight get {DRAIN_S} s to finish.
Restart=always
RestartSec=1s
LimitNOFILE=65536
"""
    + _HARDENING
    + "\n[Install]\nWantedBy=multi-user.target\n"
)

_ENV = (
    _HEADER
    + f"""\
# Settings of polycloud-init, polycloud-server and polycloud-gateway on this machine.
#   install -D -m 0600 -o root -g root polycloud.env /etc/polycloud/polycloud.env
# systemd reads it as root before dropping to the polycloud user, which cannot read it.
# The master key is not here: it is the credential file /etc/polycloud/master.key (0600 root), the
# same on every server machine, made once with
#   (umask 077; openssl rand -base64 32 > /etc/polycloud/master.key)
# Gateway-only machines do not need it.

# The fleet's PostgreSQL database: the same on every machine.
POLYCLOUD_DATABASE_URL=postgresql+psycopg://polycloud:CHANGE-ME@db.internal:5432/polycloud

# This machine's API address, reachable by the other machines and your load balancer; it is what
# `polycloud status` shows, so name an address, not 0.0.0.0.
POLYCLOUD_API_ADDR=10.0.0.11:{API_PORT}

# The API answers only requests addressed to loopback names, POLYCLOUD_API_ADDR's host and these
# (comma-separated; *.example.com for subdomains): name your load balancer's host here.
#POLYCLOUD_API_HOSTS=polycloud.example.com

# Where the gateway listens (its home, {GATEWAY_HOME}, is set by its unit).
POLYCLOUD_GATEWAY_ADDR=0.0.0.0:{GATEWAY_PORT}
# Where the gateway stands, as provider/region: locality routing measures from here.
#POLYCLOUD_GATEWAY_REGION=aws/us-east-1

# TLS for the API and the gateway: both or neither, readable by the polycloud user.
#POLYCLOUD_TLS_CERT=/etc/polycloud/tls/cert.pem
#POLYCLOUD_TLS_KEY=/etc/polycloud/tls/key.pem

# Clusters with the kubernetes driver: the kubeconfig the servers use (readable by polycloud).
#KUBECONFIG=/etc/polycloud/kubeconfig

# Leader lease in seconds, renewed every second: the same on every server.
#POLYCLOUD_LEASE_S=4
# Leave POLYCLOUD_SERVER_ID unset: the default, srv-HOSTNAME-PID, is unique; two running servers
# must never share an id.
#POLYCLOUD_ALERT_WEBHOOK=https://alerts.example.com/polycloud
"""
)

_SYSUSERS = (
    _HEADER
    + """\
# The user the units run as. Install as /etc/sysusers.d/polycloud.conf, then run systemd-sysusers.
u polycloud - "polycloud control plane" /var/lib/polycloud
"""
)


def systemd_files(binary: str) -> dict[str, str]:
    """The units, environment file and sysusers entry, running `binary` (an absolute path)."""
    return {
        "polycloud-init.service": _INIT.format(binary=binary),
        "polycloud-server.service": _SERVER.format(binary=binary),
        "polycloud-gateway.service": _GATEWAY.format(binary=binary),
        "polycloud.env": _ENV,
        "polycloud-sysusers.conf": _SYSUSERS,
    }


# -- Kubernetes ------------------------------------------------------------------------------------


def k8s_manifests(options: ControlPlaneOptions) -> list[Manifest]:
    """The init Job, then per role (servers, gateways) a Deployment, a Service and a PDB."""
    ns = options.namespace
    return [
        _init_job(options),
        _server_deployment(options),
        _service(ns, "server", API_PORT),
        _disruption_budget(ns, "server"),
        _gateway_deployment(options),
        _service(ns, "gateway", 80),
        _disruption_budget(ns, "gateway"),
    ]


def _labels(component: str) -> dict[str, str]:
    # Not app.kubernetes.io/managed-by=polycloud: that label marks what the kubernetes driver may collect.
    return {"app.kubernetes.io/name": "polycloud", "app.kubernetes.io/component": component}


def _meta(ns: str, component: str) -> Manifest:
    return {"name": f"polycloud-{component}", "namespace": ns, "labels": _labels(component)}


def _secret_env(name: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def _probe(path: str, period_s: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _pod(containers: list[Manifest], volumes: list[Manifest], restart: str = "Always") -> Manifest:
    return {
        "automountServiceAccountToken": False,
        # No {SERVICE}_PORT variables: `polycloud-server` would become POLYCLOUD_SERVER_* settings.
        "enableServiceLinks": False,
        "restartPolicy": restart,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": volumes,
    }


def _container(name: str, image: str, command: list[str], env: list[Manifest], home: str) -> Manifest:
    return {
        "name": name,
        "image": image,
        "command": command,
        "env": [{"name": "POLYCLOUD_HOME", "value": home}, {"name": "HOME", "value": home}, *env],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "home", "mountPath": home}, {"name": "tmp", "mountPath": "/tmp"}],
    }


_SCRATCH = [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
_KUBECONFIG_VOLUME = {"name": "kubeconfig", "secret": {"secretName": KUBECONFIG_SECRET, "optional": True}}
_DB_AND_KEY = [
    _secret_env("POLYCLOUD_DATABASE_URL", "database-url"),
    _secret_env("POLYCLOUD_MASTER_KEY", "master-key"),
]


def _spread(component: str) -> list[Manifest]:
    """Spread replicas over zones and nodes when the cluster can, without blocking when it cannot."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": _labels(component)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _init_job(options: ControlPlaneOptions) -> Manifest:
    container = _container(
        "init", options.image, ["polycloud", "server", "init"], list(_DB_AND_KEY), SERVER_HOME
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(options.namespace, "init"),
        "spec": {
            # No ttlSecondsAfterFinished: the first admin token is in this Job's log, once.
            "backoffLimit": 4,
            "template": {
                "metadata": {"labels": _labels("init")},
                "spec": _pod([container], list(_SCRATCH), restart="Never"),
            },
        },
    }


def _server_deployment(options: ControlPlaneOptions) -> Manifest:
    env: list[Manifest] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # The pod's own address, so that `polycloud status` lists a URL that reaches this server.
        {"name": "POLYCLOUD_API_ADDR", "value": f"$(POD_IP):{API_PORT}"},
        # The API answers only the hosts it knows: its Service's names, for clients inside the cluster.
        {"name": "POLYCLOUD_API_HOSTS", "value": _service_hosts(options.namespace, "server")},
        *_DB_AND_KEY,
        {"name": "KUBECONFIG", "value": "/etc/polycloud/kube/config"},
    ]
    container = _container("server", options.image, ["polycloud", "server"], env, SERVER_HOME)
    container["volumeMounts"].append(
        {"name": "kubeconfig", "mountPath": "/etc/polycloud/kube", "readOnly": True}
    )
    container |= {
        "ports": [{"name": "http", "containerPort": API_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/api/v1/health", period_s=2, failures=2),
        "livenessProbe": _probe("/api/v1/health", period_s=10, failures=6),
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    }
    pod = _pod([container], [*_SCRATCH, _KUBECONFIG_VOLUME])
    pod |= {"terminationGracePeriodSeconds": STOP_TIMEOUT_S, "topologySpreadConstraints": _spread("server")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options.namespace, "server"),
        "spec": {
            "replicas": options.servers,
            "selector": {"matchLabels": _labels("server")},
            # A server refuses a schema that is not its own: an upgrade stops every old server, then
            # the new init Job migrates and the new servers start (docs/operations.md).
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": _labels("server")}, "spec": pod},
        },
    }


def _gateway_deployment(options: ControlPlaneOptions) -> Manifest:
    env: list[Manifest] = [
        {"name": "POLYCLOUD_GATEWAY_ADDR", "value": f"0.0.0.0:{GATEWAY_PORT}"},
        _secret_env("POLYCLOUD_DATABASE_URL", "database-url"),
    ]
    container = _container("gateway", options.image, ["polycloud", "gateway"], env, GATEWAY_HOME)
    sleep = ["python", "-c", f"import time; time.sleep({PRESTOP_S})"]
    container |= {
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/v2/health/ready", period_s=2, failures=2),
        "livenessProbe": _probe("/v2/health/live", period_s=10, failures=3),
        # Keep serving while endpoints drop this pod; then SIGTERM starts the drain.
        "lifecycle": {"preStop": {"exec": {"command": sleep}}},
        "resources": {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    pod = _pod([container], list(_SCRATCH))
    pod |= {"terminationGracePeriodSeconds": STOP_TIMEOUT_S, "topologySpreadConstraints": _spread("gateway")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options.namespace, "gateway"),
        "spec": {
            "replicas": options.gateways,
            "selector": {"matchLabels": _labels("gateway")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": _labels("gateway")}, "spec": pod},
        },
    }


def _service(ns: str, component: str, port: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ns, component),
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _service_hosts(ns: str, component: str) -> str:
    name = f"polycloud-{component}"
    return ",".join([name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"])


def _disruption_budget(ns: str, component: str) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(ns, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(component)}},
    }
