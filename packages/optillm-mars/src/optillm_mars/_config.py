"""MARS settings: the seed's fields and defaults, builders, and the automatic lightweight mode."""

from __future__ import annotations as _annotations

from typing import Annotated, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from optillm_core import OptimizerConfig

__all__ = ("MarsConfig",)

Temperature = Annotated[float, Field(ge=0.0, le=2.0)]

# Temperature given to agents that with_num_agents adds beyond the configured list (as the seed does).
PAD_TEMPERATURE = 1.0


class MarsConfig(OptimizerConfig):
    """Settings of one MARS run (frozen; the ``with_*`` builders return validated copies).

    ``enable_aggregation`` and ``enable_strategy_network`` default to on, as in upstream optillm,
    whose published MARS results were measured with both on; the seed's off default only hid
    that its phases were placeholders. Lightweight mode (automatic when the caller's
    ``max_tokens`` is at most ``token_budget_lightweight``) turns both off.

    No output limit is MARS's own by default: a thinking model spends its limit on thinking too,
    so any fixed figure cuts some models off before they answer, and a figure above a model's cap
    is refused (upstream's 64,000 was both). The caller's ``max_tokens`` caps every call; the
    ``token_budget_*`` fields set a phase's own limit, clipped to the model's cap; a provider that
    requires a limit gets the model profile's default.
    """

    # The widest phase at defaults verifies 9 solutions twice: 18 calls. 24 lets a round go out at once.
    max_concurrency: int = Field(default=24, ge=1, description="model calls one run may have in flight")
    num_agents: int = Field(default=3, ge=1, le=64, description="agents exploring the problem independently")
    temperatures: tuple[Temperature, ...] = Field(
        default=(0.3, 0.6, 1.0), description="sampling temperature of each agent, in agent order"
    )
    consensus_threshold: int = Field(default=2, ge=1, description="verified solutions that end the improvement loop")
    enable_aggregation: bool = Field(default=True, description="run the RSA-style aggregation loops")
    enable_strategy_network: bool = Field(default=True, description="share extracted strategies between agents")
    max_iterations: int = Field(default=5, ge=0, le=50, description="improve-and-reverify rounds at most")
    verification_passes_required: int = Field(
        default=2, ge=1, le=8, description="consecutive passing verdicts that make a solution verified"
    )
    use_thinking_tags: bool = Field(
        default=True, description="ask solvers on models that do not think on their own to reason inside <think> tags"
    )
    token_budget_reasoning: int | None = Field(
        default=None,
        ge=1,
        description="output limit of the calls that write a solution (the caller's max_tokens caps it); "
        "None: none of MARS's own",
    )
    token_budget_review: int | None = Field(
        default=None,
        ge=1,
        description="output limit of verification and strategy-extraction calls (the caller's max_tokens "
        "caps it); None: none of MARS's own",
    )
    token_budget_lightweight: int = Field(
        default=4_000, ge=1, description="caller max_tokens at or below which lightweight mode applies"
    )
    auto_lightweight_mode: bool = Field(default=True, description="switch to lightweight mode for small max_tokens")
    aggregation_population_size: int = Field(default=6, ge=2, description="RSA population size N")
    aggregation_selection_size: int = Field(default=3, ge=2, description="RSA solutions combined per call K")
    aggregation_loops: int = Field(default=3, ge=1, le=20, description="RSA loops T")
    aggregation_groups_per_loop: int = Field(default=2, ge=1, le=16, description="combining calls per loop")
    verification_temperature: Temperature = Field(default=0.1, description="temperature of verifier calls")
    aggregation_temperature: Temperature = Field(default=0.7, description="temperature of aggregation calls")
    strategy_temperature: Temperature = Field(default=0.3, description="temperature of strategy extraction calls")
    improvement_temperature_factor: float = Field(
        default=0.8, gt=0.0, le=1.0, description="an improvement samples at the author's temperature times this"
    )
    synthesis_temperature: Temperature = Field(default=0.3, description="temperature of the synthesis call")
    synthesis_top_k: int = Field(default=3, ge=1, le=16, description="solutions shown to the synthesis call")
    timeout_seconds: float = Field(default=300.0, gt=0.0, description="wall-clock limit of the whole run")
    debug: bool = Field(default=False, description="log every phase result at info level instead of debug")

    @model_validator(mode="after")
    def _one_temperature_per_agent(self) -> Self:
        missing = self.num_agents - len(self.temperatures)
        if missing <= 0:
            return self
        if "temperatures" in self.model_fields_set:
            raise ValueError(
                f"temperatures: {len(self.temperatures)} temperature(s) for {self.num_agents} agents: give at "
                "least one per agent (MarsConfig.with_num_agents pads the list with 1.0)"
            )
        # The default list grows with the agents without counting as set, so it pins nothing.
        object.__setattr__(self, "temperatures", (*self.temperatures, *([PAD_TEMPERATURE] * missing)))
        return self

    @field_validator("aggregation_selection_size")
    @classmethod
    def _selection_fits_population(cls, value: int, info: ValidationInfo) -> int:
        population = info.data.get("aggregation_population_size")
        if isinstance(population, int) and value > population:
            raise ValueError(
                f"selection size {value} exceeds aggregation_population_size {population}: "
                "an aggregation call cannot combine more solutions than the population holds"
            )
        return value

    # -- builders ---------------------------------------------------------------------------------

    @classmethod
    def lightweight(cls) -> Self:
        """The default config in lightweight form (2 agents, 2 iterations, 1 pass, no aggregation or network)."""
        return cls().to_lightweight()

    def to_lightweight(self) -> Self:
        """This config reduced the way upstream reduces it for small ``max_tokens``."""
        return self.with_overrides(
            {
                "num_agents": min(self.num_agents, 2),
                "max_iterations": min(self.max_iterations, 2),
                "verification_passes_required": 1,
                "enable_aggregation": False,
                "enable_strategy_network": False,
            }
        )

    def with_num_agents(self, num_agents: int) -> Self:
        """Change the agent count; missing temperatures are padded with 1.0.

        Temperatures left at their default stay unset (so the caller's temperature still reaches
        the explorers); a list that was set explicitly is padded and stays set.
        """
        if "temperatures" not in self.model_fields_set:
            return self.with_overrides({"num_agents": num_agents})
        padding = max(0, num_agents - len(self.temperatures))
        return self.with_overrides(
            {"num_agents": num_agents, "temperatures": (*self.temperatures, *([PAD_TEMPERATURE] * padding))}
        )

    def with_temperatures(self, temperatures: tuple[float, ...] | list[float]) -> Self:
        return self.with_overrides({"temperatures": tuple(temperatures)})

    def with_aggregation(self, enabled: bool = True) -> Self:
        return self.with_overrides({"enable_aggregation": enabled})

    def with_strategy_network(self, enabled: bool = True) -> Self:
        return self.with_overrides({"enable_strategy_network": enabled})

    def with_advanced_features(self) -> Self:
        """Aggregation and the strategy network both on."""
        return self.with_overrides({"enable_aggregation": True, "enable_strategy_network": True})

    def with_max_iterations(self, max_iterations: int) -> Self:
        return self.with_overrides({"max_iterations": max_iterations})

    def with_debug(self, debug: bool = True) -> Self:
        return self.with_overrides({"debug": debug})

    # -- run-time resolution ----------------------------------------------------------------------

    def is_lightweight_for(self, max_tokens: int | None) -> bool:
        """Whether a caller's ``max_tokens`` switches this config to lightweight mode."""
        return self.auto_lightweight_mode and max_tokens is not None and max_tokens <= self.token_budget_lightweight

    def resolve(self, max_tokens: int | None) -> Self:
        """The config a run uses for the caller's ``max_tokens``: this one, or its lightweight form."""
        return self.to_lightweight() if self.is_lightweight_for(max_tokens) else self
