"""Shared by the strategies' tool-call tests: a tool, a call to it, and a stream that breaks as connections do."""

from __future__ import annotations

from collections.abc import AsyncIterator

from optillm_core import (
    Completion,
    GenerationSettings,
    ModelClient,
    Prompt,
    ProtocolError,
    ResponseEvent,
    ToolCall,
    ToolDefinition,
    WrapperClient,
)

WEATHER = ToolDefinition(
    name="get_weather",
    description="The current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL = ToolCall(id="call_weather_1", name="get_weather", arguments='{"city": "Paris"}')
WITH_TOOLS = GenerationSettings(tools=(WEATHER,), tool_choice="auto")


class BreaksMidStream(WrapperClient):
    """Call ``call`` (0-based, in the order calls arrive) sends its first ``after`` events, then its connection breaks.

    The break is a :class:`ProtocolError`, as a router reports a stream cut in the middle
    (retryable); every other call goes to the wrapped client unchanged.
    """

    def __init__(self, wrapped: ModelClient, *, call: int, after: int) -> None:
        super().__init__(wrapped)
        self._call = call
        self._after = after
        self.calls = 0

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        self.calls += 1
        return await self.wrapped.request(prompt, settings)

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        number = self.calls
        self.calls += 1
        sent = 0
        async for event in self.wrapped.request_stream(prompt, settings):
            if number == self._call and sent == self._after:
                raise ProtocolError("the stream broke off in the middle (connection reset)")
            sent += 1
            yield event
