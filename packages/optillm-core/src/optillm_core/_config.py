"""Strategy configs, and the roles of a strategy's calls that decide which caller settings reach them."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import InvalidConfiguration

__all__ = ("CALLER_SETTINGS_BY_ROLE", "FINAL_ONLY_EXTRA", "CallRole", "OptimizerConfig", "UnsupportedPolicy")

CallRole = Literal["answer", "returned", "judge", "final"]
"""What a call produces, which decides the caller's settings it gets (see :meth:`RunContext.call_settings`).

``answer``: a candidate answer (explorers, rollouts, drafts, candidates to combine); ``returned``:
an answer the strategy may return as it is (samples a vote or a judge picks from), so shaped like
the answer the caller asked for; ``judge``: a rating, a verdict, a critique or a comparison;
``final``: the text returned to the caller as the answer.
"""

UnsupportedPolicy = Literal["drop", "error"]
"""What a run does with a caller setting the model refuses: leave it out (noted in the metadata) or refuse the run."""

FINAL_ONLY_EXTRA = frozenset({"response_format"})
"""Provider fields of the caller that shape the returned answer, so reach only ``final`` and ``returned`` calls."""

CALLER_SETTINGS_BY_ROLE: Mapping[CallRole, tuple[str, ...]] = {
    "answer": ("max_tokens", "temperature", "top_p", "seed"),
    "returned": ("max_tokens", "temperature", "top_p", "seed", "response_format", "tools", "tool_choice"),
    "judge": ("max_tokens",),
    "final": ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format", "tools", "tool_choice"),
}
"""Which of the caller's settings reach a call of each role (:meth:`RunContext.call_settings`)."""


def describe_validation_error(owner: str, exc: ValidationError, fields: list[str]) -> str:
    """One readable line per problem, naming the field and what it expects."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(config)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field '{field}' (valid fields: {', '.join(fields)})")
        else:
            problems.append(f"{field}: {error['msg']} (got {error.get('input')!r})")
    return f"invalid {owner}: " + "; ".join(problems)


class OptimizerConfig(BaseModel):
    """Base of every strategy's settings: frozen, unknown fields refused.

    Validation errors come out as :class:`InvalidConfiguration` naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, defer_build=True)

    max_concurrency: int = Field(default=16, ge=1, description="model calls one run may have in flight")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidConfiguration(
                describe_validation_error(type(self).__name__, exc, list(type(self).model_fields))
            ) from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from plain values (strings are converted where the field's type allows)."""
        return cls(**dict(data))

    def with_overrides(self, overrides: Mapping[str, Any]) -> Self:
        """A validated copy with some fields changed (the fields set before stay the ones set)."""
        return type(self)(**{**self.model_dump(exclude_unset=True), **overrides})

    def pinned(self, **settings: str) -> frozenset[str]:
        """The generation settings whose config field the user set, so that the caller's value does not replace it.

        ``config.pinned(temperature="generation_temperature")`` is ``{"temperature"}`` when the
        config was given ``generation_temperature`` explicitly, and empty when it holds the default.
        """
        chosen = self.model_fields_set
        return frozenset(setting for setting, field in settings.items() if field in chosen)
