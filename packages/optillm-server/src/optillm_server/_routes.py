"""What every endpoint shares (the server state, the strategy job of every format), ``/v1/models`` and ``/health``."""

from __future__ import annotations as _annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from optillm_core import ClientError, GenerationSettings, ModelClient, OptimizerRegistry, UnsupportedPolicy
from optillm_router import AnyioClock, Clock

from . import _strategies
from ._conversation import StrategyInput
from ._errors import ApiError, Scrubber, api_error_for
from ._limits import ServerLimits, check_plan, check_request, request_budget
from ._passthrough import Forwarding, Reach, Upstream, fetch_models
from ._response_store import ResponseStore
from ._runs import plan_strategies
from ._selection import Selection
from ._tools import check_strategies_answer_with_tools
from ._wire import ResponseHeader

__all__ = (
    "ServerState",
    "health",
    "list_models",
    "refuse_unsupported",
    "server_state",
    "strategy_job",
)

log = structlog.get_logger("optillm")


@dataclass
class ServerState:
    """What every request shares: the model client, the registry, the upstream and its connection pool."""

    client: ModelClient
    model: str
    upstream: Upstream | None
    registry: OptimizerRegistry
    client_for_model: Callable[[str], ModelClient]
    scrub: Scrubber
    upstream_timeout: httpx.Timeout
    keepalive_seconds: float
    pool: httpx.AsyncClient | None = None
    clock: Clock = field(default_factory=AnyioClock)
    drop_unsupported: UnsupportedPolicy = "drop"
    reach: Reach = field(default_factory=Reach)
    """Whether the upstream has answered yet (pass-through retries a refused connection less until it has)."""
    limits: ServerLimits = field(default_factory=ServerLimits)
    default_approach: str | None = None
    """The strategy a request runs when it names none (``None``: pass-through)."""
    served_models: tuple[str, ...] | None = None
    """The models ``/v1/models`` lists with every strategy, when they are known."""
    responses: ResponseStore = field(default_factory=lambda: ResponseStore(1000, 3600.0))
    """Stored Responses API answers (``previous_response_id``, ``GET /v1/responses/{id}``)."""

    def require_pool(self) -> httpx.AsyncClient:
        if self.pool is None:
            raise ApiError(503, "the server is not started: run the app with its lifespan", kind="server_error")
        return self.pool

    def forwarding(self, upstream: Upstream) -> Forwarding:
        return Forwarding(
            self.require_pool(), upstream, self.scrub, self.upstream_timeout, self.clock, reach=self.reach
        )


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.optillm
    return state


def strategy_job(
    state: ServerState,
    selection: Selection,
    *,
    question: StrategyInput,
    settings: GenerationSettings,
    config: Mapping[str, Any] | None,
    n: int,
    messages: int,
    strategy_param: str,
    policy: UnsupportedPolicy | None,
    header: ResponseHeader,
    include_usage: bool = False,
) -> _strategies.StrategyJob:
    """A strategy request, whichever API it came in, as the job that runs it: its client, plan, settings and budget.

    Everything that refuses a request before any call happens here (a request over the server's
    limits, a model that is not served, settings the model refuses under the ``error`` policy, an
    invalid ``optillm_config``, tools a strategy cannot pass on, a plan over the request budget), so
    that every endpoint refuses the same requests the same way.
    """
    limits = state.limits
    check_request(limits, n=n, strategies=selection.strategies, messages=messages, strategy_param=strategy_param)
    client = state.client_for_model(selection.model)
    policy = policy or state.drop_unsupported
    refuse_unsupported(client, settings, policy)
    plan = plan_strategies(selection, state.registry, config, n)
    check_strategies_answer_with_tools(plan.optimizers, plan.mode, settings, state.registry.infos())
    check_plan(
        limits, plan.optimizers, mode=plan.mode, n=plan.n, client=client, settings=settings, query=question.query
    )
    return _strategies.StrategyJob(
        plan=plan,
        question=question,
        settings=settings,
        client=client,
        header=header,
        include_usage=include_usage,
        keepalive_seconds=state.keepalive_seconds,
        unsupported=policy,
        budget=request_budget(limits),
    )


def refuse_unsupported(client: ModelClient, settings: GenerationSettings, policy: UnsupportedPolicy) -> None:
    """Under the ``error`` policy, a 400 naming the settings the model refuses, before any call.

    Under ``drop`` (the default) they are left out of every call instead, except tools: a model
    that takes none refuses them under both policies, since dropping them would lose the tool calls.
    """
    refused = client.profile.unsupported(settings)
    if "tools" in refused:
        raise ApiError(
            400,
            f"model '{client.model_name}' does not accept tools: remove 'tools' from the request or use a model "
            "that calls tools (leaving them out would lose the tool calls the request asks for)",
            param="tools",
            code="unsupported_setting",
        )
    if policy != "error":
        return
    if refused:
        raise ApiError(
            400,
            f"model '{client.model_name}' does not accept {', '.join(refused)}: remove it from the request, "
            "or send optillm_drop_unsupported='drop' to have settings the model refuses left out",
            param=refused[0],
            code="unsupported_setting",
        )


async def list_models(request: Request) -> Response:
    """The served models with every strategy on each, or the upstream's models with the strategies on the default."""
    state = server_state(request)
    if state.served_models is not None:
        served = [_model_entry(name, "optillm") for name in state.served_models]
        strategies = state.registry.names()
        served += [_model_entry(f"{s}-{name}", "optillm") for name in state.served_models for s in strategies]
        return JSONResponse({"object": "list", "data": served})
    models: list[dict[str, Any]] = [_model_entry(state.model, "optillm")]
    if state.upstream is not None:
        try:
            models = await fetch_models(state.require_pool(), state.upstream, state.scrub, state.upstream_timeout)
        except (ApiError, ClientError) as exc:
            error = api_error_for(exc, state.scrub)
            log.warning("upstream model list unavailable", status=error.status, detail=error.message)
    models += [_model_entry(f"{name}-{state.model}", "optillm") for name in state.registry.names()]
    return JSONResponse({"object": "list", "data": models})


def _model_entry(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


async def health(request: Request) -> Response:
    state = server_state(request)
    return JSONResponse({"status": "ok", "model": state.model, "strategies": state.registry.names()})
