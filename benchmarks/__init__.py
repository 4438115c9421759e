"""The optillm benchmarks: speed against the critical path, overhead, scale, cost, answer quality and start-up.

Run ``uv run python -m benchmarks all`` (or one section: ``critical-path``, ``overhead``, ``scale``,
``cost``, ``quality``, ``real-model``, ``faults``, ``startup``; ``--smoke`` for tiny sizes). Results go to
``benchmarks/results/`` as markdown and JSON, and ``--write-docs`` copies the tables into
``docs/benchmarks.md``. The entry point is :func:`benchmarks._main.main`.
"""

from __future__ import annotations as _annotations

__all__: tuple[str, ...] = ()
