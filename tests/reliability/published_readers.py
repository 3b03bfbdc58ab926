"""Reader processes for the published marts, and a tiny warehouse to publish from.

Run as a script, a reader is an outside consumer: it imports DuckDB (and pandas or polars),
never the project. It loops until a stop file appears, each iteration opening the published
copy afresh the way docs/consumers.md tells consumers to, and writes what it saw to a JSON
file: one observation per iteration (publish version, rows, accounts, as_of_dates,
score_versions, the history rows of that date, dim_accounts rows) or the error it got.

    python published_readers.py MODE PUBLISHED_DIR OUT_JSON STOP_FILE

MODE is ``duckdb`` (the published DuckDB file, read-only), ``parquet-duckdb``,
``parquet-pandas`` or ``parquet-polars`` (the Parquet folders, ``current`` resolved once per
read).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

__all__ = [
    "MODES",
    "ReaderProcess",
    "finish_readers",
    "is_complete",
    "make_tiny_warehouse",
    "running_readers",
    "start_reader",
]

MODES = ("duckdb", "parquet-duckdb", "parquet-pandas", "parquet-polars")
PAUSE_SECONDS = 0.02  # two CPUs in CI: leave the pipeline room

_SCORES_SQL = """
SELECT count(*) AS rows, count(DISTINCT account_id) AS accounts,
       count(DISTINCT as_of_date) AS dates, count(DISTINCT score_version) AS score_versions,
       min(as_of_date)::VARCHAR AS as_of_date, min(score_version) AS score_version,
       bit_xor(hash(account_id, fit_score, fit_tier, score_version))::VARCHAR AS checksum
FROM {scores}
"""


def _observe_duckdb_file(published: Path) -> dict:
    with duckdb.connect(str(published / "icp_marts.duckdb"), read_only=True) as con:
        obs = _scores(con, "marts.account_fit_scores")
        obs["version"] = con.execute("SELECT version FROM meta.publish_info").fetchone()[0]
        obs["history_rows"] = con.execute(
            "SELECT count(*) FROM marts.account_fit_score_history WHERE as_of_date = $d",
            {"d": obs["as_of_date"]},
        ).fetchone()[0]
        obs["dim_rows"] = con.execute(
            "SELECT count(*) FROM marts.dim_accounts WHERE as_of_date = $d",
            {"d": obs["as_of_date"]},
        ).fetchone()[0]
    return obs


def _scores(con, scores: str) -> dict:
    cursor = con.execute(_SCORES_SQL.format(scores=scores))
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def _current(published: Path) -> Path:
    # Resolve the pointer once: every file of this read then comes from one version.
    return Path(os.path.realpath(published / "parquet" / "current"))


def _observe_parquet_duckdb(published: Path) -> dict:
    version = _current(published)

    def table(name: str) -> str:
        return f"read_parquet('{version / name}/**/*.parquet', hive_partitioning = true)"

    with duckdb.connect() as con:
        obs = _scores(con, table("account_fit_scores"))
        obs["history_rows"] = con.execute(
            f"SELECT count(*) FROM {table('account_fit_score_history')} WHERE as_of_date = $d",
            {"d": obs["as_of_date"]},
        ).fetchone()[0]
        obs["dim_rows"] = con.execute(
            f"SELECT count(*) FROM {table('dim_accounts')} WHERE as_of_date = $d",
            {"d": obs["as_of_date"]},
        ).fetchone()[0]
    obs["version"] = version.name
    return obs


def _observe_parquet_pandas(published: Path) -> dict:
    import pandas as pd

    version = _current(published)
    scores = pd.read_parquet(version / "account_fit_scores")
    as_of = sorted(scores["as_of_date"].astype(str).unique())
    history = pd.read_parquet(
        version / "account_fit_score_history", filters=[("as_of_date", "=", as_of[0])]
    )
    return {
        "version": version.name,
        "rows": len(scores),
        "accounts": int(scores["account_id"].nunique()),
        "dates": len(as_of),
        "score_versions": int(scores["score_version"].nunique()),
        "as_of_date": as_of[0],
        "score_version": str(scores["score_version"].iloc[0]),
        "history_rows": len(history),
        "dim_rows": len(
            pd.read_parquet(
                version / "dim_accounts",
                columns=["account_id"],
                filters=[("as_of_date", "=", as_of[0])],
            )
        ),
    }


def _observe_parquet_polars(published: Path) -> dict:
    import polars as pl

    version = _current(published)

    def table(name: str):
        return pl.scan_parquet(f"{version / name}/**/*.parquet", hive_partitioning=True)

    scores = table("account_fit_scores").collect()
    as_of = scores["as_of_date"].unique().sort()
    history = table("account_fit_score_history").filter(pl.col("as_of_date") == as_of[0])
    return {
        "version": version.name,
        "rows": scores.height,
        "accounts": scores["account_id"].n_unique(),
        "dates": len(as_of),
        "score_versions": scores["score_version"].n_unique(),
        "as_of_date": str(as_of[0]),
        "score_version": scores["score_version"][0],
        "history_rows": history.select(pl.len()).collect().item(),
        "dim_rows": table("dim_accounts")
        .filter(pl.col("as_of_date") == as_of[0])
        .select(pl.len())
        .collect()
        .item(),
    }


_OBSERVERS = {
    "duckdb": _observe_duckdb_file,
    "parquet-duckdb": _observe_parquet_duckdb,
    "parquet-pandas": _observe_parquet_pandas,
    "parquet-polars": _observe_parquet_polars,
}


def is_complete(obs: dict) -> bool:
    """One complete version: one as_of_date, one score_version, one row per account, and the
    same number of accounts in the history of that date and in dim_accounts."""
    return (
        obs["dates"] == 1
        and obs["score_versions"] == 1
        and obs["rows"] > 0
        and obs["rows"] == obs["accounts"] == obs["history_rows"] == obs["dim_rows"]
    )


def _loop(mode: str, published: Path, out: Path, stop: Path) -> None:
    observe = _OBSERVERS[mode]
    observations: list[dict] = []
    ready = out.with_suffix(".ready")
    # A test that dies before touching the stop file must not leave readers spinning.
    parent = os.getppid()
    while not stop.exists() and os.getppid() == parent:
        started = time.time()
        try:
            obs = observe(published)
        except Exception as error:  # every error is an observation; the test asserts none
            obs = {"error": f"{type(error).__name__}: {error}"}
        obs["t"] = started
        obs["seconds"] = round(time.time() - started, 4)
        observations.append(obs)
        if not ready.exists() and "error" not in obs:
            ready.touch()
        time.sleep(PAUSE_SECONDS)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mode": mode, "observations": observations}), encoding="utf-8")
    os.replace(tmp, out)


@dataclass
class ReaderProcess:
    mode: str
    process: subprocess.Popen
    out: Path
    stop: Path

    @property
    def ready(self) -> bool:
        return self.out.with_suffix(".ready").exists()

    def kill(self) -> None:
        self.stop.touch()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def finish(self, timeout: float = 60) -> list[dict]:
        """Stop the reader and return its observations."""
        self.stop.touch()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        if self.process.returncode != 0:
            raise RuntimeError(f"reader {self.mode} exited with {self.process.returncode}")
        return json.loads(self.out.read_text(encoding="utf-8"))["observations"]


@contextmanager
def running_readers(
    modes: Sequence[str], published: Path, work: Path, timeout: float = 60
) -> Iterator[list[ReaderProcess]]:
    """Start one reader per mode and wait until each has read a version; if anything fails
    inside (or they never get there), every reader is killed. Collect with finish_readers."""
    readers = [start_reader(mode, published, work) for mode in modes]
    try:
        deadline = time.monotonic() + timeout
        while not all(r.ready for r in readers):
            if exited := [r.mode for r in readers if r.process.poll() is not None]:
                raise RuntimeError(f"readers exited early: {exited}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"readers never read a version: {[r.mode for r in readers]}")
            time.sleep(0.05)
        yield readers
    except BaseException:
        for reader in readers:
            reader.kill()
        raise


def finish_readers(readers: list[ReaderProcess]) -> dict[str, list[dict]]:
    """Stop every reader, then collect each one's observations (mode -> observations); if one
    cannot be collected, the others are still stopped before the error propagates."""
    for reader in readers:
        reader.stop.touch()
    observed, errors = {}, []
    for reader in readers:
        try:
            observed[reader.mode] = reader.finish()
        except Exception as error:
            reader.kill()
            errors.append(f"{reader.mode}: {error}")
    if errors:
        raise RuntimeError("; ".join(errors))
    return observed


def start_reader(mode: str, published: Path, work: Path) -> ReaderProcess:
    """A reader process (this file run by the test's Python) looping on ``published``."""
    work.mkdir(parents=True, exist_ok=True)
    out, stop = work / f"{mode}.json", work / f"{mode}.stop"
    process = subprocess.Popen(
        [sys.executable, __file__, mode, str(published), str(out), str(stop)],
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{mode}.stderr").open("wb"),
    )
    return ReaderProcess(mode=mode, process=process, out=out, stop=stop)


def make_tiny_warehouse(
    path: Path, as_of: date, accounts: int, score_version: str = "v1", extra_dim_column=""
) -> None:
    """The eight marts for one as-of date, a few rows each (history keeps earlier dates)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        ids = f"SELECT 'ACC-' || i AS account_id FROM range({accounts}) AS t(i)"
        dim = (
            f"SELECT $as_of::DATE AS as_of_date, account_id, 'Firm ' || account_id AS "
            f"account_name, 'b2b_saas' AS business_model {extra_dim_column} FROM ({ids})"
        )
        columns = [d[0] for d in con.execute(f"{dim} LIMIT 0", {"as_of": as_of}).description]
        existing = [
            name
            for (name,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'marts' "
                "AND table_name = 'dim_accounts' ORDER BY column_index"
            ).fetchall()
        ]
        if existing != columns:  # keep earlier dates only while the columns stay the same
            con.execute(
                f"CREATE OR REPLACE TABLE marts.dim_accounts AS {dim} LIMIT 0", {"as_of": as_of}
            )
        # Like the dbt model: the current state, which a backfill of an older date leaves alone.
        (newest,) = con.execute("SELECT max(as_of_date) FROM marts.dim_accounts").fetchone()
        if newest is None or as_of >= newest:
            con.execute("DELETE FROM marts.dim_accounts")
            con.execute(f"INSERT INTO marts.dim_accounts {dim}", {"as_of": as_of})
        con.execute(
            f"""
            CREATE OR REPLACE TABLE marts.account_fit_scores AS
            SELECT account_id, $as_of::DATE AS as_of_date,
                   (hash(account_id, $as_of) % 101)::INTEGER AS fit_score, 'medium' AS fit_tier,
                   [{{'factor': 'industry', 'points': 10}}] AS top_factors,
                   $version AS score_version
            FROM ({ids})
            """,
            {"as_of": as_of, "version": score_version},
        )
        for table in ("account_fit_score_history", "fct_account_metrics"):
            con.execute(
                f"CREATE TABLE IF NOT EXISTS marts.{table} AS FROM marts.account_fit_scores LIMIT 0"
            )
            con.execute(f"DELETE FROM marts.{table} WHERE as_of_date = $d", {"d": as_of})
            con.execute(f"INSERT INTO marts.{table} FROM marts.account_fit_scores")
        con.execute(
            "CREATE TABLE IF NOT EXISTS marts.account_fit_score_changes "
            "(as_of_date DATE, account_id VARCHAR, change_kind VARCHAR, fit_score INTEGER)"
        )
        con.execute(
            "DELETE FROM marts.account_fit_score_changes WHERE as_of_date = $d", {"d": as_of}
        )
        con.execute(
            "INSERT INTO marts.account_fit_score_changes "
            "SELECT as_of_date, account_id, 'new', fit_score FROM marts.account_fit_scores"
        )
        for table in ("fct_segment_cohorts", "icp_profile", "icp_validation"):
            con.execute(
                f"CREATE TABLE IF NOT EXISTS marts.{table} "
                "(as_of_date DATE, measure VARCHAR, value DOUBLE)"
            )
            con.execute(
                f"INSERT INTO marts.{table} VALUES ($d, 'accounts', $n)",
                {"d": as_of, "n": accounts},
            )


if __name__ == "__main__":
    _loop(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
