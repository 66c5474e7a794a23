"""The gateway: one endpoint in front of every replica of every service, across clusters and clouds.

It serves the Open Inference Protocol at the replicas' own paths, learns routes through the small
`RouteSource` protocol (never by importing the controller or the drivers), and routes each request to
the best usable replica by locality, measured latency and load, honouring each service's pattern
(active, standby, burst). Failed attempts are retried on another replica, preferably in another
cluster, within the request's deadline; replicas are health-checked actively and ejected passively.

    routes       RouteTable, RouteSource (the protocol), StaticRouteSource
    sourcing     StoreRouteSource: routes from the state store
    settings     GatewaySettings
    upstreams    Upstream (a replica's measured routing state), the registry that follows route tables
    locality     client region → cluster round-trip times (catalog, geo model)
    policies     routing policies by name: locality, latency, least-outstanding, p2c
    ejection     passive outlier ejection policies by name
    selecting    candidates of an attempt: role tiers, health, saturation, retry spreading
    connections  keep-alive HTTP/1.1 connection pools per replica (httptools over asyncio)
    forwarding   the upstream call over those pools; outcomes as values
    background   route refreshing and active health checking
    proxy        the request path: admission, attempts, answers
    wire         ASGI types and response helpers
    metrics      Prometheus metrics on the gateway's own registry
    flagboard    feature flags of the route table, evaluated in memory by flagd's evaluator
    ofrep        the OpenFeature Remote Evaluation Protocol at the gateway's root
    flagrouting  a Service's requests sent where its feature flag says
    app          create_app and the lifespan
    running      the `python -m polycloud.gateway` process
    wholewrites  uvicorn's HTTP protocol, sending each answer in one write
"""

from polycloud.gateway.app import GatewayApp, create_app
from polycloud.gateway.ejection import EjectionPolicy, ejection_policies
from polycloud.gateway.policies import RoutingPolicy, routing_policies
from polycloud.gateway.routes import (
    ClusterRoute,
    ReplicaRoute,
    RouteSource,
    RouteTable,
    ServiceRoutes,
    StaticRouteSource,
)
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.sourcing import StoreRouteSource

__all__ = [
    "ClusterRoute",
    "EjectionPolicy",
    "GatewayApp",
    "GatewaySettings",
    "ReplicaRoute",
    "RouteSource",
    "RouteTable",
    "RoutingPolicy",
    "ServiceRoutes",
    "StaticRouteSource",
    "StoreRouteSource",
    "create_app",
    "ejection_policies",
    "routing_policies",
]
