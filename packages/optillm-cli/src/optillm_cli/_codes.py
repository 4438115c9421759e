"""Exit codes, the usage error and the constants ``--help`` shows: light, so that ``--help`` imports nothing heavy."""

from __future__ import annotations as _annotations

from enum import IntEnum

__all__ = ("LOCAL_MAX_TOKENS", "PROVIDER_NAMES", "ExitCode", "UsageError")

LOCAL_MAX_TOKENS = 128
"""Default ``max_tokens`` per call on the embedded model, so a CPU-only run ends in seconds, not minutes."""

PROVIDER_NAMES = (
    "anthropic",
    "custom",
    "gemini",
    "groq",
    "llamacpp",
    "local",
    "ollama",
    "ollama-openai",
    "openai",
    "openrouter",
    "vllm",
)
"""optillm-router's provider names (``sorted(optillm_router.PROVIDERS)``), for ``--provider``'s choices.

Written out rather than read from the router's catalogue, which imports optillm-core: ``--help`` stays
light. tests/router/test_profiles_catalogue.py checks that the two agree.
"""


class ExitCode(IntEnum):
    """The documented exit statuses of ``optillm`` (docs/cli.md lists them)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    UNAVAILABLE = 5
    BUDGET = 6
    STRATEGY = 7
    REJECTED = 8
    INTERRUPTED = 130


class UsageError(Exception):
    """A command line the CLI cannot act on: a bad flag value, a missing or empty argument."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
