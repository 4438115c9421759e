"""What the app opens and closes around its lifetime."""

from __future__ import annotations

import gc

import pytest
import uvicorn

from optillm_core.testing import ScriptedClient
from optillm_server import create_app, serve

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


def test_serve_freezes_the_startup_heap_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    # A full collection would otherwise walk every module and the app with the event loop stopped.
    seen: list[int] = []

    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            self.config = config

        def run(self) -> None:
            seen.append(gc.get_freeze_count())

    app = create_app(client=ScriptedClient([]), model="m")
    monkeypatch.setattr(uvicorn, "Server", Server)
    try:
        gc.unfreeze()
        serve(app, port=0)
    finally:
        gc.unfreeze()  # the rest of the suite keeps a collector that sees everything
    assert seen and seen[0] > 0
