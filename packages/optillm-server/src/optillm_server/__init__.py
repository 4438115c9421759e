"""optillm-server."""

__all__: tuple[str, ...] = ()
