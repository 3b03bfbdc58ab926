"""Import the libraries of the steps after dbt while dbt runs in a process of its own.

The scoring step's scikit-learn, SciPy's optimiser and scorecard library (optbinning; ~5 s
together) and the publish step's Great Expectations (~5 s) are imported on first use, so that
commands which never score or publish (``icp explain``, the Dagster UI loading definitions)
do not pay for them. In a run, the dbt steps keep the main process waiting on dbt's output
for many seconds: importing them then, in a thread, takes that time off the run's wall time.
Whatever the thread does not finish, or fails to import, is imported (and fails) where it is
used, as without it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

#: Imported in this order (the scoring step's first); Great Expectations reads its analytics
#: setting at import.
LATER_STEP_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.cluster",
    "scipy.optimize",
    "optbinning",
    "great_expectations",
)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _import_later_step_modules() -> None:
    from dagster_project.publish.quality import disable_great_expectations_analytics

    disable_great_expectations_analytics()
    for module in LATER_STEP_MODULES:
        # A library that cannot be imported here fails, with its own error, in its step.
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def preload_later_steps() -> threading.Thread:
    """Start importing ``LATER_STEP_MODULES`` in a daemon thread, once per process."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(
                target=_import_later_step_modules, name="preload-later-steps", daemon=True
            )
            _thread.start()
        return _thread
