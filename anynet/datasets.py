"""Small two-dimensional toy datasets, generated on the host with NumPy.

Every generator returns ``(X, y)`` with samples as rows:

* ``X``: ``numpy.ndarray`` of shape ``(n, 2)`` and dtype ``float64``;
* ``y``: ``numpy.ndarray`` of shape ``(n,)`` and dtype ``int64``, labels ``0 .. K-1``.

The data are plain NumPy arrays whatever backend is in use: pass them to
:class:`anynet.Network` methods, which move them to the backend and device once.

Randomness comes only from a generator seeded by the ``seed`` argument; the global
NumPy random state is never read or modified.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError

__all__ = ["circles", "moons", "planar_flower", "spirals"]


# --------------------------------------------------------------------------- validation


#: Largest sample count a generator accepts (about 1.6 GB of float64 features).
MAX_SAMPLES = 10**8
#: Largest noise scale: far beyond any useful value, far below float64 overflow.
MAX_NOISE = 1e6


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``."""
    if maximum is None:
        expected = f"an integer >= {minimum}"
    else:
        expected = f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise InputError(f"{name} must be {expected}, got {value!r}")
    return value


def _check_real(
    name: str,
    value: object,
    minimum: float = 0.0,
    maximum: float | None = None,
    *,
    include_max: bool = True,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number in range."""
    if maximum is None:
        expected = f"a finite number >= {minimum:g}"
    else:
        bracket = "]" if include_max else ")"
        expected = f"a finite number in [{minimum:g}, {maximum:g}{bracket}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_big = maximum is not None and (value > maximum or (not include_max and value == maximum))
    if not math.isfinite(value) or value < minimum or too_big:
        raise InputError(f"{name} must be {expected}, got {value!r}")
    return value


def _check_seed(value: object, maximum: int | None = None) -> int:
    return _check_int("seed", value, 0, maximum)


def _finish(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return C-contiguous ``float64`` features and ``int64`` labels."""
    return np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.int64)


# --------------------------------------------------------------------------- generators


def planar_flower(n: int = 400, seed: int = 1, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's "planar flower": two classes forming the petals of a rose curve.

    With the defaults this returns exactly the numbers of the tutorial's
    ``load_planar_dataset()`` (which calls ``np.random.seed(1)``), transposed to
    samples-as-rows: ``X`` here is the tutorial's ``X.T`` and ``y`` its ``Y.ravel()``.
    The draws come from ``np.random.RandomState(seed)``, which yields the same stream
    as the legacy global generator, in the same order: for each class ``j``, first the
    angle noise, then the radius noise.

    Class ``j`` has angles ``t = linspace(3.12 j, 3.12 (j + 1), N_j) + noise * randn``
    and radii ``r = 4 sin(4 t) + noise * randn``; a point is ``(r sin t, r cos t)``.

    Parameters
    ----------
    n : int, default 400
        Number of samples, at least 2. Class 0 gets ``n // 2`` points and class 1
        the rest, so for odd ``n`` class 1 has one point more than class 0.
    seed : int, default 1
        Seed of the ``numpy.random.RandomState`` used; an integer in ``[0, 2**32 - 1]``.
        Seed 1 gives the tutorial's data.
    noise : float, default 0.2
        Standard deviation of the Gaussian noise added to both angle and radius;
        a finite number ``>= 0``.

    Returns
    -------
    X : numpy.ndarray, shape (n, 2), dtype float64
        Points, one per row; the first ``n // 2`` rows are class 0.
    y : numpy.ndarray, shape (n,), dtype int64
        Labels in ``{0, 1}``.

    Raises
    ------
    anynet.errors.InputError
        If an argument has the wrong type or is out of range.

    Examples
    --------
    >>> X, y = planar_flower()
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((400, 2), dtype('float64'), (400,), dtype('int64'))
    """
    n = _check_int("n", n, 2, MAX_SAMPLES)
    seed = _check_seed(seed, 2**32 - 1)
    noise = _check_real("noise", noise, 0.0, MAX_NOISE)

    rng = np.random.RandomState(seed)
    a = 4  # maximum ray of the flower (the tutorial's name)
    counts = (n // 2, n - n // 2)
    X = np.zeros((n, 2), dtype=np.float64)
    y = np.zeros(n, dtype=np.int64)
    start = 0
    for j, count in enumerate(counts):
        ix = slice(start, start + count)
        t = np.linspace(j * 3.12, (j + 1) * 3.12, count) + rng.randn(count) * noise  # theta
        r = a * np.sin(4 * t) + rng.randn(count) * noise  # radius
        X[ix, 0] = r * np.sin(t)
        X[ix, 1] = r * np.cos(t)
        y[ix] = j
        start += count
    return _finish(X, y)


def moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, as scikit-learn's ``make_moons`` (unshuffled).

    Class 0 is the upper half circle ``(cos s, sin s)`` for ``s`` in ``[0, pi]``;
    class 1 the lower one ``(1 - cos s, 0.5 - sin s)``. Gaussian noise of standard
    deviation ``noise`` is then added to every coordinate.

    Parameters
    ----------
    n : int, default 200
        Number of samples, at least 2. Class 0 gets ``n // 2`` points and class 1
        the rest.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise; a finite number ``>= 0``.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` used; an integer ``>= 0``.

    Returns
    -------
    X : numpy.ndarray, shape (n, 2), dtype float64
        Points, one per row; the first ``n // 2`` rows are class 0.
    y : numpy.ndarray, shape (n,), dtype int64
        Labels in ``{0, 1}``.

    Raises
    ------
    anynet.errors.InputError
        If an argument has the wrong type or is out of range.
    """
    n = _check_int("n", n, 2, MAX_SAMPLES)
    noise = _check_real("noise", noise, 0.0, MAX_NOISE)
    seed = _check_seed(seed)

    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    s0 = np.linspace(0.0, np.pi, n0)
    s1 = np.linspace(0.0, np.pi, n1)
    X = np.concatenate(
        [
            np.stack([np.cos(s0), np.sin(s0)], axis=1),
            np.stack([1.0 - np.cos(s1), 0.5 - np.sin(s1)], axis=1),
        ]
    )
    X = X + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    return _finish(X, y)


def circles(
    n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A small circle inside a large one, as scikit-learn's ``make_circles`` (unshuffled).

    Class 0 lies on the unit circle, class 1 on the circle of radius ``factor``;
    the points are evenly spaced in angle, then Gaussian noise of standard deviation
    ``noise`` is added to every coordinate.

    Parameters
    ----------
    n : int, default 200
        Number of samples, at least 2. Class 0 (outer) gets ``n // 2`` points and
        class 1 (inner) the rest.
    noise : float, default 0.05
        Standard deviation of the Gaussian noise; a finite number ``>= 0``.
    factor : float, default 0.5
        Radius of the inner circle relative to the outer one; in ``[0, 1)``.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` used; an integer ``>= 0``.

    Returns
    -------
    X : numpy.ndarray, shape (n, 2), dtype float64
        Points, one per row; the first ``n // 2`` rows are class 0.
    y : numpy.ndarray, shape (n,), dtype int64
        Labels in ``{0, 1}``: 0 for the outer circle, 1 for the inner one.

    Raises
    ------
    anynet.errors.InputError
        If an argument has the wrong type or is out of range.
    """
    n = _check_int("n", n, 2, MAX_SAMPLES)
    noise = _check_real("noise", noise, 0.0, MAX_NOISE)
    factor = _check_real("factor", factor, 0.0, 1.0, include_max=False)
    seed = _check_seed(seed)

    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    s0 = np.linspace(0.0, 2.0 * np.pi, n0, endpoint=False)
    s1 = np.linspace(0.0, 2.0 * np.pi, n1, endpoint=False)
    X = np.concatenate(
        [
            np.stack([np.cos(s0), np.sin(s0)], axis=1),
            factor * np.stack([np.cos(s1), np.sin(s1)], axis=1),
        ]
    )
    X = X + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    return _finish(X, y)


def spirals(
    n: int = 300, n_classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the classic cs231n spiral data).

    Class ``k`` has radii ``linspace(0, 1)`` and angles
    ``linspace(4 k, 4 (k + 1)) + noise * randn``; a point is ``(r sin t, r cos t)``.

    Parameters
    ----------
    n : int, default 300
        Number of samples, at least ``n_classes``. Every class gets
        ``n // n_classes`` points; when ``n`` is not a multiple of ``n_classes``,
        the first ``n % n_classes`` classes get one point more.
    n_classes : int, default 3
        Number of classes (arms), at least 2.
    noise : float, default 0.2
        Standard deviation of the Gaussian noise added to the angle; a finite
        number ``>= 0``.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` used; an integer ``>= 0``.

    Returns
    -------
    X : numpy.ndarray, shape (n, 2), dtype float64
        Points, one per row, grouped by class (class 0 first).
    y : numpy.ndarray, shape (n,), dtype int64
        Labels in ``{0, ..., n_classes - 1}``.

    Raises
    ------
    anynet.errors.InputError
        If an argument has the wrong type or is out of range.
    """
    n_classes = _check_int("n_classes", n_classes, 2, 1000)
    n = _check_int("n", n, 2, MAX_SAMPLES)
    if n < n_classes:
        raise InputError(f"n must be an integer >= n_classes ({n_classes}), got {n!r}")
    noise = _check_real("noise", noise, 0.0, MAX_NOISE)
    seed = _check_seed(seed)

    rng = np.random.default_rng(seed)
    base, extra = divmod(n, n_classes)
    X = np.zeros((n, 2), dtype=np.float64)
    y = np.zeros(n, dtype=np.int64)
    start = 0
    for k in range(n_classes):
        count = base + (1 if k < extra else 0)
        ix = slice(start, start + count)
        r = np.linspace(0.0, 1.0, count)  # radius
        t = np.linspace(k * 4.0, (k + 1) * 4.0, count) + rng.standard_normal(count) * noise
        X[ix, 0] = r * np.sin(t)
        X[ix, 1] = r * np.cos(t)
        y[ix] = k
        start += count
    return _finish(X, y)
