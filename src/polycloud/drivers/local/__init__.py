"""The embedded local driver: each replica is a model-server process on this machine.

Public API: `LocalDriver` (a `ClusterDriver` that `SupportsFaults`), `list_all_replicas` and
`stop_all_replicas` (every cluster of a home at once, for `polycloud status` and `polycloud down`).

Layout under `$home`: `run/<cluster>/<id>.json` sidecar records, `logs/<id>.log` replica output,
`faults/<cluster>.json` injected faults.
"""

from polycloud.drivers.local.driver import LocalDriver
from polycloud.drivers.local.fleet import list_all_replicas, stop_all_replicas

__all__ = ["LocalDriver", "list_all_replicas", "stop_all_replicas"]
