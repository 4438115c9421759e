"""Quiet logs for measurements: the harness is an application, so it may configure structlog."""

from __future__ import annotations as _annotations

import logging

import structlog

__all__ = ("quiet_logs",)


def quiet_logs() -> None:
    """Drop optillm's events below WARNING, so that printing debug lines does not count as overhead."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
