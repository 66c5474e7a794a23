"""Drills: real load through the gateway while a fault is injected and cleared, measured honestly.

- `timeline`: the figures (percentiles, rto, recovery) from a timeline of requests; pure.
- `load`: the open-loop scheduler (fixed arrival rate, bounded concurrency) and the HTTP sender.
- `target`: the cluster and service checked against the fleet, and a request that fits the model.
- `running`: a drill from plan to report.
"""

from polycloud.drills.running import DrillApi, DrillKind, DrillPlan, drill, run_drill
from polycloud.drills.timeline import DrillReport, FaultWindow, Sample

__all__ = ["DrillApi", "DrillKind", "DrillPlan", "DrillReport", "FaultWindow", "Sample", "drill", "run_drill"]
