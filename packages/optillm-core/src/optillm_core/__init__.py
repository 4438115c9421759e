"""optillm-core: the contracts every optillm optimizer and provider builds on."""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._budget import Budget, MeteredClient, RunUsage, charge_call, run_time_left
from ._client import ModelClient, WrapperClient, collect_stream, merge_completions
from ._concurrency import gather, gather_settled, task_group
from ._errors import (
    AnswerExtractionError,
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ClientError,
    InvalidConfiguration,
    NoSolutions,
    OptillmError,
    OptimizerError,
    ParsingError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
    UnsupportedSetting,
    error_for_status,
    map_client_errors,
    redact,
)
from ._events import (
    AnswerDelta,
    CallFinished,
    EventChannel,
    EventHandler,
    OptimizerEvent,
    PhaseStarted,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from ._extract import (
    answers_equal,
    extract_answer,
    extract_boxed,
    normalize_answer,
    require_answer,
    split_thinking,
)
from ._guard import (
    ModelRequestsBlocked,
    allow_model_requests,
    check_allow_model_requests,
    set_model_requests_allowed,
)
from ._log import logger
from ._messages import GenerationSettings, Message, Prompt, Role
from ._optimizer import (
    CALLER_SETTINGS_BY_ROLE,
    FINAL_ONLY_EXTRA,
    CallRole,
    Optimizer,
    OptimizerConfig,
    OptimizerMetadata,
    Outcome,
    RunContext,
    Solution,
    UnsupportedPolicy,
)
from ._profiles import FittedSettings, MaxTokensField, ModelProfile, ThinkingStyle
from ._registry import ENTRY_POINT_GROUP, OptimizerInfo, OptimizerRegistry, PluginFailure, default_registry
from ._responses import (
    Completed,
    Completion,
    FinishReason,
    OutputTextDelta,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCallDelta,
)
from ._sampling import APPROACHES, Sample, Samples, sample_answers, sample_requests, varied_query
from ._scoring import (
    FunctionScorer,
    LlmJudgeScorer,
    Rating,
    ScoreFunction,
    Scorer,
    parse_rating,
    rating_prompt,
)
from ._thinking import ThinkingSplitter, separate_thinking, split_thinking_stream
from ._tools import ToolCall, ToolChoice, ToolDefinition
from ._voting import MAX_PHRASE_WORDS, Vote, answer_key, plurality_vote, tie_order

if _TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution's metadata when first asked for.

    importlib.metadata costs more to import than the rest of the package, and few callers ask.
    """
    if name == "__version__":
        from importlib.metadata import version

        value = version("optillm-core")
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "APPROACHES",
    "CALLER_SETTINGS_BY_ROLE",
    "ENTRY_POINT_GROUP",
    "FINAL_ONLY_EXTRA",
    "MAX_PHRASE_WORDS",
    "AnswerDelta",
    "AnswerExtractionError",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExhausted",
    "CallFinished",
    "CallRole",
    "ClientError",
    "Completed",
    "Completion",
    "EventChannel",
    "EventHandler",
    "FinishReason",
    "FittedSettings",
    "FunctionScorer",
    "GenerationSettings",
    "InvalidConfiguration",
    "LlmJudgeScorer",
    "MaxTokensField",
    "Message",
    "MeteredClient",
    "ModelClient",
    "ModelProfile",
    "ModelRequestsBlocked",
    "NoSolutions",
    "OptillmError",
    "Optimizer",
    "OptimizerConfig",
    "OptimizerError",
    "OptimizerEvent",
    "OptimizerInfo",
    "OptimizerMetadata",
    "OptimizerRegistry",
    "Outcome",
    "OutputTextDelta",
    "ParsingError",
    "PhaseStarted",
    "PluginFailure",
    "Prompt",
    "ProtocolError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitError",
    "Rating",
    "ReasoningDelta",
    "ResponseEvent",
    "Role",
    "RunCompleted",
    "RunContext",
    "RunFailed",
    "RunStarted",
    "RunUsage",
    "Sample",
    "Samples",
    "ScoreFunction",
    "Scorer",
    "Solution",
    "ThinkingSplitter",
    "ThinkingStyle",
    "Timeout",
    "TokenUsage",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolDefinition",
    "UnsupportedPolicy",
    "UnsupportedSetting",
    "Vote",
    "WrapperClient",
    "__version__",
    "allow_model_requests",
    "answer_key",
    "answers_equal",
    "charge_call",
    "check_allow_model_requests",
    "collect_stream",
    "default_registry",
    "error_for_status",
    "extract_answer",
    "extract_boxed",
    "gather",
    "gather_settled",
    "logger",
    "map_client_errors",
    "merge_completions",
    "normalize_answer",
    "parse_rating",
    "plurality_vote",
    "rating_prompt",
    "redact",
    "require_answer",
    "run_time_left",
    "sample_answers",
    "sample_requests",
    "separate_thinking",
    "set_model_requests_allowed",
    "split_thinking",
    "split_thinking_stream",
    "task_group",
    "tie_order",
    "varied_query",
)
