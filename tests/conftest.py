"""Shared test set-up: anyio on asyncio, quiet logs, and no model request may leave the machine."""

from __future__ import annotations

import os

import pytest
import structlog

from optillm_core import set_model_requests_allowed

set_model_requests_allowed(False)
# ``optillm strategies`` keeps its listing in a cache under the user's home; no test writes there
# (tests/cli/test_listing.py points it at a temporary folder). Subprocesses inherit this.
os.environ["OPTILLM_CACHE_DIR"] = ""
# Libraries never configure logging; the test suite, like an application, does: every level stays
# visible to structlog.testing.capture_logs, but nothing is printed.
structlog.configure(logger_factory=structlog.ReturnLoggerFactory())


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
