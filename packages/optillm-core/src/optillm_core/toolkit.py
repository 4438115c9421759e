"""The strategy toolkit: the shared pieces every strategy builds with, one of each.

- Sampling: :func:`sample` asks for ``k`` diverse replies (per-sample temperatures, native ``n``
  chunks, varied prompts where temperature cannot set replies apart, refills, truncation);
  :func:`sample_requests` counts its requests for ``planned_calls``.
- Approaches: :data:`APPROACHES` and the one way to vary a prompt with them
  (:func:`varied_query`, :func:`varied_prompt`).
- Absorbing failures: :func:`settle` runs calls concurrently and keeps going past the failures a
  phase may absorb (:func:`absorbable`: retryable provider errors, unreadable replies); every
  other error ends the run.
- Rating: :func:`rating_prompt` and :func:`parse_rating` (the one reader of a judge's number),
  :class:`Scorer` with :class:`LlmJudgeScorer` and :class:`FunctionScorer`.
- Voting: :func:`reply_key` (:func:`answer_key` for text, :func:`tool_calls_key` with
  :func:`canonical_arguments` for tool calls), :func:`plurality_vote` with its :func:`tie_order`,
  and :func:`render_reply` for showing a reply that calls tools to a judge.
- Answers and thinking: :func:`extract_answer`, :func:`extract_boxed`, :func:`normalize_answer`,
  :func:`answers_equal`, :func:`require_answer`, :func:`apply_stop` (the caller's ``stop`` on a chosen
  answer), :func:`split_thinking` and the streaming splitters.
- Concurrency: :func:`gather` and :func:`task_group`.
"""

from __future__ import annotations as _annotations

from ._absorb import absorbable, settle
from ._approaches import APPROACHES, approach, varied_prompt, varied_query
from ._concurrency import gather, task_group
from ._extract import (
    answers_equal,
    apply_stop,
    extract_answer,
    extract_boxed,
    normalize_answer,
    require_answer,
    split_thinking,
)
from ._sampling import Sample, Samples, sample, sample_requests
from ._scoring import FunctionScorer, LlmJudgeScorer, Rating, ScoreFunction, Scorer, parse_rating, rating_prompt
from ._thinking import ThinkingSplitter, separate_thinking, split_thinking_stream
from ._voting import (
    MAX_PHRASE_WORDS,
    Vote,
    answer_key,
    canonical_arguments,
    plurality_vote,
    render_reply,
    reply_key,
    tie_order,
    tool_calls_key,
)

__all__ = (
    "APPROACHES",
    "MAX_PHRASE_WORDS",
    "FunctionScorer",
    "LlmJudgeScorer",
    "Rating",
    "Sample",
    "Samples",
    "ScoreFunction",
    "Scorer",
    "ThinkingSplitter",
    "Vote",
    "absorbable",
    "answer_key",
    "answers_equal",
    "apply_stop",
    "approach",
    "canonical_arguments",
    "extract_answer",
    "extract_boxed",
    "gather",
    "normalize_answer",
    "parse_rating",
    "plurality_vote",
    "rating_prompt",
    "render_reply",
    "reply_key",
    "require_answer",
    "sample",
    "sample_requests",
    "separate_thinking",
    "settle",
    "split_thinking",
    "split_thinking_stream",
    "task_group",
    "tie_order",
    "tool_calls_key",
    "varied_prompt",
    "varied_query",
)
