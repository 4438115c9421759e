"""Shared test set-up: anyio on asyncio, and no model request may leave the machine."""

from __future__ import annotations

import pytest

from optillm_core import set_model_requests_allowed

set_model_requests_allowed(False)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
