"""``--set key=value``: overrides of a strategy's config fields, checked against the field's type."""

from __future__ import annotations as _annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from optillm_core import InvalidConfiguration, OptimizerConfig

from ._errors import UsageError

__all__ = ("parse_assignment", "parse_overrides", "type_name")

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``key=value`` at the first ``=``; the key must be a field name."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise UsageError(f"--set expects key=value with a config field name as key, got {text!r}")
    return key, value


def type_name(annotation: Any) -> str:
    """A short readable name of a field's type: ``int``, ``list[float]``, ``int | None``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in typing.get_args(annotation))
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{args}]" if args else base
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation)


def _convert(key: str, raw: str, field: FieldInfo) -> Any:
    """The raw text as the field's type: as a plain string first, then as JSON (lists, objects).

    ``null`` clears a field that accepts ``None``.
    """
    adapter = _adapter(field)
    if raw.strip() == "null":
        try:
            return adapter.validate_python(None)
        except ValidationError:
            pass
    try:
        return adapter.validate_python(raw)
    except ValidationError as first:
        error = first
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = raw
    if decoded is not raw:
        try:
            return adapter.validate_python(decoded)
        except ValidationError as second:
            error = second
    reason = error.errors()[0]["msg"]
    raise InvalidConfiguration(f"--set {key}: expected {type_name(field.annotation)}, got {raw!r} ({reason})")


def parse_overrides(assignments: Iterable[str], config_type: type[OptimizerConfig], strategy: str) -> Mapping[str, Any]:
    """Every ``key=value`` converted to its field's type; an unknown field lists the valid ones."""
    fields = config_type.model_fields
    overrides: dict[str, Any] = {}
    for text in assignments:
        key, raw = parse_assignment(text)
        field = fields.get(key)
        if field is None:
            valid = ", ".join(sorted(fields)) or "none"
            raise InvalidConfiguration(
                f"--set {key}: strategy '{strategy}' has no config field '{key}' (fields: {valid})"
            )
        overrides[key] = _convert(key, raw, field)
    return overrides
