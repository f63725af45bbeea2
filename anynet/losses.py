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

``axis`` is the feature axis (``-1`` for rows-are-samples data, as the models use).

Each loss is a registered :class:`Loss` object; a new one subclasses it, declares
the head it belongs to (``"binary"``, ``"multiclass"``, ``"regression"`` or None for
any), and is registered with :func:`anynet.register_loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from array_api_compat import array_namespace

from .backend import to_numpy
from .errors import InputError
from .layers.activation import Sigmoid, Softmax
from .registry import losses as loss_registry
from .registry import register_loss

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanSquaredError",
    "binary_crossentropy",
    "binary_crossentropy_from_logits",
    "categorical_crossentropy",
    "categorical_crossentropy_from_logits",
    "get_loss",
    "logsumexp",
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


def _sigmoid_bce(z: Array, t: Array, xp: Any) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of binary cross-entropy on a sigmoid output, from the logits.

    The sigmoid inside the gradient is ``0.5 * tanh(z / 2) + 0.5``: one transcendental,
    no overflow, and an absolute error of an ulp, which is what ``p - t`` needs.
    """
    n = math.prod(z.shape)
    # log(1 + exp(z)) - t z, as max(z, 0) + log1p(exp(-|z|)) - t z: no overflow, and
    # on NumPy three times faster than logaddexp
    value = xp.sum(xp.maximum(z, 0.0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))) / n
    p = 0.5 * xp.tanh(0.5 * z) + 0.5
    return value, (p - t) / n


def _softmax_cce(z: Array, t: Array, xp: Any) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of categorical cross-entropy on a softmax output, from the logits."""
    m = _n_samples(z, -1)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=-1, keepdims=True)
    # sum_k t_k (log total - shifted_k): rows of t sum to one (checked on input)
    value = xp.sum(t * (xp.log(total) - shifted)) / m
    return value, (e / total - t) / m


@dataclass(frozen=True)
class Loss:
    """Base class of losses: a mean over samples of the network's outputs ``p`` and targets ``t``.

    ``p`` and ``t`` are ``(n_samples, n_outputs)`` floats (targets already encoded by
    the head: one-hot rows for multi-class). Subclasses implement :meth:`value` and
    :meth:`gradient`; :meth:`fused` may give a stable form from the logits for one
    output activation.

    Attributes
    ----------
    head : {"binary", "multiclass", "regression"} or None
        The output head this loss belongs to; None fits any.
    """

    head: ClassVar[str | None] = None

    @property
    def name(self) -> str:
        """The registered name, or the class name if it is not registered."""
        return loss_registry.lookup_name(self) or type(self).__name__

    def value(self, p: Array, t: Array, *, xp: Any) -> Array:
        """Mean loss (0-d array)."""
        raise NotImplementedError

    def gradient(self, p: Array, t: Array, *, xp: Any) -> Array:
        """``dL/dp``, shape of ``p``."""
        raise NotImplementedError

    def fused(self, activation: Any, z: Array, t: Array, *, xp: Any) -> tuple[Array, Array] | None:
        """``(value, dL/dz)`` from the logits ``z`` when this loss has a fused form for
        ``activation``; None otherwise."""
        return None

    def check_targets(self, t: Array, *, xp: Any, name: str) -> None:
        """Refuse targets this loss cannot take (after the head's encoding)."""

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


@dataclass(frozen=True)
class BinaryCrossentropy(Loss):
    """``-mean(t log p + (1 - t) log(1 - p))`` over all elements; 0/1 targets.

    Fused with a sigmoid output: computed from the logits.
    """

    head: ClassVar[str | None] = "binary"

    def value(self, p: Array, t: Array, *, xp: Any) -> Array:
        return binary_crossentropy(p, t, xp=xp)

    def gradient(self, p: Array, t: Array, *, xp: Any) -> Array:
        return (p - t) / (p * (1 - p) * _n_elements(p))

    def fused(self, activation: Any, z: Array, t: Array, *, xp: Any) -> tuple[Array, Array] | None:
        return _sigmoid_bce(z, t, xp) if isinstance(activation, Sigmoid) else None

    def check_targets(self, t: Array, *, xp: Any, name: str) -> None:
        ok = xp.all(xp.logical_or(t == 0, t == 1))
        if not bool(ok):
            values = np.unique(to_numpy(t))
            raise InputError(
                f"{name} must hold 0/1 labels for binary_crossentropy, got values "
                f"{values[:10].tolist()}{' ...' if values.size > 10 else ''}"
            )


@dataclass(frozen=True)
class CategoricalCrossentropy(Loss):
    """``-mean over samples of sum_k t_k log p_k``; one-hot (or probability) rows.

    Fused with a softmax output: computed from the logits.
    """

    head: ClassVar[str | None] = "multiclass"

    def value(self, p: Array, t: Array, *, xp: Any) -> Array:
        return categorical_crossentropy(p, t, xp=xp)

    def gradient(self, p: Array, t: Array, *, xp: Any) -> Array:
        return -t / (p * _n_samples(p, -1))

    def fused(self, activation: Any, z: Array, t: Array, *, xp: Any) -> tuple[Array, Array] | None:
        return _softmax_cce(z, t, xp) if isinstance(activation, Softmax) else None

    def check_targets(self, t: Array, *, xp: Any, name: str) -> None:
        if not xp.isdtype(t.dtype, "real floating"):
            return
        n_outputs = t.shape[1]
        sums = xp.sum(t, axis=1)
        ok = xp.logical_and(xp.all(t >= 0), xp.all(xp.abs(sums - 1) <= 1e-6 * n_outputs))
        if not bool(ok):
            row = int(np.argmax(np.abs(to_numpy(sums) - 1)))
            raise InputError(
                f"{name} rows must be one-hot (or probabilities summing to one) for "
                f"categorical_crossentropy, got row {row} = {to_numpy(t)[row].tolist()}"
            )


@dataclass(frozen=True)
class MeanSquaredError(Loss):
    """``mean((p - t)**2)`` over all elements; fits any head."""

    def value(self, p: Array, t: Array, *, xp: Any) -> Array:
        return mse(p, t, xp=xp)

    def gradient(self, p: Array, t: Array, *, xp: Any) -> Array:
        return (2.0 / _n_elements(p)) * (p - t)


loss_registry.base = Loss
register_loss("binary_crossentropy", BinaryCrossentropy)
register_loss("categorical_crossentropy", CategoricalCrossentropy)
register_loss("mse", MeanSquaredError)


def get_loss(loss: str | Loss, argument: str = "loss") -> Loss:
    """A loss from a registered name or a :class:`Loss` object."""
    if isinstance(loss, Loss):
        return loss
    return loss_registry.get(loss, argument)()
