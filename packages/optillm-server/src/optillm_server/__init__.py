"""optillm-server: a proxy that applies any installed optillm strategy (OpenAI chat completions and Responses,
Anthropic messages)."""

from __future__ import annotations as _annotations

from ._app import create_app, serve
from ._errors import ApiError
from ._limits import DEFAULT_CONFIG_CEILINGS, ServerLimits
from ._passthrough import Upstream

__all__ = ("DEFAULT_CONFIG_CEILINGS", "ApiError", "ServerLimits", "Upstream", "create_app", "serve")
