"""The run context: everything a strategy uses during one run, and the one rule for each call's settings."""

from __future__ import annotations as _annotations

from collections.abc import AsyncIterator, Callable, Collection, Hashable, Mapping
from typing import Any, Generic, TypeVar

from ._budget import MeteredClient, RunUsage
from ._client import collect_stream
from ._config import FINAL_ONLY_EXTRA, CallRole, OptimizerConfig
from ._conversation import Conversation
from ._errors import ClientError
from ._events import AnswerDelta, EventChannel, OptimizerEvent, PhaseStarted
from ._log import log
from ._messages import GenerationSettings, Prompt
from ._outcome import Outcome
from ._profiles import ModelProfile
from ._responses import Completion, OutputTextDelta, ResponseEvent

__all__ = ("RunContext",)

ConfigT = TypeVar("ConfigT", bound=OptimizerConfig)


class RunContext(Generic[ConfigT]):
    """Everything a strategy needs during one run.

    ``client`` counts and limits every call; ``settings`` holds the caller's generation settings
    (less any the model refuses), which :meth:`call_settings` combines with the strategy's own
    per-phase values by one rule; ``profile`` is what the model accepts.
    """

    def __init__(
        self,
        *,
        optimizer: str,
        config: ConfigT,
        conversation: Conversation,
        settings: GenerationSettings,
        client: MeteredClient,
        channel: EventChannel,
        phases: Mapping[str, CallRole] | None = None,
        observed: bool = True,
    ) -> None:
        self.optimizer = optimizer
        self.config = config
        self.conversation = conversation
        self.query = conversation.query
        self.system_prompt = conversation.system_prompt
        self.settings = settings
        self.client = client
        self._best: Outcome | Callable[[], Outcome | None] | None = None
        self.profile: ModelProfile = client.profile
        self._channel = channel
        self._phases = phases
        self._observed = observed
        self._call_settings: dict[Hashable, tuple[GenerationSettings, ModelProfile, GenerationSettings]] = {}

    @property
    def usage(self) -> RunUsage:
        return self.client.usage

    def emit(self, event: OptimizerEvent) -> None:
        """Send an event to the caller; never blocks. A run nobody observes drops it at once."""
        if not self._observed:
            return
        if not event.optimizer:
            event = event.model_copy(update={"optimizer": self.optimizer})
        self._channel.send(event)

    def phase(self, name: str, *, round: int | None = None) -> None:
        """Say that the run enters the phase ``name`` (its ``round``, for phases that repeat).

        ``name`` must be one of the strategy's declared :attr:`Optimizer.phases`, so that what a
        caller sees of a run is what the strategy documents.
        """
        if self._phases is not None and name not in self._phases:
            declared = ", ".join(repr(phase) for phase in self._phases) or "none"
            raise ValueError(
                f"{self.optimizer} entered phase {name!r}, which it does not declare (declared: {declared}); "
                "add it to the strategy's phases"
            )
        if self._observed:  # nobody would see it: not even built
            self.emit(PhaseStarted(phase=name, round=round))

    @property
    def tools_offered(self) -> bool:
        """Whether the caller offered tools: calls that may answer get them and the conversation as real turns."""
        return bool(self.settings.tools)

    @property
    def best(self) -> Outcome | None:
        """The best outcome so far, returned if the run's budget runs out before the end (or ``None``)."""
        if callable(self._best):
            self._best = self._best()
        return self._best

    @best.setter
    def best(self, outcome: Outcome | None) -> None:
        self._best = outcome

    def record_best(self, answer: str, reasoning: str = "", *, thinking: str = "", **extras: Any) -> None:
        """Remember the best answer so far (and its thinking), returned if the run's budget runs out before the end."""
        self.best = Outcome(answer=answer, reasoning=reasoning, thinking=thinking, extras=extras, budget_exhausted=True)

    def defer_best(self, build: Callable[[], Outcome | None]) -> None:
        """Like setting :attr:`best`, but ``build`` runs only if the best outcome is ever asked for.

        For strategies whose best-so-far is costly to write out (a whole workspace in its extras)
        and recorded after every phase, while almost every run ends normally and never reads it.
        ``build`` must work from a snapshot of the state it describes, since the run goes on.
        """
        self._best = build

    def prompt(self, user: str, *, system: str | None = None) -> Prompt:
        """A one-turn prompt; the caller's system prompt (with the earlier turns) applies unless ``system`` is given.

        For calls made without the caller's tools: ``user`` usually embeds :attr:`query`.
        """
        return Prompt.from_query(user, system=system if system is not None else self.system_prompt)

    def conversation_prompt(self, note: str | None = None, *, system: str | None = None) -> Prompt:
        """The conversation turn by turn, the strategy's ``note`` after the system prompt: for calls with tools.

        The turns stay exactly as the caller sent them (see :meth:`Conversation.prompt`), so tool
        calls and results are real tool turns and the model answers the caller's last turn. Use it
        for the calls whose settings carry the tools (``final`` calls, and answers that are returned
        as they are); without tools offered, :meth:`prompt` reads better to the model.
        """
        return self.conversation.prompt(note, system=system)

    def call_settings(
        self,
        role: CallRole = "answer",
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int = 1,
        seed_offset: int = 0,
        pinned: Collection[str] = (),
    ) -> GenerationSettings:
        """The settings of one call: the phase's values, the caller's by the one rule, fitted to the model.

        - The caller's ``max_tokens`` caps every call; the phase's ``max_tokens`` is its own limit.
        - The caller's ``temperature``, ``top_p`` and ``seed`` replace the phase's values in
          ``answer`` and ``final`` calls, except the settings named in ``pinned`` (those the
          strategy's config set explicitly: :meth:`OptimizerConfig.pinned`); ``judge`` calls keep
          their own. A seed becomes ``seed + seed_offset``, so that parallel answers differ.
        - The caller's ``stop``, ``response_format``, ``tools`` and ``tool_choice`` reach ``final``
          calls only, less ``stop`` for ``returned`` calls (an answer the strategy may return as it
          is, such as a sample a vote picks; the strategy cuts the chosen one at ``stop``).
        - Finally the model's profile leaves out what the model refuses (a temperature on a
          reasoning model) and clips the output limit to its cap.
        """
        # A phase asks for the same few settings with every call: built and validated once per run
        # (they are frozen), again only if the caller's settings or the profile were replaced.
        if self.settings.seed is None:
            seed_offset = 0  # no seed to offset: parallel answers (an offset each) share one build
        key: Hashable = (role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        try:
            cached = self._call_settings.get(key)
        except TypeError:  # an unhashable ``pinned``: built every time
            return self._build_call_settings(role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        if cached is not None and cached[0] is self.settings and cached[1] is self.profile:
            return cached[2]
        settings = self._build_call_settings(role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        self._call_settings[key] = (self.settings, self.profile, settings)
        return settings

    def _build_call_settings(
        self,
        role: CallRole,
        temperature: float | None,
        top_p: float | None,
        max_tokens: int | None,
        n: int,
        seed_offset: int,
        pinned: Collection[str],
    ) -> GenerationSettings:
        caller = self.settings
        answering = role != "judge"
        if answering:
            if caller.temperature is not None and "temperature" not in pinned:
                temperature = caller.temperature
            if caller.top_p is not None and "top_p" not in pinned:
                top_p = caller.top_p
        seed = caller.seed + seed_offset if answering and caller.seed is not None and "seed" not in pinned else None
        if caller.max_tokens is not None:
            max_tokens = caller.max_tokens if max_tokens is None else min(max_tokens, caller.max_tokens)
        final = role == "final"
        answers = final or role == "returned"
        extra = caller.extra if answers else {k: v for k, v in caller.extra.items() if k not in FINAL_ONLY_EXTRA}
        settings = GenerationSettings(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            n=n,
            stop=caller.stop if final else None,
            seed=seed,
            tools=caller.tools if answers else None,
            tool_choice=caller.tool_choice if answers else None,
            extra=extra,
        )
        return self.profile._fitted(settings)[0]

    async def generate(self, prompt: Prompt | str, settings: GenerationSettings | None = None) -> Completion:
        """One call through the metered client (an ``answer`` call under the caller's settings by default)."""
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        return await self.client.complete(prompt, settings or self.call_settings("answer"))

    async def generate_final(self, prompt: Prompt | str, settings: GenerationSettings | None = None) -> Completion:
        """The run's last call, whose text is the answer as it is: streamed to the caller as it is generated.

        Each piece of the answer's text (never its thinking) is sent as an :class:`AnswerDelta`
        event, so a caller that shows answers live (the proxy's ``stream: true``) can pass them on.
        Use it only when the strategy returns this completion's text unchanged. Without
        ``settings`` it is a ``final`` call under the caller's settings. A request with ``n`` > 1 is
        not streamed, nor is any call of a run whose caller passed no ``events`` to
        :meth:`Optimizer.optimize` (nobody would see the pieces, and a plain request costs less).

        A stream that breaks with a retryable error after some text went out cannot be retried as
        a stream (that text is already with the caller): the call is sent again as a plain request.
        When its text starts with what was sent, only the rest goes out as an :class:`AnswerDelta`;
        otherwise the new completion is returned as it is, and the caller, comparing it with the
        pieces it received, must tell its own client that the streamed text was abandoned.
        """
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        settings = settings or self.call_settings("final")
        if settings.n > 1 or not self._observed:
            return await self.client.complete(prompt, settings)
        emitted: list[str] = []
        try:
            async with self.client.stream(prompt, settings) as events:
                return await collect_stream(self._emitting_deltas(events, emitted))
        except ClientError as error:
            if not (error.retryable and emitted):
                raise
            log.info("final stream broke after its first text; asking again without streaming", error=str(error))
        completion = await self.client.complete(prompt, settings)
        self._emit_remainder("".join(emitted), completion.text)
        return completion

    async def _emitting_deltas(
        self, events: AsyncIterator[ResponseEvent], emitted: list[str]
    ) -> AsyncIterator[ResponseEvent]:
        async for event in events:
            if isinstance(event, OutputTextDelta) and event.index == 0 and event.delta:
                emitted.append(event.delta)
                self.emit(AnswerDelta(delta=event.delta, optimizer=self.optimizer))
            yield event

    def _emit_remainder(self, sent: str, text: str) -> None:
        if not text.startswith(sent):
            log.warning("the repeated final call gave a different answer than the broken stream had begun")
            return
        if rest := text[len(sent) :]:
            self.emit(AnswerDelta(delta=rest, optimizer=self.optimizer))
