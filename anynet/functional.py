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

Return shapes: :func:`apply` always returns the outputs, :func:`apply_with_state`
always ``(outputs, new_state)``; :func:`value_and_grad` and :func:`train_step` return
the new layer state as their last result when ``state=`` is given. A model with layer
state needs it (``state=net.state``).

Inputs are checked before anything runs: every array of one backend and one device
(:class:`~anynet.errors.BackendError` naming the two that differ; nothing is moved for
you, and :func:`init` gives NumPy float64 arrays), and, wherever their values can be
read (not inside ``jax.jit`` or another JAX trace), labels as ``fit`` checks them (0/1
for a binary head, classes in range, one-hot rows) with an
:class:`~anynet.errors.InputError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from array_api_compat import device

from ._validation import check_one_backend, check_positive_int, check_target_values
from .backend import is_traced, namespace_of
from .engine.step import step
from .errors import InputError
from .heads import make_head
from .random import make_rng

if TYPE_CHECKING:
    from .heads import Head
    from .losses import Loss
    from .model import Model
    from .optimizers import Optimizer

__all__ = ["apply", "apply_with_state", "init", "train_step", "value_and_grad"]

Array = Any
Params = dict[str, Array]


def init(model: Model, seed: int | np.random.Generator | None = None) -> tuple[dict, dict]:
    """Initial ``(params, state)`` of ``model`` as float64/int32 NumPy arrays (host).

    The same draws as ``Sequential``/``Network`` with this seed; cast and move them
    with your library (``jnp.asarray(p, dtype=...)``).
    """
    return model.init(make_rng(seed))


def _namespace(
    where: str, params: Params, X: Array, *, y: Array = None, **trees: Params | None
) -> Any:
    """The namespace of the inputs, once all are checked to be of one backend and device."""
    if not isinstance(params, dict) or not params:
        raise InputError(f"params must be a non-empty dict of arrays, got {params!r:.80}")
    named: list[tuple[str, Any]] = [("X", X)]
    if y is not None:
        named.append(("y", y))
    named.extend((f"params[{key!r}]", value) for key, value in params.items())
    for tree_name, tree in trees.items():
        named.extend((f"{tree_name}[{key!r}]", value) for key, value in (tree or {}).items())
    check_one_backend(named, f"anynet.functional.{where}")
    return namespace_of(X, *params.values())


def _check_labels(head: Head, y: Array, X: Array, xp: Any) -> None:
    """Labels as ``fit`` checks them, where their values can be read: not traced, and not
    inside a trace (under ``jax.jit`` even a closed-over array's operations are traced)."""
    if is_traced(y) or is_traced(X) or is_traced(xp.reshape(y, (-1,))[:1]):
        return
    check_target_values(y, head, X.shape[0], "y", "outputs")


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
) -> Array:
    """Output activations ``(n_samples, n_outputs)`` of ``X (n_samples, n_features)``.

    Always returns the outputs array alone, whether or not ``state`` is given. In
    evaluation mode, ``batch_size`` rows go through the model at a time (same results,
    memory bounded by the batch). A training-mode pass (``train=True``: dropout active,
    batch norm on batch statistics) of a model with layer state changes that state:
    :func:`apply_with_state` returns it, and ``apply`` refuses such a pass rather than
    drop it.
    """
    if train and model.has_state:
        raise InputError(
            "train=True changes this model's layer state "
            f"{list(model.state_keys)}, which apply does not return: use "
            "anynet.functional.apply_with_state (it returns (outputs, new_state)), or "
            "train=False"
        )
    return _apply(model, params, X, state, train, batch_size, "apply")[0]


def apply_with_state(
    model: Model,
    params: Params,
    X: Array,
    *,
    state: Params | None = None,
    train: bool = False,
    batch_size: int | None = None,
) -> tuple[Array, Params]:
    """``(outputs, new_state)``: :func:`apply`'s outputs and the layer state after the pass.

    Always a pair: ``new_state`` holds ``state``'s values in evaluation mode, the updated
    state with ``train=True`` (batch norm's running statistics, dropout's random
    stream), and ``{}`` for a model without layer state.
    """
    return _apply(model, params, X, state, train, batch_size, "apply_with_state")


def _apply(
    model: Model, params: Params, X: Array, state: Params | None, train: bool,
    batch_size: int | None, where: str,
) -> tuple[Array, Params]:  # fmt: skip
    xp = _namespace(where, params, X, state=state)
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
            model.logits(params, own_state, X[i : min(i + batch_size, n), ...], xp=xp)
            for i in range(0, n, batch_size)
        ]
        z, new_state = xp.concat(parts, axis=0), own_state
    return model.head.output(z, xp=xp), new_state


def _value_and_grads(
    model: Model, head: Head, params: Params, state: Params, X: Array, y: Array, train: bool,
    xp: Any, w: Array | None = None,
) -> tuple[Array, Params, Params]:  # fmt: skip
    """Loss, gradients and new state for ``y`` as ``fit`` takes it (encoded traceably);
    ``w``: sample weights (the weighted mean loss)."""
    z, caches, new_state = model.forward(params, state, X, xp=xp, train=train)
    value, dz = head.loss_and_delta(z, head.targets(y, z, xp=xp), xp=xp, w=w)
    return value, model.backward(params, caches, dz, xp=xp), new_state


def _head(model: Model, loss: str | Loss | None) -> Head:
    """The model's head, or one with the same output activation and another loss."""
    if loss is None:
        return model.head
    head = model.head
    return make_head(head.activation, loss, head.n_outputs)


def value_and_grad(
    model: Model,
    params: Params,
    X: Array,
    y: Array,
    *,
    state: Params | None = None,
    train: bool = False,
    loss: str | Loss | None = None,
    sample_weight: Array | None = None,
) -> Any:
    """Mean loss (0-d array) and its gradients (hand-written backprop, ``params``' keys).

    Parameters
    ----------
    model, params
        ``net.model`` and parameters (arrays of one backend and device).
    X : array, shape (n_samples, n_features)
    y : array
        As ``fit`` takes it: 0/1 labels, integer classes or one-hot rows, values; of
        ``X``'s backend and device. Checked as ``fit`` checks them where its values can
        be read (not under ``jax.jit``).
    state : dict of arrays, optional
        Layer state; required for models that have some.
    train : bool
        Training mode (dropout, batch statistics).
    loss : str or anynet.losses.Loss, optional
        Another loss than the model's: a registered name (``"mse"``, or one registered
        with :func:`anynet.register_loss`) or a :class:`~anynet.losses.Loss` object (its
        ``value`` and ``gradient``, or ``fused``, give the loss and ``dL/dz``). It must
        fit the model's output activation (a loss that declares a head needs its
        activation); the labels are checked against it.
    sample_weight : array, shape (n_samples,), optional
        Of the parameters' dtype and device (unchecked): the weighted mean loss, as
        ``fit(sample_weight=...)``.

    Returns
    -------
    (loss, grads), or (loss, grads, new_state) when ``state`` is given.
    """
    head = _head(model, loss)
    xp = _namespace("value_and_grad", params, X, y=y, state=state)
    _check_labels(head, y, X, xp)
    value, grads, new_state = _value_and_grads(
        model, head, params, _state(model, state), X, y, train, xp, sample_weight
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
        As ``fit`` takes it, of ``X``'s backend and device; checked as ``fit`` checks it
        where its values can be read (not under ``jax.jit``).
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
    xp = _namespace("train_step", params, X, y=y, state=state, opt_state=opt_state)
    _check_labels(model.head, y, X, xp)
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
