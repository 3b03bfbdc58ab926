"""An exclusive, crash-safe lock on the warehouse for the length of a run.

``flock`` on ``<warehouse>.lock``: the kernel releases it when the holding process exits, so
a run killed with SIGKILL never leaves a stale lock behind. The file records who holds it, for
the message of a run that gave up waiting.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

__all__ = ["WarehouseLock", "lock_path_for"]

_POLL_SECONDS = 1.0


def lock_path_for(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".lock")


class WarehouseLock:
    """``acquire`` blocks until no other process holds the lock (or the timeout passes)."""

    def __init__(self, warehouse: Path) -> None:
        self.path = lock_path_for(warehouse)
        self._fd: int | None = None

    def acquire(
        self, run_id: str, timeout_seconds: float, log: Callable[[str], None] | None = None
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(fd)
                    raise dg.Failure(
                        description=(
                            f"the warehouse is in use by another run ({holder}) and stayed so "
                            f"for {timeout_seconds:.0f} s; this run wrote nothing. Retry when "
                            f"it has finished (lock file {self.path})."
                        ),
                        allow_retries=False,
                    ) from None
                if log and not announced:
                    log(f"waiting for the warehouse lock held by {self.holder()}")
                    announced = True
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        holder = {
            "run_id": run_id,
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "unknown holder"
        return f"run {info.get('run_id')}, pid {info.get('pid')}, since {info.get('since')}"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
