from __future__ import annotations

import pytest
from pydantic import ValidationError

from optillm_core import GenerationSettings, Message, Prompt


def test_system_override_replaces_every_system_message() -> None:
    prompt = Prompt(
        messages=(Message.system("old"), Message.user("hi"), Message.system("older")),
        system="new",
    )
    assert prompt.effective_messages() == (Message.system("new"), Message.user("hi"))
    assert prompt.system_text() == "new"


def test_without_override_messages_are_unchanged() -> None:
    prompt = Prompt(messages=(Message.system("a"), Message.user("q")))
    assert prompt.effective_messages() == prompt.messages
    assert Prompt.from_query("q").system_text() is None


def test_settings_merge_keeps_only_explicit_overrides() -> None:
    base = GenerationSettings(temperature=0.2, max_tokens=100, seed=7)
    merged = base.merged(GenerationSettings(temperature=0.9))
    assert (merged.temperature, merged.max_tokens, merged.seed) == (0.9, 100, 7)


def test_stop_accepts_a_single_string() -> None:
    assert GenerationSettings(stop="END").stop == ("END",)


@pytest.mark.parametrize(
    "bad",
    [{"temperature": -0.1}, {"max_tokens": 0}, {"n": 0}, {"top_p": 1.5}],
)
def test_invalid_settings_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        GenerationSettings(**bad)


def test_with_validates_changes() -> None:
    with pytest.raises(ValidationError):
        GenerationSettings().with_(n=-1)
