"""Benchmark the scoring step alone at scale: time, accounts/second and peak memory vs a reference.

The claim under test: "scoring 1,000,000 accounts takes seconds, not minutes, and the model
fits on data that fits on one machine". The scoring step is
``dagster_project.scoring.pipeline.run_scoring`` + ``publish`` on a warehouse whose marts
(``dim_accounts``, ``fct_account_metrics``) are already built; ingest and dbt are not timed
here (``--build`` reports them when it builds a warehouse).

Each size is measured in a fresh process, so its peak RSS (``resource.getrusage``, DuckDB
included: it runs in process) is its own. The warehouse is copied first (scoring publishes
into it); the copy is scored. The run is split into its parts (features, backtest, learning,
factor points, anti-ICP flags, scores, profile, validation, publish) and learning into its
steps (labels, bins, ICP segments, scorecard fit, learned points, learned anti-ICP) by timing
the functions ``run_scoring`` calls. The process's CPU time (all threads) is printed next to
the wall time: on a shared machine the wall time moves with the load, the CPU time far less.

Warehouses come from ``--warehouse`` / ``--reference-warehouse`` or are built: generate
``--accounts`` accounts (``--history-months``, default 0 for speed: then there are no facts
180 days back and the backtest is skipped, as the output says) and run the whole pipeline
once, in a child process. Building 1,000,000 accounts takes a while (about 14 minutes on 2
CPUs, mostly dbt); build once with ``--workdir`` and
reuse the warehouse.

Usage::

    uv run python benchmarks/scoring_scale.py --workdir /tmp/scale        # build 1M and 20k
    uv run python benchmarks/scoring_scale.py \\
        --warehouse /tmp/scale/accounts-1000000/warehouse.duckdb \\
        --reference-warehouse /tmp/scale/accounts-20000/warehouse.duckdb
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD_FLAG = "--score-once"
_BUILD_FLAG = "--build-once"
PARTS = [
    # (module, function) that run_scoring calls, timed in the child.
    ("dagster_project.scoring.pipeline", "build_features"),
    ("dagster_project.scoring.pipeline", "_backtest"),
    ("dagster_project.scoring.pipeline", "_learn"),
    ("dagster_project.scoring.pipeline", "_combine_factor_points"),
    ("dagster_project.scoring.pipeline", "_flag_anti_icp"),
    ("dagster_project.scoring.pipeline", "score_accounts"),
    ("dagster_project.scoring.pipeline", "_profile"),
    ("dagster_project.scoring.validation", "validate"),
]
#: Steps of ``_learn`` (the current fit; the backtest's own fit is inside ``_backtest``).
LEARN_STEPS = [
    ("dagster_project.scoring.pipeline", "label_customers"),
    ("dagster_project.scoring.pipeline", "build_attribute_bins"),
    ("dagster_project.scoring.pipeline", "find_icp_segments"),
    ("dagster_project.scoring.pipeline", "fit_scorecard"),
    ("dagster_project.scoring.pipeline", "learned_factor_points"),
    ("dagster_project.scoring.pipeline", "learn_anti_icp_rules"),
]


def _parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from dagster_project.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--reference-accounts", type=int, default=20_000)
    parser.add_argument("--warehouse", type=Path, default=None, help="built warehouse, N accounts")
    parser.add_argument(
        "--reference-warehouse", type=Path, default=None, help="built warehouse, reference size"
    )
    parser.add_argument("--history-months", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--scoring-config", type=Path, default=PROJECT_ROOT / "config" / "scoring.yaml"
    )
    parser.add_argument(
        "--memory-limit", default="4GB", help="DuckDB memory limit (the pipeline's default)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where built warehouses and copies live (default: temporary, removed)",
    )
    parser.add_argument(_CHILD_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(_BUILD_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _score_once(arguments: argparse.Namespace) -> None:
    """Child process: score the warehouse once, print the measurements as JSON."""
    import importlib
    from datetime import UTC, datetime

    import duckdb

    from dagster_project.scoring.config import load_scoring_config
    from dagster_project.scoring.pipeline import publish, run_scoring

    parts: dict[str, float] = {}
    learn_steps: dict[str, float] = {}
    for steps, measured in ((PARTS, parts), (LEARN_STEPS, learn_steps)):
        for module_name, function_name in steps:
            module = importlib.import_module(module_name)
            original = getattr(module, function_name, None)
            if original is None:
                continue

            def timed(*args, __original=original, __name=function_name, __to=measured, **kw):
                started = time.perf_counter()
                try:
                    return __original(*args, **kw)
                finally:
                    __to[__name] = __to.get(__name, 0.0) + time.perf_counter() - started

            setattr(module, function_name, timed)
    config = load_scoring_config(arguments.scoring_config)
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    con = duckdb.connect(str(arguments.score_once))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{arguments.memory_limit}'")
    as_of = con.execute("SELECT max(as_of_date) FROM marts.fct_account_metrics").fetchone()[0]
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    run = run_scoring(con, config, as_of, scored_at=datetime.now(UTC).replace(tzinfo=None))
    scored = time.perf_counter()
    publish(con, as_of)
    published = time.perf_counter()
    cpu_seconds = _cpu_seconds() - cpu_started
    accounts = con.execute("SELECT count(*) FROM scored_accounts").fetchone()[0]
    backtest = con.execute(
        "SELECT status, detail FROM icp_validation_rows WHERE measure = 'backtest'"
    ).fetchone()
    con.close()
    print(
        json.dumps(
            {
                "accounts": accounts,
                "as_of": as_of.isoformat(),
                "score_version": run.score_version,
                "labelled_customers": run.labelled_customers,
                "best_customers": run.best_customers,
                "worst_customers": run.worst_customers,
                "fallback": run.fallback_reason,
                "backtest": f"{backtest[0]}: {backtest[1]}" if backtest else "none",
                "run_scoring_seconds": scored - started,
                "publish_seconds": published - scored,
                "seconds": published - started,
                "cpu_seconds": cpu_seconds,
                "parts": parts,
                "learn_steps": learn_steps,
                "rss_before_mib": rss_before_kib / 1024,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def _cpu_seconds() -> float:
    """CPU time of this process, every thread (DuckDB's and scikit-learn's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _build(arguments: argparse.Namespace, accounts: int, root: Path) -> Path:
    """Generate ``accounts`` accounts and run the whole pipeline once, in a child process (a
    child inherits its parent's peak RSS on Linux, so the parent must stay small); returns the
    warehouse."""
    warehouse = root / "warehouse.duckdb"
    if warehouse.exists():
        print(f"reusing {warehouse}", flush=True)
        return warehouse
    command = [
        sys.executable,
        __file__,
        "--accounts",
        str(accounts),
        "--history-months",
        str(arguments.history_months),
        "--seed",
        str(arguments.seed),
        "--scoring-config",
        str(arguments.scoring_config),
        _BUILD_FLAG,
        str(root),
    ]
    subprocess.run(command, check=True)
    return warehouse


def _build_once(arguments: argparse.Namespace) -> None:
    """Child process: generate and run the whole pipeline into ``--build-once``."""
    from dagster_project.run import run_pipeline
    from dagster_project.sample_data import generate_landing_zone
    from dagster_project.settings import Settings

    root, accounts = arguments.build_once, arguments.accounts
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    started = time.perf_counter()
    generate_landing_zone(
        landing, accounts=accounts, seed=arguments.seed, history_months=arguments.history_months
    )
    generated = time.perf_counter()
    summary = run_pipeline(
        Settings(
            landing_dir=landing,
            warehouse_path=warehouse,
            scoring_config_path=arguments.scoring_config,
        )
    )
    if not summary.success:
        raise RuntimeError(f"building {accounts} accounts failed: {summary.failures}")
    print(
        f"built {accounts:,} accounts: generate {generated - started:.0f} s, whole pipeline "
        f"(ingest, dbt, scoring, checks) {time.perf_counter() - generated:.0f} s",
        flush=True,
    )


def _measure(arguments: argparse.Namespace, warehouse: Path, scratch: Path) -> dict:
    copy = scratch / f"scored-{warehouse.parent.name}-{warehouse.name}"
    shutil.copyfile(warehouse, copy)
    wal = warehouse.with_name(warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    command = [
        sys.executable,
        __file__,
        "--scoring-config",
        str(arguments.scoring_config),
        "--memory-limit",
        arguments.memory_limit,
        _CHILD_FLAG,
        str(copy),
    ]
    try:
        completed = subprocess.run(command, check=True, capture_output=True, text=True)
    finally:
        copy.unlink(missing_ok=True)
        copy.with_name(copy.name + ".wal").unlink(missing_ok=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _report(label: str, run: dict) -> None:
    print(
        f"{label:>10}: {run['accounts']:>9,} accounts  "
        f"run_scoring {run['run_scoring_seconds']:>6.1f} s  "
        f"publish {run['publish_seconds']:>5.1f} s  total {run['seconds']:>6.1f} s "
        f"(CPU {run.get('cpu_seconds', float('nan')):>5.1f} s)  "
        f"{run['accounts'] / run['seconds']:>9,.0f} accounts/s  "
        f"peak RSS {run['peak_rss_mib']:>6,.0f} MiB (before scoring {run['rss_before_mib']:,.0f})"
    )
    print(
        f"{'':>12}{run['score_version']}, {run['labelled_customers']:,} labelled customers "
        f"({run['best_customers']:,} best, {run['worst_customers']:,} worst), "
        f"backtest {run['backtest']}"
        + (f", FALLBACK: {run['fallback']}" if run["fallback"] else "")
    )
    print(
        f"{'':>12}parts: "
        + ", ".join(f"{name.lstrip('_')} {seconds:.1f}s" for name, seconds in run["parts"].items())
    )
    if run.get("learn_steps"):
        print(
            f"{'':>12}learn: "
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in run["learn_steps"].items())
        )


def main(argv: list[str] | None = None) -> None:
    arguments = _parse_arguments(argv)
    if arguments.score_once is not None:
        _score_once(arguments)
        return
    if arguments.build_once is not None:
        _build_once(arguments)
        return
    root = arguments.workdir or Path(tempfile.mkdtemp(prefix="icp-scoring-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        reference_size = arguments.reference_accounts
        reference_warehouse = arguments.reference_warehouse or _build(
            arguments, reference_size, root / f"accounts-{reference_size}"
        )
        warehouse = arguments.warehouse or _build(
            arguments, arguments.accounts, root / f"accounts-{arguments.accounts}"
        )
        reference = _measure(arguments, reference_warehouse, root)
        scaled = _measure(arguments, warehouse, root)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    _report("reference", reference)
    _report("measured", scaled)
    per_account = (scaled["seconds"] / scaled["accounts"]) / (
        reference["seconds"] / reference["accounts"]
    )
    print(
        f"ratios at {scaled['accounts'] / reference['accounts']:,.1f}x the accounts: time per "
        f"account {per_account:.2f}x (1.0 = linear, < 1 = fixed costs amortised), peak RSS "
        f"{scaled['peak_rss_mib'] / reference['peak_rss_mib']:.2f}x"
    )


if __name__ == "__main__":
    main()
