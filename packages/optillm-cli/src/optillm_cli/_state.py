"""What a run has spent so far, readable after Ctrl-C interrupts it (light: ``run_cli`` makes one before parsing)."""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optillm_core import MeteredClient, RunUsage

    from ._progress import EventLines, Progress

__all__ = ("RunState",)


class RunState:
    """What a run has spent so far, readable after Ctrl-C interrupts it, and the keys no message may show.

    A plain class, not a dataclass: the dataclasses module (with inspect) would be ``--help``'s largest import.
    """

    def __init__(self) -> None:
        self.meter: MeteredClient | None = None
        self.sink: EventLines | Progress | None = None
        self.secrets: list[str | None] = []

    @property
    def usage(self) -> RunUsage:
        if self.meter is not None:
            return self.meter.usage
        from optillm_core import RunUsage

        return RunUsage()

    def finish(self) -> None:
        if self.sink is not None:
            self.sink.finish()
