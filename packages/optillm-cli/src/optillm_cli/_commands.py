"""The three commands: ``run``, ``strategies`` and ``serve``."""

from __future__ import annotations as _annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from optillm_core import (
    Budget,
    EventHandler,
    GenerationSettings,
    InvalidConfiguration,
    MeteredClient,
    ModelClient,
    Optimizer,
    OptimizerError,
    Solution,
    Timeout,
    UnsupportedPolicy,
    default_registry,
)

from ._codes import LOCAL_MAX_TOKENS, ExitCode, UsageError
from ._output import solution_json, to_json
from ._overrides import parse_overrides
from ._progress import EventLines, Progress, is_terminal
from ._providers import LOCAL_NOTICE, ProviderChoice, ProviderOptions, resolve, routing_config
from ._state import RunState

if TYPE_CHECKING:
    from optillm_server import ServerLimits, Upstream

__all__ = ("LOCAL_MAX_TOKENS", "ClientFactory", "RunState", "run_command", "serve_command")

ClientFactory = Callable[[ProviderChoice, Mapping[str, str]], ModelClient]

# Time a run gets past ``--timeout`` to return its best answer before it is stopped outright.
TIMEOUT_GRACE_SECONDS = 5.0
CUT_ANSWER_NOTICE = "optillm: the answer was cut off at its token limit; raise --max-tokens for a whole answer"


def _provider_options(args: argparse.Namespace) -> ProviderOptions:
    return ProviderOptions(
        provider=args.provider, model=args.model, base_url=args.base_url, api_key=args.api_key, config=args.config
    )


def _read_query(text: str, stdin: TextIO) -> str:
    query = stdin.read() if text == "-" else text
    if not query.strip():
        where = "stdin was empty" if text == "-" else "QUERY is empty"
        raise UsageError(f"the query is empty ({where}): pass the question or task to optimize")
    return query


def _optimizer(args: argparse.Namespace) -> Optimizer[Any]:
    try:
        info = default_registry().get(args.strategy)
    except OptimizerError as exc:  # installed but broken: an installation problem, not a failed run
        raise InvalidConfiguration(str(exc)) from exc
    overrides = parse_overrides(args.overrides, info.optimizer.config_type, info.name)
    return info.optimizer.from_options(overrides)


def _settings(args: argparse.Namespace, choice: ProviderChoice) -> GenerationSettings:
    max_tokens = args.max_tokens
    if max_tokens is None and choice.provider == "local":
        max_tokens = LOCAL_MAX_TOKENS
    return GenerationSettings(max_tokens=max_tokens, temperature=args.temperature, seed=args.seed)


def _sink(args: argparse.Namespace, stderr: TextIO, strategy: str) -> EventLines | Progress | None:
    if args.events:
        return EventLines(stderr)
    if is_terminal(stderr):
        return Progress(stderr, strategy)
    return None


@dataclass(frozen=True)
class _Run:
    optimizer: Optimizer[Any]
    query: str
    system: str | None
    settings: GenerationSettings
    budget: Budget
    timeout: float | None
    unsupported: UnsupportedPolicy = "drop"


async def _optimize(run: _Run, client: ModelClient, state: RunState) -> Solution:
    async with client:
        state.meter = MeteredClient(client)
        events: EventHandler | None = state.sink
        deadline = anyio.fail_after(run.timeout + TIMEOUT_GRACE_SECONDS) if run.timeout is not None else nullcontext()
        try:
            with deadline:
                return await run.optimizer.optimize(
                    run.query,
                    state.meter,
                    system_prompt=run.system,
                    settings=run.settings,
                    budget=run.budget,
                    events=events,
                    unsupported=run.unsupported,
                )
        except TimeoutError as exc:
            if isinstance(exc, Timeout):
                raise
            raise Timeout(f"the run did not finish within --timeout {run.timeout:g} seconds") from exc


def run_command(
    args: argparse.Namespace, *, env: Mapping[str, str], state: RunState, client_factory: ClientFactory
) -> int:
    optimizer = _optimizer(args)
    query = _read_query(args.query, sys.stdin)
    choice = resolve(_provider_options(args), env)
    state.secrets.append(choice.api_key)
    if choice.implicit_local:
        sys.stderr.write(LOCAL_NOTICE + "\n")
    run = _Run(
        optimizer=optimizer,
        query=query,
        system=args.system,
        settings=_settings(args, choice),
        budget=Budget(max_calls=args.budget_calls, max_tokens=args.budget_tokens, max_seconds=args.timeout),
        timeout=args.timeout,
        unsupported=args.drop_unsupported,
    )
    client = client_factory(choice, env)
    state.sink = _sink(args, sys.stderr, optimizer.name)
    solution = anyio.run(_optimize, run, client, state)
    state.finish()
    if args.json:
        print(to_json(solution_json(solution, strategy=optimizer.name, model=client.model_name)))
    else:
        print(solution.answer)
    if solution.finish_reason == "length":
        sys.stderr.write(CUT_ANSWER_NOTICE + "\n")
    return ExitCode.OK


def _uvicorn_logging(verbosity: int) -> None:
    """uvicorn logs through the standard library: its start-up and errors go to stderr, requests with -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    for name, level in (("uvicorn", logging.INFO), ("uvicorn.access", logging.INFO if verbosity else logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers = [handler] if name == "uvicorn" else []
        logger.setLevel(level)


_LIMIT_FLAGS = (
    "max_request_calls",
    "max_request_tokens",
    "max_request_seconds",
    "max_body_bytes",
    "max_n",
    "max_pipeline_length",
    "max_messages",
)


def _server_limits(args: argparse.Namespace) -> ServerLimits:
    """The serve flags as ``ServerLimits``: a flag left out keeps the server's default, ``none`` turns a budget off."""
    from optillm_server import ServerLimits

    given = {name: getattr(args, name) for name in _LIMIT_FLAGS if getattr(args, name, None) is not None}
    limits = ServerLimits(**{name: None if value == "none" else value for name, value in given.items()})
    ceilings: dict[str, dict[str, float]] = {}
    for strategy, field_name, value in getattr(args, "config_ceilings", []):
        ceilings.setdefault(strategy, {})[field_name] = value
    return limits.with_ceilings(ceilings) if ceilings else limits


def _upstream(choice: ProviderChoice) -> Upstream | None:
    """Where ``serve`` passes requests through, retried as the router retries that provider's calls."""
    from optillm_server import Upstream

    base_url = choice.openai_base_url
    if base_url is None:
        return None
    policy = routing_config(choice)
    return Upstream(
        base_url,
        choice.api_key,
        max_retries=policy.max_retries,
        initial_retry_delay=policy.initial_retry_delay,
        max_retry_delay=policy.max_retry_delay,
        max_retry_after=policy.max_retry_after,
    )


def serve_command(
    args: argparse.Namespace, *, env: Mapping[str, str], state: RunState, client_factory: ClientFactory
) -> int:
    from optillm_server import create_app, serve

    from ._serving import ServedModels, apply_environment

    args = apply_environment(args, env)
    limits = _server_limits(args)
    choice = resolve(_provider_options(args), env)
    if choice.implicit_local:
        sys.stderr.write(LOCAL_NOTICE + "\n")
    require_key = args.require_key or env.get("OPTILLM_REQUIRE_KEY") or None
    state.secrets += [choice.api_key, require_key]
    client = client_factory(choice, env)
    upstream = _upstream(choice)
    served = ServedModels(choice, env, client, client_factory)
    registry = default_registry()
    approach = args.approach or None
    app = create_app(
        client=client,
        model=client.model_name,
        upstream=upstream,
        registry=registry,
        require_key=require_key,
        client_for_model=served,
        close_client=True,  # closed in the server's own event loop, where its connection pools live
        closing=served.aclose,
        drop_unsupported=args.drop_unsupported,
        limits=limits,
        default_approach=approach,
        served_models=served.names,
    )
    default = f"; requests naming no strategy run {approach}" if approach else ""
    sys.stderr.write(
        f"optillm: serving {served.describe()} on http://{args.host}:{args.port}/v1 (chat/completions, messages, "
        f"responses), with the strategies {', '.join(registry.names()) or 'none'}{default}\n"
    )
    _uvicorn_logging(args.verbose)
    try:
        serve(app, host=args.host, port=args.port)
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then passed the Ctrl-C on
        sys.stderr.write("optillm: server stopped\n")
    except SystemExit as exc:  # uvicorn exits when it cannot start, after logging why
        raise InvalidConfiguration(f"the server could not start on {args.host}:{args.port} (see above)") from exc
    return ExitCode.OK
