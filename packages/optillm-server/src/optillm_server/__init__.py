"""optillm-server: a proxy that applies any installed optillm strategy (OpenAI chat completions, Anthropic messages)."""

from __future__ import annotations as _annotations

from ._app import create_app, serve
from ._passthrough import Upstream

__all__ = ("Upstream", "create_app", "serve")
