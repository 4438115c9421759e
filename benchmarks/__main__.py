"""``python -m benchmarks``."""

from __future__ import annotations as _annotations

from benchmarks._main import main

main()
