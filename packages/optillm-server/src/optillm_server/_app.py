"""The Starlette application, its middleware (API key, catch-all errors) and the uvicorn runner."""

from __future__ import annotations as _annotations

import gc
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optillm_core import InvalidConfiguration, ModelClient, OptimizerRegistry, UnsupportedPolicy, default_registry
from optillm_router import AnyioClock, Clock

from ._chat import ChatFormat
from ._errors import ApiError, Scrubber, api_error_for, error_response, log_error
from ._formats import WireFormat, endpoint
from ._http import HttpPool, http_timeout
from ._limits import BodyLimit, ServerLimits
from ._messages import MessagesFormat
from ._passthrough import Upstream
from ._response_store import ResponseStore
from ._responses import ResponsesFormat, get_response
from ._routes import ServerState, health, list_models
from ._selection import select

__all__ = ("create_app", "serve")

log = structlog.get_logger("optillm")

DEFAULT_UPSTREAM_TIMEOUT = 600.0
DEFAULT_KEEPALIVE_SECONDS = 15.0

FORMATS: tuple[WireFormat[Any], ...] = (ChatFormat(), MessagesFormat(), ResponsesFormat())
"""Every wire format the proxy speaks, each served at its own path (see :mod:`optillm_server._formats`)."""


def create_app(
    *,
    client: ModelClient,
    model: str,
    upstream: Upstream | None = None,
    registry: OptimizerRegistry | None = None,
    require_key: str | None = None,
    client_for_model: Callable[[str], ModelClient] | None = None,
    http_pool: HttpPool | None = None,
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT,
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
    close_client: bool = False,
    clock: Clock | None = None,
    drop_unsupported: UnsupportedPolicy = "drop",
    limits: ServerLimits | None = None,
    default_approach: str | None = None,
    served_models: Sequence[str] | None = None,
    closing: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """A proxy (OpenAI chat completions, Anthropic messages) that runs installed strategies on ``client``.

    ``model`` is the default model name (strategies run on it; ``/v1/models`` lists
    ``STRATEGY-model``). Requests without a strategy go to ``upstream`` unchanged, or through
    ``client`` when there is no upstream. ``client_for_model`` picks the client for another model
    name; without it, only ``model`` (or ``client.model_name``) is served through ``client``.
    ``require_key`` demands ``Authorization: Bearer <key>`` (or ``x-api-key: <key>``, as Anthropic's
    clients send it) on every path but ``/health``. ``POST /v1/messages`` serves the Anthropic
    Messages API with the same strategies; its errors come in Anthropic's shape.
    ``http_pool`` shares an ``optillm_router.HttpPool`` (for example the router's) for forwarding;
    without it the app opens its own in its lifespan and closes it at shutdown. ``close_client``
    hands ``client`` to the app, which closes it at shutdown, in the server's own event loop (where
    its connections live). ``clock`` is what pass-through retries wait on (tests pass a virtual one).
    ``drop_unsupported`` is the default policy for request settings the model refuses (``drop``: left
    out; ``error``: a 400 naming them); a request may choose with ``optillm_drop_unsupported``.
    ``limits`` bound what one request may ask for and spend (:class:`ServerLimits`: body size,
    ``n``, strategies per request, messages, config ceilings, and each strategy request's budget
    of upstream calls, tokens and seconds); the defaults apply without it.
    ``default_approach`` is the strategy (or ``a&b`` pipeline) a request runs when neither its model
    name nor ``optillm_approach`` names one (upstream optillm's ``--approach``; ``none`` or unset:
    pass-through). ``served_models`` are the model names ``/v1/models`` lists, each with every
    strategy, when the models are known (a router config's); without it the upstream's list (or
    ``model``) is shown, with the strategies on ``model``. ``closing`` is awaited at shutdown, in the
    server's event loop (for clients ``client_for_model`` opened).
    """
    limits = limits if limits is not None else ServerLimits()
    state = ServerState(
        client=client,
        model=model,
        upstream=upstream,
        registry=registry if registry is not None else default_registry(),
        client_for_model=client_for_model or _single_model(client, model),
        scrub=Scrubber([upstream.api_key if upstream else None, require_key]),
        upstream_timeout=http_timeout(upstream_timeout),
        keepalive_seconds=keepalive_seconds,
        clock=clock or AnyioClock(),
        drop_unsupported=drop_unsupported,
        limits=limits,
        responses=ResponseStore(limits.max_stored_responses, limits.stored_response_seconds),
        default_approach=default_approach,
        served_models=tuple(served_models) if served_models is not None else None,
    )
    if default_approach is not None:
        try:  # an unknown strategy fails at start, not on every request
            select(model, default_approach, state.registry.names(), default_model=model)
        except ApiError as exc:
            raise InvalidConfiguration(f"the default approach {default_approach!r}: {exc.message}") from None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if close_client:
                stack.push_async_callback(client.aclose)
            if closing is not None:
                stack.push_async_callback(closing)
            async with _forwarding(state, upstream, http_pool):
                yield

    app = Starlette(
        routes=[
            *(Route(fmt.path, endpoint(fmt), methods=["POST"]) for fmt in FORMATS),
            Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        middleware=[
            Middleware(_CatchAll, scrub=state.scrub),
            Middleware(_RequireKey, key=_Secret(require_key)),
            Middleware(BodyLimit, max_bytes=limits.max_body_bytes),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.optillm = state
    return app


@asynccontextmanager
async def _forwarding(state: ServerState, upstream: Upstream | None, http_pool: HttpPool | None) -> AsyncIterator[None]:
    """The pooled client for pass-through requests while the app runs (none without an upstream)."""
    if upstream is None:
        yield
        return
    pool = http_pool if http_pool is not None else HttpPool()
    state.pool = pool.client(upstream.base_url)
    try:
        yield
    finally:
        state.pool = None
        if http_pool is None:
            await pool.aclose()


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
    """Run ``app`` with uvicorn until it is stopped (Ctrl-C); logging is left to the caller to configure.

    The objects that exist by now (modules, the app, its client and strategies) live as long as the
    process, so they are frozen out of the garbage collector's reach: a full collection would
    otherwise walk them all (about 9 ms for this heap) with every request on the loop stopped.
    """
    options: dict[str, Any] = {"log_config": None, "timeout_graceful_shutdown": 10, **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    gc.freeze()
    server.run()


def _single_model(client: ModelClient, model: str) -> Callable[[str], ModelClient]:
    served = {model, client.model_name}

    def resolve(name: str) -> ModelClient:
        if name in served:
            return client
        raise ApiError(
            400,
            f"model '{name}' is not served by this proxy; strategies and direct requests run on '{model}' "
            f"(for example 'moa-{model}')",
            param="model",
            code="model_not_found",
        )

    return resolve


def shaped(error: ApiError, path: str) -> ApiError:
    """``error`` in the shape of the wire format that ``path`` belongs to (OpenAI's for any other path)."""
    fmt = next((fmt for fmt in FORMATS if path == fmt.path or path.startswith(fmt.path + "/")), None)
    return fmt.shape(error) if fmt is not None else error


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    state: ServerState = request.app.state.optillm
    error = api_error_for(exc, state.scrub)
    log_error(error, exc, state.scrub, path=request.url.path)
    return error_response(shaped(error, request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return error_response(shaped(ApiError(exc.status_code, message, kind=kind), request.url.path))


class _Secret:
    """A key that never shows in a repr (the middleware list is printable)."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "_Secret('***')" if self.value else "_Secret(None)"


class _RequireKey:
    """Demands ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` in constant time; ``/health`` is open."""

    def __init__(self, app: ASGIApp, key: _Secret) -> None:
        self.app = app
        self._key = key.value.encode() if key.value else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is None or scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        if self._accepted(scope["headers"]):
            await self.app(scope, receive, send)
            return
        error = ApiError(
            401,
            "missing or wrong API key: send the proxy's key as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            kind="invalid_request_error",
            code="invalid_api_key",
        )
        await _send_json(send, shaped(error, scope["path"]), extra_headers=[(b"www-authenticate", b"Bearer")])

    def _accepted(self, headers: list[tuple[bytes, bytes]]) -> bool:
        assert self._key is not None
        bearer = next((v for k, v in headers if k == b"authorization"), b"")
        api_key = next((v for k, v in headers if k == b"x-api-key"), b"")
        # both compared, so the time taken does not depend on which header holds the key
        by_bearer = hmac.compare_digest(bearer, b"Bearer " + self._key)
        by_api_key = hmac.compare_digest(api_key, self._key)
        return by_bearer or by_api_key


class _CatchAll:
    """The last line: an unexpected error becomes a 500 in OpenAI's shape, logged without a traceback."""

    def __init__(self, app: ASGIApp, scrub: Scrubber) -> None:
        self.app = app
        self._scrub = scrub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except anyio.get_cancelled_exc_class():
            # Only uvicorn cancels a request task from outside (its graceful shutdown ran out):
            # ending here keeps a traceback of every request still running out of its log.
            log.info("request cancelled by the server shutting down", path=scope.get("path"))
        except Exception as exc:
            error = api_error_for(exc, self._scrub)
            log_error(error, exc, self._scrub, path=scope.get("path"))
            if not started:
                await _send_json(send, shaped(error, scope.get("path", "")))


async def _send_json(send: Send, error: ApiError, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error.payload()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in error.headers().items()] + (extra_headers or [])
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
