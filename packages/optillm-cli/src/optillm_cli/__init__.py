"""optillm-cli: the optillm command."""

__all__ = ("main",)


def main() -> None:
    raise SystemExit("optillm: not built yet")
