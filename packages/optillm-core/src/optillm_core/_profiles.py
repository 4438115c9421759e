"""What one model accepts and how it returns thinking: the data a strategy and a provider adapt to.

A :class:`ModelProfile` is plain data. Providers (the router) pick one per model by provider and
model-name pattern; a :class:`~optillm_core.ModelClient` exposes it as ``client.profile``;
strategies read it through ``RunContext.profile`` and fit every call to it with
:meth:`ModelProfile.fit`, so that no request carries a setting the model refuses.
"""

from __future__ import annotations as _annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._messages import GenerationSettings

__all__ = ("FittedSettings", "MaxTokensField", "ModelProfile", "ThinkingStyle")

ThinkingStyle = Literal["none", "tags", "reasoning_content", "anthropic_blocks", "gemini_thoughts", "hidden"]
"""How a model returns its thinking.

``tags``: ``<think>…</think>`` in the content (DeepSeek-R1 distills, QwQ, Qwen3); ``reasoning_content``:
a separate message field (DeepSeek's API, vLLM/SGLang reasoning parsers); ``anthropic_blocks`` and
``gemini_thoughts``: the providers' thinking blocks and thought parts; ``hidden``: the provider keeps
it (OpenAI reasoning models); ``none``: the model does not think aloud.
"""

MaxTokensField = Literal["max_tokens", "max_completion_tokens", "maxOutputTokens", "num_predict"]
"""The request field that carries the output limit on the model's wire format."""


class ModelProfile(BaseModel):
    """The settings one model accepts and the limits it enforces.

    The defaults describe a permissive OpenAI-compatible chat model: an unknown model gets them,
    adjusted by its provider's defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(default="default", description="which profile this is, for logs and errors")
    temperature: bool = Field(default=True, description="accepts a temperature other than its default")
    temperature_max: float | None = Field(default=2.0, gt=0, description="highest temperature accepted")
    temperature_min: float | None = Field(
        default=None, ge=0, description="lowest temperature sent: a lower one is raised to it (Groq: 1e-8 for 0)"
    )
    top_p: bool = Field(default=True, description="accepts top_p")
    sampling_exclusive: bool = Field(
        default=False, description="refuses temperature and top_p in one request (Claude 4.x): temperature is kept"
    )
    max_tokens_field: MaxTokensField = "max_tokens"
    max_output_tokens: int | None = Field(default=None, ge=1, description="the output cap per call (None: unknown)")
    requires_max_tokens: bool = Field(default=False, description="every request must carry an output limit")
    default_max_tokens: int | None = Field(
        default=None, ge=1, description="the limit sent when one is required and none was given"
    )
    native_n: bool = Field(default=False, description="one request with n > 1 returns n choices")
    max_n: int | None = Field(default=None, ge=1, description="the largest native n accepted")
    seed: bool = Field(default=True, description="accepts a sampling seed")
    logprobs: bool = Field(default=True, description="accepts logprobs")
    system_messages: bool = Field(default=True, description="accepts system messages")
    max_stop: int | None = Field(default=None, ge=0, description="most stop sequences accepted (None: no limit)")
    tools: bool = Field(default=True, description="accepts tool definitions and returns tool calls")
    thinking: ThinkingStyle = "none"

    @property
    def varies_by_temperature(self) -> bool:
        """Whether sampling the same prompt twice can be made to differ through temperature."""
        return self.temperature

    def output_limit(self, requested: int | None) -> int | None:
        """The output limit to send: ``requested`` clipped to the cap, the default where one is required."""
        cap = self.max_output_tokens
        if requested is None:
            if not self.requires_max_tokens:
                return None
            requested = self.default_max_tokens or cap
            if requested is None:
                return None
        return min(requested, cap) if cap is not None else requested

    def unsupported(self, settings: GenerationSettings) -> tuple[str, ...]:
        """The names of the settings in ``settings`` this model refuses (an output limit is clipped, never refused)."""
        refused: list[str] = []
        if settings.temperature is not None and not self.accepts_temperature(settings.temperature):
            refused.append("temperature")
        if settings.top_p is not None and (
            not self.top_p or (self.sampling_exclusive and self.temperature and settings.temperature is not None)
        ):
            refused.append("top_p")
        if settings.seed is not None and not self.seed:
            refused.append("seed")
        if settings.stop and self.max_stop is not None and len(settings.stop) > self.max_stop:
            refused.append("stop")
        if settings.extra.get("logprobs") and not self.logprobs:
            refused.append("logprobs")
        if settings.tools and not self.tools:
            refused.append("tools")
        return tuple(refused)

    def accepts_temperature(self, temperature: float) -> bool:
        if not self.temperature:
            return False
        return self.temperature_max is None or temperature <= self.temperature_max

    def fit(self, settings: GenerationSettings) -> FittedSettings:
        """``settings`` with what this model refuses left out and the output limit fitted to its cap.

        A temperature above the model's range is lowered to its top rather than dropped, and one
        below ``temperature_min`` is raised to it (not listed: the provider does the same itself);
        stop sequences beyond the model's limit keep the first ones. ``dropped`` names what changed.
        """
        fitted, dropped = self._fitted(settings)
        return FittedSettings(settings=fitted, dropped=dropped)

    def _fitted(self, settings: GenerationSettings) -> tuple[GenerationSettings, tuple[str, ...]]:
        """:meth:`fit`'s settings and the names of those that changed, without a :class:`FittedSettings`
        (a strategy fits every call: the model object costs more than the check)."""
        refused = self.unsupported(settings)
        limit = self.output_limit(settings.max_tokens)
        floor = self.temperature_min
        raise_temperature = (
            floor is not None
            and settings.temperature is not None
            and settings.temperature < floor
            and "temperature" not in refused
        )
        if not refused and limit == settings.max_tokens and not raise_temperature:
            return settings, ()
        changes: dict[str, object] = {"max_tokens": limit}
        if raise_temperature:  # the same sampling, written the way the provider wants it: not a change
            changes["temperature"] = floor
        for name in refused:
            changes[name] = _fitted_value(self, settings, name)
        if "logprobs" in refused:
            changes["extra"] = {k: v for k, v in settings.extra.items() if k not in ("logprobs", "top_logprobs")}
            del changes["logprobs"]
        if "tools" in refused:
            changes["tool_choice"] = None
        return settings.with_(**changes), refused

    def strictest(self, others: Iterable[ModelProfile]) -> ModelProfile:
        """A profile that every one of these models accepts a request under (for a router over several)."""
        merged = self
        for other in others:
            merged = _strictest_pair(merged, other)
        return merged


class FittedSettings(BaseModel):
    """Settings fitted to a profile, and the names of the settings that had to change."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    settings: GenerationSettings
    dropped: tuple[str, ...]


def _fitted_value(profile: ModelProfile, settings: GenerationSettings, name: str) -> object:
    if name == "temperature" and profile.temperature and profile.temperature_max is not None:
        return profile.temperature_max
    if name == "stop" and settings.stop and profile.max_stop:
        return settings.stop[: profile.max_stop]
    return None


def _min_optional(a: int | float | None, b: int | float | None) -> int | float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _max_optional(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _strictest_pair(a: ModelProfile, b: ModelProfile) -> ModelProfile:
    if a == b:
        return a
    temperature_max = _min_optional(a.temperature_max, b.temperature_max)
    temperature_min = _max_optional(a.temperature_min, b.temperature_min)
    cap = _min_optional(a.max_output_tokens, b.max_output_tokens)
    max_stop = _min_optional(a.max_stop, b.max_stop)
    return a.model_copy(
        update={
            "name": f"{a.name}+{b.name}",
            "temperature": a.temperature and b.temperature,
            "temperature_max": temperature_max,
            "temperature_min": temperature_min,
            "top_p": a.top_p and b.top_p,
            "sampling_exclusive": a.sampling_exclusive or b.sampling_exclusive,
            "max_output_tokens": None if cap is None else int(cap),
            "requires_max_tokens": a.requires_max_tokens or b.requires_max_tokens,
            "default_max_tokens": _min_optional(a.default_max_tokens, b.default_max_tokens),
            "native_n": a.native_n and b.native_n,
            "max_n": _min_optional(a.max_n, b.max_n),
            "seed": a.seed and b.seed,
            "logprobs": a.logprobs and b.logprobs,
            "system_messages": a.system_messages and b.system_messages,
            "max_stop": None if max_stop is None else int(max_stop),
            "tools": a.tools and b.tools,
            "thinking": a.thinking if a.thinking == b.thinking else "tags",
        }
    )
