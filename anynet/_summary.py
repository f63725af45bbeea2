"""``Network.summary()``: a table of layers, output shapes and parameter counts.

The text is what a terminal prints and a notebook shows (:class:`Summary` is a ``str``
whose ``repr`` is itself, and which also renders as an HTML table in Jupyter).
Parameter counts are read from the network's own arrays, not from the layers'
declarations, and names are the network-wide keys (``W1``, ``b1``, ...).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .layers.base import Layer
    from .model import LayerSlot
    from .network import Network

__all__ = ["Summary", "summarize"]

#: Indentation of a container's children (``Residual``) per level of nesting.
INDENT = "  "


class Summary(str):
    """The text of :meth:`anynet.Network.summary`: a ``str`` that displays as itself.

    A REPL or notebook shows it as the table (not as a quoted string with ``\\n``),
    ``print`` prints it, and Jupyter renders :meth:`_repr_html_` as an HTML table.
    """

    _html: str = ""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self._html


@dataclass(frozen=True)
class _Row:
    depth: int
    layer: str
    shape: str
    count: int
    names: str


def _keys_under(pairs: tuple[tuple[str, str], ...], path: str, *, leaf: bool) -> list[str]:
    """Network keys of the layer at ``path`` within a top-level layer (``""`` the layer itself).

    A leaf owns the local keys ``path + name``; a container every key below its path.
    """
    return [
        key
        for local, key in pairs
        if local.startswith(path) and (not leaf or "." not in local[len(path) :])
    ]


def _rows(
    layer: Layer,
    path: str,
    depth: int,
    n_in: int,
    slot: LayerSlot,
    sizes: dict[str, int],
) -> list[_Row]:
    children = layer.children()
    n_out = layer.output_width(n_in)
    keys = _keys_under(slot.params, path, leaf=not children)
    state = _keys_under(slot.state, path, leaf=not children)
    names = ", ".join(keys)
    if state and not children:
        names = f"{names} (state {', '.join(state)})".strip()
    text = type(layer).__name__ if children else layer.describe()
    rows = [
        _Row(depth, text, f"(n, {n_out})", sum(sizes[k] for k in keys), "" if children else names)
    ]
    width = n_in
    for index, child in enumerate(children):
        rows.extend(_rows(child, f"{path}{index}.", depth + 1, width, slot, sizes))
        width = child.output_width(width)
    return rows


def _table(headers: list[str], cells: list[list[str]]) -> list[str]:
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return lines


def _bytes(n: int) -> str:
    """``"840 B"``, ``"52.0 kB"``, ``"1.2 GB"`` (powers of 1000)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _arrays(n: int) -> str:
    return "1 array" if n == 1 else f"{n} arrays"


def _initialisation(net: Network) -> str:
    """``init: xavier(scale=1) for W1, W2 (biases zero), seed 0``: how the weights started."""
    from .layers.dense import Dense
    from .model import _leaves

    groups: dict[str, list[str]] = {}
    for slot in net.model.slots:
        keys = dict(slot.params)
        for path, leaf in _leaves(slot.layer, ""):
            if isinstance(leaf, Dense):
                groups.setdefault(leaf.init_text(), []).append(keys[path + "W"])
    seed = net.seed if isinstance(net.seed, (int, type(None))) else "a Generator"
    if not groups:
        return f"init: each layer's own, seed {seed}"
    described = "; ".join(f"{text} for {', '.join(keys)}" for text, keys in groups.items())
    return f"init: {described} (biases zero), seed {seed}"


def summarize(net: Network) -> Summary:
    """The summary of ``net`` (see :meth:`anynet.Network.summary`)."""
    model = net.model
    params, state = net.params, net.state
    sizes = {k: math.prod(tuple(v.shape)) for k, v in {**params, **state}.items()}
    rows: list[_Row] = []
    width = model.inputs
    for slot in model.slots:
        rows.extend(_rows(slot.layer, "", 0, width, slot, sizes))
        width = slot.layer.output_width(width)
    head = model.head
    rows.append(_Row(0, f"{head.activation.describe()} (output)", f"(n, {width})", 0, ""))

    total = sum(sizes[k] for k in params)
    itemsize = np.dtype(net.dtype).itemsize
    title = "Network" if net.sizes is None else f"Network({net.sizes})"
    outputs = "output" if model.n_outputs == 1 else "outputs"
    inputs = "input" if model.inputs == 1 else "inputs"
    header = (
        f"{title}: {model.inputs} {inputs} -> {model.n_outputs} {outputs}, loss {head.loss.name}"
    )
    footer = [
        f"parameters: {total:,} in {_arrays(len(params))} "
        f"({_bytes(total * itemsize)} as {net.dtype})"
    ]
    if state:
        footer.append(
            f"layer state: {sum(sizes[k] for k in state):,} values in {_arrays(len(state))} "
            f"({', '.join(state)})"
        )
    footer.append(_initialisation(net))
    footer.append(f"backend: {net.backend.name}, device: {net.backend.device}, dtype: {net.dtype}")
    headers = ["layer", "output shape", "params", "names"]
    cells = [[INDENT * r.depth + r.layer, r.shape, f"{r.count:,}", r.names] for r in rows]
    text = Summary("\n".join([header, *_table(headers, cells), *footer]))
    text._html = _html(header, headers, cells, rows, footer)
    return text


def _html(
    header: str, headers: list[str], cells: list[list[str]], rows: list[_Row], footer: list[str]
) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = []
    for row, cell in zip(rows, cells, strict=True):
        first = (
            f"<td style='text-align:left;padding-left:{0.5 + 1.5 * row.depth}em'>"
            f"<code>{html.escape(row.layer)}</code></td>"
        )
        rest = "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in cell[1:])
        body.append(f"<tr>{first}{rest}</tr>")
    notes = "<br>".join(html.escape(line) for line in footer)
    return (
        f"<div><p><code>{html.escape(header)}</code></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<p>{notes}</p></div>"
    )
