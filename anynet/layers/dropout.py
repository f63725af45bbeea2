"""Dropout, with masks that are the same on every backend for the same seed.

The masks come from a counter-based generator written once against the array API:
a hash of (the layer's seed, its step counter, the row within the batch, the
feature) computed in int32 arithmetic whose every intermediate stays below 2**31,
so NumPy, array-api-strict, JAX (also without 64-bit mode), PyTorch and CuPy
produce identical bits, on the device, with no host transfer, inside ``jax.jit``
and ``vmap``. The layer's state is ``rng = [seed, step]`` (int32); each training
forward pass returns the state with ``step + 1``.

The hash works in the prime field of ``P = 32717``: rounds of ``t -> (t * A + k)^3
mod P`` (a cube is a bijection there since ``P % 3 == 2``; MiMC's round function).
Its outputs are uniform on ``[0, P)``, so the drop probability is ``rate``
rounded to a multiple of ``1/P`` (an error below 1.6e-5); the kept units are
scaled by the exact inverse of the keep probability used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from .base import Layer, Params, ParamShapes, StateShapes

__all__ = ["Dropout", "hash_uniform"]

Array = Any

#: The prime modulus of the hash (largest below 2**15 with P % 3 == 2).
P = 32717
_A, _B, _C = 20011, 7919, 12289  # round multipliers below P


def _cube(t: Array) -> Array:
    return (((t * t) % P) * t) % P


def _round(t: Array, k: Array, multiplier: int) -> Array:
    """One round ``(t * multiplier + k)^3 mod P``; inputs in [0, P), products below 2**30."""
    return _cube(((t * multiplier) % P + k) % P)


def _split(value: Array) -> tuple[Array, Array]:
    """A non-negative int32 as two field elements (low and high limb)."""
    return value % P, (value // P) % P


def hash_uniform(seed: Array, step: Array, n_rows: int, like: Array, *, xp: Any) -> Array:
    """Integers uniform on ``[0, P)`` of ``like``'s shape ``(n_rows, n_cols)``, int32.

    A pure function of ``(seed, step, row, column)``: the same on every backend.
    ``seed`` and ``step`` are 0-d int32 arrays; ``like`` gives the shape and device.
    """
    ones = xp.ones_like(like, dtype=xp.int32)
    rows = xp.cumulative_sum(ones[:, :1], axis=0, dtype=xp.int32) - 1  # (n, 1), like's device
    cols = xp.cumulative_sum(ones[:1, :], axis=1, dtype=xp.int32) - 1  # (1, f)
    step_lo, step_hi = _split(step)
    h = _round(seed % P, step_lo, _A)
    h = _round(h, step_hi, _B)
    row_lo, row_hi = _split(rows)
    hr = _round(_round(h + ones[:, :1] - 1, row_lo, _C), row_hi, _A)  # (n, 1)
    col_lo, col_hi = _split(cols)
    hc = _round(_round(h + ones[:1, :] - 1, col_lo, _B), col_hi, _C)  # (1, f)
    t = (hr * (hc + 1)) % P  # hc + 1 < P + 1: products below 2**30
    t = _round(t, hr, _A)
    return _round(t, hc, _B)


@dataclass(frozen=True)
class Dropout(Layer):
    """Zero each input with probability ``rate`` in training, scaling the rest by ``1/(1-rate)``.

    Active in ``fit`` (and ``anynet.functional`` with ``train=True``) only; an identity
    in ``predict``, ``score``, ``loss`` and ``gradients``.

    State: ``rng``, int32 ``[seed, step]``; the seed is drawn from the network's seed.
    """

    rate: float = 0.5

    state_names: ClassVar[tuple[str, ...]] = ("rng",)

    def __post_init__(self) -> None:
        if (
            isinstance(self.rate, bool)
            or not isinstance(self.rate, (int, float))
            or not 0 <= self.rate < 1
        ):
            raise InputError(f"rate must be a number in [0, 1), got {self.rate!r}")

    @property
    def threshold(self) -> int:
        """Hash values below this are dropped."""
        return round(float(self.rate) * P)

    def init_state(self, rng: np.random.Generator, n_in: int) -> dict[str, np.ndarray]:
        return {"rng": np.array([rng.integers(P), 0], dtype=np.int32)}

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        return {}, {"rng": ("i", (2,))}

    def forward(self, params: Params, x: Array, *, xp: Any, train: bool) -> tuple[Array, Any]:
        return x, None

    def backward(self, params: Params, cache: Any, dy: Array, *, xp: Any) -> tuple[Array, Params]:
        return (dy if cache is None else dy * cache), {}

    def forward_state(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool
    ) -> tuple[Array, Any, Params]:
        if not train or self.threshold == 0:
            return x, None, state
        key = state["rng"]
        u = hash_uniform(key[0], key[1], x.shape[0], x, xp=xp)
        scale = P / (P - self.threshold)
        mask = xp.astype(u >= self.threshold, x.dtype) * scale
        new_key = xp.stack([key[0], key[1] + 1])
        return x * mask, mask, {"rng": new_key}
