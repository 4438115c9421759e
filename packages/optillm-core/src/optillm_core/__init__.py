"""optillm-core: the contracts every optillm optimizer and provider builds on."""

from __future__ import annotations as _annotations

from importlib.metadata import version as _version

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
from ._messages import GenerationSettings, Message, Prompt, Role
from ._optimizer import Optimizer, OptimizerConfig, OptimizerMetadata, Outcome, RunContext, Solution
from ._registry import ENTRY_POINT_GROUP, OptimizerInfo, OptimizerRegistry, PluginFailure, default_registry
from ._responses import Completed, Completion, FinishReason, OutputTextDelta, ResponseEvent, TokenUsage

__version__ = _version("optillm-core")

__all__ = (
    "ENTRY_POINT_GROUP",
    "AnswerDelta",
    "AnswerExtractionError",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExhausted",
    "CallFinished",
    "ClientError",
    "Completed",
    "Completion",
    "EventChannel",
    "EventHandler",
    "FinishReason",
    "GenerationSettings",
    "InvalidConfiguration",
    "Message",
    "MeteredClient",
    "ModelClient",
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
    "ResponseEvent",
    "Role",
    "RunCompleted",
    "RunContext",
    "RunFailed",
    "RunStarted",
    "RunUsage",
    "Solution",
    "Timeout",
    "TokenUsage",
    "WrapperClient",
    "__version__",
    "allow_model_requests",
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
    "map_client_errors",
    "merge_completions",
    "normalize_answer",
    "redact",
    "require_answer",
    "run_time_left",
    "set_model_requests_allowed",
    "split_thinking",
    "task_group",
)
