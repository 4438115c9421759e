"""Child processes of the harness: where they run, their environment, and stopping them."""

from __future__ import annotations as _annotations

import os
import subprocess
from pathlib import Path

__all__ = ("ROOT", "child_env", "wait_or_kill")

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: children run there, with it on their import path (``benchmarks`` is no package)."""


def child_env() -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def wait_or_kill(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Wait for a child asked to stop; kill it if it has not within ``timeout`` seconds."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
