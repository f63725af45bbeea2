"""A whole network as pure functions over a params dict: forward, backprop, SGD step.

Layout: activations are ``(features, samples)`` (the tutorial's). The
:class:`~anynet.network.Network` transposes the public rows-are-samples data
once per call. Everything here is pure (nothing updated in place), so JAX can
compile a whole step and every backend runs the same lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .activations import Activation
from .layers import dense_backward, dense_forward
from .losses import Loss, loss_and_delta
from .optimizers import Optimizer

__all__ = ["Spec", "backward", "evaluate", "forward", "loss_and_gradients", "train_step"]

Array = Any
Params = dict[str, Array]

#: Feature axis of the internal (features, samples) layout.
FEATURE_AXIS = 0


@dataclass(frozen=True)
class Spec:
    """What a network computes, without its numbers: activations per layer and the loss.

    Hashable, so a compiled step can be cached per spec.
    """

    activations: tuple[Activation, ...]
    loss: Loss

    @property
    def n_layers(self) -> int:
        return len(self.activations)


@cache
def layer_keys(n_layers: int) -> tuple[tuple[int, str, str], ...]:
    """``((1, "W1", "b1"), (2, "W2", "b2"), ...)``: built once, not per step."""
    return tuple((layer, f"W{layer}", f"b{layer}") for layer in range(1, n_layers + 1))


def forward(
    params: Params, x: Array, spec: Spec, xp: Any, *, logits_only: bool = False
) -> tuple[Array, list]:
    """Forward pass.

    Parameters
    ----------
    params : dict
        ``W1, b1, ..., WL, bL`` (``W_l``: ``(n_l, n_{l-1})``, ``b_l``: ``(n_l,)``).
    x : array, shape (n_0, n_samples)
    spec : Spec
    xp : namespace
        Resolved once by the caller from its inputs.
    logits_only : bool
        Stop at the output layer's pre-activation (the loss takes it from there).

    Returns
    -------
    a : array, shape (n_L, n_samples)
        Output activations (the logits with ``logits_only``).
    cache : list of (z, a)
        ``cache[0] = (None, x)``, then each layer's pre-activation and activation
        (``a`` None for the output layer with ``logits_only``).
    """
    a = x
    cache: list = [(None, x)]
    last = spec.n_layers
    for (layer, w_key, b_key), activation in zip(layer_keys(last), spec.activations, strict=True):
        z = dense_forward(params[w_key], params[b_key], a, xp=xp)
        if logits_only and layer == last:
            cache.append((z, None))
            return z, cache
        a = activation.forward(z, axis=FEATURE_AXIS, xp=xp)
        cache.append((z, a))
    return a, cache


def backward(params: Params, cache: list, dz: Array, spec: Spec, xp: Any) -> Params:
    """Backpropagation, layer by layer, from ``dz = dL/dz_L`` of the output layer.

    Returns gradients with the same keys and shapes as ``params`` (in reverse layer
    order: callers look them up by key).
    """
    grads: Params = {}
    for layer, w_key, b_key in reversed(layer_keys(spec.n_layers)):
        a_prev = cache[layer - 1][1]
        dw, db, da_prev = dense_backward(
            dz, params[w_key], a_prev, need_input_grad=layer > 1, xp=xp
        )
        grads[w_key] = dw
        grads[b_key] = db
        if layer > 1:
            z_prev, a_prev = cache[layer - 1]
            dz = spec.activations[layer - 2].backward(
                da_prev, z_prev, a_prev, axis=FEATURE_AXIS, xp=xp
            )
    return grads  # output layer first; callers index by key


def loss_and_gradients(
    params: Params, x: Array, t: Array, spec: Spec, xp: Any
) -> tuple[Array, Params]:
    """Mean loss (0-d array) and its gradients, for inputs ``x`` and targets ``t``.

    ``t`` has the output's shape ``(n_L, n_samples)`` and float dtype.
    """
    z, cache = forward(params, x, spec, xp, logits_only=True)
    value, dz = loss_and_delta(spec.loss, spec.activations[-1], z, t, axis=FEATURE_AXIS, xp=xp)
    return value, backward(params, cache, dz, spec, xp)


def train_step(
    params: Params,
    state: dict[str, Array],
    x: Array,
    t: Array,
    lr: Array,
    spec: Spec,
    optimizer: Optimizer,
    xp: Any,
) -> tuple[Params, dict[str, Array], Array]:
    """One optimizer step on a batch: returns new params, new state and the loss.

    The loss is that of ``params`` before the update, as in the tutorial's loop.
    ``x`` is ``(n_0, batch)`` and ``t`` is ``(n_L, batch)``: the internal layout.
    """
    value, grads = loss_and_gradients(params, x, t, spec, xp)
    new_params, new_state = optimizer.update(params, grads, state, lr, xp=xp)
    return new_params, new_state, value


def evaluate(params: Params, x: Array, t: Array, spec: Spec, xp: Any) -> tuple[Array, Array]:
    """Mean loss and score (0-d arrays) of ``params`` on ``x (n_0, n)``, targets ``t (n_L, n)``.

    The score is the accuracy for sigmoid/softmax outputs (the fraction of samples,
    or of labels for several sigmoid outputs, predicted right) and the coefficient
    of determination R² otherwise (averaged over outputs, as scikit-learn; a
    constant target scores 1 when predicted exactly, else 0).
    """
    a, cache = forward(params, x, spec, xp)
    loss, head = spec.loss, spec.activations[-1]
    if loss.head == head.name:
        value = loss.from_logits(cache[-1][0], t, axis=FEATURE_AXIS, xp=xp)
    else:
        value = loss.value(a, t, axis=FEATURE_AXIS, xp=xp)
    if head.name == "softmax":
        hits = xp.argmax(a, axis=0) == xp.argmax(t, axis=0)
        score = xp.mean(xp.astype(hits, a.dtype))
    elif head.name == "sigmoid":
        score = xp.mean(xp.astype(xp.astype(a > 0.5, a.dtype) == t, a.dtype))
    else:
        residual = xp.sum((t - a) * (t - a), axis=1)
        centred = t - xp.mean(t, axis=1, keepdims=True)
        total = xp.sum(centred * centred, axis=1)
        varies = total > 0
        ratio = residual / xp.where(varies, total, xp.ones_like(total))
        exact = xp.astype(residual == 0, a.dtype)
        score = xp.mean(xp.where(varies, 1 - ratio, exact))
    return value, score
