"""The ``optillm`` logger binds once per structlog configuration, and follows every change to it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from optillm_core import logger


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    previous = structlog.get_config()
    yield
    structlog.configure(**previous)


def test_it_binds_once_while_the_configuration_stays() -> None:
    logger.debug("first")
    bound = logger._current()
    logger.info("second")
    assert logger._current() is bound


def test_capture_logs_sees_events_after_the_logger_was_bound() -> None:
    logger.info("before capture")  # binds
    with capture_logs() as logs:
        logger.debug("captured", answer=42)
    assert logs == [{"event": "captured", "answer": 42, "log_level": "debug"}]


def test_a_new_level_filter_takes_effect() -> None:
    seen: list[str] = []

    def keep(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        seen.append(str(event["event"]))
        raise structlog.DropEvent

    structlog.configure(processors=[keep], wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logger.debug("dropped by the filter")
    logger.warning("kept")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    logger.debug("kept too")
    assert seen == ["kept", "kept too"]


def test_a_print_logger_writes_to_the_stdout_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.PrintLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", first)
    logger.info("to the first")
    monkeypatch.setattr("sys.stdout", second)
    logger.info("to the second")
    assert first.getvalue() == "event='to the first'\n"
    assert second.getvalue() == "event='to the second'\n"
