"""Host-side, seeded random numbers: initialisers and the generator they draw from.

The array API standard has no random numbers, and every library's generator
differs, so anynet draws on the host from a seeded ``numpy.random.Generator``
in float64, casts on the host, and only then moves arrays to the backend. The
same seed therefore gives bit-identical initial weights on every backend and
device: the precondition for comparing backends at all.

An initialiser is a registered :class:`Initializer`; add your own with
:func:`anynet.register_initializer`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import check_non_negative_float
from .errors import InputError
from .registry import initializers, register_initializer

__all__ = ["He", "Initializer", "Normal", "Xavier", "get_initializer", "make_rng"]


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from an integer seed (None draws fresh OS entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise InputError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(None if seed is None else int(seed))


@dataclass(frozen=True)
class Initializer:
    """Draws a weight matrix on the host.

    Subclasses implement :meth:`draw`; ``scale`` multiplies the result (each class
    has its own default).
    """

    scale: float = 1.0

    def __post_init__(self) -> None:
        check_non_negative_float(self.scale, "init_scale")

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        """A float64 array ``(fan_out, fan_in)`` before checking; override this."""
        raise NotImplementedError

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        """``draw``, refused when the weights do not fit in float32."""
        with np.errstate(over="ignore", invalid="ignore"):  # an absurd scale is refused below
            try:
                weights = np.asarray(self.draw(rng, fan_in, fan_out), dtype=np.float64)
            except OverflowError:  # rng.uniform refuses a range beyond float64
                weights = np.full((fan_out, fan_in), np.inf)
            largest = float(np.max(np.abs(weights))) if weights.size else 0.0
        if weights.shape != (fan_out, fan_in):
            raise InputError(
                f"{type(self).__name__}.draw must return shape {(fan_out, fan_in)}, "
                f"got {weights.shape}"
            )
        if not largest <= float(np.finfo(np.float32).max):  # also catches inf and NaN
            raise InputError(
                f"init_scale must keep the initial weights finite in float32, got {self.scale!r}, "
                f"which makes weights of magnitude {largest:.3g}"
            )
        return weights


@dataclass(frozen=True)
class Normal(Initializer):
    """``N(0, 1) * scale``; the default 0.01 is the tutorial's ``randn * 0.01``."""

    scale: float = 0.01

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return rng.standard_normal((fan_out, fan_in)) * self.scale


@dataclass(frozen=True)
class Xavier(Initializer):
    """Glorot uniform ``U(-a, a)``, ``a = scale * sqrt(6 / (fan_in + fan_out))``."""

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        bound = self.scale * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=(fan_out, fan_in))


@dataclass(frozen=True)
class He(Initializer):
    """``N(0, 1) * scale * sqrt(2 / fan_in)`` (Kaiming normal, for ReLU layers)."""

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
        return rng.standard_normal((fan_out, fan_in)) * (self.scale * math.sqrt(2.0 / fan_in))


initializers.base = Initializer
register_initializer("normal", Normal)
register_initializer("xavier", Xavier)
register_initializer("he", He)


def get_initializer(init: str | Initializer, scale: float | None = None) -> Initializer:
    """An initialiser from a registered name (with an optional scale) or an object."""
    if isinstance(init, Initializer):
        return init if scale is None else type(init)(scale=scale)
    cls = initializers.get(init, "init")
    return cls() if scale is None else cls(scale=scale)
