"""Benchmark the sample-data generator: time, peak memory and rows at scale vs a reference.

Runs the generator twice, each in a fresh process so peak RSS (``resource.getrusage``) is
that run's own: once for ``--reference-accounts`` (default 10,000) and once for
``--accounts`` (default 1,000,000). It prints both measurements and the ratios that matter:
time per 1,000 accounts (should stay about flat: generation is linear) and peak RSS (should
stay about flat too: memory is bounded by DuckDB's memory limit, not by the data size).

Usage::

    uv run python benchmarks/generate_sample.py                   # 1M vs 10k, temp dirs
    uv run python benchmarks/generate_sample.py --accounts 200000 --out /tmp/bench
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

_CHILD_FLAG = "--run-once"


def _parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--reference-accounts", type=int, default=10_000)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the generated data under this folder (default: temporary, removed)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--file-format", default="csv", choices=["csv", "csv.gz", "parquet"])
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument(_CHILD_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_once(arguments: argparse.Namespace) -> None:
    """Child process: generate once and print the measurements as JSON."""
    from dagster_project.sample_data import generate_landing_zone

    started = time.perf_counter()
    summary = generate_landing_zone(
        arguments.run_once,
        accounts=arguments.accounts,
        seed=arguments.seed,
        file_format=arguments.file_format,
        memory_limit=arguments.memory_limit,
    )
    seconds = time.perf_counter() - started
    written_bytes = sum(p.stat().st_size for p in arguments.run_once.rglob("*") if p.is_file())
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "accounts": arguments.accounts,
                "seconds": seconds,
                "rows": summary.total_rows,
                "bytes": written_bytes,
                "peak_rss_mib": peak_rss_kib / 1024,
            }
        )
    )


def _measure(arguments: argparse.Namespace, accounts: int, out_dir: Path) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--accounts",
        str(accounts),
        "--seed",
        str(arguments.seed),
        "--file-format",
        arguments.file_format,
        "--memory-limit",
        arguments.memory_limit,
        _CHILD_FLAG,
        str(out_dir),
    ]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _report(label: str, run: dict[str, float]) -> None:
    print(
        f"{label:>10}: {run['accounts']:>9,} accounts  {run['rows']:>11,} rows  "
        f"{run['bytes'] / 2**20:>8,.0f} MiB  {run['seconds']:>7.1f} s  "
        f"{run['seconds'] / run['accounts'] * 1000 * 1000:>6.1f} ms/1k accounts  "
        f"{run['rows'] / run['seconds']:>10,.0f} rows/s  peak RSS {run['peak_rss_mib']:>6,.0f} MiB"
    )


def main(argv: list[str] | None = None) -> None:
    arguments = _parse_arguments(argv)
    if arguments.run_once is not None:
        _run_once(arguments)
        return
    root = arguments.out or Path(tempfile.mkdtemp(prefix="icp-generate-bench-"))
    try:
        reference = _measure(
            arguments,
            arguments.reference_accounts,
            root / f"accounts-{arguments.reference_accounts}",
        )
        scaled = _measure(arguments, arguments.accounts, root / f"accounts-{arguments.accounts}")
    finally:
        if arguments.out is None:
            shutil.rmtree(root, ignore_errors=True)
    _report("reference", reference)
    _report("measured", scaled)
    time_ratio = (scaled["seconds"] / scaled["accounts"]) / (
        reference["seconds"] / reference["accounts"]
    )
    rss_ratio = scaled["peak_rss_mib"] / reference["peak_rss_mib"]
    size_ratio = scaled["accounts"] / reference["accounts"]
    print(
        f"ratios at {size_ratio:,.0f}x the accounts: time per account {time_ratio:.2f}x "
        f"(1.0 = linear), peak RSS {rss_ratio:.2f}x (bounded by --memory-limit "
        f"{arguments.memory_limit}, not by data size)"
    )


if __name__ == "__main__":
    main()
