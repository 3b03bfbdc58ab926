"""Dagster's default run launcher, with a health check of the run's process for run monitoring.

The default launcher starts each run in a subprocess of the code server but cannot tell the
daemon's run monitoring whether that process still lives, so a run killed with SIGKILL stays
STARTED and blocks the queue. This one answers from the run's recorded pid
(:mod:`dagster_project.operations.liveness`); ``deploy/dagster.yaml`` configures it and turns
run monitoring on. It also answers for runs started by ``icp run`` in another process.
"""

from __future__ import annotations

from dagster import DagsterRun
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from dagster_project.operations.liveness import CLOSED_BY_TAG, run_process

__all__ = ["LivenessCheckingRunLauncher"]

MONITORING = "Dagster run monitoring"


class LivenessCheckingRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        process = run_process(self._instance, run)
        if process.dead:
            self._instance.add_run_tags(run.run_id, {CLOSED_BY_TAG: MONITORING})
            return CheckRunHealthResult(WorkerStatus.FAILED, process.state)
        # Alive, or nothing to ask yet: run monitoring fails any other answer, so never guess.
        return CheckRunHealthResult(WorkerStatus.RUNNING, process.state)

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        process = run_process(self._instance, run)
        step = f"; step {process.running_step} was running" if process.running_step else ""
        return f"{process.state}{step}. Run {process.dates or 'the date'} again."
