"""Limits that protect the upstream bill: what one request may ask for, and what its run may spend.

Every check takes plain values (``n``, the strategy names, a message count, the optimizers of a
plan), so that each endpoint can apply them to its own wire format:

- :class:`BodyLimit`, ASGI middleware: a body over ``max_body_bytes`` is a 413 before it is read in
  full (``Content-Length`` is checked before the first byte is taken; a chunked body is counted as
  it arrives).
- :func:`check_request`: ``n``, the number of strategies in ``a&b`` / ``a|b``, and the messages.
- :func:`check_plan`: ceilings on the ``optillm_config`` values a request sets (per strategy), and
  the run's planned calls and prompt tokens against the per-request budget: a plan that cannot
  fit is a 400 saying what it would need, before any call.
- :func:`request_budget`: the :class:`~optillm_core.Budget` one request's run shares; all its
  choices and pipeline stages go through one :class:`~optillm_core.MeteredClient` under it.
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optillm_core import Budget, GenerationSettings, InvalidConfiguration, MeteredClient, ModelClient, Optimizer

from ._errors import ApiError

__all__ = (
    "BUDGET_HEADER",
    "DEFAULT_CONFIG_CEILINGS",
    "PROMPT_CHARS_PER_TOKEN",
    "BodyLimit",
    "ServerLimits",
    "body_too_large",
    "budget_cut_stream_error",
    "budget_report",
    "check_plan",
    "check_request",
    "exhausted_limit",
    "request_budget",
)

log = structlog.get_logger("optillm")

MIB = 1024 * 1024

DEFAULT_CONFIG_CEILINGS: Mapping[str, Mapping[str, float]] = {
    "*": {"max_concurrency": 32},
    "moa": {"num_completions": 8},
    "mcts": {"num_simulations": 16, "num_actions": 8, "simulation_depth": 4},
    "mars": {
        "num_agents": 8,
        "max_iterations": 5,
        "verification_passes_required": 4,
        "aggregation_population_size": 12,
        "aggregation_loops": 5,
        "aggregation_groups_per_loop": 4,
    },
    "bon": {"n": 16},
    "self_consistency": {"k": 16},
    "majority_voting": {"k": 32},
    "genselect": {"n": 8},
}
"""The highest value a request may set for each field that multiplies a strategy's calls.

Keyed by strategy name; ``"*"`` applies to every strategy (``max_concurrency``, the calls one run
may have in flight at once, is a field of every config). Token limits (``*_max_tokens``) are left
to the per-request token budget.
"""

PROMPT_CHARS_PER_TOKEN = 8
"""A low estimate of a prompt's tokens, used only to refuse what cannot fit: English averages about 4
characters a token, and only very repetitive text packs more than 8."""


class ServerLimits(BaseModel):
    """What one request may ask of the proxy (frozen). ``None`` turns a budget limit off.

    ``max_request_calls``, ``max_request_tokens`` and ``max_request_seconds`` are one budget for a
    whole strategy request: every choice of ``n`` and every stage of a pipeline share it.
    ``config_ceilings`` maps a strategy name (or ``"*"`` for all) to the highest value a request
    may set for each field; :meth:`with_ceilings` adds to the defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(default=32 * MIB, ge=1, description="the largest request body, in bytes")
    max_messages: int = Field(default=1000, ge=1, description="messages in one strategy request")
    max_n: int = Field(default=8, ge=1, description="choices (n) of one strategy request")
    max_pipeline_length: int = Field(default=4, ge=1, description="strategies combined with & or | in one request")
    max_request_calls: int | None = Field(default=200, ge=1, description="upstream calls of one strategy request")
    max_request_tokens: int | None = Field(
        default=1_000_000, ge=1, description="prompt + completion tokens of one strategy request"
    )
    max_request_seconds: float | None = Field(default=600.0, gt=0, description="wall-clock seconds of one run")
    config_ceilings: Mapping[str, Mapping[str, float]] = Field(default_factory=lambda: dict(DEFAULT_CONFIG_CEILINGS))
    max_stored_responses: int = Field(
        default=1000, ge=0, description="responses kept for previous_response_id and GET /v1/responses/{id}"
    )
    stored_response_seconds: float = Field(default=3600.0, gt=0, description="how long a stored response is kept")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']} (got {error.get('input')!r})"
                for error in exc.errors()
            )
            raise InvalidConfiguration(f"invalid ServerLimits: {problems}") from None

    def with_ceilings(self, ceilings: Mapping[str, Mapping[str, float]]) -> ServerLimits:
        """A copy whose ceilings are these, field by field, on top of the current ones."""
        merged = {name: dict(fields) for name, fields in self.config_ceilings.items()}
        for name, fields in ceilings.items():
            merged.setdefault(name, {}).update(fields)
        return self.model_copy(update={"config_ceilings": merged})


def request_budget(limits: ServerLimits) -> Budget:
    """The budget one strategy request's run shares (all choices and stages)."""
    return Budget(
        max_calls=limits.max_request_calls, max_tokens=limits.max_request_tokens, max_seconds=limits.max_request_seconds
    )


# -- the body -----------------------------------------------------------------------------------------


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than this server accepts ({limit} bytes; optillm serve --max-body-bytes "
        "raises it): send a shorter conversation",
        code="request_too_large",
        headers={"connection": "close"},  # the rest of the body is not read: the connection cannot be reused
    )


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with a 413 before it is read in full.

    It wraps ``receive``: the first call checks ``Content-Length`` and takes nothing when it is
    over the limit; otherwise the bytes are counted as they arrive (a chunked upload has no
    length), and the call that passes the limit fails. The route's ``await request.body()`` raises
    an :class:`ApiError` (413, ``Connection: close``), which the app answers in its usual error
    shape, so each endpoint keeps its own. Requests that never read their body are untouched.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise body_too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise body_too_large(limit)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- the request --------------------------------------------------------------------------------------


def check_request(
    limits: ServerLimits, *, n: int, strategies: Sequence[str], messages: int, strategy_param: str = "model"
) -> None:
    """A 400 naming the field when a strategy request asks for more choices, strategies or messages than allowed."""
    if len(strategies) > limits.max_pipeline_length:
        raise ApiError(
            400,
            f"the request combines {len(strategies)} strategies ({', '.join(strategies)}); this server allows "
            f"{limits.max_pipeline_length} per request (optillm serve --max-pipeline-length)",
            param=strategy_param,
            code="limit_exceeded",
        )
    if n > limits.max_n:
        raise ApiError(
            400,
            f"n={n} asks for {n} strategy runs; this server allows n up to {limits.max_n} (optillm serve --max-n)",
            param="n",
            code="limit_exceeded",
        )
    if messages > limits.max_messages:
        raise ApiError(
            400,
            f"the request has {messages} messages; this server allows {limits.max_messages} per strategy request "
            "(optillm serve --max-messages)",
            param="messages",
            code="limit_exceeded",
        )


# -- the plan -----------------------------------------------------------------------------------------


def check_plan(
    limits: ServerLimits,
    optimizers: Sequence[Optimizer[Any]],
    *,
    mode: str,
    n: int,
    client: ModelClient,
    settings: GenerationSettings,
    query: str,
) -> int | None:
    """Refuse, before any call, a plan over the config ceilings or one that cannot fit the budget.

    ``optimizers`` are the plan's strategies with their configs, ``mode`` how they combine
    (``single``, ``pipeline`` or ``parallel``). Returns the fewest calls the plan makes (``None``
    when a strategy cannot tell: it then counts as none).
    """
    for optimizer in optimizers:
        _check_ceilings(limits, optimizer, several=len(optimizers) > 1)
    runs = [(o.name, _planned(o, client, settings)) for o in optimizers]
    known = [calls for _, calls in runs if calls is not None]
    if not known:
        return None
    total = n * sum(known)
    if limits.max_request_calls is not None and total > limits.max_request_calls:
        raise ApiError(
            400,
            f"{_describe(runs, mode, n, total)}; this server allows {limits.max_request_calls} per request "
            "(optillm serve --max-request-calls): lower n or the strategy's settings",
            param="n" if n > 1 else "optillm_config",
            code="request_budget_exceeded",
        )
    tokens = len(query) // PROMPT_CHARS_PER_TOKEN
    if limits.max_request_tokens is not None and tokens * total > limits.max_request_tokens:
        raise ApiError(
            400,
            f"the question alone is at least {tokens} tokens and {_describe(runs, mode, n, total)}, each sending "
            f"it: at least {tokens * total} prompt tokens; this server allows {limits.max_request_tokens} "
            "tokens per request (optillm serve --max-request-tokens)",
            param="messages",
            code="request_budget_exceeded",
        )
    return total


def _planned(optimizer: Optimizer[Any], client: ModelClient, settings: GenerationSettings) -> int | None:
    """The strategy's planned calls; a hook that fails counts as unknown, so a plugin's bug never blocks a request."""
    try:
        return optimizer.planned_calls(client, settings)
    except Exception as exc:
        log.warning("planned_calls failed; the plan is not checked", strategy=optimizer.name, error=repr(exc))
        return None


def _check_ceilings(limits: ServerLimits, optimizer: Optimizer[Any], *, several: bool) -> None:
    ceilings = {**limits.config_ceilings.get("*", {}), **limits.config_ceilings.get(optimizer.name, {})}
    config = optimizer.config
    for field in sorted(config.model_fields_set & ceilings.keys()):
        value = getattr(config, field)
        ceiling = ceilings[field]
        if isinstance(value, int | float) and not isinstance(value, bool) and value > ceiling:
            param = f"optillm_config.{optimizer.name}.{field}" if several else f"optillm_config.{field}"
            raise ApiError(
                400,
                f"{optimizer.name}: {field}={value:g} is above this server's ceiling of {ceiling:g} "
                f"(optillm serve --config-ceiling {optimizer.name}.{field}=N raises it)",
                param=param,
                code="config_above_ceiling",
            )


def _describe(runs: Sequence[tuple[str, int | None]], mode: str, n: int, total: int) -> str:
    names = [name for name, _ in runs]
    label = ("|" if mode == "parallel" else "&").join(names)
    with_n = f" with n={n}" if n > 1 else ""
    if len(runs) == 1:
        per_run = f" ({runs[0][1]} per run)" if n > 1 else ""
        return f"{label}{with_n} makes at least {total} upstream calls{per_run}"
    parts = ", ".join(f"{name} {calls if calls is not None else '?'}" for name, calls in runs)
    return f"{label}{with_n} makes at least {total} upstream calls ({parts})"


# -- the response -------------------------------------------------------------------------------------

BUDGET_HEADER = "x-optillm-budget-exhausted"
"""Set on a plain response whose run the budget cut short, to the limit reached."""


def exhausted_limit(meter: MeteredClient) -> str:
    """The limit a run reached: ``calls``, ``tokens``, ``time``, or ``strategy`` (its own, as MARS's timeout)."""
    budget, usage = meter.budget, meter.usage
    if budget.max_calls is not None and usage.llm_calls >= budget.max_calls:
        return "calls"
    if budget.max_tokens is not None and usage.total_tokens >= budget.max_tokens:
        return "tokens"
    if budget.max_seconds is not None and meter.remaining_seconds() <= 0:
        return "time"
    return "strategy"


def budget_report(meter: MeteredClient, exhausted: Sequence[int]) -> dict[str, Any]:
    """The response's ``optillm`` object: the run's upstream calls and whether the budget cut it short."""
    report: dict[str, Any] = {"llm_calls": meter.usage.llm_calls, "budget_exhausted": bool(exhausted)}
    if exhausted:
        report["budget_limit"] = exhausted_limit(meter)
        report["exhausted_choices"] = list(exhausted)
    return report


def budget_cut_stream_error(limit: str, choices: Sequence[int]) -> ApiError:
    """The error event of a stream whose run the budget cut short after part of a final answer went out."""
    return ApiError(
        400 if limit != "time" else 504,
        f"the request's budget ({limit}) ran out while choice(s) {list(choices)} streamed a final answer: the text "
        "streamed is not the answer (the run's best answer so far is a different one); send the request again "
        "asking for less, or without stream",
        kind="timeout_error" if limit == "time" else "invalid_request_error",
        code="request_budget_exhausted",
    )
