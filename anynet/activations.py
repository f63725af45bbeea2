"""Activation functions as value/backprop pairs, written once against the array API.

Each activation has a forward function ``f(z) -> a`` and a backward function
``f_backward(da, z, a) -> dz`` giving the gradient with respect to the
pre-activation ``z`` from the gradient with respect to the output ``a`` (both
``z`` and ``a`` are passed, so each derivative uses whichever is cheaper:
``1 - a**2`` for tanh, the sign of ``z`` for ReLU).

The layers of :mod:`anynet.layers.activation` wrap these pairs; register a new
activation there. All functions are elementwise except :func:`softmax`, which normalises along
``axis``; the elementwise ones accept ``axis`` too (and ignore it), so that every
activation has one signature. The array namespace is taken from the inputs, or passed as ``xp=``
by callers that have resolved it once already.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

__all__ = [
    "exp",
    "exp_backward",
    "identity",
    "identity_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
]

Array = Any

#: Slope of :func:`leaky_relu` for negative inputs.
LEAKY_SLOPE = 0.01


def tanh(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Hyperbolic tangent, elementwise; same shape and dtype as ``z``."""
    xp = array_namespace(z) if xp is None else xp
    return xp.tanh(z)


def tanh_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``da * (1 - a**2)``: the tutorial's derivative of tanh, from its output."""
    return da * (1 - a * a)


def sigmoid(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Logistic sigmoid ``1 / (1 + exp(-z))``, computed without overflow.

    ``exp`` only ever sees ``-|z|``, so ``z = ±1e4`` gives exactly 1 and a
    correctly rounded tiny value (or 0), never a warning or NaN.
    """
    xp = array_namespace(z) if xp is None else xp
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0, e) / (1 + e)


def sigmoid_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``da * s'(z)`` with ``s'(z) = e / (1 + e)**2``, ``e = exp(-|z|)``.

    The same value as ``a * (1 - a)``, but without its cancellation: for ``z > 17``
    ``1 - a`` is 0 in float32 and loses all relative precision in float64.
    """
    xp = array_namespace(z) if xp is None else xp
    e = xp.exp(-xp.abs(z))
    one_plus = 1 + e
    return da * (e / (one_plus * one_plus))


def relu(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``max(z, 0)`` elementwise (``maximum``, not ``where``: much faster on NumPy float32)."""
    xp = array_namespace(z) if xp is None else xp
    return xp.maximum(z, 0.0)


def relu_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``da`` where ``z > 0``, else 0 (the derivative at 0 is taken as 0, as in PyTorch)."""
    xp = array_namespace(z) if xp is None else xp
    return da * xp.astype(z > 0, da.dtype)


def leaky_relu(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``z`` for ``z > 0``, else ``0.01 * z``."""
    xp = array_namespace(z) if xp is None else xp
    return xp.maximum(z, LEAKY_SLOPE * z)


def leaky_relu_backward(
    da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None
) -> Array:
    """``da`` where ``z > 0``, else ``0.01 * da``."""
    xp = array_namespace(z) if xp is None else xp
    return xp.where(z > 0, da, LEAKY_SLOPE * da)


def identity(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``z`` unchanged (linear output, for regression)."""
    return z


def identity_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``da`` unchanged."""
    return da


def exp(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``exp(z)`` elementwise: the inverse of the log link (Poisson regression's output)."""
    xp = array_namespace(z) if xp is None else xp
    return xp.exp(z)


def exp_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """``da * exp(z)``, from the output ``a = exp(z)``."""
    return da * a


def softmax(z: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Softmax along ``axis``, shifted by the maximum so no ``exp`` overflows."""
    xp = array_namespace(z) if xp is None else xp
    e = xp.exp(z - xp.max(z, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def softmax_backward(da: Array, z: Array, a: Array, /, *, axis: int = -1, xp: Any = None) -> Array:
    """Jacobian-vector product of softmax: ``a * (da - sum(da * a, axis))``."""
    xp = array_namespace(z) if xp is None else xp
    return a * (da - xp.sum(da * a, axis=axis, keepdims=True))
