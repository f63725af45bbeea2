"""Host-side, seeded random numbers: initial weights and shuffles.

The array API standard has no random numbers, and every library's generator
differs, so anynet draws on the host from a seeded ``numpy.random.Generator``
in float64, casts on the host, and only then moves arrays to the backend. The
same seed therefore gives bit-identical initial weights on every backend and
device: the precondition for comparing backends at all.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from ._validation import check_non_negative_float
from .errors import InputError

__all__ = ["INITIALIZERS", "init_params", "make_rng"]

#: Default ``init_scale`` per initialiser (``normal`` is the tutorial's ``randn * 0.01``).
INITIALIZERS: dict[str, float] = {"normal": 0.01, "xavier": 1.0, "he": 1.0}


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from an integer seed (None draws fresh OS entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise InputError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(None if seed is None else int(seed))


def init_params(
    sizes: list[int],
    init: str = "normal",
    init_scale: float | None = None,
    seed: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Initial parameters ``W1, b1, ..., WL, bL`` as float64 NumPy arrays.

    Parameters
    ----------
    sizes : list of int
        Layer widths ``[n_0, n_1, ..., n_L]`` (inputs first).
    init : {"normal", "xavier", "he"}
        ``normal``: ``N(0, 1) * init_scale`` (default 0.01, the tutorial's);
        ``xavier``: Glorot uniform ``U(-a, a)``, ``a = init_scale * sqrt(6 / (fan_in + fan_out))``;
        ``he``: ``N(0, 1) * init_scale * sqrt(2 / fan_in)``. Biases are zero.
    init_scale : float, optional
        Multiplier; defaults per initialiser as above.
    seed : int, Generator or None
        Weights are drawn in layer order ``W1, W2, ...`` from one generator.

    Returns
    -------
    dict of str to ndarray
        ``W_l`` of shape ``(n_l, n_{l-1})`` and ``b_l`` of shape ``(n_l,)``, float64.
    """
    if not isinstance(init, str) or init not in INITIALIZERS:
        raise InputError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
    if init_scale is None:
        init_scale = INITIALIZERS[init]
    else:
        init_scale = check_non_negative_float(init_scale, "init_scale")
    rng = make_rng(seed)
    params: dict[str, np.ndarray] = {}
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        params[f"W{layer}"] = _draw(rng, init, init_scale, fan_in, fan_out)
        params[f"b{layer}"] = np.zeros(fan_out)
    return params


def _draw(
    rng: np.random.Generator, init: str, scale: float, fan_in: int, fan_out: int
) -> np.ndarray:
    """One weight matrix ``(fan_out, fan_in)``, refused when it does not fit in float32."""
    with np.errstate(over="ignore", invalid="ignore"):  # an absurd scale is refused below
        if init == "xavier":
            bound = scale * math.sqrt(6.0 / (fan_in + fan_out))
            weights = rng.uniform(-bound, bound, size=(fan_out, fan_in))
        elif init == "he":
            weights = rng.standard_normal((fan_out, fan_in)) * (scale * math.sqrt(2.0 / fan_in))
        else:
            weights = rng.standard_normal((fan_out, fan_in)) * scale
        largest = float(np.max(np.abs(weights)))
    if not largest <= float(np.finfo(np.float32).max):  # also catches inf and NaN
        raise InputError(
            f"init_scale must keep the initial weights finite in float32, got {scale!r}, "
            f"which makes weights of magnitude {largest:.3g}"
        )
    return weights
