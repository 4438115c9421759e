"""The CLI configures structlog: stderr, errors only by default, one line per event, never a traceback."""

from __future__ import annotations

import logging

import pytest
import structlog

from optillm_cli._app import _logging


def test_logged_exceptions_become_one_line_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    log = structlog.get_logger("optillm")
    with _logging(0, logging.ERROR):
        log.warning("hidden by default")
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("handler failed", event_kind="PhaseStarted")
        log.error("with exc_info", exc_info=KeyError("k"))
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert "handler failed" in lines[0]
    assert "ValueError: bad value" in lines[0]
    assert "KeyError: 'k'" in lines[1]
    assert "Traceback" not in captured.err
    assert "hidden by default" not in captured.err


def test_verbose_shows_info_and_the_previous_configuration_comes_back(capsys: pytest.CaptureFixture[str]) -> None:
    before = structlog.get_config()
    with _logging(1, logging.ERROR):
        structlog.get_logger("optillm").info("retrying", attempt=2)
    assert "retrying" in capsys.readouterr().err
    assert structlog.get_config() == before
