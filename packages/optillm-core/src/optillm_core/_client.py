"""The async interface to a language model, and the shared fan-out of ``n`` > 1 requests."""

from __future__ import annotations as _annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache, partial
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio

from ._concurrency import gather, task_group
from ._messages import GenerationSettings, Prompt
from ._profiles import ModelProfile
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
from ._thinking import separate_thinking, split_thinking_stream
from ._tools import ToolCall

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = ("ModelClient", "WrapperClient", "collect_stream", "merge_completions")


@cache
def _default_settings() -> GenerationSettings:
    return GenerationSettings()


@cache
def _default_profile() -> ModelProfile:
    """The permissive profile, built on first use (a model built at import costs every importer)."""
    return ModelProfile()


class ModelClient(ABC):
    """An LLM behind an async interface.

    Implementations provide :meth:`request_stream` (an async generator of
    :data:`ResponseEvent`) and may override :meth:`request` with a cheaper non-streaming call.
    Callers use :meth:`complete` and :meth:`stream`, which fan a request with ``n`` > 1 out into
    concurrent single requests when the client cannot produce several choices natively (each with
    its own seed, ``seed + index``, when a seed is set), and which move ``<think>…</think>`` text
    out of the answer into the thinking (``Completion.thinking``, :class:`ReasoningDelta`).
    """

    @property
    def model_name(self) -> str:
        """The model this client talks to, for logs and responses."""
        return type(self).__name__

    @property
    def supports_native_n(self) -> bool:
        """Whether one request with ``n`` > 1 returns ``n`` choices."""
        return False

    @property
    def profile(self) -> ModelProfile:
        """What the model behind this client accepts; the permissive default when nobody knows."""
        return _default_profile()

    @abstractmethod
    def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        """Send one request and yield its events, ending with one :class:`Completed`.

        ``settings.n`` is 1 unless :attr:`supports_native_n` is true.
        """

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        """Send one request and return it collected; override for a non-streaming wire call."""
        return await collect_stream(self.request_stream(prompt, settings), settings.n)

    async def complete(self, prompt: Prompt, settings: GenerationSettings | None = None) -> Completion:
        """Run a request to completion, fanning ``n`` > 1 out concurrently when it is not native."""
        settings = settings or _default_settings()
        if settings.n > 1 and not self.supports_native_n:
            return await _fan_out_complete(self, prompt, settings)
        max_n = self.profile.max_n
        if max_n is not None and settings.n > max_n:
            return await _chunked_complete(self, prompt, settings, max_n)
        return separate_thinking(await self.request(prompt, settings))

    @asynccontextmanager
    async def stream(
        self, prompt: Prompt, settings: GenerationSettings | None = None
    ) -> AsyncIterator[AsyncIterator[ResponseEvent]]:
        """Stream a request: ``async with client.stream(p) as events: async for e in events: ...``.

        Leaving the block early closes the underlying connection.
        """
        settings = settings or _default_settings()
        expect_close = self.profile.thinking == "tags"
        if settings.n > 1 and not self.supports_native_n:
            async with _fan_out_stream(self, prompt, settings) as events:
                yield split_thinking_stream(events, expect_close=expect_close)
            return
        events = self.request_stream(prompt, settings)
        try:
            yield split_thinking_stream(events, expect_close=expect_close)
        finally:
            await _aclose(events)

    async def aclose(self) -> None:  # noqa: B027 - optional hook: most clients hold nothing to release
        """Release connections and other resources."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class WrapperClient(ModelClient):
    """A client that delegates to another; subclass it to add behaviour around every call."""

    def __init__(self, wrapped: ModelClient) -> None:
        self.wrapped = wrapped

    @property
    def model_name(self) -> str:
        return self.wrapped.model_name

    @property
    def supports_native_n(self) -> bool:
        return self.wrapped.supports_native_n

    @property
    def profile(self) -> ModelProfile:
        return self.wrapped.profile

    def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        return self.wrapped.request_stream(prompt, settings)

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        return await self.wrapped.request(prompt, settings)

    async def aclose(self) -> None:
        await self.wrapped.aclose()


async def _aclose(events: AsyncIterator[ResponseEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def collect_stream(events: AsyncIterator[ResponseEvent], n: int = 1) -> Completion:
    """Collect a stream of events into a :class:`Completion` with ``n`` choices (more if the stream has more)."""
    pieces: list[list[str]] = [[] for _ in range(n)]
    thoughts: list[list[str]] = [[] for _ in range(n)]
    calls = _ToolCallAssembly()
    completed: Completed | None = None
    try:
        async for event in events:
            if isinstance(event, Completed):
                completed = event
                continue
            if isinstance(event, ToolCallDelta):
                calls.add(event)
                continue
            target = pieces if isinstance(event, OutputTextDelta) else thoughts
            while event.index >= len(target):
                target.append([])
            target[event.index].append(event.delta)
    finally:
        await _aclose(events)
    texts = tuple("".join(p) for p in pieces)
    thinking = tuple("".join(t).strip() for t in thoughts) if any(thoughts) else ()
    tool_calls = calls.result(len(texts))
    if completed is None:
        return Completion(texts=texts, thinking=thinking, tool_calls=tool_calls)
    return Completion(
        texts=texts,
        thinking=thinking,
        tool_calls=tool_calls,
        usage=completed.usage or TokenUsage(),
        finish_reasons=completed.finish_reasons,
        model=completed.model,
    )


class _ToolCallAssembly:
    """Tool calls put together from their pieces, per choice and position."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[tuple[int, int], list[str]] = {}
        """(choice, position) → the call's id, name, arguments and signature so far."""

    def add(self, delta: ToolCallDelta) -> None:
        part = self._parts.setdefault((delta.index, delta.call), ["", "", "", ""])
        if delta.id:
            part[0] = delta.id
        if delta.name:
            part[1] = part[1] or delta.name
        part[2] += delta.arguments
        if delta.signature:
            part[3] = delta.signature

    def result(self, choices: int) -> tuple[tuple[ToolCall, ...], ...]:
        if not self._parts:
            return ()
        per_choice: list[list[ToolCall]] = [[] for _ in range(max(choices, 1 + max(i for i, _ in self._parts)))]
        for (index, call), (call_id, name, arguments, signature) in sorted(self._parts.items()):
            per_choice[index].append(
                ToolCall(
                    id=call_id or f"call_{index}_{call}",
                    name=name,
                    arguments=arguments or "{}",
                    signature=signature or None,
                )
            )
        return tuple(tuple(c) for c in per_choice)


def _calls_per_choice(parts: Sequence[Completion]) -> tuple[tuple[ToolCall, ...], ...]:
    """Each part's choices' tool calls, in order; empty when no part called a tool."""
    if not any(p.tool_calls for p in parts):
        return ()
    return tuple(p.calls_of(i) for p in parts for i in range(len(p.texts)))


def merge_completions(parts: Sequence[Completion]) -> Completion:
    """Join single-choice completions into one completion with a choice per part, in order."""
    usage = sum((p.usage for p in parts), TokenUsage())
    thinking = tuple(p.reasoning for p in parts)
    return Completion(
        texts=tuple(p.text for p in parts),
        thinking=thinking if any(thinking) else (),
        tool_calls=_calls_per_choice(parts),
        usage=usage,
        finish_reasons=tuple(p.finish_reason() for p in parts),
        model=next((p.model for p in parts if p.model), None),
    )


def _single(settings: GenerationSettings, index: int) -> GenerationSettings:
    """Choice ``index`` of a fanned-out request: one choice, and its own seed so the choices differ."""
    if settings.seed is None:
        return settings.with_(n=1)
    return settings.with_(n=1, seed=settings.seed + index)


async def _fan_out_complete(client: ModelClient, prompt: Prompt, settings: GenerationSettings) -> Completion:
    async def one(index: int) -> Completion:
        return separate_thinking(await client.request(prompt, _single(settings, index)))

    return merge_completions(await gather(partial(one, index) for index in range(settings.n)))


async def _chunked_complete(
    client: ModelClient, prompt: Prompt, settings: GenerationSettings, max_n: int
) -> Completion:
    """A native ``n`` above the model's limit: concurrent requests of at most ``max_n`` choices each."""
    sizes = [min(max_n, settings.n - start) for start in range(0, settings.n, max_n)]

    async def one(index: int) -> Completion:
        chunk = settings.with_(n=sizes[index])
        if settings.seed is not None:
            chunk = chunk.with_(seed=settings.seed + index * max_n)
        return separate_thinking(await client.request(prompt, chunk))

    parts = await gather(partial(one, index) for index in range(len(sizes)))
    thinking = tuple(t for p in parts for t in (p.thinking or ("",) * len(p.texts)))
    return Completion(
        texts=tuple(text for p in parts for text in p.texts),
        thinking=thinking if any(thinking) else (),
        tool_calls=_calls_per_choice(parts),
        usage=sum((p.usage for p in parts), TokenUsage()),
        finish_reasons=tuple(p.finish_reason(i) for p in parts for i in range(len(p.texts))),
        model=next((p.model for p in parts if p.model), None),
    )


@asynccontextmanager
async def _fan_out_stream(
    client: ModelClient, prompt: Prompt, settings: GenerationSettings
) -> AsyncIterator[AsyncIterator[ResponseEvent]]:
    """Run ``n`` single-choice streams concurrently and merge them, each relabelled with its choice index."""
    send, receive = anyio.create_memory_object_stream[ResponseEvent](math.inf)
    usages: list[TokenUsage] = []
    finish: list[FinishReason | None] = [None] * settings.n
    models: list[str] = []

    async def one(index: int, out: MemoryObjectSendStream[ResponseEvent]) -> None:
        async with out:
            events = client.request_stream(prompt, _single(settings, index))
            try:
                async for event in events:
                    if isinstance(event, OutputTextDelta | ReasoningDelta | ToolCallDelta):
                        await out.send(event.model_copy(update={"index": index}))
                    else:
                        usages.append(event.usage or TokenUsage())
                        finish[index] = _first(event.finish_reasons)
                        if event.model:
                            models.append(event.model)
            finally:
                await _aclose(events)

    async def merged() -> AsyncIterator[ResponseEvent]:
        async with receive:
            async for event in receive:
                yield event
        yield Completed(
            usage=sum(usages, TokenUsage()),
            finish_reasons=tuple(finish),
            model=models[0] if models else None,
        )

    async with task_group() as tg:
        async with send:
            for index in range(settings.n):
                tg.start_soon(one, index, send.clone())
        events = merged()
        try:
            yield events
        finally:
            tg.cancel_scope.cancel()
            await _aclose(events)


def _first(reasons: tuple[FinishReason | None, ...]) -> FinishReason | None:
    return reasons[0] if reasons else None
