"""``optillm strategies``: the installed strategies, read from a cache while nothing they were listed from changed.

Listing the strategies means importing every one of them, optillm-core and pydantic (about four times
``import pydantic``), although the answer only changes when a package is installed, removed or edited.
So the listing is kept as JSON together with what it was built from, and is built again when any of
that changed: the interpreter and ``sys.path``; each distribution's entry points (every
``*.dist-info`` and ``*.egg-info`` on the path); the size and modification time of every module file
that was loaded while building it (the strategies, their configs, optillm-core, pydantic, this CLI).
A listing with load failures is never kept, so a failure is always reported as it is now.

Where: ``$OPTILLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/optillm``, else ``~/.cache/optillm``; an empty
``OPTILLM_CACHE_DIR`` turns the cache off. A cache that cannot be read or written is ignored. A process
that has already imported optillm-core (an application, a test registering strategies by hand) asks
the registry directly.
"""

from __future__ import annotations as _annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._codes import ExitCode

if TYPE_CHECKING:
    import argparse

__all__ = ("CACHE_FORMAT", "cache_path", "strategies_command", "strategies_document", "strategies_text")

CACHE_FORMAT = 1
"""Bumped whenever the cached document or its fingerprint changes shape."""

_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def strategies_command(
    args: argparse.Namespace, env: Mapping[str, str], configure_logging: Callable[[], AbstractContextManager[None]]
) -> int:
    document = strategies_document(env, configure_logging)
    if args.json:
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(strategies_text(document))
    return ExitCode.OK


def cache_path(env: Mapping[str, str]) -> Path | None:
    """The cache file for this interpreter and ``sys.path``, or ``None`` where the cache is off or has no home."""
    import hashlib

    directory = env.get("OPTILLM_CACHE_DIR")
    if directory is None:
        base = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache") if env.get("HOME") else "")
        directory = str(Path(base) / "optillm") if base else ""
    if not directory:
        return None
    key = hashlib.sha256(json.dumps(_interpreter()).encode()).hexdigest()[:16]
    return Path(directory) / f"strategies-{key}.json"


def strategies_document(
    env: Mapping[str, str], configure_logging: Callable[[], AbstractContextManager[None]]
) -> dict[str, Any]:
    """The ``--json`` document of ``optillm strategies``: from the cache when it is current, else built and kept.

    ``configure_logging`` is entered only to build the document (loading plugins may log): a listing
    read from the cache imports neither optillm-core nor structlog.
    """
    path = cache_path(env)
    if path is not None and "optillm_core" not in sys.modules:
        cached = _read(path)
        if cached is not None:
            return cached
    with configure_logging():
        document = _build()
    if path is not None and not document["failures"]:
        _write(path, document)
    return document


def strategies_text(document: Mapping[str, Any]) -> str:
    """The plain-text listing of a strategies document (JSON-ready, as :func:`strategies_document` returns)."""
    strategies, failures = document["strategies"], document["failures"]
    lines = [] if strategies else ["No strategies are installed (install a package such as optillm-moa)."]
    for strategy in strategies:
        lines.append(f"{strategy['name']}  ({strategy['package']})")
        lines.append(f"    {strategy['description']}")
        for phase in strategy["phases"]:
            reached = ", ".join(phase["caller_settings"])
            lines.append(f"    phase {phase['phase']} ({phase['role']}): gets the caller's {reached}")
        if "tools" in strategy:
            lines.append(f"    tools: {strategy['tools']}")
        for field in strategy["config"]:
            default = "required" if field["required"] else json.dumps(field["default"], ensure_ascii=False)
            described = f"  - {field['description']}" if field["description"] else ""
            lines.append(f"    --set {field['name']}={default}  ({field['type']}){described}")
        lines.append("")
    if failures:
        lines.append("Failed to load:")
        lines.extend(f"    {f['name']}  ({f['package']}): {f['error']}" for f in failures)
    return "\n".join(lines).rstrip() + "\n"


def _build() -> dict[str, Any]:
    from pydantic_core import to_jsonable_python

    from optillm_core import default_registry

    from ._output import strategies_json

    registry = default_registry()
    document: dict[str, Any] = to_jsonable_python(strategies_json(registry.infos(), registry.failures), fallback=str)
    return document


def _interpreter() -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "version": sys.version, "executable": sys.executable, "path": sys.path}


def _distributions() -> list[list[Any]]:
    """Every distribution's metadata directory on ``sys.path`` and the state of its ``entry_points.txt``."""
    found: list[list[Any]] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as children:
                names = sorted(c.name for c in children if c.name.endswith(_METADATA_SUFFIXES))
        except OSError:
            continue
        found.extend([entry, name, _stamp(os.path.join(entry or ".", name, "entry_points.txt"))] for name in names)
    return found


def _module_files() -> Iterator[str]:
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            yield file


def _stamp(file: str) -> list[int] | None:
    try:
        status = os.stat(file)
    except OSError:
        return None
    return [status.st_mtime_ns, status.st_size]


def _fingerprint(files: list[str]) -> dict[str, Any]:
    return {
        **_interpreter(),
        "distributions": _distributions(),
        "modules": {file: _stamp(file) for file in files},
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        fingerprint, document = cached["fingerprint"], cached["document"]
        if _fingerprint(list(fingerprint["modules"])) != fingerprint:
            return None
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None
    return document if isinstance(document, dict) else None


def _write(path: Path, document: dict[str, Any]) -> None:
    entry = {"fingerprint": _fingerprint(sorted(set(_module_files()))), "document": document}
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
