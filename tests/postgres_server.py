"""A throwaway PostgreSQL server on loopback for the PostgreSQL target's tests.

It is the server ``deploy/postgres_server.sh`` starts (the script ``.ci/run`` installs it
with), on a free port, its files in a new directory under the system's temporary directory
(not pytest's: run as root, the server runs as the ``postgres`` user, who cannot enter
pytest's private directories); the tests read its PG* variables.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from dagster_project.settings import PROJECT_ROOT

SERVER_SCRIPT = PROJECT_ROOT / "deploy" / "postgres_server.sh"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """Start a server; yields its PG* variables; stops it and removes its files."""
    directory = Path(tempfile.mkdtemp(prefix="icp-postgres-"))
    started = subprocess.run(
        [str(SERVER_SCRIPT), "start", str(directory), str(_free_port())],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(
            f"could not start PostgreSQL ({SERVER_SCRIPT} start; install the server with "
            f"`{SERVER_SCRIPT} install`): {started.stderr or started.stdout}"
        )
    try:
        environment = {}
        for line in (directory / "env").read_text().splitlines():
            name, value = line.removeprefix("export ").split("=", 1)
            environment[name] = value
        yield environment
    finally:
        subprocess.run([str(SERVER_SCRIPT), "stop", str(directory)], check=True)
        shutil.rmtree(directory, ignore_errors=True)


def fresh_database(server_environment: dict[str, str], name: str) -> dict[str, str]:
    """A new, empty database ``name`` on the server of ``server_environment`` (PG* variables);
    the PG* variables that reach it. Each test module that runs the pipeline or copies tables
    uses a database of its own, so that none reads another's tables."""
    from dagster_project.postgres import connect

    with closing(connect(server_environment)) as server:
        server.autocommit = True
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
            cursor.execute(f"CREATE DATABASE {name}")
    return {**server_environment, "PGDATABASE": name}
