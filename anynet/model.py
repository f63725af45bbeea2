"""A whole network as pure functions over a params dict: forward, backprop, SGD step.

Layout: activations are ``(features, samples)`` (the tutorial's). The
:class:`~anynet.network.Network` transposes the public rows-are-samples data
once per call. Everything here is pure (nothing updated in place), so JAX can
compile a whole step and every backend runs the same lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .activations import Activation
from .layers import dense_backward, dense_forward
from .losses import Loss, loss_and_delta

__all__ = ["Spec", "backward", "forward", "loss_and_gradients", "sgd_step"]

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


def forward(params: Params, x: Array, spec: Spec, xp: Any) -> tuple[Array, list]:
    """Forward pass.

    Parameters
    ----------
    params : dict
        ``W1, b1, ..., WL, bL`` (``W_l``: ``(n_l, n_{l-1})``, ``b_l``: ``(n_l,)``).
    x : array, shape (n_0, n_samples)
    spec : Spec
    xp : namespace
        Resolved once by the caller from its inputs.

    Returns
    -------
    a : array, shape (n_L, n_samples)
        Output activations.
    cache : list of (z, a)
        ``cache[0] = (None, x)``, then each layer's pre-activation and activation.
    """
    a = x
    cache: list = [(None, x)]
    for layer, activation in enumerate(spec.activations, start=1):
        z = dense_forward(params[f"W{layer}"], params[f"b{layer}"], a, xp=xp)
        a = activation.forward(z, axis=FEATURE_AXIS, xp=xp)
        cache.append((z, a))
    return a, cache


def backward(params: Params, cache: list, dz: Array, spec: Spec, xp: Any) -> Params:
    """Backpropagation, layer by layer, from ``dz = dL/dz_L`` of the output layer.

    Returns gradients with the same keys and shapes as ``params``.
    """
    grads: Params = {}
    for layer in range(spec.n_layers, 0, -1):
        a_prev = cache[layer - 1][1]
        dw, db, da_prev = dense_backward(
            dz, params[f"W{layer}"], a_prev, need_input_grad=layer > 1, xp=xp
        )
        grads[f"W{layer}"] = dw
        grads[f"b{layer}"] = db
        if layer > 1:
            z_prev, a_prev = cache[layer - 1]
            dz = spec.activations[layer - 2].backward(
                da_prev, z_prev, a_prev, axis=FEATURE_AXIS, xp=xp
            )
    return {key: grads[key] for key in params}


def loss_and_gradients(
    params: Params, x: Array, t: Array, spec: Spec, xp: Any
) -> tuple[Array, Params]:
    """Mean loss (0-d array) and its gradients, for inputs ``x`` and targets ``t``.

    ``t`` has the output's shape ``(n_L, n_samples)`` and float dtype.
    """
    a, cache = forward(params, x, spec, xp)
    z = cache[-1][0]
    value, dz = loss_and_delta(spec.loss, spec.activations[-1], z, a, t, axis=FEATURE_AXIS, xp=xp)
    return value, backward(params, cache, dz, spec, xp)


def sgd_step(
    params: Params, x: Array, t: Array, lr: Array, spec: Spec, xp: Any
) -> tuple[Params, Array]:
    """One step of gradient descent (the tutorial's update): returns new params and the loss.

    The loss is that of ``params`` before the update, as in the tutorial's loop.
    """
    value, grads = loss_and_gradients(params, x, t, spec, xp)
    return {key: params[key] - lr * grads[key] for key in params}, value
