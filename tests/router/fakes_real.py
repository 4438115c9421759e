"""Anthropic and Gemini servers that answer as a real model does, over the scripted :class:`WireServer`.

The behaviour (refusals in the provider's words, thinking in the model's form) comes from
``optillm_router._fake_models``, the same functions behind ``FakeOpenAIServer(real_model=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

from optillm_core import ToolCall
from optillm_router._fake_models import (
    RealModel,
    anthropic_events,
    anthropic_message,
    gemini_frames,
    gemini_response,
    real_model,
    refusal,
    shown_thinking,
)
from optillm_router._fake_tools import offered_calls
from optillm_router._fault_server import as_chat
from optillm_router.testing import FakeReply

from .fakes_wire import Received, ReplyText, Scripted, ScriptFunction, json_answer, sse_answer, sse_events


def _words(text: str) -> int:
    return len(text.split())


def _prompt_words(body: dict[str, object]) -> int:
    text = str(body.get("messages", "")) + str(body.get("contents", "")) + str(body.get("system", ""))
    return _words(text)


ChatReply = Callable[[dict[str, object], int], "str | FakeReply"]
"""A reply computed from the request in OpenAI's shape, as the fake servers' reply functions are."""


def plays(
    model: str | RealModel,
    reply: ReplyText = lambda received: "The answer is 42.",
    thinking: str | None = None,
    chat_reply: ChatReply | None = None,
) -> ScriptFunction:
    """A script answering as ``model`` (an Anthropic or Gemini model): its 400s, its thinking, JSON or SSE.

    ``chat_reply`` (for example ``optillm_router.testing.tool_caller()``) replaces ``reply``: it reads the
    request in OpenAI's shape and may call the tools the request offers.
    """
    played = real_model(model)

    def answer(received: Received) -> Scripted:
        body = received.body if isinstance(received.body, dict) else {}
        error = refusal(played, body)
        if error is not None:
            return json_answer(dict(error.payload), status=error.status)
        calls: tuple[ToolCall, ...] = ()
        if chat_reply is None:
            text = reply(received)
        else:
            chat = as_chat(played.wire, body)
            said = chat_reply(chat, 0)
            text, calls = (said, ()) if isinstance(said, str) else (said.text, said.tool_calls)
            calls = offered_calls(calls, chat.get("tools"), chat.get("tool_choice"))
        thought = shown_thinking(played, body, thinking)
        prompt, output = _prompt_words(body), _words(text) + _words(thought)
        if played.wire == "anthropic":
            if body.get("stream"):
                return sse_answer(sse_events(*anthropic_events(played, text, thought, (prompt, output), calls)))
            return json_answer(anthropic_message(played, text, thought, (prompt, output), calls))
        assert played.wire == "gemini", "OpenAI-wire models play in FakeOpenAIServer(real_model=...)"
        n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
        usage = (prompt, _words(text) * n, _words(thought) * n)
        if received.path.endswith(":streamGenerateContent"):
            return sse_answer(sse_events(*gemini_frames(played, text, thought, usage, n, calls)))
        return json_answer(gemini_response(played, [text] * n, [thought] * n, usage, calls))

    return answer
