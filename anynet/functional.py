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

from typing import TYPE_CHECKING, Any

import numpy as np
from array_api_compat import device

from ._validation import check_positive_int
from .backend import namespace_of
from .engine.step import step
from .errors import InputError
from .random import make_rng

if TYPE_CHECKING:
    from .model import Model
    from .optimizers import Optimizer

__all__ = ["apply", "init", "train_step", "value_and_grad"]

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
    return namespace_of(X, *params.values())


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
    model: Model, params: Params, state: Params, X: Array, y: Array, train: bool, xp: Any,
    w: Array | None = None,
) -> tuple[Array, Params, Params]:  # fmt: skip
    """Loss, gradients and new state for ``y`` as ``fit`` takes it (encoded traceably)."""
    z, caches, new_state = model.forward(params, state, X, xp=xp, train=train)
    value, dz = model.head.loss_and_delta(z, model.head.targets(y, z, xp=xp), xp=xp, w=w)
    return value, model.backward(params, caches, dz, xp=xp), new_state


def value_and_grad(
    model: Model,
    params: Params,
    X: Array,
    y: Array,
    *,
    state: Params | None = None,
    train: bool = False,
    sample_weight: Array | None = None,
) -> Any:
    """Mean loss (0-d array) and its gradients (hand-written backprop, ``params``' keys).

    ``y`` as ``fit`` takes it: 0/1 labels, integer classes or one-hot rows, values.
    ``sample_weight``: an array ``(n_samples,)`` of the parameters' dtype and device
    (unchecked): the weighted mean loss, as ``fit(sample_weight=...)``.
    Returns ``(loss, grads)``, or ``(loss, grads, new_state)`` when ``state`` is given.
    """
    xp = _namespace(params, X)
    value, grads, new_state = _value_and_grads(
        model, params, _state(model, state), X, y, train, xp, sample_weight
    )
    return (value, grads) if state is None else (value, grads, new_state)


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
    sample_weight: Array | None = None,
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
    sample_weight : array, shape (n_samples,), optional
        Weights of the batch's samples, in the parameters' dtype and device (unchecked):
        the loss is their weighted mean, as ``fit(sample_weight=...)``.

    Returns
    -------
    (params, opt_state, loss), or (params, opt_state, loss, state) when ``state`` is given.
    The loss is that of the parameters before the update.
    """
    xp = _namespace(params, X)
    own_state = _state(model, state)
    first = next(iter(params.values()))  # the logits' dtype and device, for the encoding
    like = xp.zeros((1, model.head.n_outputs), dtype=first.dtype, device=device(first))
    targets = model.head.targets(y, like, xp=xp)
    rate = optimizer.lr if lr is None else lr
    # the fit engine's step, in its plain form (optimizer.update, nothing in place)
    params, opt_state, new_state, value = step(
        model, optimizer, params, opt_state, own_state, X, targets, rate, xp=xp, w=sample_weight
    )
    if state is None:
        return params, opt_state, value
    return params, opt_state, value, new_state
