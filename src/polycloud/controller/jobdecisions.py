"""Pure decisions of the job controller: how an attempt's ending moves its run, and where to restart.

No I/O here: the controller feeds in what the store and the drivers said and acts on the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from polycloud.catalog import Catalog
from polycloud.drivers.jobs import JobStatus
from polycloud.placement.choices import Choice, ProblemBuilder
from polycloud.placement.sites import build_site
from polycloud.spec.fleet import Fleet
from polycloud.spec.models import Cluster, Dataset, Job, Policy
from polycloud.state.job_records import AttemptState, JobRunRecord, JobRunState


@dataclass(frozen=True)
class Outcome:
    """What an ended attempt means: its final state, its run's next state, and an event."""

    attempt: AttemptState
    run: JobRunState
    reason: str
    message: str


def outcome(run: JobRunRecord, status: JobStatus, max_restarts: int) -> Outcome:
    """The consequence of `status` (an ended attempt) for `run`.

    Preemptions and failures both use up a restart: `maxRestarts` bounds what a job may cost.
    A `stopped` attempt (polycloud shut down) resumes later without counting as a restart.
    """
    if status.state == "succeeded":
        return Outcome("succeeded", "succeeded", "JobSucceeded", "finished (exit status 0)")
    if status.state == "cancelled":
        return Outcome("cancelled", "cancelled", "JobCancelled", "cancelled")
    if status.state == "stopped":
        return Outcome("stopped", "pending", "JobStopped", "stopped with the control plane; resumes later")
    ended: AttemptState = "preempted" if status.state == "preempted" else "failed"
    what = "preempted" if ended == "preempted" else f"failed: {status.message or 'unknown reason'}"
    used = run.restarts + 1  # this attempt's successor would be one more restart
    if used > max_restarts:
        return Outcome(ended, "failed", "JobFailed", f"{what}; no restarts left (maxRestarts {max_restarts})")
    reason = "JobPreempted" if ended == "preempted" else "JobAttemptFailed"
    return Outcome(ended, "pending", reason, f"{what}; restart {used} of {max_restarts}")


def ranked_choices(
    job: Job,
    clusters: dict[str, Cluster],
    datasets: dict[str, Dataset],
    policies: dict[str, Policy],
    catalog: Catalog,
) -> list[Choice]:
    """Every feasible cluster for `job` alone, cheapest first, priced as the planner prices them.

    Quotas held by other workloads are not considered: a restart needs capacity now, which the plan of
    the whole fleet made room for in the planned cluster only.
    """
    fleet = Fleet(clusters=clusters, datasets=datasets, policies=policies, jobs={job.metadata.name: job})
    sites = {name: build_site(c, catalog) for name, c in clusters.items()}
    problem = ProblemBuilder(fleet, sites, catalog).build(job)
    return sorted(problem.choices["active"], key=lambda c: (c.cost, c.cluster))


def next_cluster(strategy: str, last: str, last_state: AttemptState, ranked: list[str]) -> str:
    """Where the next attempt runs: the last cluster, or with `next-cheapest` after a preemption or
    failure, the cheapest feasible cluster other than the last one (the last one when there is none)."""
    if strategy != "next-cheapest" or last_state == "stopped":
        return last
    return next((c for c in ranked if c != last), last)
