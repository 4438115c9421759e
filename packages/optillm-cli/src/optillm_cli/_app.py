"""The command line: argument parsing, logging set-up, and the one place errors become exit codes."""

from __future__ import annotations as _annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._codes import LOCAL_MAX_TOKENS, PROVIDER_NAMES, ExitCode, UsageError
from ._state import RunState

if TYPE_CHECKING:
    from pathlib import Path

    from optillm_core import ModelClient

    from ._commands import ClientFactory
    from ._providers import ProviderChoice

# Everything heavy (optillm-core, the router's catalogue, structlog, importlib.metadata) is imported
# once the command line is parsed, so that ``optillm --help`` and a usage error stay quick.

__all__ = ("build_parser", "main", "run_cli")


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _number(kind: Callable[[str], Any], *, minimum: float, exclusive: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _path(text: str) -> Path:
    from pathlib import Path  # not at import: --help does not need it

    return Path(text)


def _port(text: str) -> int:
    value: int = _number(int, minimum=1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {text!r}")
    return value


def _provider_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("provider (default: the embedded local model when none is configured)")
    group.add_argument(
        "--provider",
        choices=PROVIDER_NAMES,
        help="the provider to call (default: custom with --base-url, openai with --api-key or OPENAI_API_KEY, "
        "else the provider whose key is set, else local)",
    )
    group.add_argument("--model", help="the model name (default: the provider's usual small model)")
    group.add_argument(
        "--base-url", help="the provider's endpoint; alone, any OpenAI-compatible server (http://127.0.0.1:8080/v1)"
    )
    group.add_argument(
        "--api-key", help="the provider's API key (default: its environment variable, e.g. OPENAI_API_KEY)"
    )
    group.add_argument(
        "--config", type=_path, metavar="FILE", help="a router config file (TOML or YAML) instead of the flags above"
    )


def _run_parser(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="run a strategy on a query", description="Run an installed strategy on a query."
    )
    run.add_argument("strategy", metavar="STRATEGY", help="an installed strategy (see 'optillm strategies')")
    run.add_argument("query", metavar="QUERY", help="the question or task; '-' reads it from stdin")
    _provider_options(run)
    gen = run.add_argument_group("generation")
    gen.add_argument("--system", metavar="TEXT", help="a system prompt")
    gen.add_argument(
        "--max-tokens",
        type=_number(int, minimum=1),
        metavar="N",
        help=f"max tokens per model call (default: the provider's; {LOCAL_MAX_TOKENS} on the local model)",
    )
    gen.add_argument(
        "--temperature",
        type=_number(float, minimum=0),
        metavar="T",
        help="sampling temperature of the phases that produce answers (not of judging phases; "
        "a temperature set with --set wins); see 'optillm strategies'",
    )
    gen.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="sampling seed of the phases that produce answers (parallel answers get N, N+1, …)",
    )
    gen.add_argument(
        "--drop-unsupported",
        choices=("drop", "error"),
        default="drop",
        help="a setting the model refuses (a temperature on o3, a seed on Anthropic): leave it out "
        "(default) or stop with an error",
    )
    gen.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a field of the strategy's config (repeatable)",
    )
    limits = run.add_argument_group("limits")
    limits.add_argument("--budget-calls", type=_number(int, minimum=1), metavar="N", help="at most N model calls")
    limits.add_argument("--budget-tokens", type=_number(int, minimum=1), metavar="N", help="at most N tokens in all")
    limits.add_argument(
        "--timeout",
        type=_number(float, minimum=0, exclusive=True),
        metavar="SECONDS",
        help="wall-clock limit of the run",
    )
    out = run.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the answer")
    out.add_argument("--events", action="store_true", help="write the run's events as JSON lines on stderr")


class _Version(argparse.Action):
    """``--version``: the installed version, read from the distribution's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(
            option_strings, dest, default=argparse.SUPPRESS, nargs=0, help="show program's version number and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import version

        sys.stdout.write(f"optillm {version('optillm-cli')}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optillm", description="Run optillm's inference-time optimization strategies.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _run_parser(commands)
    strategies = commands.add_parser(
        "strategies",
        help="list the installed strategies",
        description="List the installed strategies and their config fields.",
    )
    strategies.add_argument("--json", action="store_true", help="print one JSON object")
    serve = commands.add_parser(
        "serve",
        help="serve the proxy (OpenAI chat completions and Responses, Anthropic messages)",
        description="Serve a proxy that applies any installed strategy, over the OpenAI and Anthropic APIs, to every "
        "model of the provider (with --config: every configured model). A model name prefixed with strategies "
        "(moa-gpt-4o-mini, moa&mars-gpt-4o-mini) runs them on that model; a plain name passes through. Flags left "
        "out are read from OPTILLM_BASE_URL, OPTILLM_API_KEY, OPTILLM_MODEL, OPTILLM_PROVIDER, OPTILLM_CONFIG, "
        "OPTILLM_APPROACH, OPTILLM_HOST, OPTILLM_PORT and OPTILLM_REQUIRE_KEY.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="the port to listen on (default: 8000)")
    serve.add_argument(
        "--require-key",
        metavar="KEY",
        help="demand 'Authorization: Bearer KEY' from clients "
        "(default: the OPTILLM_REQUIRE_KEY environment variable; none: no key needed)",
    )
    serve.add_argument(
        "--approach",
        metavar="STRATEGY",
        help="the strategy (or a&b pipeline) a request runs when its model name and optillm_approach name none "
        "(default: OPTILLM_APPROACH; none: pass such requests through)",
    )
    serve.add_argument(
        "--drop-unsupported",
        choices=("drop", "error"),
        default="drop",
        help="request settings the model refuses: leave them out (default) or answer 400; "
        "a request may choose with optillm_drop_unsupported",
    )
    _serve_limits(serve)
    _provider_options(serve)
    return parser


def _limit(kind: Callable[[str], Any], *, minimum: float, exclusive: bool = False) -> Callable[[str], Any]:
    """A budget limit: a number as ``_number`` reads it, or ``none`` for no limit."""
    number = _number(kind, minimum=minimum, exclusive=exclusive)

    def parse(text: str) -> Any:
        return "none" if text.strip().lower() == "none" else number(text)

    parse.__name__ = kind.__name__
    return parse


def _ceiling(text: str) -> tuple[str, str, float]:
    name, equals, value = text.partition("=")
    strategy, dot, field = name.strip().partition(".")
    if not (equals and dot and strategy and field):
        raise argparse.ArgumentTypeError(f"expected STRATEGY.FIELD=VALUE (moa.num_completions=8), got {text!r}")
    number: float = _number(float, minimum=0)(value)
    return strategy, field.strip(), int(number) if number.is_integer() else number


def _serve_limits(serve: argparse.ArgumentParser) -> None:
    """What one request may ask of the proxy (optillm_server.ServerLimits; defaults there)."""
    group = serve.add_argument_group("limits per request (strategy requests; the body size for every request)")
    group.add_argument(
        "--max-request-calls",
        type=_limit(int, minimum=1),
        metavar="N",
        help="upstream calls one strategy request may make, all its choices and stages together (default: 200; "
        "none: no limit)",
    )
    group.add_argument(
        "--max-request-tokens",
        type=_limit(int, minimum=1),
        metavar="N",
        help="prompt + completion tokens of one strategy request (default: 1000000; none: no limit)",
    )
    group.add_argument(
        "--max-request-seconds",
        type=_limit(float, minimum=0, exclusive=True),
        metavar="SECONDS",
        help="wall-clock seconds of one strategy request's run (default: 600; none: no limit)",
    )
    group.add_argument(
        "--max-body-bytes",
        type=_number(int, minimum=1),
        metavar="N",
        help="the largest request body; a larger one is a 413 (default: 33554432, 32 MiB)",
    )
    group.add_argument(
        "--max-n", type=_number(int, minimum=1), metavar="N", help="n of a strategy request (default: 8)"
    )
    group.add_argument(
        "--max-pipeline-length",
        type=_number(int, minimum=1),
        metavar="N",
        help="strategies combined with & or | in one request (default: 4)",
    )
    group.add_argument(
        "--max-messages",
        type=_number(int, minimum=1),
        metavar="N",
        help="messages in one strategy request (default: 1000)",
    )
    group.add_argument(
        "--config-ceiling",
        type=_ceiling,
        action="append",
        default=[],
        metavar="STRATEGY.FIELD=VALUE",
        dest="config_ceilings",
        help="the highest value a request's optillm_config may set for a field (repeatable; STRATEGY '*' for all "
        "strategies); added to the defaults, such as mcts.num_simulations=16",
    )


class _StderrLogger:
    """Writes rendered log lines to whatever ``sys.stderr`` is at the time."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _drop_tracebacks(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    error = event.pop("exc_info", None)
    if error is True:
        error = sys.exc_info()[1]
    elif isinstance(error, tuple):
        error = error[1]
    if isinstance(error, BaseException):
        event["error"] = f"{type(error).__name__}: {error}"
    event.pop("stack_info", None)
    return event


@contextmanager
def _logging(verbosity: int, quiet_level: int) -> Iterator[None]:
    """Route structlog to stderr (``quiet_level`` and up without -v), never with a traceback; restored afterwards."""
    import logging

    import structlog

    level = {0: quiet_level, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _drop_tracebacks,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


_WARNING, _ERROR = 30, 40
"""``logging.WARNING`` and ``logging.ERROR``, without importing logging before a command needs it."""


def _build_client(choice: ProviderChoice, env: Mapping[str, str]) -> ModelClient:
    """The default client factory: :func:`optillm_cli._providers.build_client`, imported when a command runs."""
    from ._providers import build_client

    return build_client(choice, env)


def _dispatch(args: argparse.Namespace, env: Mapping[str, str], state: RunState, factory: ClientFactory) -> int:
    from ._commands import run_command, serve_command

    if args.command == "run":
        return run_command(args, env=env, state=state, client_factory=factory)
    return serve_command(args, env=env, state=state, client_factory=factory)


def _interrupted(state: RunState, stderr: TextIO) -> int:
    state.finish()
    usage = state.usage
    stderr.write(
        f"optillm: interrupted; spent {usage.llm_calls} LLM calls and {usage.total_tokens} tokens "
        f"({usage.input_tokens} prompt + {usage.output_tokens} completion)\n"
    )
    return ExitCode.INTERRUPTED


def run_cli(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    client_factory: ClientFactory | None = None,
) -> int:
    """Run ``optillm`` with ``argv`` and return its exit status.

    ``client_factory`` builds the model client (default: a router over the chosen provider).
    """
    env = os.environ if env is None else env
    state = RunState()
    secrets: list[str | None] = []
    try:
        args = build_parser().parse_args(argv)
        secrets = [getattr(args, "api_key", None), getattr(args, "require_key", None)]
        if args.command == "strategies":
            from ._listing import strategies_command

            # Logging is set up only if the listing has to be built: read from its cache, it imports no structlog.
            return strategies_command(args, env, lambda: _logging(args.verbose, _ERROR))
        with _logging(args.verbose, _WARNING if args.command == "serve" else _ERROR):
            return _dispatch(args, env, state, client_factory or _build_client)
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else ExitCode.OK
    except KeyboardInterrupt:
        return _interrupted(state, sys.stderr)
    except Exception as exc:
        from ._errors import classify, error_line

        state.finish()
        code, text = classify(exc)
        sys.stderr.write(error_line(text, [*secrets, *state.secrets]))
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``optillm`` console script."""
    return run_cli(argv)
