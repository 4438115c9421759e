"""MCTS refuses the caller's tools: its answer is a reply the search rated by rolling the dialogue on.

A reply that calls a tool cannot be rolled out honestly (the rollout would have to invent the
tool's result), so the run is refused before any call rather than answered with the tool calls lost.
"""

from __future__ import annotations

import pytest

from optillm_core import InvalidConfiguration
from optillm_core.testing import ScriptedClient
from optillm_mcts import MctsOptimizer

from ..tools_support import WITH_TOOLS

pytestmark = pytest.mark.anyio


async def test_tools_are_refused_before_any_call_naming_the_strategy() -> None:
    client = ScriptedClient([])
    with pytest.raises(InvalidConfiguration, match="the mcts strategy cannot pass tools"):
        await MctsOptimizer().optimize("What is 12 + 7?", client, settings=WITH_TOOLS)
    assert client.requests == []
    assert MctsOptimizer.answers_with_tools is False
    assert "tools" not in MctsOptimizer.caller_settings_for("final")
