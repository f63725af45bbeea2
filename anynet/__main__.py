"""``python -m anynet``: the ``anynet`` command (see :mod:`anynet.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
