"""The dense (fully connected) layer: ``y = x @ W.T + b``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._validation import check_positive_int
from ..random import Initializer, get_initializer
from ..registry import initializers
from .base import Array, Layer, Params, ParamShapes, StateShapes

__all__ = ["Dense"]


@dataclass(frozen=True, init=False)
class Dense(Layer):
    """Fully connected layer.

    The parameters it owns: ``W`` of shape ``(n_out, n_in)`` (the tutorial's layout) and
    ``b`` of shape ``(n_out,)``; L2 regularisation applies to ``W``.

    Parameters
    ----------
    units : int
        Output width ``n_out``.
    init : str or Initializer
        ``"xavier"`` (the default of every face: ``Network``, ``Sequential``, the
        scikit-learn estimators), ``"he"``, ``"normal"`` or any registered initialiser.
    init_scale : float, optional
        Multiplier of the initial weights; default per initialiser (0.01 for normal).
    """

    units: int
    # how the weights start does not change what the layer computes: compiled steps
    # and resume checks compare layers without it
    initializer: str | Initializer = field(compare=False)
    init_scale: float | None = field(compare=False)

    param_names: ClassVar[tuple[str, ...]] = ("W", "b")
    decay: ClassVar[tuple[str, ...]] = ("W",)
    layout_free: ClassVar[bool] = True

    def __init__(
        self, units: int, init: str | Initializer = "xavier", init_scale: float | None = None
    ) -> None:
        check_positive_int(units, "units")
        get_initializer(init, init_scale)  # fail at construction, not at init
        object.__setattr__(self, "units", int(units))
        object.__setattr__(self, "initializer", init)
        object.__setattr__(self, "init_scale", init_scale)

    def init(self, rng: np.random.Generator, n_in: int) -> tuple[dict[str, np.ndarray], int]:
        weights = get_initializer(self.initializer, self.init_scale)(rng, n_in, self.units)
        return {"W": weights, "b": np.zeros(self.units)}, self.units

    def output_width(self, n_in: int) -> int:
        return self.units

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        return {"W": (self.units, n_in), "b": (self.units,)}, {}

    # ``axis`` is the feature axis: -1 for rows ``x (n, n_in)``, 0 for the tutorial's
    # columns ``x (n_in, n)``, where the same numbers are ``W @ x + b`` (transposed)
    def forward(
        self, params: Params, x: Array, *, xp: Any, train: bool, axis: int = -1
    ) -> tuple[Array, Any]:
        W, b = params["W"], params["b"]
        if axis == 0:
            return xp.matmul(W, x) + b[:, None], x
        return xp.matmul(x, W.T) + b, x

    def backward(
        self, params: Params, cache: Any, dy: Array, *, xp: Any, axis: int = -1
    ) -> tuple[Array, Params]:
        W = params["W"]
        dx = xp.matmul(W.T, dy) if axis == 0 else xp.matmul(dy, W)
        return dx, self.backward_params(params, cache, dy, xp=xp, axis=axis)

    def backward_params(
        self, params: Params, cache: Any, dy: Array, *, xp: Any, axis: int = -1
    ) -> Params:
        if axis == 0:
            return {"W": xp.matmul(dy, cache.T), "b": xp.sum(dy, axis=1)}
        return {"W": xp.matmul(dy.T, cache), "b": xp.sum(dy, axis=0)}

    def config(self) -> dict[str, Any]:
        init = self.initializer
        if isinstance(init, Initializer):
            return {
                "units": self.units,
                "init": initializers.name_of(init),
                "init_scale": init.scale if self.init_scale is None else self.init_scale,
            }
        return {"units": self.units, "init": init, "init_scale": self.init_scale}

    def describe(self) -> str:
        """``Dense(64)`` with the default initialiser, else ``Dense(64, init='he')``."""
        extra = ""
        if self.initializer != "xavier" or self.init_scale is not None:
            init = self.initializer
            name = init if isinstance(init, str) else initializers.name_of(init)
            extra = f", init={name!r}"
            scale = init.scale if isinstance(init, Initializer) else self.init_scale
            if scale is not None:
                extra += f", init_scale={scale!r}"
        return f"Dense({self.units}{extra})"

    def init_text(self) -> str:
        """The initialiser of ``W`` in words, e.g. ``xavier(scale=1)``; ``b`` starts at zero."""
        init = get_initializer(self.initializer, self.init_scale)
        return f"{initializers.name_of(init)}(scale={init.scale:g})"
