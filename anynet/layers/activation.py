"""Activation layers: elementwise (or per-row, for softmax) functions with their derivatives.

The math lives in :mod:`anynet.activations` as value/backprop function pairs; each
class here makes one of them a layer. A new activation subclasses :class:`Activation`,
implements :meth:`Activation.value` and :meth:`Activation.derivative`, and is
registered with :func:`anynet.register_activation`; its name then stands for it in
layer lists and in ``Network(sizes, activations=[...])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .. import activations as math
from .._validation import check_non_negative_float
from ..registry import activations as activation_registry
from ..registry import register_activation
from .base import Layer, Params

__all__ = ["Activation", "Exp", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]

Array = Any


@dataclass(frozen=True)
class Activation(Layer):
    """Base class of activations: ``y = f(z)`` on rows-are-samples ``z``.

    Attributes
    ----------
    output_only : bool
        Allowed as the network's output only (softmax).
    """

    output_only: ClassVar[bool] = False

    def value(self, z: Array, *, xp: Any) -> Array:
        """``f(z)``, same shape and dtype."""
        raise NotImplementedError

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        """``dL/dz`` from ``dy = dL/dy``, the input ``z`` and the output ``y``."""
        raise NotImplementedError

    # ``axis`` only reaches layout-free (elementwise) activations, which ignore it
    def forward(
        self, params: Params, x: Array, *, xp: Any, train: bool, axis: int = -1
    ) -> tuple[Array, Any]:
        y = self.value(x, xp=xp)
        return y, (x, y)

    def backward(
        self, params: Params, cache: Any, dy: Array, *, xp: Any, axis: int = -1
    ) -> tuple[Array, Params]:
        z, y = cache
        return self.derivative(dy, z, y, xp=xp), {}

    @property
    def name(self) -> str:
        """The registered name (``"tanh"``), or the class name if it is not registered."""
        return activation_registry.lookup_name(self) or type(self).__name__

    def describe(self) -> str:
        config = self.config()
        if not config:
            return self.name
        return self.name + "(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


@dataclass(frozen=True)
class Tanh(Activation):
    """Hyperbolic tangent; derivative ``1 - y**2`` as in the tutorial."""

    layout_free: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return math.tanh(z, xp=xp)

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return math.tanh_backward(dy, z, y, xp=xp)


@dataclass(frozen=True)
class Sigmoid(Activation):
    """Logistic sigmoid, computed without overflow."""

    layout_free: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return math.sigmoid(z, xp=xp)

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return math.sigmoid_backward(dy, z, y, xp=xp)


@dataclass(frozen=True)
class ReLU(Activation):
    """``max(z, 0)``; derivative 0 at 0, as in PyTorch."""

    layout_free: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return math.relu(z, xp=xp)

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return math.relu_backward(dy, z, y, xp=xp)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``z`` for ``z > 0``, else ``slope * z``."""

    layout_free: ClassVar[bool] = True

    slope: float = 0.01

    def __post_init__(self) -> None:
        check_non_negative_float(self.slope, "slope")

    def value(self, z: Array, *, xp: Any) -> Array:
        return (
            xp.maximum(z, self.slope * z) if self.slope <= 1 else xp.where(z > 0, z, self.slope * z)
        )

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return xp.where(z > 0, dy, self.slope * dy)


@dataclass(frozen=True)
class Identity(Activation):
    """``z`` unchanged (a linear output, for regression)."""

    layout_free: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return z

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return dy


@dataclass(frozen=True)
class Exp(Activation):
    """``exp(z)``: a positive output, the log link of Poisson regression (``loss="poisson"``)."""

    layout_free: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return math.exp(z, xp=xp)

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return math.exp_backward(dy, z, y, xp=xp)


@dataclass(frozen=True)
class Softmax(Activation):
    """Softmax over the features of each row; allowed as the output only."""

    output_only: ClassVar[bool] = True

    def value(self, z: Array, *, xp: Any) -> Array:
        return math.softmax(z, axis=-1, xp=xp)

    def derivative(self, dy: Array, z: Array, y: Array, *, xp: Any) -> Array:
        return math.softmax_backward(dy, z, y, axis=-1, xp=xp)


activation_registry.base = Activation
register_activation("tanh", Tanh)
register_activation("sigmoid", Sigmoid)
register_activation("relu", ReLU)
register_activation("leaky_relu", LeakyReLU)
register_activation("identity", Identity)
register_activation("exp", Exp)
register_activation("softmax", Softmax)
