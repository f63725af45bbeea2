"""Losses: value and gradient, written once against the array API.

Definitions (``n`` samples, ``k`` outputs, targets ``t`` shaped like the outputs):

* ``binary_crossentropy``: ``-mean(t * log(p) + (1 - t) * log(1 - p))`` over all
  ``n * k`` elements (the tutorial's cost for ``k = 1``).
* ``categorical_crossentropy``: ``-mean over samples of sum_k t_k * log(p_k)``;
  with one-hot ``t`` that is ``-mean(log p[label])``.
* ``mse``: ``mean((p - t)**2)`` over all ``n * k`` elements.
* ``poisson``: half the Poisson deviance, ``mean(t * log(t / p) - t + p)`` over all
  ``n * k`` elements (``0 * log 0 = 0``), for counts ``t >= 0`` and a positive output
  ``p = exp(z)`` (the log link; ``exp`` is its default output activation). For one
  output it is scikit-learn's ``MLPRegressor(loss="poisson")`` loss.

Sample weights ``w (n,)`` (``sample_weight`` of :meth:`anynet.Network.fit`) turn each
mean over samples into the weighted mean ``sum_i w_i l_i / sum_i w_i``, where ``l_i`` is
sample ``i``'s loss (its mean over the ``k`` outputs for the elementwise losses, the sum
over classes for categorical cross-entropy), as scikit-learn's ``np.average(...,
weights=sample_weight)`` does; with all weights 1 it is the unweighted mean. A batch whose
weights are all 0 has loss 0 and gradient 0.

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
from .layers.activation import Exp, Sigmoid, Softmax
from .registry import losses as loss_registry
from .registry import register_loss

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanSquaredError",
    "Poisson",
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


def _weights(w: Array, per_sample: int, xp: Any) -> tuple[Array, Array]:
    """Sample weights ``w (n,)`` as a column ``(n, 1)`` and the divisor of a weighted
    mean, ``per_sample * sum(w)`` (1 in place of a zero sum: a batch of zero weights has
    loss 0 and gradient 0)."""
    total = xp.sum(w)
    total = xp.where(total > 0, total, xp.ones_like(total))
    return xp.reshape(w, (w.shape[0], 1)), total * per_sample


def _mean(elements: Array, w: Array | None, per_sample: int, n: int, xp: Any) -> Array:
    """``sum(elements) / n``, or with weights ``sum(w_i * elements_i) / (per_sample * sum(w))``."""
    if w is None:
        return xp.sum(elements) / n
    column, divisor = _weights(w, per_sample, xp)
    return xp.sum(column * elements) / divisor


def _scaled(gradient: Array, w: Array | None, per_sample: int, n: int, xp: Any) -> Array:
    """``gradient / n``, or with weights ``w_i * gradient_i / (per_sample * sum(w))``."""
    if w is None:
        return gradient / n
    column, divisor = _weights(w, per_sample, xp)
    return column * gradient / divisor


def _sigmoid_bce(z: Array, t: Array, xp: Any, w: Array | None = None) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of binary cross-entropy on a sigmoid output, from the logits.

    The sigmoid inside the gradient is ``0.5 * tanh(z / 2) + 0.5``: one transcendental,
    no overflow, and an absolute error of an ulp, which is what ``p - t`` needs.
    """
    n = math.prod(z.shape)
    # log(1 + exp(z)) - t z, as max(z, 0) + log1p(exp(-|z|)) - t z: no overflow, and
    # on NumPy three times faster than logaddexp
    elements = xp.maximum(z, 0.0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))
    p = 0.5 * xp.tanh(0.5 * z) + 0.5
    k = z.shape[-1]
    return _mean(elements, w, k, n, xp), _scaled(p - t, w, k, n, xp)


def _softmax_cce(z: Array, t: Array, xp: Any, w: Array | None = None) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of categorical cross-entropy on a softmax output, from the logits."""
    m = _n_samples(z, -1)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=-1, keepdims=True)
    # sum_k t_k (log total - shifted_k): rows of t sum to one (checked on input)
    elements = t * (xp.log(total) - shifted)
    return _mean(elements, w, 1, m, xp), _scaled(e / total - t, w, 1, m, xp)


def _xlogx(t: Array, xp: Any) -> Array:
    """``t * log(t)`` with ``0 * log 0 = 0`` (``t >= 0``), no NaN on the way."""
    return t * xp.log(xp.where(t > 0, t, xp.ones_like(t)))


def _exp_poisson(z: Array, t: Array, xp: Any, w: Array | None = None) -> tuple[Array, Array]:
    """Value and ``dL/dz`` of half the Poisson deviance on an ``exp`` output, from the logits.

    ``t log(t / e^z) - t + e^z = t log t - t z - t + e^z`` per element, ``dL/dz = (e^z - t) / N``:
    no division by the output, and no log of it.
    """
    n = math.prod(z.shape)
    e = xp.exp(z)
    elements = _xlogx(t, xp) - t * z - t + e
    k = z.shape[-1]
    return _mean(elements, w, k, n, xp), _scaled(e - t, w, k, n, xp)


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
    #: Registered name of the output activation this loss gets by default (when the
    #: layers end without one); None: its head's (sigmoid, softmax, identity).
    default_activation: ClassVar[str | None] = None
    #: Whether :meth:`value`, :meth:`gradient` and :meth:`fused` take sample weights
    #: (``w=``); a loss without them refuses ``sample_weight``.
    takes_weights: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """The registered name, or the class name if it is not registered."""
        return loss_registry.lookup_name(self) or type(self).__name__

    def value(self, p: Array, t: Array, *, xp: Any) -> Array:
        """Mean loss (0-d array).

        A loss with :attr:`takes_weights` also takes ``w``, sample weights ``(n,)`` or
        None, and returns the weighted mean (see the module's docstring); so do
        :meth:`gradient` and :meth:`fused`.
        """
        raise NotImplementedError

    def gradient(self, p: Array, t: Array, *, xp: Any) -> Array:
        """``dL/dp``, shape of ``p``."""
        raise NotImplementedError

    def fused(
        self, activation: Any, z: Array, t: Array, *, xp: Any, w: Array | None = None
    ) -> tuple[Array, Array] | None:
        """``(value, dL/dz)`` from the logits ``z`` when this loss has a fused form for
        ``activation``; None otherwise. ``w``: sample weights, only ever given to a loss
        with :attr:`takes_weights`."""
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
    takes_weights: ClassVar[bool] = True

    def value(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return binary_crossentropy(p, t, xp=xp)
        elements = -(t * xp.log(p) + (1 - t) * xp.log(1 - p))
        return _mean(elements, w, p.shape[-1], _n_elements(p), xp)

    def gradient(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return (p - t) / (p * (1 - p) * _n_elements(p))
        return _scaled((p - t) / (p * (1 - p)), w, p.shape[-1], _n_elements(p), xp)

    def fused(
        self, activation: Any, z: Array, t: Array, *, xp: Any, w: Array | None = None
    ) -> tuple[Array, Array] | None:
        return _sigmoid_bce(z, t, xp, w) if isinstance(activation, Sigmoid) else None

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
    takes_weights: ClassVar[bool] = True

    def value(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return categorical_crossentropy(p, t, xp=xp)
        return _mean(-t * xp.log(p), w, 1, _n_samples(p, -1), xp)

    def gradient(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return -t / (p * _n_samples(p, -1))
        return _scaled(-t / p, w, 1, _n_samples(p, -1), xp)

    def fused(
        self, activation: Any, z: Array, t: Array, *, xp: Any, w: Array | None = None
    ) -> tuple[Array, Array] | None:
        return _softmax_cce(z, t, xp, w) if isinstance(activation, Softmax) else None

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

    takes_weights: ClassVar[bool] = True

    def value(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return mse(p, t, xp=xp)
        diff = p - t
        return _mean(diff * diff, w, p.shape[-1], _n_elements(p), xp)

    def gradient(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        if w is None:
            return (2.0 / _n_elements(p)) * (p - t)
        return _scaled(2.0 * (p - t), w, p.shape[-1], _n_elements(p), xp)


@dataclass(frozen=True)
class Poisson(Loss):
    """Half the Poisson deviance, ``mean(t log(t / p) - t + p)`` over all elements.

    For counts (or rates) ``t >= 0`` and a positive output ``p``: the log link, an
    ``exp`` output activation (its default), as scikit-learn's
    ``MLPRegressor(loss="poisson")``, whose ``"half_poisson"`` loss this is (including
    the constant ``t log t - t``, so a perfect fit has loss 0). Fused with an ``exp``
    output: computed from the logits, ``dL/dz = (exp(z) - t) / N``.
    """

    head: ClassVar[str | None] = "regression"
    default_activation: ClassVar[str | None] = "exp"
    takes_weights: ClassVar[bool] = True

    def value(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        elements = _xlogx(t, xp) - t * xp.log(p) - t + p
        return _mean(elements, w, p.shape[-1], _n_elements(p), xp)

    def gradient(self, p: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        return _scaled(1 - t / p, w, p.shape[-1], _n_elements(p), xp)

    def fused(
        self, activation: Any, z: Array, t: Array, *, xp: Any, w: Array | None = None
    ) -> tuple[Array, Array] | None:
        return _exp_poisson(z, t, xp, w) if isinstance(activation, Exp) else None

    def check_targets(self, t: Array, *, xp: Any, name: str) -> None:
        if not bool(xp.all(t >= 0)):
            low = float(to_numpy(xp.min(t)))
            raise InputError(
                f"{name} must hold values >= 0 (counts) for the poisson loss, got a minimum "
                f"of {low!r}"
            )


loss_registry.base = Loss
register_loss("binary_crossentropy", BinaryCrossentropy)
register_loss("categorical_crossentropy", CategoricalCrossentropy)
register_loss("mse", MeanSquaredError)
register_loss("poisson", Poisson)


def get_loss(loss: str | Loss, argument: str = "loss") -> Loss:
    """A loss from a registered name or a :class:`Loss` object."""
    if isinstance(loss, Loss):
        return loss
    return loss_registry.get(loss, argument)()
