"""An agent's turn through the sampling strategies: samples get the tools and real tool turns, judges get neither.

The conversation already holds a call to ``get_weather`` for Paris and its result. The model
behind every test trusts only real tool turns: a sample asked without the tool result as a
``tool`` message calls ``get_weather`` for Paris again, as the agents in the issue did. Samples
(which may be returned as they are) must get the tools and the turns as they are; ratings and
comparisons get no tools and the conversation flattened into their text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from optillm_core import (
    Conversation,
    GenerationSettings,
    Message,
    Optimizer,
    Prompt,
    Solution,
    ToolCall,
)
from optillm_core.testing import FunctionClient, RecordedRequest, Reply
from optillm_sampling import (
    BestOfNOptimizer,
    GenSelectOptimizer,
    MajorityVotingOptimizer,
    SelfConsistencyOptimizer,
)

from ..tools_support import CALL, WEATHER, WITH_TOOLS
from .support import SYSTEM, Model, candidates_in, response_in

pytestmark = pytest.mark.anyio

QUESTION = "What's the weather in Paris, and then in Rome for the next 2 days?"
CONVERSATION = Conversation(
    system=(SYSTEM,),
    turns=[
        Message.user(QUESTION),
        Message.assistant("", tool_calls=(CALL,)),
        Message.tool_result("18°C and sunny", tool_call_id=CALL.id),
    ],
)


def rome(number: int, arguments: str) -> Reply:
    return Reply("", tool_calls=(ToolCall(id=f"call_rome_{number}", name="get_weather", arguments=arguments),))


# The same call written four ways: key order, whitespace, 2 against 2.0.
ROME = [
    rome(0, '{"city": "Rome", "days": 2}'),
    rome(1, '{"days":2.0,"city":"Rome"}'),
    rome(2, '{ "city" : "Rome" ,\n  "days" : 2 }'),
    rome(3, '{"days": 2, "city": "Rome"}'),
]
BERLIN = rome(9, '{"city": "Berlin", "days": 2}')
TEXT = Reply("It is 18°C and sunny in Paris; I don't know about Rome.")
NO_ANSWER = Reply("Paris is sunny right now.\nI would have to look Rome up before I could say.")
ROME_KEY = 'tool call: get_weather({"city":"Rome","days":2})'


class Agent:
    """Samples from ``replies`` in order when the tool result is a real tool turn; else calls the tool again."""

    def __init__(self, replies: Iterable[Reply], **judging: Any) -> None:
        self.model = Model(replies, **judging)
        self.repeated = 0

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply | BaseException:
        if settings.tools and not any(m.role == "tool" for m in prompt.messages):
            self.repeated += 1
            return Reply("", tool_calls=(ToolCall(id="again", name="get_weather", arguments='{"city": "Paris"}'),))
        return self.model(prompt, settings)


def split(requests: list[RecordedRequest]) -> tuple[list[RecordedRequest], list[RecordedRequest]]:
    samples = [r for r in requests if r.settings.tools]
    return samples, [r for r in requests if not r.settings.tools]


def assert_real_turns(samples: list[RecordedRequest]) -> None:
    assert samples
    for request in samples:
        assert request.settings.tools == (WEATHER,)
        roles = [m.role for m in request.prompt.messages]
        assert roles == ["user", "assistant", "tool"]
        assert request.prompt.messages[1].tool_calls == (CALL,)
        assert request.prompt.messages[2].content == "18°C and sunny"
        assert request.prompt.messages[2].tool_call_id == CALL.id
        assert request.system_text == SYSTEM


def assert_flattened(judges: list[RecordedRequest]) -> None:
    assert judges
    for request in judges:
        assert request.settings.tools is None and request.settings.tool_choice is None
        assert [m.role for m in request.prompt.messages] == ["user"]
        assert QUESTION in request.user_text and "18°C and sunny" in request.user_text


def assert_calls(solution: Solution, reply: Reply, sample: int) -> None:
    """The solution is ``reply``, sample ``sample``, as the tool call it makes."""
    assert solution.tool_calls == reply.tool_calls
    assert solution.answer == ""
    assert solution.finish_reason == "tool_calls"
    assert solution.metadata.extras["chosen"] == sample


@pytest.mark.parametrize(
    "strategy", [BestOfNOptimizer, GenSelectOptimizer, MajorityVotingOptimizer, SelfConsistencyOptimizer]
)
def test_every_sampling_strategy_answers_with_tools(strategy: type[Optimizer[Any]]) -> None:
    assert strategy.answers_with_tools is True


@pytest.mark.parametrize("native_n", [True, False], ids=["native-n", "fan-out"])
async def test_majority_voting_returns_the_tool_call_most_samples_make_however_written(native_n: bool) -> None:
    agent = Agent([ROME[0], TEXT, ROME[1], BERLIN, ROME[2]])
    client = FunctionClient(agent, native_n=native_n)
    solution = await MajorityVotingOptimizer.from_options({"k": 5}).optimize(CONVERSATION, client, settings=WITH_TOOLS)

    assert agent.repeated == 0
    samples, judges = split(client.requests)
    assert_real_turns(samples)
    assert judges == []
    extras = solution.metadata.extras
    assert extras["winner"] == ROME_KEY
    assert extras["votes"][ROME_KEY] == 3
    assert "[calls the tool `get_weather` with arguments" in extras["samples"][0]
    assert_calls(solution, ROME[0], 0)


async def test_majority_voting_returns_text_when_most_samples_answer_in_text() -> None:
    answer = Reply("Rome will be 21°C. The answer is 21°C.")
    client = FunctionClient(Agent([answer, ROME[0], answer]), native_n=True)
    solution = await MajorityVotingOptimizer.from_options({"k": 3}).optimize(CONVERSATION, client, settings=WITH_TOOLS)
    assert solution.tool_calls == ()
    assert (solution.answer, solution.finish_reason) == (answer.text, "stop")


async def test_the_callers_stop_cuts_a_winning_tool_calls_text_and_keeps_its_calls() -> None:
    calls = [Reply("Checking Rome.\n\nOne moment.", tool_calls=r.tool_calls) for r in ROME[:3]]
    client = FunctionClient(Agent(calls), native_n=True)
    caller = WITH_TOOLS.model_copy(update={"stop": ("\n\n",)})
    solution = await MajorityVotingOptimizer.from_options({"k": 3}).optimize(CONVERSATION, client, settings=caller)
    assert solution.answer == "Checking Rome."
    assert solution.tool_calls == ROME[0].tool_calls
    assert all(r.settings.stop is None for r in client.requests)


async def test_self_consistency_clusters_tool_calls_by_their_canonical_arguments() -> None:
    client = FunctionClient(Agent([NO_ANSWER, BERLIN, ROME[1], ROME[2], ROME[3]]), native_n=True)
    solution = await SelfConsistencyOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS)

    samples, judges = split(client.requests)
    assert_real_turns(samples)
    assert judges == []
    extras = solution.metadata.extras
    assert extras["votes"][ROME_KEY] == 3
    assert extras["by_similarity"] == 1  # only the text reply is compared by its words
    assert_calls(solution, ROME[1], 2)


async def test_best_of_n_rates_tool_calls_against_text_and_may_return_one() -> None:
    def rate(response: str) -> str:
        return "Rating: 9/10" if "Rome" in response and "get_weather" in response else "Rating: 3/10"

    agent = Agent([TEXT, ROME[0], BERLIN], rate=rate)
    client = FunctionClient(agent, native_n=True)
    solution = await BestOfNOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS)

    assert agent.repeated == 0
    samples, ratings = split(client.requests)
    assert_real_turns(samples)
    assert_flattened(ratings)
    rated = sorted(response_in(r.user_text) for r in ratings)
    assert '[calls the tool `get_weather` with arguments {"city": "Rome", "days": 2}]' in rated
    assert TEXT.text in rated
    assert solution.metadata.extras["ratings"] == [pytest.approx(0.3), pytest.approx(0.9), pytest.approx(0.3)]
    assert_calls(solution, ROME[0], 1)


async def test_genselect_compares_tool_calls_with_text_and_may_choose_one() -> None:
    def compare(prompt: str) -> str:
        shown = candidates_in(prompt)
        return f"Best candidate: {next(i for i, c in enumerate(shown, 1) if 'Rome' in c and 'get_weather' in c)}"

    client = FunctionClient(Agent([TEXT, BERLIN, ROME[0], TEXT], compare=compare), native_n=True)
    solution = await GenSelectOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS)

    samples, comparisons = split(client.requests)
    assert_real_turns(samples)
    assert_flattened(comparisons)
    (comparison,) = comparisons
    assert "A candidate that calls a tool instead of answering" in comparison.user_text
    assert candidates_in(comparison.user_text)[1] == (
        '[calls the tool `get_weather` with arguments {"city": "Berlin", "days": 2}]'
    )
    assert solution.metadata.extras["source"] == "comparison"
    assert_calls(solution, ROME[0], 2)


async def test_planned_calls_count_the_tool_turns_run() -> None:
    client = FunctionClient(Agent([ROME[0], ROME[1], TEXT]))
    optimizer = BestOfNOptimizer()
    planned = optimizer.planned_calls(client, WITH_TOOLS)
    solution = await optimizer.optimize(CONVERSATION, client, settings=WITH_TOOLS)
    assert planned == solution.metadata.llm_calls == len(client.requests) == 6
