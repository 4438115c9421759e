"""Test doubles for optillm: clients that need no network and record everything they were asked.

- :class:`ScriptedClient` answers from a queue of replies.
- :class:`FunctionClient` computes each reply from the request.
- :class:`LatencyClient` and :class:`FaultyClient` wrap any client to add delay or injected errors.

Give a double a ``profile`` (:class:`~optillm_core.ModelProfile`) and it behaves like that model:
it refuses, with the provider's kind of :class:`~optillm_core.BadRequestError`, every request
carrying a setting the model refuses or an output limit above its cap, and a :class:`Reply` with
``thinking`` comes back the way that model returns thinking (``<think>`` tags in the text, or a
separate reasoning channel).

Every double records :class:`RecordedRequest` objects (prompt, settings, start and end times),
from which :func:`sequential_depth` computes the longest chain of dependent calls of a run.

Profiles of real models as they are (what they refuse, their caps, how they show thinking):
:data:`O3_MINI`, :data:`CLAUDE_SONNET`, :data:`CLAUDE_OPUS`, :data:`GPT_4O_MINI`,
:data:`DEEPSEEK_R1` and :data:`DEEPSEEK_REASONER`, all in :data:`MODEL_PROFILES`. Virtual time
for code that sleeps (retry waits, rate limits): :class:`JumpClock` and :class:`VirtualClock`.
"""

from __future__ import annotations as _annotations

import asyncio
import heapq
import inspect
import itertools
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from ._client import ModelClient, WrapperClient
from ._errors import BadRequestError
from ._messages import GenerationSettings, Message, Prompt
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
from ._tools import ToolCall

__all__ = (
    "CLAUDE_OPUS",
    "CLAUDE_SONNET",
    "DEEPSEEK_R1",
    "DEEPSEEK_REASONER",
    "GPT_4O_MINI",
    "MODEL_PROFILES",
    "O3_MINI",
    "FaultyClient",
    "FunctionClient",
    "JumpClock",
    "LatencyClient",
    "RecordedRequest",
    "Reply",
    "ScriptExhausted",
    "ScriptedClient",
    "VirtualClock",
    "all_tasks_blocked",
    "count_tokens",
    "refusal",
    "sequential_depth",
)


# -- models as they are (../shared/reference/models.md) -----------------------------------------------

O3_MINI = ModelProfile(
    name="o3-mini",
    temperature=False,
    top_p=False,
    max_tokens_field="max_completion_tokens",
    max_output_tokens=100_000,
    native_n=True,
    logprobs=False,
    thinking="hidden",
)
"""o3 / o4-mini: the default temperature only, no top_p, native n, a large cap, hidden thinking."""

CLAUDE_SONNET = ModelProfile(
    name="claude-sonnet-4",
    temperature_max=1.0,
    sampling_exclusive=True,
    max_output_tokens=64_000,
    requires_max_tokens=True,
    default_max_tokens=4096,
    seed=False,
    logprobs=False,
    max_stop=4,
    thinking="anthropic_blocks",
)
"""Claude 4.x: temperature up to 1 but not with top_p, max_tokens required, no n, no seed, thinking blocks."""

CLAUDE_OPUS = CLAUDE_SONNET.model_copy(
    update={"name": "claude-opus-4-7", "temperature": False, "top_p": False, "max_output_tokens": 32_000}
)
"""Claude Opus 4.7: no sampling settings at all."""

GPT_4O_MINI = ModelProfile(name="gpt-4o-mini", max_output_tokens=16_384, native_n=True)
"""gpt-4o-mini: every sampling setting, native n."""

DEEPSEEK_R1 = ModelProfile(name="deepseek-r1", max_output_tokens=32_768, thinking="tags", logprobs=False)
"""DeepSeek-R1 served open-weight: thinking as ``<think>`` tags in the text."""

DEEPSEEK_REASONER = DEEPSEEK_R1.model_copy(update={"name": "deepseek-reasoner", "thinking": "reasoning_content"})
"""DeepSeek's API: thinking in a separate ``reasoning_content`` channel."""

MODEL_PROFILES: tuple[ModelProfile, ...] = (
    O3_MINI,
    CLAUDE_SONNET,
    CLAUDE_OPUS,
    GPT_4O_MINI,
    DEEPSEEK_R1,
    DEEPSEEK_REASONER,
)


def count_tokens(text: str) -> int:
    """The doubles' deterministic token count: one token per whitespace-separated word."""
    return len(text.split())


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``usage`` defaults to word counts of prompt, thinking and text.

    ``thinking`` is sent the way the client's profile says the model returns it: in ``<think>``
    tags before the text (``tags``, and ``none`` for a double with no profile), as
    :class:`~optillm_core.ReasoningDelta` events (``reasoning_content``, ``anthropic_blocks``,
    ``gemini_thoughts``), or not at all (``hidden``). ``tool_calls`` are streamed after the text,
    each as an id-and-name piece followed by its arguments in two pieces, as OpenAI streams them;
    the finish reason becomes ``tool_calls`` unless another one is given.
    """

    text: str
    finish_reason: FinishReason | None = None
    usage: TokenUsage | None = None
    thinking: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def finish(self) -> FinishReason:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass
class RecordedRequest:
    """A request a double received, with anyio clock times of its start and end."""

    prompt: Prompt
    settings: GenerationSettings
    started_at: float
    ended_at: float | None = None
    refused: bool = False

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.prompt.effective_messages()

    @property
    def user_text(self) -> str:
        """The last user message, the usual place to look for which phase sent a request."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def system_text(self) -> str | None:
        return self.prompt.system_text()


class ScriptExhausted(AssertionError):
    """A :class:`ScriptedClient` was called more often than it had replies."""


ReplyLike = str | Reply | BaseException
ReplyFunction = Callable[[Prompt, GenerationSettings], ReplyLike | Awaitable[ReplyLike]]


def _as_reply(value: ReplyLike) -> Reply:
    if isinstance(value, BaseException):
        raise value
    return value if isinstance(value, Reply) else Reply(value)


def _chunks(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [""]


def refusal(profile: ModelProfile, settings: GenerationSettings, model: str = "model") -> BadRequestError | None:
    """The 400 a provider answers a request with when ``profile``'s model refuses one of its settings."""
    refused = profile.unsupported(settings)
    if refused:
        name = refused[0]
        return BadRequestError(f"Unsupported value: '{name}' is not supported with model {model!r}.", status_code=400)
    cap = profile.max_output_tokens
    if settings.max_tokens is not None and cap is not None and settings.max_tokens > cap:
        return BadRequestError(
            f"max_tokens is too large: {settings.max_tokens}. This model supports at most {cap} completion tokens.",
            status_code=400,
        )
    if profile.requires_max_tokens and settings.max_tokens is None:
        return BadRequestError("max_tokens: Field required", status_code=400)
    if settings.n > 1 and profile.max_n is not None and settings.n > profile.max_n:
        return BadRequestError(f"n must be at most {profile.max_n}", status_code=400)
    return None


class _RecordingClient(ModelClient):
    def __init__(self, *, native_n: bool, model_name: str, latency: float, profile: ModelProfile | None = None) -> None:
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._native_n = native_n
        self._model_name = model_name
        self._profile = profile

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def supports_native_n(self) -> bool:
        return self._native_n

    @property
    def profile(self) -> ModelProfile:
        return self._profile if self._profile is not None else super().profile

    @property
    def refused(self) -> list[RecordedRequest]:
        """The recorded requests this double refused because its profile's model would have."""
        return [r for r in self.requests if r.refused]

    async def _replies(self, prompt: Prompt, settings: GenerationSettings) -> list[Reply]:
        raise NotImplementedError

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        record = RecordedRequest(prompt=prompt, settings=settings, started_at=anyio.current_time())
        self.requests.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await anyio.sleep(self.latency)
            if self._profile is not None:
                error = refusal(self._profile, settings, self._model_name)
                if error is not None:
                    record.refused = True
                    raise error
            replies = await self._replies(prompt, settings)
            prompt_tokens = sum(count_tokens(m.content) for m in prompt.effective_messages())
            style = self._profile.thinking if self._profile is not None else "tags"
            usage = TokenUsage()
            for index, reply in enumerate(replies):
                for event in _reply_events(reply, index, style):
                    yield event
                usage = usage + (
                    reply.usage
                    or TokenUsage(
                        input_tokens=prompt_tokens if index == 0 else 0,
                        output_tokens=count_tokens(reply.text) + count_tokens(reply.thinking or ""),
                    )
                )
            yield Completed(
                usage=usage,
                finish_reasons=tuple(r.finish for r in replies),
                model=self._model_name,
            )
        finally:
            self.in_flight -= 1
            record.ended_at = anyio.current_time()

    @property
    def settings_seen(self) -> list[GenerationSettings]:
        return [r.settings for r in self.requests]


def _reply_events(reply: Reply, index: int, style: str) -> list[ResponseEvent]:
    events: list[ResponseEvent] = []
    text = reply.text
    if reply.thinking:
        if style in ("tags", "none"):
            text = f"<think>\n{reply.thinking}\n</think>\n\n{text}"
        elif style != "hidden":
            events.extend(ReasoningDelta(delta=piece, index=index) for piece in _chunks(reply.thinking))
    if text or not reply.tool_calls:
        events.extend(OutputTextDelta(delta=piece, index=index) for piece in _chunks(text))
    for position, call in enumerate(reply.tool_calls):
        half = len(call.arguments) // 2
        events.append(ToolCallDelta(index=index, call=position, id=call.id, name=call.name))
        events.append(ToolCallDelta(index=index, call=position, arguments=call.arguments[:half]))
        events.append(ToolCallDelta(index=index, call=position, arguments=call.arguments[half:]))
    return events


class ScriptedClient(_RecordingClient):
    """Answers from a queue: strings, :class:`Reply` objects, or exceptions to raise at that call.

    With ``native_n`` a request with ``n`` > 1 takes ``n`` replies at once; otherwise core fans it
    out into ``n`` requests. ``profile`` makes it refuse and think like that model (see the module).
    Running out of replies raises :class:`ScriptExhausted`. ``latency``
    seconds pass inside each recorded request, so :func:`sequential_depth` sees overlapping calls
    as overlapping.
    """

    __test__ = False

    def __init__(
        self,
        replies: Iterable[ReplyLike] = (),
        *,
        native_n: bool = False,
        model_name: str = "scripted",
        latency: float = 0.0,
        profile: ModelProfile | None = None,
    ) -> None:
        super().__init__(native_n=native_n, model_name=model_name, latency=latency, profile=profile)
        self._queue: deque[ReplyLike] = deque(replies)

    def add(self, *replies: ReplyLike) -> None:
        self._queue.extend(replies)

    @property
    def remaining(self) -> int:
        return len(self._queue)

    async def _replies(self, prompt: Prompt, settings: GenerationSettings) -> list[Reply]:
        replies = []
        for _ in range(settings.n):
            if not self._queue:
                raise ScriptExhausted(f"ScriptedClient ran out of replies at request {len(self.requests)}")
            replies.append(_as_reply(self._queue.popleft()))
        await anyio.lowlevel.checkpoint()
        return replies


class FunctionClient(_RecordingClient):
    """Computes each reply with ``function(prompt, settings)`` (sync or async).

    The function may return a string or :class:`Reply`, or raise (or return) an exception.
    With ``native_n`` it is called once per choice. ``latency`` works as in :class:`ScriptedClient`.
    """

    __test__ = False

    def __init__(
        self,
        function: ReplyFunction,
        *,
        native_n: bool = False,
        model_name: str = "function",
        latency: float = 0.0,
        profile: ModelProfile | None = None,
    ) -> None:
        super().__init__(native_n=native_n, model_name=model_name, latency=latency, profile=profile)
        self._function = function

    async def _replies(self, prompt: Prompt, settings: GenerationSettings) -> list[Reply]:
        replies = []
        for _ in range(settings.n):
            result = self._function(prompt, settings)
            if inspect.isawaitable(result):
                result = await result
            replies.append(_as_reply(result))
        await anyio.lowlevel.checkpoint()
        return replies


class LatencyClient(WrapperClient):
    """Waits ``delay`` seconds before each call reaches the wrapped client.

    To measure :func:`sequential_depth`, prefer the ``latency`` of :class:`ScriptedClient` or
    :class:`FunctionClient`: here the wait happens before the inner client records the request.
    """

    def __init__(self, wrapped: ModelClient, delay: float) -> None:
        super().__init__(wrapped)
        self.delay = delay

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        await anyio.sleep(self.delay)
        return await self.wrapped.request(prompt, settings)

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        await anyio.sleep(self.delay)
        async for event in self.wrapped.request_stream(prompt, settings):
            yield event


FaultRule = Mapping[int, BaseException] | Callable[[int, Prompt, GenerationSettings], BaseException | None]


class FaultyClient(WrapperClient):
    """Raises injected errors instead of calling the wrapped client.

    ``faults`` maps a call number (0-based, in the order calls arrive) to the exception to raise,
    or is a function of ``(call_number, prompt, settings)`` returning an exception or ``None``.
    """

    def __init__(self, wrapped: ModelClient, faults: FaultRule) -> None:
        super().__init__(wrapped)
        self._faults = faults
        self.calls = 0
        self.raised: list[BaseException] = []

    def _check(self, prompt: Prompt, settings: GenerationSettings) -> None:
        number = self.calls
        self.calls += 1
        fault = (
            self._faults.get(number) if isinstance(self._faults, Mapping) else self._faults(number, prompt, settings)
        )
        if fault is not None:
            self.raised.append(fault)
            raise fault

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        self._check(prompt, settings)
        return await self.wrapped.request(prompt, settings)

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self._check(prompt, settings)
        async for event in self.wrapped.request_stream(prompt, settings):
            yield event


def sequential_depth(intervals: Sequence[RecordedRequest] | Sequence[tuple[float, float]]) -> int:
    """The longest chain of calls in which each starts after the previous one ended.

    That is the number of sequential model round-trips of a run: its critical path in calls.
    Give the calls some latency (``ScriptedClient(latency=...)``) so concurrent ones overlap.
    """
    spans: list[tuple[float, float]] = []
    for item in intervals:
        if isinstance(item, RecordedRequest):
            spans.append((item.started_at, item.ended_at if item.ended_at is not None else item.started_at))
        else:
            spans.append(item)
    spans.sort()
    depth_at_end: list[tuple[float, int]] = []
    best = 0
    for start, end in spans:
        before = max((d for e, d in depth_at_end if e <= start), default=0)
        depth = before + 1
        depth_at_end.append((end, depth))
        best = max(best, depth)
    return best


# -- virtual time -------------------------------------------------------------------------------------


class JumpClock:
    """Virtual time for sequential code: ``sleep`` moves the clock forward at once and records the delay.

    It has the router's clock interface (``now()``, ``await sleep(seconds)``).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


class VirtualClock:
    """Virtual time for concurrent code: when every task is blocked, time jumps to the next sleeper's deadline.

    Use ``async with clock.running():`` around the code under test (like trio's autojump
    MockClock). It works on the asyncio backend, whose tasks it inspects to see that all wait.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self._sleepers: list[list[object]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        item: list[object] = [self.time + seconds, next(self._order), event]
        heapq.heappush(self._sleepers, item)
        try:
            await event.wait()
        finally:
            item[2] = None

    def _jump(self) -> bool:
        heap = self._sleepers
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if not heap:
            return False
        deadline = heap[0][0]
        assert isinstance(deadline, float)
        self.time = max(self.time, deadline)
        while heap and isinstance(heap[0][0], float) and heap[0][0] <= self.time:
            event = heapq.heappop(heap)[2]
            if isinstance(event, anyio.Event):
                event.set()
        return True

    async def _drive(self) -> None:
        while True:
            await all_tasks_blocked()
            if not self._jump():
                await anyio.lowlevel.checkpoint()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[VirtualClock]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


async def all_tasks_blocked() -> None:
    """Return once every other task waits on an unfinished future (nothing can run without time passing).

    For tests that must act exactly when the code under test is stuck waiting (asyncio backend).
    """
    me = asyncio.current_task()
    while True:
        await anyio.lowlevel.checkpoint()
        for task in asyncio.all_tasks():
            if task is me:
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                break
        else:
            return
