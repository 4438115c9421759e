"""optillm-router: one ModelClient over many providers."""

__all__: tuple[str, ...] = ()
