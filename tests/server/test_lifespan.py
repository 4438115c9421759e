"""What the app opens and closes around its lifetime."""

from __future__ import annotations

import pytest

from optillm_core.testing import ScriptedClient
from optillm_server import create_app

pytestmark = pytest.mark.anyio


class _Closable(ScriptedClient):
    __test__ = False
    closed = 0

    async def aclose(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(("close_client", "closes"), [(True, 1), (False, 0)])
async def test_the_app_closes_the_client_it_was_handed_at_shutdown(close_client: bool, closes: int) -> None:
    client = _Closable(["x"])
    app = create_app(client=client, model="m", close_client=close_client)
    async with app.router.lifespan_context(app):
        assert client.closed == 0
    assert client.closed == closes
