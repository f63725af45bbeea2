"""Pytest helpers: parametrize a suite over every backend, skipping those that do not load.

pytest is imported when :func:`backend_params` or :func:`backend_fixture` is called,
never when this module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ..backend import BACKEND_NAMES, Backend, get_backend, stand_in_devices
from ..errors import InputError
from .agreement import _unavailable

__all__ = ["backend_fixture", "backend_params"]


def _pytest() -> Any:
    try:
        return importlib.import_module("pytest")
    except ImportError as exc:  # pragma: no cover - only without pytest
        raise ImportError("anynet.testing.backend_params needs pytest: pip install pytest") from exc


def _cases(names: Sequence[str] | None, devices: bool) -> list[tuple[str, str | None]]:
    chosen = list(BACKEND_NAMES) if names is None else list(names)
    unknown = [name for name in chosen if name not in BACKEND_NAMES]
    if unknown:
        raise InputError(f"names must be among {list(BACKEND_NAMES)}, got {unknown}")
    cases: list[tuple[str, str | None]] = []
    for name in chosen:
        cases.append((name, None))
        if devices:
            cases.extend((name, device) for device in stand_in_devices(name))
    return cases


def backend_params(
    names: Sequence[str] | None = None, *, dtype: str | None = None, devices: bool = True
) -> list[Any]:
    """``pytest.param`` objects for every known backend, unavailable ones skipped with the reason.

    Parameters
    ----------
    names : sequence of str, optional
        Backends to cover; default all of :data:`anynet.BACKEND_NAMES`.
    dtype : {"float32", "float64"}, optional
        Also skip backends that cannot compute in this dtype (JAX float64 without x64).
    devices : bool
        Add array-api-strict's non-default ``"device1"``, which stands in for a GPU:
        implicit device transfers fail there.

    Returns
    -------
    list of pytest.param
        Values ``(name, device)`` (device None for the default), ids ``"numpy"``,
        ``"array_api_strict-device1"``, ...

    Examples
    --------
    In a test module::

        import pytest, anynet
        from anynet.testing import backend_params

        @pytest.mark.parametrize("case", backend_params())
        def test_my_model(case):
            backend = anynet.get_backend(*case)
            ...
    """
    pytest = _pytest()
    params = []
    for name, device in _cases(names, devices):
        reason = _unavailable(name, device, dtype)
        marks = () if reason is None else (pytest.mark.skip(reason=f"{name}: {reason}"),)
        case_id = name if device is None else f"{name}-{device}"
        params.append(pytest.param((name, device), id=case_id, marks=marks))
    return params


def backend_fixture(
    names: Sequence[str] | None = None,
    *,
    dtype: str | None = None,
    devices: bool = True,
    name: str = "backend",
) -> Any:
    """A pytest fixture giving an :class:`anynet.Backend` per backend (see :func:`backend_params`).

    Examples
    --------
    In ``conftest.py``::

        from anynet.testing import backend_fixture

        backend = backend_fixture(dtype="float64")

    then ``def test_x(backend): ...`` runs once per backend and device, unavailable
    ones reported as skipped with the reason.
    """
    pytest = _pytest()

    @pytest.fixture(params=backend_params(names, dtype=dtype, devices=devices), name=name)
    def fixture(request: Any) -> Backend:
        return get_backend(*request.param)

    return fixture
