"""Google's Gemini API: ``generateContent`` and ``streamGenerateContent?alt=sse``."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from optillm_core import (
    BadRequestError,
    Completed,
    Completion,
    FinishReason,
    GenerationSettings,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
)

from .._failures import FewerChoices
from .._sse import iter_sse
from ._common import HttpModelClient, json_object, map_finish, wire_messages

__all__ = ("GeminiClient",)

API_VERSION = "v1beta"
TOP_LEVEL_EXTRA = frozenset({"safetySettings", "tools", "toolConfig", "cachedContent", "labels"})
"""``settings.extra`` keys sent beside ``generationConfig``; every other key goes inside it."""

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}


class GeminiClient(HttpModelClient):
    """``POST {base_url}/v1beta/models/{model}:generateContent``; ``n`` > 1 becomes ``candidateCount``.

    Parts marked ``thought: true`` (sent with ``thinkingConfig.includeThoughts``) are the thinking.
    """

    max_tokens_fields = frozenset({"maxOutputTokens"})

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def _path(self, method: str) -> str:
        model = self.model.removeprefix("models/")
        return f"/{API_VERSION}/models/{quote(model, safe='-._~')}:{method}"

    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        turns = wire_messages(prompt, profile)
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in turns
            if m.role != "system"
        ]
        body: dict[str, Any] = {"contents": contents}
        system = "\n\n".join(m.content for m in turns if m.role == "system")
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if settings.temperature is not None:
            config["temperature"] = settings.temperature
        if settings.top_p is not None:
            config["topP"] = settings.top_p
        if settings.max_tokens is not None:
            config["maxOutputTokens"] = settings.max_tokens
        if settings.stop:
            config["stopSequences"] = list(settings.stop)
        if settings.seed is not None:
            config["seed"] = settings.seed
        if settings.n > 1:
            config["candidateCount"] = settings.n
        for key, value in settings.extra.items():
            (body if key in TOP_LEVEL_EXTRA else config)[key] = value
        if config:
            body["generationConfig"] = config
        return body

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(self._path("generateContent"), prompt, settings)
        self._raise_embedded_error(payload)
        candidates = self._candidates(payload)
        texts = [""] * len(candidates)
        thinking = [""] * len(candidates)
        finish: list[FinishReason | None] = [None] * len(candidates)
        for position, candidate in enumerate(candidates):
            index = _index(candidate, position, len(candidates))
            texts[index] = _text(candidate)
            thinking[index] = _text(candidate, thought=True)
            finish[index] = map_finish(_FINISH, candidate.get("finishReason"))
        completion = Completion(
            texts=tuple(texts),
            thinking=tuple(thinking) if any(thinking) else (),
            usage=_usage(payload.get("usageMetadata")),
            finish_reasons=tuple(finish),
            model=payload.get("modelVersion") or self.model,
        )
        if len(texts) < settings.n:
            raise FewerChoices(
                f"{self.provider} returned {len(texts)} candidate(s) for candidateCount={settings.n}",
                provider=self.provider,
                completion=completion,
            )
        return completion

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        """The events of ``streamGenerateContent``; a stream that never sends some of the ``candidateCount``
        candidates (models that ignore it) ends with :class:`~optillm_router.FewerChoices` naming them."""
        finish: list[FinishReason | None] = [None] * settings.n
        seen: set[int] = set()
        usage = TokenUsage()
        model: str | None = None
        path = self._path("streamGenerateContent") + "?alt=sse"
        async with self.post_stream(path, prompt, settings, iter_sse) as items:
            async for event in items:
                payload = json_object(self.provider, event.data)
                self._raise_embedded_error(payload)
                self._check_prompt_feedback(payload)
                model = model or payload.get("modelVersion")
                if payload.get("usageMetadata"):
                    usage = _usage(payload["usageMetadata"])
                for position, candidate in enumerate(payload.get("candidates") or ()):
                    index = _index(candidate, position, len(finish))
                    seen.add(index)
                    thought = _text(candidate, thought=True)
                    if thought:
                        yield ReasoningDelta(delta=thought, index=index)
                    text = _text(candidate)
                    if text:
                        yield OutputTextDelta(delta=text, index=index)
                    if candidate.get("finishReason"):
                        finish[index] = map_finish(_FINISH, candidate["finishReason"])
        missing = tuple(index for index in range(settings.n) if index not in seen)
        if any(finish[index] is None for index in seen) or len(missing) == settings.n:
            raise ProtocolError(
                f"{self.provider} stream ended before every candidate had a finishReason", provider=self.provider
            )
        if missing:
            raise FewerChoices(
                f"{self.provider} streamed {len(seen)} candidate(s) for candidateCount={settings.n}",
                provider=self.provider,
                completion=Completion(texts=(), usage=usage, finish_reasons=tuple(finish), model=model or self.model),
                missing=missing,
            )
        yield Completed(usage=usage, finish_reasons=tuple(finish), model=model or self.model)

    def _candidates(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        self._check_prompt_feedback(payload)
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise ProtocolError(
                f"{self.provider} answered without candidates: {json.dumps(payload)[:300]}", provider=self.provider
            )
        return [c for c in candidates if isinstance(c, dict)]

    def _check_prompt_feedback(self, payload: dict[str, Any]) -> None:
        feedback = payload.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise BadRequestError(
                f"{self.provider} ({self.model}) blocked the prompt: {reason}; change the prompt",
                provider=self.provider,
            )

    def _raise_embedded_error(self, payload: dict[str, Any]) -> None:
        error = payload.get("error")
        if not error:
            return
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
        raise self.error(status, {}, json.dumps(payload).encode())


def _index(candidate: dict[str, Any], position: int, count: int) -> int:
    index = candidate.get("index", position)
    if not isinstance(index, int) or not 0 <= index < count:
        raise ProtocolError(f"gemini sent candidate index {index!r} for {count} candidate(s)", provider="gemini")
    return index


def _text(candidate: dict[str, Any], *, thought: bool = False) -> str:
    """The answer text of a candidate, or with ``thought`` its thinking (the parts marked ``thought: true``)."""
    content = candidate.get("content") or {}
    parts = content.get("parts") or ()
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and bool(p.get("thought")) is thought)


def _usage(raw: object) -> TokenUsage:
    if not isinstance(raw, dict):
        return TokenUsage()
    # Thinking tokens are billed as output but reported apart from candidatesTokenCount.
    output = int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0)
    prompt = int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0)
    return TokenUsage(input_tokens=prompt, output_tokens=output)
