"""The Kubernetes driver: replicas as pods of Deployments on EKS, GKE, AKS or an on-prem cluster.

Public API: `KubernetesDriver` (a `ClusterDriver`), and the pure manifest builders in `manifests`
(services) and `jobs` (training jobs, also as Argo Workflows) that `polycloud export k8s` writes.
See docs/kubernetes.md for the mapping and how to point polycloud at a cluster.
"""

from polycloud.drivers.kubernetes.driver import KubernetesDriver

__all__ = ["KubernetesDriver"]
