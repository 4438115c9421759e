"""optillm-mars."""

__all__: tuple[str, ...] = ()
