"""Pure functions over ``(model, params, ...)`` for research loops.

``net.model`` is a network's hashable description (layers and head, no numbers),
``net.params`` its parameters and ``net.state`` its layer state (batch norm's
running statistics, dropout's random stream; an empty dict for most models).
Everything here is rows-are-samples, pure, and works inside ``jax.jit``,
``jax.vmap`` (an ensemble of networks from stacked parameters),
``torch.func.vmap`` and ``torch.compile``:

>>> from anynet import functional as F
>>> step = jax.jit(lambda p, s: F.train_step(net.model, opt, p, s, X, y))  # doctest: +SKIP
>>> params, opt_state = net.params, opt.init(net.params)  # doctest: +SKIP
>>> for _ in range(100):  # doctest: +SKIP
...     params, opt_state, loss = step(params, opt_state)

Functions that take ``state=`` return the new state as their last result when it is
given; a model with layer state needs it (``state=net.state``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from array_api_compat import array_namespace

from ._validation import check_positive_int
from .errors import InputError
from .random import make_rng

if TYPE_CHECKING:
    from .model import Model
    from .optimizers import Optimizer

__all__ = ["apply", "init", "step", "train_step", "value_and_grad"]

Array = Any
Params = dict[str, Array]


def init(model: Model, seed: int | np.random.Generator | None = None) -> tuple[dict, dict]:
    """Initial ``(params, state)`` of ``model`` as float64/int32 NumPy arrays (host).

    The same draws as ``Sequential``/``Network`` with this seed; cast and move them
    with your library (``jnp.asarray(p, dtype=...)``).
    """
    return model.init(make_rng(seed))


def _namespace(params: Params, X: Array) -> Any:
    if not params:
        raise InputError("params must be a non-empty dict of arrays, got an empty dict")
    return array_namespace(X, *params.values())


def _state(model: Model, state: Params | None) -> Params:
    if state is None:
        if model.has_state:
            raise InputError(
                f"state must be given for this model, which has layer state "
                f"{list(model.state_keys)} (pass state=net.state); got None"
            )
        return {}
    return state


def apply(
    model: Model,
    params: Params,
    X: Array,
    *,
    state: Params | None = None,
    train: bool = False,
    batch_size: int | None = None,
) -> Any:
    """Output activations ``(n_samples, n_outputs)`` of ``X (n_samples, n_features)``.

    Returns ``outputs``, or ``(outputs, new_state)`` when ``state`` is given
    (``train=True``: dropout active, batch norm on batch statistics). In evaluation
    mode, ``batch_size`` rows go through the model at a time (same results, memory
    bounded by the batch); in training mode the batch is the whole ``X``.
    """
    xp = _namespace(params, X)
    own_state = _state(model, state)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size is not None and train:
        raise InputError(
            "batch_size applies in evaluation mode (train=False): in training mode batch "
            f"statistics and dropout streams depend on the batch, got batch_size={batch_size!r}"
        )
    if batch_size is None or X.shape[0] <= batch_size:
        z, _, new_state = model.forward(params, own_state, X, xp=xp, train=train)
    else:
        n = X.shape[0]
        parts = [  # slices within bounds: the standard leaves others unspecified
            model.forward(
                params, own_state, X[i : min(i + batch_size, n), ...], xp=xp, train=False
            )[0]
            for i in range(0, n, batch_size)
        ]
        z, new_state = xp.concat(parts, axis=0), own_state
    out = model.head.output(z, xp=xp)
    return out if state is None else (out, new_state)


def _value_and_grads(
    model: Model, params: Params, state: Params, X: Array, y: Array, train: bool, xp: Any
) -> tuple[Array, Params, Params]:
    """Loss, gradients and new state for ``y`` as ``fit`` takes it (encoded traceably)."""
    z, caches, new_state = model.forward(params, state, X, xp=xp, train=train)
    value, dz = model.head.loss_and_delta(z, model.head.targets(y, z, xp=xp), xp=xp)
    return value, model.backward(params, caches, dz, xp=xp), new_state


def value_and_grad(
    model: Model,
    params: Params,
    X: Array,
    y: Array,
    *,
    state: Params | None = None,
    train: bool = False,
) -> Any:
    """Mean loss (0-d array) and its gradients (hand-written backprop, ``params``' keys).

    ``y`` as ``fit`` takes it: 0/1 labels, integer classes or one-hot rows, values.
    Returns ``(loss, grads)``, or ``(loss, grads, new_state)`` when ``state`` is given.
    """
    xp = _namespace(params, X)
    value, grads, new_state = _value_and_grads(model, params, _state(model, state), X, y, train, xp)
    return (value, grads) if state is None else (value, grads, new_state)


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
    apply_update: Callable[[Array, Any, Array], Array] | None = None,
    layerwise: bool = False,
) -> tuple[Params, Params, Params, Array]:
    """One training step on encoded targets ``t (n, n_outputs)``: the fit engine's step.

    Returns ``(params, opt_state, state, loss)``; the loss is that of ``params``
    before the update, as in the tutorial's loop. ``axis=0``: ``x`` is
    ``(n_features, n)`` (layout-free models only, see :class:`~anynet.model.Model`).

    With ``apply_update`` (from :meth:`anynet.Backend.updater`) and an optimizer that
    gives :meth:`~anynet.optimizers.Optimizer.directions`, every parameter becomes
    ``apply_update(p, lr, direction)``, which may write into ``p``: the same numbers as
    :meth:`~anynet.optimizers.Optimizer.update`. With ``layerwise`` too, each layer is
    updated as soon as backprop has passed it, so all gradients never coexist (for
    large networks; on small ones the per-layer calls cost more than they save).
    """
    decay = model.decay_keys
    if apply_update is None or not optimizer.layerwise:
        value, grads, new_state = model.loss_and_gradients(
            params, state, x, t, xp=xp, train=True, axis=axis
        )
        params, opt_state = optimizer.update(params, grads, opt_state, lr, xp=xp, decay=decay)
        return params, opt_state, new_state, value
    if not layerwise:
        value, grads, new_state = model.loss_and_gradients(
            params, state, x, t, xp=xp, train=True, axis=axis
        )
        directions, opt_state = optimizer.directions(params, grads, opt_state, xp=xp, decay=decay)
        del grads
        params = {key: apply_update(params[key], lr, directions[key]) for key in params}
        return params, opt_state, new_state, value
    z, caches, new_state = model.forward(params, state, x, xp=xp, train=True, axis=axis)
    value, dz = model.loss_and_delta(z, t, xp=xp, axis=axis)
    del z
    new_params: Params = {}
    new_opt_state: Params = {}

    def update_layer(grads: Params) -> None:
        own = {key: params[key] for key in grads}
        directions, slots = optimizer.directions(own, grads, opt_state, xp=xp, decay=decay)
        del grads
        for key, direction in directions.items():
            new_params[key] = apply_update(own[key], lr, direction)
        new_opt_state.update(slots)

    model.backward(params, caches, dz, xp=xp, axis=axis, on_grads=update_layer)
    new_params = {key: new_params[key] for key in params}  # layer order, as given
    return new_params, new_opt_state if opt_state else opt_state, new_state, value


def train_step(
    model: Model,
    optimizer: Optimizer,
    params: Params,
    opt_state: Params,
    X: Array,
    y: Array,
    *,
    state: Params | None = None,
    lr: Any = None,
) -> Any:
    """One optimizer step in training mode.

    Parameters
    ----------
    model, optimizer
        ``net.model`` and an :mod:`anynet.optimizers` object (``optimizer.init(params)``
        gives ``opt_state``).
    params, opt_state : dict of arrays
    X : array, shape (n_samples, n_features)
    y : array
        As ``fit`` takes it.
    state : dict of arrays, optional
        Layer state; required for models that have some.
    lr : float or 0-d array, optional
        Learning rate; default ``optimizer.lr``.

    Returns
    -------
    (params, opt_state, loss), or (params, opt_state, loss, state) when ``state`` is given.
    The loss is that of the parameters before the update.
    """
    xp = _namespace(params, X)
    own_state = _state(model, state)
    value, grads, new_state = _value_and_grads(model, params, own_state, X, y, True, xp)
    rate = optimizer.lr if lr is None else lr
    params, opt_state = optimizer.update(
        params, grads, opt_state, rate, xp=xp, decay=model.decay_keys
    )
    if state is None:
        return params, opt_state, value
    return params, opt_state, value, new_state
