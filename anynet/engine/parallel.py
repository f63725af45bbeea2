"""Compiled inference on JAX: one device, or data parallel over a mesh.

Run op by op, a JAX forward pass dispatches every operation on its own (about 25 us each
on a CPU, more on a GPU): ``predict`` of 256 rows of the digits MLP took 2.7x a jitted
forward. Where the backend compiles, evaluation-mode logits are one compiled call per
batch. Batch heights are padded (with copies of the batch's last row, whose outputs are
dropped) to a power of two, at least :data:`MIN_HEIGHT`, so inputs of ever new sizes
compile a bounded number of functions. A model whose forward pass cannot be traced (a
layer that reads a value, or calls NumPy on its input) runs op by op, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backend import Backend, Placement
from .cache import Cache
from .runner import MAX_RUNNERS

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["MIN_HEIGHT", "compiled_logits", "parallel_logits"]

Array = Any
Params = dict[str, Array]

#: Compiled forward passes, bounded and shared safely between threads.
_INFERENCE = Cache(MAX_RUNNERS)

#: The smallest padded batch height of single-device compiled inference.
MIN_HEIGHT = 8

_OP_BY_OP = object()  # a model whose forward pass could not be traced


def compiled_logits(
    backend: Backend, model: Model, params: Params, state: Params, x: Array, size: int,
    outputs: bool = False,
) -> Array | None:  # fmt: skip
    """Evaluation-mode logits of ``x (n, f)`` (with ``outputs``, the output activations
    ``model.head.output`` of them), ``size`` rows at a time, each batch one compiled call
    on the backend's device; None where the backend does not compile or the model's
    forward pass cannot be traced (the caller then runs it op by op)."""
    if not backend.compiles:
        return None
    key = (backend, model, "one device", outputs)

    def make() -> Any:
        xp = backend.xp

        def forward(p: Params, s: Params, xb: Array) -> Array:
            z = model.logits(p, s, xb, xp=xp)
            return model.head.output(z, xp=xp) if outputs else z

        return backend.jit(forward)

    run = _INFERENCE.get(key, make)
    if run is _OP_BY_OP:
        return None
    xp, n = backend.xp, x.shape[0]
    parts = []
    for start in range(0, n, size):
        part = x[start : min(start + size, n), ...] if n > size else x
        rows = part.shape[0]
        height = min(size, max(MIN_HEIGHT, 1 << (rows - 1).bit_length()))
        try:
            z = run(params, state, _padded(xp, part, max(height, rows)))
        except backend.trace_errors:  # a value read, NumPy on a tracer: op by op from now on
            _INFERENCE.put(key, _OP_BY_OP)
            return None
        parts.append(z if z.shape[0] == rows else z[:rows, ...])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def _padded(xp: Any, part: Array, height: int) -> Array:
    """``part`` with copies of its last row appended up to ``height`` rows."""
    rows = part.shape[0]
    if rows >= height:
        return part
    tail = xp.broadcast_to(part[rows - 1 :, ...], (height - rows, part.shape[1]))
    return xp.concat([part, tail], axis=0)


def parallel_logits(
    placement: Placement,
    backend: Backend,
    model: Model,
    params: Params,
    state: Params,
    x: Array,
    size: int,
) -> Array:
    """Evaluation-mode logits of ``x (n, f)``, ``size`` rows at a time, each batch split
    by rows over ``placement``'s devices; on the backend's own device.

    Batches are padded (with copies of their last row) to one height, a multiple of the
    number of devices, so one compiled function serves them all; the padding's outputs
    are dropped.
    """
    key = (backend, model, placement)

    def make() -> Callable:
        def logits(params: Params, state: Params, xb: Array) -> Array:
            z = model.logits(params, state, placement.constrain_rows(xb), xp=backend.xp)
            return placement.constrain_replicated(z)

        return backend.jit(logits)

    run = _INFERENCE.get(key, make)
    xp, n = backend.xp, x.shape[0]
    height = -(-min(size, n) // placement.size) * placement.size
    params, state = placement.broadcast((params, state))
    parts = []
    for start in range(0, n, size):
        part = x[start : min(start + size, n), ...]
        rows = part.shape[0]
        part = _padded(xp, part, height)
        z = placement.local(run(params, state, placement.shard_rows(part)))
        parts.append(z if rows == height else z[:rows, ...])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
