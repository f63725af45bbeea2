"""The dense layer: forward and hand-derived backward, written once against the array API.

Layout: activations are ``(features, samples)``, the tutorial's layout, in which
the layer is ``z = W a_prev + b`` with ``W`` of shape ``(n_out, n_in)`` and
``b`` of shape ``(n_out,)``. (The public API takes rows-are-samples data and
transposes once per call; see :mod:`anynet.network`.)
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

__all__ = ["dense_backward", "dense_forward"]

Array = Any


def dense_forward(w: Array, b: Array, a_prev: Array, /, *, xp: Any = None) -> Array:
    """Pre-activation ``z = w @ a_prev + b[:, None]``.

    Parameters
    ----------
    w : array, shape (n_out, n_in)
    b : array, shape (n_out,)
    a_prev : array, shape (n_in, n_samples)
        Same floating dtype as ``w``.

    Returns
    -------
    z : array, shape (n_out, n_samples)
    """
    xp = array_namespace(w, a_prev) if xp is None else xp
    return xp.matmul(w, a_prev) + b[:, None]


def dense_backward(
    dz: Array, w: Array, a_prev: Array, /, *, need_input_grad: bool = True, xp: Any = None
) -> tuple[Array, Array, Array | None]:
    """Gradients of a dense layer from ``dz = dL/dz``.

    Parameters
    ----------
    dz : array, shape (n_out, n_samples)
        Already divided by the sample count (the loss's mean is in ``dz``).
    w : array, shape (n_out, n_in)
    a_prev : array, shape (n_in, n_samples)
    need_input_grad : bool
        Skip ``da_prev`` for the first layer, whose input is the data.

    Returns
    -------
    dw : array, shape (n_out, n_in)
        ``dz @ a_prev.T``
    db : array, shape (n_out,)
        ``sum(dz, axis=1)``
    da_prev : array, shape (n_in, n_samples), or None
        ``w.T @ dz``
    """
    xp = array_namespace(dz, w) if xp is None else xp
    dw = xp.matmul(dz, a_prev.T)
    db = xp.sum(dz, axis=1)
    da_prev = xp.matmul(w.T, dz) if need_input_grad else None
    return dw, db, da_prev
