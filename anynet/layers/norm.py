"""Normalisation layers: LayerNorm (per row) and BatchNorm (per feature, over the batch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._validation import check_fraction, check_positive_float
from .base import HostParams, Layer, Params, ParamShapes, StateShapes

__all__ = ["BatchNorm", "LayerNorm"]

Array = Any


def _normalise(x: Array, mean: Array, var: Array, eps: float, xp: Any) -> tuple[Array, Array]:
    inv_std = 1 / xp.sqrt(var + eps)
    return (x - mean) * inv_std, inv_std


def _normalise_backward(dxhat: Array, xhat: Array, inv_std: Array, axis: int, xp: Any) -> Array:
    """``dL/dx`` of ``xhat = (x - mean(x)) / sqrt(var(x) + eps)`` along ``axis``."""
    n = xhat.shape[axis]
    total = xp.sum(dxhat, axis=axis, keepdims=True)
    projected = xp.sum(dxhat * xhat, axis=axis, keepdims=True)
    return (inv_std / n) * (n * dxhat - total - xhat * projected)


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Normalise each row over its features, then scale and shift: ``gamma * xhat + beta``.

    ``xhat = (x - mean) / sqrt(var + eps)`` with the (biased) mean and variance of the
    row. Parameters ``gamma`` (ones) and ``beta`` (zeros), shape ``(n_features,)``.
    """

    eps: float = 1e-5

    param_names: ClassVar[tuple[str, ...]] = ("gamma", "beta")

    def __post_init__(self) -> None:
        check_positive_float(self.eps, "eps")

    def init(self, rng: np.random.Generator, n_in: int) -> tuple[HostParams, int]:
        return {"gamma": np.ones(n_in), "beta": np.zeros(n_in)}, n_in

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        return {"gamma": (n_in,), "beta": (n_in,)}, {}

    def forward(self, params: Params, x: Array, *, xp: Any, train: bool) -> tuple[Array, Any]:
        mean = xp.mean(x, axis=-1, keepdims=True)
        centred = x - mean
        var = xp.mean(centred * centred, axis=-1, keepdims=True)
        xhat, inv_std = _normalise(x, mean, var, self.eps, xp)
        return params["gamma"] * xhat + params["beta"], (xhat, inv_std)

    def backward(self, params: Params, cache: Any, dy: Array, *, xp: Any) -> tuple[Array, Params]:
        xhat, inv_std = cache
        grads = {"gamma": xp.sum(dy * xhat, axis=0), "beta": xp.sum(dy, axis=0)}
        dx = _normalise_backward(dy * params["gamma"], xhat, inv_std, -1, xp)
        return dx, grads


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Normalise each feature over the batch (training) or by running statistics (otherwise).

    In ``fit`` the batch's mean and (biased) variance normalise, and the running
    statistics move towards them: ``running = momentum * running + (1 - momentum) * batch``
    (Keras' convention; PyTorch's ``momentum=0.1`` is ``momentum=0.9`` here). In
    ``predict``, ``score``, ``loss`` and ``gradients`` the running statistics
    normalise. Parameters ``gamma``, ``beta``; state ``mean`` (zeros) and ``var``
    (ones), all of shape ``(n_features,)``; the state is saved in checkpoints and
    moved by ``Network.to``.
    """

    momentum: float = 0.9
    eps: float = 1e-5

    param_names: ClassVar[tuple[str, ...]] = ("gamma", "beta")
    state_names: ClassVar[tuple[str, ...]] = ("mean", "var")

    def __post_init__(self) -> None:
        check_fraction(self.momentum, "momentum")
        check_positive_float(self.eps, "eps")

    def init(self, rng: np.random.Generator, n_in: int) -> tuple[HostParams, int]:
        return {"gamma": np.ones(n_in), "beta": np.zeros(n_in)}, n_in

    def init_state(self, rng: np.random.Generator, n_in: int) -> HostParams:
        return {"mean": np.zeros(n_in), "var": np.ones(n_in)}

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        return {"gamma": (n_in,), "beta": (n_in,)}, {"mean": ("f", (n_in,)), "var": ("f", (n_in,))}

    def forward(self, params: Params, x: Array, *, xp: Any, train: bool) -> tuple[Array, Any]:
        raise TypeError("BatchNorm has state: call forward_state(params, state, x, ...)")

    def forward_state(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool
    ) -> tuple[Array, Any, Params]:
        if not train:
            xhat, inv_std = _normalise(x, state["mean"], state["var"], self.eps, xp)
            return params["gamma"] * xhat + params["beta"], (xhat, inv_std, False), state
        mean = xp.mean(x, axis=0)
        centred = x - mean
        var = xp.mean(centred * centred, axis=0)
        xhat, inv_std = _normalise(x, mean, var, self.eps, xp)
        m = self.momentum
        new_state = {
            "mean": m * state["mean"] + (1 - m) * mean,
            "var": m * state["var"] + (1 - m) * var,
        }
        return params["gamma"] * xhat + params["beta"], (xhat, inv_std, True), new_state

    def backward(self, params: Params, cache: Any, dy: Array, *, xp: Any) -> tuple[Array, Params]:
        xhat, inv_std, batch_statistics = cache
        grads = {"gamma": xp.sum(dy * xhat, axis=0), "beta": xp.sum(dy, axis=0)}
        dxhat = dy * params["gamma"]
        if batch_statistics:
            return _normalise_backward(dxhat, xhat, inv_std, 0, xp), grads
        return dxhat * inv_std, grads
