"""Test helpers: check that results are arrays of the right backend, and close to a reference.

Tolerances depend on the dtype (see :data:`RTOL`): float64 results of the same
computation on two backends differ only by the order of floating-point
reductions, float32 ones by far more.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Backend, backend_of, get_backend, to_numpy

__all__ = ["RTOL", "ATOL", "assert_close", "assert_on_backend", "default_rtol"]

#: Default relative tolerance by dtype name, for comparing a backend with a reference.
RTOL: dict[str, float] = {"float64": 1e-10, "float32": 1e-4}
#: Default absolute tolerance by dtype name (for values near zero).
ATOL: dict[str, float] = {"float64": 1e-12, "float32": 1e-6}


def default_rtol(dtype: Any) -> float:
    """The default relative tolerance for ``dtype`` (a name or a backend dtype)."""
    return RTOL["float64" if "64" in str(dtype) else "float32"]


def _dtype_name(array: Any) -> str:
    return "float64" if "64" in str(array.dtype) else "float32"


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
