"""Losses: value and gradient, written once against the array API.

Definitions (``n`` samples, ``k`` outputs, targets ``t`` shaped like the outputs):

* ``binary_crossentropy``: ``-mean(t * log(p) + (1 - t) * log(1 - p))`` over all
  ``n * k`` elements (the tutorial's cost for ``k = 1``).
* ``categorical_crossentropy``: ``-mean over samples of sum_k t_k * log(p_k)``;
  with one-hot ``t`` that is ``-mean(log p[label])``.
* ``mse``: ``mean((p - t)**2)`` over all ``n * k`` elements.

A sigmoid output with binary cross-entropy and a softmax output with
categorical cross-entropy are computed from the logits ``z`` (the *fused* form):
the value uses ``log1p(exp(-|z|))`` and log-sum-exp, and the gradient with
respect to ``z`` is the exact ``(p - t) / N``, so a saturated unit (``|z|`` of
1e4) still gives a finite loss and a correct gradient.

``axis`` is the feature axis: ``-1`` for the public rows-are-samples layout,
``0`` for the network's internal (features, samples) layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from array_api_compat import array_namespace

from .activations import Activation
from .errors import InputError

__all__ = [
    "LOSSES",
    "Loss",
    "binary_crossentropy",
    "binary_crossentropy_from_logits",
    "categorical_crossentropy",
    "categorical_crossentropy_from_logits",
    "get_loss",
    "logsumexp",
    "loss_and_delta",
    "mse",
]

Array = Any


def _n_elements(x: Array) -> int:
    return math.prod(x.shape)


def _n_samples(x: Array, axis: int) -> int:
    total = 1
    for length in x.shape:
        total *= length
    return total // x.shape[axis]


def logsumexp(z: Array, /, *, axis: int = -1, keepdims: bool = False, xp: Any = None) -> Array:
    """``log(sum(exp(z), axis))`` shifted by the maximum, finite for any finite ``z``."""
    xp = array_namespace(z) if xp is None else xp
    peak = xp.max(z, axis=axis, keepdims=True)
    out = peak + xp.log(xp.sum(xp.exp(z - peak), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


def binary_crossentropy(p: Array, t: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Binary cross-entropy of probabilities ``p`` against 0/1 targets ``t`` (0-d array).

    Infinite where ``p`` is exactly 0 or 1 on the wrong side; prefer
    :func:`binary_crossentropy_from_logits`.
    """
    xp = array_namespace(p, t) if xp is None else xp
    return -xp.sum(t * xp.log(p) + (1 - t) * xp.log(1 - p)) / _n_elements(p)


def binary_crossentropy_from_logits(
    z: Array, t: Array, /, *, axis: int = -1, xp: Any = None
) -> Array:
    """Binary cross-entropy of ``sigmoid(z)`` against ``t``, computed stably from ``z``.

    Uses ``-t log s(z) - (1-t) log(1-s(z)) = max(z, 0) - t z + log1p(exp(-|z|))``:
    no overflow for any finite ``z``.
    """
    xp = array_namespace(z, t) if xp is None else xp
    return xp.sum(xp.maximum(z, 0.0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))) / _n_elements(z)


def categorical_crossentropy(p: Array, t: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Categorical cross-entropy of probabilities ``p`` against one-hot (or soft) ``t``."""
    xp = array_namespace(p, t) if xp is None else xp
    return -xp.sum(t * xp.log(p)) / _n_samples(p, axis)


def categorical_crossentropy_from_logits(
    z: Array, t: Array, /, *, axis: int = -1, xp: Any = None
) -> Array:
    """Categorical cross-entropy of ``softmax(z, axis)`` against ``t``, stably from ``z``."""
    xp = array_namespace(z, t) if xp is None else xp
    log_p = z - logsumexp(z, axis=axis, keepdims=True, xp=xp)
    return -xp.sum(t * log_p) / _n_samples(z, axis)


def mse(p: Array, t: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Mean squared error over all elements (0-d array)."""
    xp = array_namespace(p, t) if xp is None else xp
    diff = p - t
    return xp.sum(diff * diff) / _n_elements(p)


def _sigmoid_bce(z: Array, t: Array, axis: int, xp: Any) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of binary cross-entropy on a sigmoid output, from the logits.

    The sigmoid inside the gradient is ``0.5 * tanh(z / 2) + 0.5``: one transcendental,
    no overflow, and an absolute error of an ulp, which is what ``p - t`` needs.
    """
    n = _n_elements(z)
    # log(1 + exp(z)) - t z, as max(z, 0) + log1p(exp(-|z|)) - t z: no overflow, and
    # on NumPy three times faster than logaddexp
    value = xp.sum(xp.maximum(z, 0.0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))) / n
    p = 0.5 * xp.tanh(0.5 * z) + 0.5
    return value, (p - t) / n


def _softmax_cce(z: Array, t: Array, axis: int, xp: Any) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of categorical cross-entropy on a softmax output, from the logits."""
    m = _n_samples(z, axis)
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=axis, keepdims=True)
    # sum_k t_k (log total - shifted_k): rows of t sum to one (checked on input)
    value = xp.sum(t * (xp.log(total) - shifted)) / m
    return value, (e / total - t) / m


def _bce_gradient(p: Array, t: Array, axis: int, xp: Any) -> Array:
    n = _n_samples(p, axis) * p.shape[axis]
    return (p - t) / (p * (1 - p) * n)


def _cce_gradient(p: Array, t: Array, axis: int, xp: Any) -> Array:
    return -t / (p * _n_samples(p, axis))


def _mse_gradient(p: Array, t: Array, axis: int, xp: Any) -> Array:
    n = _n_samples(p, axis) * p.shape[axis]
    return (2.0 / n) * (p - t)


@dataclass(frozen=True)
class Loss:
    """A named loss.

    Attributes
    ----------
    value : callable
        ``value(p, t, axis=, xp=) -> 0-d array`` from the output activations.
    gradient : callable
        ``gradient(p, t, axis, xp) -> dL/dp``, same shape as ``p``.
    head : str or None
        The output activation this loss is fused with (computed from logits),
        and requires; None when any head works.
    from_logits : callable or None
        ``from_logits(z, t, axis=, xp=) -> 0-d array``, the fused value.
    fused : callable or None
        ``fused(z, t, axis, xp) -> (value, dL/dz)`` from the logits, for the head.
    """

    name: str
    value: Callable[..., Array]
    gradient: Callable[..., Array]
    head: str | None = None
    from_logits: Callable[..., Array] | None = None
    fused: Callable[..., tuple[Array, Array]] | None = None

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


LOSSES: dict[str, Loss] = {
    "binary_crossentropy": Loss(
        "binary_crossentropy",
        binary_crossentropy,
        _bce_gradient,
        head="sigmoid",
        from_logits=binary_crossentropy_from_logits,
        fused=_sigmoid_bce,
    ),
    "categorical_crossentropy": Loss(
        "categorical_crossentropy",
        categorical_crossentropy,
        _cce_gradient,
        head="softmax",
        from_logits=categorical_crossentropy_from_logits,
        fused=_softmax_cce,
    ),
    "mse": Loss("mse", mse, _mse_gradient),
}


def get_loss(name: str, argument: str = "loss") -> Loss:
    """Look up a loss by name, with an error listing the valid names."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise InputError(f"{argument} must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]


def loss_and_delta(
    loss: Loss, head: Activation, z: Array, t: Array, *, axis: int, xp: Any
) -> tuple[Array, Array]:
    """Loss value and its gradient with respect to the output logits ``z``.

    Parameters
    ----------
    loss, head : Loss, Activation
        The loss and the output layer's activation.
    z, t : array
        Logits and targets, of one shape and float dtype.
    axis : int
        Feature axis.

    Returns
    -------
    value : 0-d array
    dz : array, shape of ``z``
    """
    if loss.head == head.name:
        return loss.fused(z, t, axis, xp)
    a = head.forward(z, axis=axis, xp=xp)
    value = loss.value(a, t, axis=axis, xp=xp)
    da = loss.gradient(a, t, axis, xp)
    return value, head.backward(da, z, a, axis=axis, xp=xp)
