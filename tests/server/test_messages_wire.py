"""Invariants of the Messages wire format: conversations as core messages, and the event stream's block structure."""

from __future__ import annotations

import json
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message as AsgiMessage

from optillm_core import TokenUsage
from optillm_server._anthropic_wire import MessageEvents, MessagesRequest
from optillm_server._streaming import Exchange

from .messages_support import sse_events

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
ids = st.from_regex(r"toolu_[a-z0-9]{1,8}", fullmatch=True)


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


assistant_blocks = st.lists(
    st.one_of(
        texts.map(text_block),
        st.builds(
            lambda i, name, value: {"type": "tool_use", "id": i, "name": name, "input": value},
            ids,
            st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
            st.dictionaries(texts, json_values, max_size=3),
        ),
        st.just({"type": "thinking", "thinking": "hmm", "signature": "s"}),
    ),
    min_size=1,
    max_size=5,
)
user_blocks = st.lists(
    st.one_of(
        texts.map(text_block),
        st.builds(
            lambda i, content, error: {"type": "tool_result", "tool_use_id": i, "content": content, "is_error": error},
            ids,
            texts | st.lists(texts.map(text_block), max_size=2),
            st.booleans(),
        ),
    ),
    min_size=1,
    max_size=5,
)
turns = st.lists(
    st.one_of(
        st.builds(lambda b: {"role": "user", "content": b}, user_blocks | texts),
        st.builds(lambda b: {"role": "assistant", "content": b}, assistant_blocks | texts),
    ),
    min_size=1,
    max_size=6,
)


@given(messages=turns, system=st.none() | texts | st.lists(texts.map(text_block), max_size=3))
def test_a_conversation_keeps_every_text_tool_call_and_tool_result_in_order(
    messages: list[dict[str, Any]], system: Any
) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": messages, "system": system}
    request = MessagesRequest.parse(json.dumps(body).encode())
    converted = request.conversation()
    system_texts = request.system_texts()
    if system_texts:
        assert converted[0].role == "system"
        assert converted[0].content == "\n\n".join(system_texts)
        converted = converted[1:]
    calls = [call for m in converted for call in m.tool_calls]
    sent_calls = [
        b for m in messages if m["role"] == "assistant" and isinstance(m["content"], list) for b in m["content"]
    ]
    sent_calls = [b for b in sent_calls if b["type"] == "tool_use"]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        (b["id"], b["name"], b["input"]) for b in sent_calls
    ]
    results = [(m.tool_call_id, m.content) for m in converted if m.role == "tool"]
    sent_results = [b for m in messages if m["role"] == "user" and isinstance(m["content"], list) for b in m["content"]]
    expected_results = []
    for block in sent_results:
        if block["type"] != "tool_result":
            continue
        content = block["content"]
        text = content if isinstance(content, str) else "".join(part["text"] for part in content)
        expected_results.append((block["tool_use_id"], f"Error: {text}" if block["is_error"] else text))
    assert results == expected_results
    # the text of every turn survives, turn by turn
    assert "".join(m.content for m in converted if m.role != "tool") == "".join(
        _turn_text(m["content"]) for m in messages
    )


def _turn_text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(b["text"] for b in content if b["type"] == "text")


pieces = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts),
        st.tuples(st.just("thinking"), texts),
        st.tuples(st.just("tool"), st.lists(texts, min_size=1, max_size=3)),
    ),
    max_size=8,
)


@settings(deadline=None)
@given(sequence=pieces)
def test_the_event_stream_opens_and_closes_one_block_at_a_time_and_carries_every_piece(
    sequence: list[tuple[str, Any]],
) -> None:
    sent: list[AsgiMessage] = []

    async def send(message: AsgiMessage) -> None:
        sent.append(message)

    async def write() -> None:
        events = MessageEvents(Exchange(send), msg_id="msg_x", model="m")
        await events.start()
        for position, (kind, value) in enumerate(sequence):
            if kind == "text":
                await events.text(value)
            elif kind == "thinking":
                await events.thinking(value)
            else:
                await events.tool_piece(position, call_id=f"toolu_{position}", name="f", arguments=value[0])
                for piece in value[1:]:
                    await events.tool_piece(position, call_id=None, name=None, arguments=piece)
        await events.finish("end_turn", TokenUsage(input_tokens=2, output_tokens=3))

    anyio.run(write)
    stream = b"".join(m.get("body", b"") for m in sent).decode()
    events = [(name, json.loads(data)) for name, data in sse_events(stream)]
    names = [name for name, _ in events]
    assert names[:1] == ["message_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["usage"] == {"input_tokens": 2, "output_tokens": 3}
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    for name, payload in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None  # one block at a time
            assert payload["index"] == len(blocks)  # indices count up from 0
            blocks.append({"type": payload["content_block"]["type"], "text": ""})
            open_index = payload["index"]
        elif name == "content_block_delta":
            assert payload["index"] == open_index
            delta = payload["delta"]
            kind = blocks[-1]["type"]
            field = {"text": "text", "thinking": "thinking", "tool_use": "partial_json"}[kind]
            assert (
                delta["type"]
                == {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}[kind]
            )
            blocks[-1]["text"] += delta[field]
        else:
            assert name == "content_block_stop"
            assert payload["index"] == open_index
            open_index = None
    assert open_index is None
    expected: list[dict[str, Any]] = []
    for kind, value in sequence:
        block_kind = {"text": "text", "thinking": "thinking", "tool": "tool_use"}[kind]
        text = "".join(value) if kind == "tool" else value
        if kind != "tool" and expected and expected[-1]["type"] == block_kind:
            expected[-1]["text"] += text  # consecutive pieces of one kind share a block
        else:
            expected.append({"type": block_kind, "text": text})
    assert blocks == (expected or [{"type": "text", "text": ""}])
