"""``python -m optillm_cli``."""

from __future__ import annotations as _annotations

from ._app import main

raise SystemExit(main())
