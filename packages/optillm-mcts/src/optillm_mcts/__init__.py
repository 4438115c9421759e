"""optillm-mcts."""

__all__: tuple[str, ...] = ()
