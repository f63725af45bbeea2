"""Small helpers the reports share: number formatting, plain-text tables, host copies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..backend import backend_of, to_numpy


def format_number(value: float | None, digits: int = 1) -> str:
    """``"1.2e-03"``; ``"0"`` for zero and ``"-"`` for None."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.{digits}e}"


def text_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _host(value: Any) -> Any:
    """Arrays of any backend to NumPy; other values unchanged."""
    return to_numpy(value) if backend_of(value) not in (None, "numpy") else value


def _worst(
    errors: np.ndarray, analytic: np.ndarray, other: np.ndarray, shape: tuple[int, ...], flat: Any
) -> tuple[float, tuple[tuple[int, ...], float, float]]:
    """The largest error and ``(index, analytic, other)`` of the entry that has it.

    ``errors``, ``analytic`` and ``other`` are 1-d over the checked entries, whose flat
    indices into an array of ``shape`` are ``flat``.
    """
    if errors.size == 0:
        return 0.0, ((), 0.0, 0.0)
    slot = int(np.argmax(errors))
    index = tuple(int(i) for i in np.unravel_index(int(flat[slot]), shape))
    return float(errors[slot]), (index, float(analytic[slot]), float(other[slot]))
