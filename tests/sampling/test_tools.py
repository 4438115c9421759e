"""The sampling strategies refuse the caller's tools: their answer is one of several samples, chosen after.

Samples are answer calls, which never get the caller's tools, so none of these strategies could
return a tool call: a request with tools is refused before any call, naming the strategy.
"""

from __future__ import annotations

import pytest

from optillm_core import InvalidConfiguration, Optimizer
from optillm_core.testing import ScriptedClient
from optillm_sampling import (
    BestOfNOptimizer,
    GenSelectOptimizer,
    MajorityVotingOptimizer,
    SelfConsistencyOptimizer,
)

from ..tools_support import WITH_TOOLS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "strategy", [BestOfNOptimizer, GenSelectOptimizer, MajorityVotingOptimizer, SelfConsistencyOptimizer]
)
async def test_tools_are_refused_before_any_call_naming_the_strategy(strategy: type[Optimizer]) -> None:  # type: ignore[type-arg]
    client = ScriptedClient([])
    with pytest.raises(InvalidConfiguration, match=f"the {strategy.name} strategy cannot pass tools"):
        await strategy().optimize("What is 12 + 7?", client, settings=WITH_TOOLS)
    assert client.requests == []
    assert strategy.answers_with_tools is False
