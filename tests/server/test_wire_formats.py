"""The wire-format seam: chat completions, Anthropic Messages and Responses refuse the same bad requests and relay the
same events of a strategy run, each in its own shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from optillm_core.testing import FunctionClient
from optillm_server import create_app

from .support import replying, serving, test_registry

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@dataclass(frozen=True)
class Format:
    name: str
    path: str
    body: Callable[[str, str], dict[str, Any]]
    tool: dict[str, Any]

    def request(self, model: str, text: str = "Q", **extra: Any) -> dict[str, Any]:
        return {**self.body(model, text), **extra}


FORMATS = [
    Format(
        "chat",
        "/v1/chat/completions",
        lambda model, text: {"model": model, "messages": [{"role": "user", "content": text}]},
        {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
    ),
    Format(
        "messages",
        "/v1/messages",
        lambda model, text: {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]},
        {"name": "get_weather", "input_schema": SCHEMA},
    ),
    Format(
        "responses",
        "/v1/responses",
        lambda model, text: {"model": model, "input": text},
        {"type": "function", "name": "get_weather", "parameters": SCHEMA},
    ),
]
BY_NAME = pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])


@asynccontextmanager
async def http_proxy() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(client=FunctionClient(replying), model="m", registry=test_registry())
    async with serving(app) as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as http:
        yield http


REFUSALS: list[Any] = [
    pytest.param({"model": "m", "optillm_approach": "nope"}, "unknown strategy 'nope'", id="unknown-strategy"),
    pytest.param({"model": "echo-m", "optillm_approach": "shout"}, "the strategy is chosen twice", id="chosen-twice"),
    pytest.param({"model": "shout-m", "tools": True}, "cannot answer with tool calls", id="tools-to-shout"),
    pytest.param(
        {"model": "echo-m", "optillm_config": {"max_concurrency": 500}}, "max_concurrency", id="config-ceiling"
    ),
    pytest.param({"model": "echo-other"}, "is not served by this proxy", id="model-not-served"),
    pytest.param({"model": "echo-m", "optillm_config": {"drafts": 99}}, "drafts", id="invalid-config"),
]


@BY_NAME
@pytest.mark.parametrize(("fields", "says"), REFUSALS)
async def test_every_format_refuses_the_same_bad_requests_before_any_call(
    fmt: Format, fields: dict[str, Any], says: str
) -> None:
    body = fmt.request(fields["model"])
    body.update({k: v for k, v in fields.items() if k not in ("model", "tools")})
    if fields.get("tools"):
        body["tools"] = [fmt.tool]
    async with http_proxy() as http:
        plain = await http.post(fmt.path, json=body)
        streamed = await http.post(fmt.path, json={**body, "stream": True})
    for response in (plain, streamed):
        assert 400 <= response.status_code < 500, response.text
        assert says in response.json()["error"]["message"]
        if fmt.name == "messages":
            assert response.json()["type"] == "error"  # Anthropic's shape
        else:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}  # OpenAI's


@BY_NAME
async def test_every_format_refuses_a_body_that_is_not_json(fmt: Format) -> None:
    async with http_proxy() as http:
        response = await http.post(fmt.path, content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def frames(text: str) -> list[tuple[str | None, str | None, str | None]]:
    """Each SSE frame as (event name, data, comment)."""
    shown = []
    for frame in text.split("\n\n"):
        name = data = comment = None
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line.startswith(":"):
                comment = line[1:].strip()
        if name or data or comment:
            shown.append((name, data, comment))
    return shown


def relayed(fmt: Format, text: str) -> tuple[list[str], str, str | None]:
    """A stream's progress notes, its answer text and its closing error message (if any), read in ``fmt``'s terms."""
    notes: list[str] = []
    answer = ""
    error: str | None = None
    for _, data, comment in frames(text):
        if comment is not None:
            if comment != "keep-alive":
                notes.append(comment.removesuffix(" [choice 0]"))
            continue
        if data is None or data == "[DONE]":
            continue
        payload = json.loads(data)
        if fmt.name == "chat":
            if "error" in payload:
                error = payload["error"]["message"]
            for choice in payload.get("choices", ()):
                answer += choice["delta"].get("content") or ""
        elif fmt.name == "messages":
            if payload["type"] == "error":
                error = payload["error"]["message"]
            elif payload["type"] == "content_block_delta" and payload["delta"]["type"] == "text_delta":
                answer += payload["delta"]["text"]
        else:
            kind = payload["type"]
            if kind == "response.in_progress" and "optillm" in payload:
                notes.append(payload["optillm"]["progress"])
            elif kind == "response.output_text.delta":
                answer += payload["delta"]
            elif kind == "response.failed":
                error = payload["response"]["error"]["message"]
    return notes, answer, error


@BY_NAME
async def test_every_format_relays_a_strategy_runs_progress_and_answer(fmt: Format) -> None:
    async with http_proxy() as http:
        response = await http.post(fmt.path, json={**fmt.request("echo-m"), "stream": True})
    assert response.status_code == 200
    notes, answer, error = relayed(fmt, response.text)
    assert notes == ["echo started", "phase draft (echo)", "phase final (echo)"]
    assert answer == "reply to final: reply to draft: Q"
    assert error is None


@BY_NAME
async def test_every_format_ends_a_failed_run_with_its_own_error_event_and_no_secret(fmt: Format) -> None:
    async with http_proxy() as http:
        response = await http.post(fmt.path, json={**fmt.request("broken-m"), "stream": True})
    assert response.status_code == 200
    notes, answer, error = relayed(fmt, response.text)
    assert notes == ["broken started"]
    assert answer == ""
    assert error == "internal server error"
    assert "sk-" not in response.text
