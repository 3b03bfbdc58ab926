"""The ``icp`` console script exits without tearing the interpreter down, and says the same,
with the same exit status, as the Typer app exiting the usual way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ICP = Path(sys.executable).with_name("icp")
TYPER_APP = [sys.executable, "-c", "from dagster_project.cli import app; app(prog_name='icp')"]


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],  # exit 0
        ["no-such-command"],  # a usage error: exit 2
        ["explain", "ACC-1", "--warehouse", "{missing}"],  # the command fails: exit 1
    ],
    ids=["help", "usage-error", "command-fails"],
)
def test_the_console_script_exits_like_the_app(arguments, tmp_path):
    arguments = [a.format(missing=tmp_path / "missing.duckdb") for a in arguments]
    fast = subprocess.run([ICP, *arguments], capture_output=True, text=True, timeout=300)
    usual = subprocess.run([*TYPER_APP, *arguments], capture_output=True, text=True, timeout=300)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        usual.returncode,
        usual.stdout,
        usual.stderr,
    )
    assert fast.stdout or fast.stderr, "nothing was said (the output was not flushed)"


def test_an_exception_escaping_the_app_exits_1_with_its_traceback(tmp_path):
    script = tmp_path / "raises.py"
    script.write_text(
        "import dagster_project.cli as cli\n"
        "def broken():\n    raise RuntimeError('escaped')\n"
        "cli.app = broken\n"
        "cli.main()\n"
    )
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "RuntimeError: escaped" in result.stderr
