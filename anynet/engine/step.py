"""The one training step: loss, gradients, update; the same numbers however it is applied.

Every way anynet trains (``Network.fit``, the scikit-learn estimators, and
:func:`anynet.functional.train_step`) runs :func:`step`. Its plain form is the
documented math::

    loss, grads, state = model.loss_and_gradients(params, state, x, t, train=True)
    params, opt_state = optimizer.update(params, grads, opt_state, lr)

The engine may apply the update itself, ``p - lr * direction`` with the optimizer's
:meth:`~anynet.optimizers.Optimizer.directions`, in place and layer by layer, only where
that gives the same numbers (see :func:`applies_directions`), and it writes only into
arrays it alone owns: never one the new optimizer state or layer state holds (a
heavy-ball optimizer that keeps ``prev = p`` gets a new array for ``p``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .replay import real

if TYPE_CHECKING:
    from ..model import Model
    from ..optimizers import Optimizer

__all__ = ["Writes", "applies_directions", "step"]

Array = Any
Params = dict[str, Array]


@dataclass(frozen=True)
class Writes:
    """How a step writes its updates.

    Attributes
    ----------
    write : callable
        ``write(p, lr, direction) -> p - lr * direction``; may write into ``p``.
    new : callable
        The same numbers as a new array; never writes.
    buffer_of : callable
        ``buffer_of(array) -> int``: the memory an array's values live in
        (:meth:`anynet.backend.Backend.buffer_of`).
    """

    write: Callable[[Array, Any, Array], Array]
    new: Callable[[Array, Any, Array], Array]
    buffer_of: Callable[[Array], int]


def applies_directions(optimizer: Optimizer) -> bool:
    """Whether the engine may apply ``p - lr * direction`` itself for ``optimizer``.

    True only when the optimizer's :meth:`~anynet.optimizers.Optimizer.update` is the
    base class's (which is exactly that): an optimizer that overrides ``update``
    anywhere (a projection, a clip) is always called through its own ``update``.
    """
    return bool(optimizer.layerwise)


def step(
    model: Model,
    optimizer: Optimizer,
    params: Params,
    opt_state: Params,
    state: Params,
    x: Array,
    t: Array,
    lr: Any,
    *,
    xp: Any,
    axis: int = -1,
    writes: Writes | None = None,
    layerwise: bool = False,
    w: Array | None = None,
) -> tuple[Params, Params, Params, Array]:
    """One training step on encoded targets ``t (n, n_outputs)``.

    Parameters
    ----------
    model, optimizer
        What is trained, and how.
    params, opt_state, state : dict of arrays
        Parameters, optimizer state, layer state (network-wide keys).
    x : array
        ``(n, n_features)``; with ``axis=0``, ``(n_features, n)`` (layout-free models).
    t : array, shape (n, n_outputs)
        Targets as the head encodes them.
    lr : float or 0-d array
        The learning rate.
    writes : Writes, optional
        Apply ``p - lr * direction`` through these (in place where allowed), for
        optimizers where :func:`applies_directions`; None: ``optimizer.update``.
    layerwise : bool
        With ``writes``: update each layer as soon as backprop has passed it, so all
        gradients never coexist (large networks).
    w : array, shape (n,), optional
        Sample weights: the loss is their weighted mean (:mod:`anynet.losses`).

    Returns
    -------
    (params, opt_state, state, loss)
        The loss (0-d) is that of ``params`` before the update, as in the tutorial.

    Raises
    ------
    InputError
        The step changed the dtype of a parameter or of layer state (a constant of
        another dtype promoted it), naming the layer; or the shape or dtype of an entry
        of the optimizer state (which, as the carry of ``jax.lax.scan``, keeps them).
    """
    decay = model.decay_keys
    if writes is None or not applies_directions(optimizer):
        value, grads, new_state = model.loss_and_gradients(
            params, state, x, t, xp=xp, train=True, axis=axis, w=w
        )
        new_params, new_opt = optimizer.update(params, grads, opt_state, lr, xp=xp, decay=decay)
    elif not layerwise or optimizer.clips_globally:  # a global norm needs every gradient
        value, grads, new_state = model.loss_and_gradients(
            params, state, x, t, xp=xp, train=True, axis=axis, w=w
        )
        grads = optimizer.clip(grads, xp=xp)
        directions, new_opt = optimizer.directions(params, grads, opt_state, xp=xp, decay=decay)
        del grads
        held = _held(writes, new_opt, new_state)
        new_params = {key: _apply(writes, held, params[key], lr, directions[key]) for key in params}
    else:
        new_params, new_opt, new_state, value = _layerwise(
            model, optimizer, params, opt_state, state, x, t, lr, xp, axis, writes, w
        )
    _check_dtypes(model, params, new_params, "parameter")
    _check_dtypes(model, state, new_state, "layer state")
    _check_optimizer_state(optimizer, opt_state, new_opt)
    return new_params, new_opt, new_state, value


def _layerwise(
    model: Model, optimizer: Optimizer, params: Params, opt_state: Params, state: Params,
    x: Array, t: Array, lr: Any, xp: Any, axis: int, writes: Writes, w: Array | None = None,
) -> tuple[Params, Params, Params, Array]:  # fmt: skip
    decay = model.decay_keys
    z, caches, new_state = model.forward(params, state, x, xp=xp, train=True, axis=axis)
    value, dz = model.loss_and_delta(z, t, xp=xp, axis=axis, w=w)
    del z
    new_params: Params = {}
    new_opt: Params = {}
    state_buffers = _held(writes, new_state)

    def update_layer(grads: Params) -> None:
        own = {key: params[key] for key in grads}
        grads = optimizer.clip(grads, xp=xp)  # element by element only (clips_globally)
        directions, slots = optimizer.directions(own, grads, opt_state, xp=xp, decay=decay)
        del grads
        held = state_buffers | _held(writes, slots)
        for key, direction in directions.items():
            new_params[key] = _apply(writes, held, own[key], lr, direction)
        new_opt.update(slots)

    model.backward(params, caches, dz, xp=xp, axis=axis, on_grads=update_layer)
    new_params = {key: new_params[key] for key in params}  # layer order, as given
    return new_params, new_opt if opt_state else opt_state, new_state, value


def _held(writes: Writes, *trees: Params) -> set[int]:
    """The memory the arrays of these dicts live in (never written in place)."""
    buffer_of = writes.buffer_of
    return {buffer_of(real(array)) for tree in trees for array in tree.values()}


def _apply(writes: Writes, held: set[int], param: Array, lr: Any, direction: Array) -> Array:
    if held and writes.buffer_of(real(param)) in held:
        return writes.new(param, lr, direction)  # state holds it: a new array
    return writes.write(param, lr, direction)


def _check_dtypes(model: Model, before: Params, after: Params, what: str) -> None:
    for key, old in before.items():
        new = after.get(key)
        if new is not None and new.dtype != old.dtype:
            index, layer = model.layer_of(key)
            raise InputError(
                f"{what} {key!r} of layer {index} ({type(layer).__name__}) changed dtype "
                f"from {old.dtype} to {new.dtype} in a training step: a constant of another "
                "dtype promoted it (a NumPy float64 scalar such as np.sqrt(2.0) in a float32 "
                "network?); use Python floats, or xp.asarray(c, dtype=x.dtype)"
            )


def _check_optimizer_state(optimizer: Optimizer, before: Params, after: Params) -> None:
    for key, old in before.items():
        new = after.get(key)
        if new is not None and (new.dtype != old.dtype or tuple(new.shape) != tuple(old.shape)):
            raise InputError(
                f"{type(optimizer).__name__}'s state {key!r} changed from {old.dtype} "
                f"{tuple(old.shape)} to {new.dtype} {tuple(new.shape)} in a training step: "
                "optimizer state must keep its shapes and dtypes from step to step (as the "
                "carry of jax.lax.scan does)"
            )
