"""One MARS run's shared state: the context, the resolved config, the workspace, and the call helper."""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING, Any

from optillm_core import CallRole, Completion, GenerationSettings, Outcome, ParsingError, Prompt, RunContext

from ._account import account
from ._config import MarsConfig
from ._log import log
from ._prompts import solver_system
from ._types import MarsSolution, SelectionMethod
from ._workspace import Workspace

if TYPE_CHECKING:
    from ._events import MarsEvent

__all__ = ("MarsRun",)


class MarsRun:
    """What every phase needs: the query, settings per call, the workspace and event helpers."""

    def __init__(self, ctx: RunContext[MarsConfig]) -> None:
        self.ctx = ctx
        self.config = ctx.config.resolve(ctx.settings.max_tokens)
        self.lightweight = self.config is not ctx.config
        self.workspace = Workspace()
        self.round = 0

    @property
    def query(self) -> str:
        return self.ctx.query

    @property
    def offers_tools(self) -> bool:
        """Whether the caller offered tools: then the answer is always the synthesis call, made with them."""
        return self.ctx.tools_offered

    def solver_system(self, *extra: str, real_turns: bool = False) -> str:
        """The solver's system prompt; the ``<think>`` format only for models that do not think on their own.

        It carries the caller's system prompt: with the earlier turns as a transcript for calls
        that get the question flattened, alone for a call that gets the conversation as real turns
        (``real_turns``), which shows those turns itself.
        """
        asks_for_thinking = self.config.use_thinking_tags and self.ctx.profile.thinking == "none"
        caller = "\n\n".join(self.ctx.conversation.system) or None if real_turns else self.ctx.system_prompt
        return "\n\n".join((solver_system(asks_for_thinking, caller), *extra))

    def settings(
        self, role: CallRole, temperature: float | None, *, field: str | None = None, seed_offset: int = 0
    ) -> GenerationSettings:
        """One call's settings by core's rule for ``role``, with MARS's temperature and output limit for it.

        ``field`` names the config field the temperature comes from: set explicitly, it keeps the
        caller's temperature out. ``seed_offset`` keeps the caller's seed different per agent.
        """
        config = self.config
        return self.ctx.call_settings(
            role,
            temperature=temperature,
            max_tokens=config.token_budget_review if role == "judge" else config.token_budget_reasoning,
            n=1,
            seed_offset=seed_offset,
            pinned=config.pinned(temperature=field) if field else frozenset(),
        )

    async def ask(
        self, system: str, user: str | Prompt, settings: GenerationSettings, *, final: bool = False
    ) -> Completion:
        """One model call; a reply with no text outside its thinking is a :class:`ParsingError`.

        ``user`` is the call's one user message, which embeds the flattened question (every call
        made without the caller's tools), or a whole prompt (the synthesis with the tools: the
        conversation as real turns). Phases treat the error as a failed call. ``final``: the reply
        becomes the run's answer, so its text (never its thinking) is streamed to the caller as it
        is generated; a final reply that calls the caller's tools is an answer even without text.
        """
        prompt = user if isinstance(user, Prompt) else self.ctx.prompt(user, system=system)
        if final:
            completion = await self.ctx.generate_final(prompt, settings)
        else:
            completion = await self.ctx.client.complete(prompt, settings)
        if not completion.text.strip() and not (final and completion.calls):
            raise ParsingError(_empty_reply(completion))
        return completion

    def emit(self, event: MarsEvent) -> None:
        self.ctx.emit(event)

    def note(self, message: str, **fields: Any) -> None:
        (log.info if self.config.debug else log.debug)(message, optimizer="mars", **fields)

    def failed(self, phase: str, error: Exception, **fields: Any) -> None:
        """Report a call the run goes on without: an :class:`Error` event, and a log line naming what it was for.

        Only calls the toolkit's :func:`~optillm_core.toolkit.settle` absorbed get here (it has
        already logged the failure as a warning); every other failure has ended the run.
        """
        from ._events import Error  # not at import: see _events

        message = f"{type(error).__name__}: {error}"
        log.info("mars call failed; the run goes on without it", phase=phase, error=message, **fields)
        self.emit(Error(phase=phase, message=message))

    def outcome(
        self,
        solution: MarsSolution,
        method: SelectionMethod,
        *,
        iterations: int,
        budget_exhausted: bool = False,
        workspace: Workspace | None = None,
    ) -> Outcome:
        """The run's result with ``solution`` as the final answer; ``reasoning`` says how it was chosen.

        ``workspace``: the state to account for, the run's own by default.
        """
        workspace = self.workspace if workspace is None else workspace
        return Outcome(
            answer=solution.visible,
            reasoning=account(workspace, solution, method, offered_tools=self.offers_tools),
            thinking=solution.thinking,
            tool_calls=solution.tool_calls,
            finish_reason="length" if solution.truncated else "stop",
            iterations=iterations,
            extras=self.extras(solution, method, workspace),
            budget_exhausted=budget_exhausted,
        )

    def extras(self, solution: MarsSolution, method: SelectionMethod, workspace: Workspace) -> dict[str, Any]:
        return {
            "selection_method": method.value,
            "final_solution_id": solution.id,
            "final_answer": solution.answer,
            "lightweight": self.lightweight,
            "verified_solution_ids": [s.id for s in workspace.verified()],
            "active_solution_ids": [s.id for s in workspace.active()],
            "solutions": [s.model_dump(mode="json") for s in workspace.all()],
            "strategies": [s.model_dump(mode="json") for s in workspace.strategies],
        }

    def record_best(self) -> None:
        """Hand core the answer this run would give now, returned if a budget cuts the run short.

        Written out (the whole workspace, in the extras) only if it is ever asked for: runs that end
        normally, nearly all of them, never read it.
        """
        workspace, iterations = self.workspace.snapshot(), max(self.round, 1)

        def best_so_far() -> Outcome | None:
            choice = workspace.choice_without_call()
            if choice is None:
                return None
            solution, method = choice
            return self.outcome(solution, method, iterations=iterations, budget_exhausted=True, workspace=workspace)

        self.ctx.defer_best(best_so_far)


def _empty_reply(completion: Completion) -> str:
    if not completion.reasoning.strip():
        return "the model returned an empty reply"
    if completion.truncated():
        return "the model spent its whole output limit thinking and wrote no answer; raise max_tokens"
    return "the model's reply held only thinking and no answer"
