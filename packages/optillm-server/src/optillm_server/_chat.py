"""``POST /v1/chat/completions``: the OpenAI Chat Completions format on the wire-format seam.

Pass-through goes to the upstream byte for byte (or turn by turn through the model client when
there is none); a strategy's answer is a ``chat.completion``, or a live stream of chunks with its
progress as SSE comments.
"""

from __future__ import annotations as _annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from optillm_core import FinishReason

from . import _strategies
from ._conversation import strategy_input
from ._errors import ApiError
from ._formats import StrategyCall, WireFormat
from ._limits import BUDGET_HEADER, budget_report, exhausted_limit
from ._passthrough import forward, outgoing_body, serve_with_client
from ._routes import ServerState, refuse_unsupported
from ._selection import Selection
from ._streaming import Exchange, Work
from ._tools import tool_call_chunks
from ._wire import ChatRequest, ResponseHeader, chunk, completion, parse_body

__all__ = ("ChatFormat",)


@dataclass(frozen=True)
class ChatWire:
    """A chat request as it came: its JSON body (forwarded as it is) and, read when needed, its checked fields."""

    raw: bytes
    body: dict[str, Any]

    @property
    def model(self) -> str:
        model: str = self.body["model"]
        return model

    @property
    def optillm_approach(self) -> str | None:
        approach = self.body.get("optillm_approach")
        if approach is not None and not isinstance(approach, str):
            raise ApiError(
                400, "'optillm_approach' must be a string such as 'moa' or 'moa&mars'", param="optillm_approach"
            )
        return approach

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @cached_property
    def chat(self) -> ChatRequest:
        return ChatRequest.parse(self.body)


class ChatFormat(WireFormat[ChatWire]):
    name: ClassVar[str] = "chat completions"
    path: ClassVar[str] = "/v1/chat/completions"

    def read(self, raw: bytes) -> ChatWire:
        return ChatWire(raw, parse_body(raw))

    def pass_through(self, state: ServerState, raw: bytes, request: ChatWire, selection: Selection) -> Work:
        if state.upstream is not None:
            forwarding = state.forwarding(state.upstream)
            payload = outgoing_body(raw, request.body)
            stream = request.stream

            async def relay(exchange: Exchange) -> None:
                await forward(exchange, forwarding, payload, stream=stream)

            return relay
        chat = request.chat
        client = state.client_for_model(selection.model)
        refuse_unsupported(client, chat.settings(), chat.optillm_drop_unsupported or state.drop_unsupported)
        header = ResponseHeader(model=chat.model)

        async def direct(exchange: Exchange) -> None:
            await serve_with_client(exchange, client, chat, header)

        return direct

    def strategy_call(self, state: ServerState, request: ChatWire, selection: Selection) -> StrategyCall:
        chat = request.chat
        chat.reject_logprobs(
            "strategies answer with text; send the request without a strategy to pass logprobs through"
        )
        chat.reject_structured_output()
        return StrategyCall(
            question=strategy_input(chat.messages),
            settings=chat.settings(),
            config=chat.optillm_config,
            n=chat.n,
            messages=len(chat.messages),
            policy=chat.optillm_drop_unsupported,
            header=ResponseHeader(model=chat.model),
            include_usage=chat.include_usage,
        )

    async def answer(
        self, exchange: Exchange, job: _strategies.StrategyJob, request: ChatWire, done: _strategies.JobResult
    ) -> None:
        results = done.results
        choices: list[tuple[str, FinishReason | None]] = [(r.answer, r.finish_reason) for r in results]
        thinking, calls = [r.thinking for r in results], [r.tool_calls for r in results]
        payload = completion(job.header, choices, done.usage, thinking, calls)
        payload["optillm"] = budget_report(done.meter, done.exhausted)
        headers = {BUDGET_HEADER: exhausted_limit(done.meter)} if done.exhausted else None
        await exchange.json(200, payload, headers)

    def live(self, exchange: Exchange, job: _strategies.StrategyJob, request: ChatWire) -> _ChatLive:
        return _ChatLive(exchange, job)


class _ChatLive:
    """SSE: role chunks at once, progress as comments, the answer as it is generated, then usage and [DONE]."""

    def __init__(self, exchange: Exchange, job: _strategies.StrategyJob) -> None:
        self._exchange = exchange
        self._job = job
        self.streamed = [""] * job.plan.choices

    def _chunk(self, **fields: Any) -> dict[str, Any]:
        return chunk(self._job.header, with_usage_field=self._job.include_usage, **fields)

    async def start(self) -> None:
        await self._exchange.start_stream()
        for index in range(self._job.plan.choices):
            await self._exchange.data(self._chunk(index=index, delta={"role": "assistant", "content": ""}))

    async def note(self, note: _strategies.RunNote) -> None:
        if note.kind == "delta":
            self.streamed[note.index] += note.text
            await self._exchange.data(self._chunk(index=note.index, delta={"content": note.text}))
        elif note.kind == "progress":
            await self._exchange.comment(f"{note.text} [choice {note.index}]")
        else:
            await self._exchange.comment("keep-alive")

    async def finish(self, done: _strategies.JobResult) -> None:
        """What the live pieces did not already carry, the finish reasons, the usage chunk and [DONE].

        A choice's tool calls are known once its run ends: each goes out whole, in one
        ``delta.tool_calls`` chunk after the text, and the choice finishes with ``tool_calls``.
        """
        exchange, job = self._exchange, self._job
        for index, result in enumerate(done.results):
            if result.thinking:  # known once the run ends; reasoning clients read it from reasoning_content
                await exchange.data(self._chunk(index=index, delta={"reasoning_content": result.thinking}))
            rest = result.answer[len(self.streamed[index]) :]
            if rest:
                await exchange.data(self._chunk(index=index, delta={"content": rest}))
            for delta in tool_call_chunks(result.tool_calls):
                await exchange.data(self._chunk(index=index, delta=delta))
        for index, result in enumerate(done.results):
            reason = "tool_calls" if result.tool_calls else result.finish_reason
            payload = self._chunk(index=index, finish_reason=reason)
            payload["optillm"] = budget_report(done.meter, [index] if index in done.exhausted else [])
            await exchange.data(payload)
        if job.include_usage:
            payload = chunk(job.header, usage=done.usage)
            payload["optillm"] = budget_report(done.meter, done.exhausted)
            await exchange.data(payload)
        await exchange.done()
