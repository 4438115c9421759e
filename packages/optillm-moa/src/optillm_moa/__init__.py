"""optillm-moa."""

__all__: tuple[str, ...] = ()
