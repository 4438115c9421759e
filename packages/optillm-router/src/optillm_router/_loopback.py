"""The lifecycle the fake servers share: an aiohttp app on 127.0.0.1 at a free port."""

from __future__ import annotations as _annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import anyio
import anyio.lowlevel
from aiohttp import web

__all__ = ("LoopbackServer", "sleep_until")

# asyncio's timers fire up to a millisecond late (epoll waits whole milliseconds, rounded up), and a
# fake server that answers late charges its lateness to the client under test: at 100 ms per call
# that is up to 1 % of every round-trip. So a wait sleeps until this much before its deadline and
# yields to the loop from there on, answering within a loop iteration of the deadline.
TIMER_SLACK = 0.002


async def sleep_until(deadline: float) -> None:
    """Wait until ``time.monotonic()`` reaches ``deadline``, without asyncio's timer lateness."""
    early = deadline - TIMER_SLACK - time.monotonic()
    if early > 0:
        await anyio.sleep(early)
    while time.monotonic() < deadline:
        await anyio.lowlevel.checkpoint()


class LoopbackServer:
    """Serves :meth:`_app` on a free loopback port: ``async with``, :meth:`start`/:meth:`stop`, or a thread.

    ``handler_cancellation``: a client that goes away (a timeout, a reset) ends its handler.
    """

    port: int = 0
    handler_cancellation: bool = False
    _runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    def _thread_name(self) -> str:
        return "fake-server"

    async def start(self) -> None:
        runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, handler_cancellation=self.handler_cancellation
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[Self]:
        """Serve from a background thread with its own event loop (for sync clients and subprocesses)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, name=self._thread_name(), daemon=True)
        thread.start()
        started.wait()
        if errors:
            raise errors[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
