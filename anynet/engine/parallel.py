"""Data-parallel inference on JAX meshes: the placement's compiled forward pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backend import Backend, Placement
from .cache import Cache
from .runner import MAX_RUNNERS

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["parallel_logits"]

Array = Any
Params = dict[str, Array]

#: Compiled forward passes, bounded and shared safely between threads.
_INFERENCE = Cache(MAX_RUNNERS)


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
        if rows < height:
            tail = xp.broadcast_to(part[rows - 1 :, ...], (height - rows, x.shape[1]))
            part = xp.concat([part, tail], axis=0)
        z = placement.local(run(params, state, placement.shard_rows(part)))
        parts.append(z if rows == height else z[:rows, ...])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
