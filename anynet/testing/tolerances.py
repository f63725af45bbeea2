"""Tolerances by dtype, relative errors with a floor, and single-array assertions.

Every check in :mod:`anynet.testing` measures differences with :func:`relative_errors`
and takes its default tolerances from the tables here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Backend, backend_of, get_backend, to_numpy
from ..errors import InputError

__all__ = [
    "ATOL",
    "DEFAULT_EPS",
    "GRADIENT_ATOL",
    "GRADIENT_RTOL",
    "RTOL",
    "TRAINING_RTOL",
    "assert_close",
    "assert_on_backend",
    "default_atol",
    "default_rtol",
    "relative_errors",
]

#: Default relative tolerance by dtype name, for comparing a backend with a reference.
RTOL: dict[str, float] = {"float64": 1e-10, "float32": 1e-4}
#: Default absolute tolerance by dtype name (for values near zero).
ATOL: dict[str, float] = {"float64": 1e-12, "float32": 1e-6}
#: Relative tolerance of hand-written gradients against float64 central differences,
#: by the dtype of the network checked. With ``eps=1e-5`` float64 central differences
#: are accurate to about 1e-10 (truncation and rounding balance there); a float32
#: network's own gradients carry float32 rounding.
GRADIENT_RTOL: dict[str, float] = {"float64": 1e-6, "float32": 1e-3}
#: Absolute tolerance of the same, multiplied by ``max(1, |loss|)`` (the rounding
#: noise of a finite difference grows with the loss).
GRADIENT_ATOL: dict[str, float] = {"float64": 1e-8, "float32": 1e-6}
#: Normwise relative tolerance of parameters (``max|a - r| / max|r|`` per array) and
#: of the loss after training: float32 rounding accumulates over the epochs.
TRAINING_RTOL: dict[str, float] = {"float64": 1e-10, "float32": 1e-3}

#: Step of the central differences in :func:`~anynet.testing.check_gradients` and
#: :func:`~anynet.testing.check_layer` (float64).
DEFAULT_EPS = 1e-5


def _dtype_key(dtype: Any) -> str:
    """``"float64"`` for any 64-bit dtype or its name, else ``"float32"``."""
    return "float64" if "64" in str(dtype) else "float32"


def default_rtol(dtype: Any) -> float:
    """The default relative tolerance for ``dtype`` (a name or a backend dtype)."""
    return RTOL[_dtype_key(dtype)]


def default_atol(dtype: Any) -> float:
    """The default absolute tolerance for ``dtype`` (a name or a backend dtype)."""
    return ATOL[_dtype_key(dtype)]


def _dtype_name(array: Any) -> str:
    return _dtype_key(array.dtype)


def assert_on_backend(array: Any, backend: str | Backend, device: Any = None) -> None:
    """Fail unless ``array`` is an array of ``backend`` on its device.

    Catches results that have the right values but silently came back as NumPy
    arrays (or lists, or another backend's arrays).
    """
    backend = get_backend(backend, device)
    kind = backend_of(array)
    if kind != backend.name:
        raise AssertionError(
            f"expected an array of backend {backend.name!r}, got {type(array).__module__}."
            f"{type(array).__name__} (backend {kind!r})"
        )
    if not backend.owns(array):
        raise AssertionError(
            f"expected an array on {backend.describe()}, got one on {getattr(array, 'device', '?')}"
        )


def assert_close(
    actual: Any,
    desired: Any,
    *,
    backend: str | Backend | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` is close to ``desired`` (any backend, or NumPy).

    When ``backend`` is given, ``actual`` must also be an array of that backend
    and device. Shapes must match exactly (no broadcasting). ``rtol``/``atol``
    default to :data:`RTOL`/:data:`ATOL` for ``actual``'s dtype.
    """
    if isinstance(actual, dict) or isinstance(desired, dict):
        if sorted(actual) != sorted(desired):
            raise AssertionError(f"keys differ: {sorted(actual)} != {sorted(desired)}")
        for key in desired:
            assert_close(
                actual[key],
                desired[key],
                backend=backend,
                rtol=rtol,
                atol=atol,
                err_msg=f"{err_msg} [{key}]".strip(),
            )
        return
    if backend is not None:
        assert_on_backend(actual, backend)
    dtype = _dtype_name(actual) if hasattr(actual, "dtype") else "float64"
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = ATOL[dtype] if atol is None else atol
    got, want = to_numpy(actual), to_numpy(desired)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape} {err_msg}")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=err_msg)


def relative_errors(actual: Any, reference: Any, *, rtol: float, atol: float) -> np.ndarray:
    """Entrywise ``|a - r| / max(|a|, |r|, atol / rtol)``, as float64 NumPy.

    An entry is within tolerance when its error is at most ``rtol``. NaN or
    infinite entries give ``inf`` unless both sides hold the same non-finite value.

    Parameters
    ----------
    actual, reference : array_like
        Same shape; any backend (copied to the host).
    rtol, atol : float
        ``rtol > 0``, ``atol >= 0``.

    Returns
    -------
    numpy.ndarray, float64, the shape of the inputs
    """
    a = np.asarray(to_numpy(actual), dtype=np.float64)
    r = np.asarray(to_numpy(reference), dtype=np.float64)
    floor = atol / rtol if rtol > 0 else 0.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scale = np.maximum(np.maximum(np.abs(a), np.abs(r)), floor)
        errors = np.where(scale > 0, np.abs(a - r) / np.where(scale > 0, scale, 1.0), 0.0)
    same = (a == r) | (np.isnan(a) & np.isnan(r))
    return np.where(same, 0.0, np.where(np.isfinite(errors), errors, np.inf))


def _check_tolerance(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
