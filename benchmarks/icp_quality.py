"""Benchmark how well the learned ICP recovers the ICP planted in generated data.

For each seed: generate a landing zone (``history_months=8``, so the 180-day backtest has
facts), run the whole pipeline through Dagster with ``config/scoring.yaml``, and compare the
published scores with the planted truth (``evaluate_against_truth``). Prints one row per seed
and the mean, each measure next to its target:

- AUC of ``fit_score`` against the planted ICP segment (target >= 0.90), the AUC of an
  analyst's baseline (one-hot logistic regression on the same best/worst labels, same run),
  their difference and ratio (no target: the baseline is context, not a bar);
- anti-ICP precision (>= 0.80) and recall (>= 0.70) against the planted anti-ICP segment;
- win rate of the high tier / win rate of the low tier on all closed opportunities (>= 3),
  next to the same ratio for the planted ICP accounts / all others (the generator's own
  contrast: what a perfect two-way split would show; a three-tier split can beat it);
- the high tier's share of accounts (informational; the pipeline warns outside 5-15%);
- the backtest AUC the pipeline itself wrote to ``marts.icp_validation`` (informational).

Usage::

    uv run python benchmarks/icp_quality.py                       # 3,000 accounts, seeds 1,2,3
    uv run python benchmarks/icp_quality.py --accounts 20000 --seeds 1
    uv run python benchmarks/icp_quality.py --workdir /tmp/icpq   # keep the data
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.run import run_pipeline
from dagster_project.sample_data import generate_landing_zone
from dagster_project.sample_data.evaluation import IcpQuality, evaluate_against_truth
from dagster_project.settings import PROJECT_ROOT, Settings

#: (name, attribute of SeedResult, target as (operator, value) or None, format)
MEASURES: list[tuple[str, str, tuple[str, float] | None, str]] = [
    ("AUC fit_score vs planted ICP", "auc_fit_score", (">=", 0.90), "{:.3f}"),
    ("AUC analyst baseline", "auc_baseline", None, "{:.3f}"),
    ("AUC learned - baseline", "auc_difference", None, "{:+.3f}"),
    ("AUC learned / baseline", "auc_ratio", None, "{:.3f}"),
    ("anti-ICP precision", "anti_icp_precision", (">=", 0.80), "{:.3f}"),
    ("anti-ICP recall", "anti_icp_recall", (">=", 0.70), "{:.3f}"),
    ("win rate high tier", "win_rate_high", None, "{:.3f}"),
    ("win rate low tier", "win_rate_low", None, "{:.3f}"),
    ("win rate high / low", "win_rate_ratio", (">=", 3.0), "{:.2f}"),
    ("  planted ICP / rest (reference)", "planted_win_rate_ratio", None, "{:.2f}"),
    ("high tier share", "high_tier_share", None, "{:.3f}"),
    ("backtest AUC (icp_validation)", "backtest_auc", None, "{:.3f}"),
    ("out-of-sample AUC (cross-validated)", "out_of_sample_auc", None, "{:.3f}"),
    ("  baseline, same folds", "out_of_sample_auc_baseline", None, "{:.3f}"),
    ("pipeline seconds", "pipeline_seconds", None, "{:.0f}"),
]


@dataclass
class SeedResult:
    seed: int
    accounts: int
    quality: IcpQuality
    backtest_auc: float | None
    out_of_sample_auc: float | None
    out_of_sample_auc_baseline: float | None
    out_of_sample_verdict: str
    backtest_status: str
    score_version: str
    pipeline_seconds: float
    warnings: list[str]

    def measure(self, name: str) -> float | None:
        """A measure of this result, else of its ``IcpQuality``."""
        if hasattr(self, name):
            return getattr(self, name)
        return getattr(self.quality, name)

    @property
    def auc_difference(self) -> float:
        return self.quality.auc_fit_score - self.quality.auc_baseline

    @property
    def auc_ratio(self) -> float:
        return self.quality.auc_fit_score / self.quality.auc_baseline


def _parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated generator seeds")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep landing zones and warehouses here (default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--scoring-config", type=Path, default=PROJECT_ROOT / "config" / "scoring.yaml"
    )
    return parser.parse_args(argv)


def run_seed(seed: int, accounts: int, root: Path, scoring_config: Path) -> SeedResult:
    """Generate, run and evaluate one seed under ``root``."""
    landing = root / "landing"
    warehouse = root / "warehouse.duckdb"
    if warehouse.exists():
        warehouse.unlink()
    generate_landing_zone(landing, accounts=accounts, seed=seed, history_months=8)
    started = time.perf_counter()
    summary = run_pipeline(
        Settings(landing_dir=landing, warehouse_path=warehouse, scoring_config_path=scoring_config)
    )
    seconds = time.perf_counter() - started
    if not summary.success:
        raise RuntimeError(f"seed {seed}: the pipeline failed: {summary.failures}")
    quality = evaluate_against_truth(warehouse, landing)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        as_of = con.execute("SELECT max(as_of_date) FROM marts.account_fit_scores").fetchone()[0]
        validation = {
            measure: (value, status)
            for measure, value, status in con.execute(
                "SELECT measure, value, status FROM marts.icp_validation WHERE as_of_date = ?",
                [as_of],
            ).fetchall()
        }
        score_version = con.execute(
            "SELECT any_value(score_version) FROM marts.account_fit_scores"
        ).fetchone()[0]
    return SeedResult(
        seed=seed,
        accounts=quality.accounts,
        quality=quality,
        backtest_auc=validation.get("backtest_auc_won_and_retained", (None, ""))[0],
        out_of_sample_auc=validation.get("out_of_sample_auc", (None, ""))[0],
        out_of_sample_auc_baseline=validation.get("out_of_sample_auc_baseline", (None, ""))[0],
        out_of_sample_verdict=validation.get("out_of_sample_auc", (None, "missing"))[1],
        backtest_status=validation.get("backtest", (None, "missing"))[1],
        score_version=score_version,
        pipeline_seconds=seconds,
        warnings=[measure for measure, (_, status) in validation.items() if status == "warn"],
    )


def _verdict(value: float | None, target: tuple[str, float] | None) -> str:
    if target is None:
        return ""
    if value is None:
        return "n/a"
    operator, bound = target
    return "pass" if (value >= bound if operator == ">=" else value <= bound) else "FAIL"


def _format(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def report(results: list[SeedResult]) -> None:
    """Print one column per seed, the mean, the target and pass/fail of the mean."""
    seeds = [f"seed {r.seed}" for r in results]
    header = f"{'measure':<31}" + "".join(f"{s:>10}" for s in seeds)
    header += f"{'mean':>10}  {'target':<8}{'mean':<6}{'per seed'}"
    print(header)
    print("-" * len(header))
    for name, attribute, target, pattern in MEASURES:
        values = [r.measure(attribute) for r in results]
        present = [v for v in values if v is not None]
        mean = statistics.fmean(present) if present else None
        target_text = f"{target[0]} {target[1]:g}" if target else ""
        per_seed = " ".join(_verdict(v, target) for v in values) if target else ""
        print(
            f"{name:<31}"
            + "".join(f"{_format(v, pattern):>10}" for v in values)
            + f"{_format(mean, pattern):>10}  {target_text:<8}{_verdict(mean, target):<6}"
            + per_seed
        )
    print()
    for r in results:
        print(
            f"seed {r.seed}: {r.accounts:,} accounts scored, {r.score_version}, backtest "
            f"{r.backtest_status}, out of sample {r.out_of_sample_verdict}, validation "
            f"warnings: {', '.join(r.warnings) or 'none'}"
        )


def main(argv: list[str] | None = None) -> None:
    arguments = _parse_arguments(argv)
    seeds = [int(s) for s in arguments.seeds.split(",") if s.strip()]
    root = arguments.workdir or Path(tempfile.mkdtemp(prefix="icp-quality-"))
    results = []
    try:
        for seed in seeds:
            print(f"seed {seed}: {arguments.accounts:,} accounts ...", flush=True)
            results.append(
                run_seed(
                    seed,
                    arguments.accounts,
                    root / f"accounts-{arguments.accounts}-seed-{seed}",
                    arguments.scoring_config,
                )
            )
    finally:
        if arguments.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"ICP recovery, {arguments.accounts:,} generated accounts, {arguments.scoring_config}")
    report(results)


if __name__ == "__main__":
    main()
