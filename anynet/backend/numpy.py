"""The NumPy backend (the default): host arrays, a faster namespace, updates in place."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import _DL_CPU, Backend, _memory_owner, _row_blocks


class _NumpyNamespace(types.ModuleType):
    """NumPy's own namespace, with three faster spellings of the same operations.

    ``matmul`` of two matrices is ``np.dot`` (the same product, but ``np.matmul`` takes
    a slower path on small matrices: 3.4 us against 1.3 us for a (4, 1) @ (1, 400)
    outer product here); ``sum`` and ``max`` call the ufunc reductions directly,
    skipping ``np.sum``'s Python wrapper. On a tiny network these calls are most of
    a step.
    """

    def __init__(self) -> None:
        super().__init__("anynet_numpy")
        self.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
        self.__array_api_version__ = np.__array_api_version__
        self.__array_namespace_info__ = np.__array_namespace_info__
        self.matmul = _matmul
        self.sum = _sum
        self.max = _max


#: The bound reductions, looked up once (numpy's stubs type ``keepdims`` as a literal, which a
#: bool argument does not match: ``Any`` here).
_ADD_REDUCE: Any = np.add.reduce
_MAX_REDUCE: Any = np.maximum.reduce


def _sum(x: np.ndarray, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    # np.sum's Python wrapper costs about 1.3 us a call on top of the reduction
    if (
        axis == 0
        and x.ndim == 2
        and dtype is None
        and not keepdims
        and x.size <= _DOT_SUM_MAX_SIZE
        and x.shape[0] <= _DOT_SUM_MAX_ROWS
        and x.dtype.kind == "f"
    ):
        # Summing the rows of a small matrix (a bias gradient) is 3-7 times faster as
        # ones @ x than as a reduction over the strided axis 0 (6.3 us against 0.9 us
        # for (400, 4) float64); the row bound keeps BLAS's running sum as accurate.
        return np.dot(_ones(x.shape[0], x.dtype.str), x)
    return _ADD_REDUCE(x, axis=axis, dtype=dtype, keepdims=keepdims)


_DOT_SUM_MAX_SIZE = 65_536
_DOT_SUM_MAX_ROWS = 4_096


@functools.lru_cache(maxsize=16)
def _ones(n: int, dtype: str) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _max(x: np.ndarray, /, *, axis: Any = None, keepdims: bool = False) -> Any:
    return _MAX_REDUCE(x, axis=axis, keepdims=keepdims)


def _matmul(x1: np.ndarray, x2: np.ndarray, /) -> np.ndarray:
    if x1.ndim == 2 and x2.ndim == 2:
        return np.dot(x1, x2)
    return np.matmul(x1, x2)


class _Spares:
    """Large parameter arrays of an earlier ``fit`` that nobody holds any more, reused as
    the buffers of a chunk's first (out of place) updates.

    A chunk's first update of a parameter writes a new array, so that the chunk's start
    (the caller's arrays, and the point a divergence rewinds to) is never written. For a
    64 MiB weight a fresh array costs as much again as writing in place (the kernel
    zeroes every page on first touch: 30 ms against 16 ms, W3 of benchmarks/README.md).
    ``fit`` offers the parameters it started from once it is done; a later update takes
    one of the same shape and dtype only while its reference count shows that the pool
    alone holds it (no caller's variable, view, memoryview or exported buffer: each of
    those holds a reference), so what it writes was otherwise garbage. Between calls the
    pool keeps the last call's starting parameters of more than :data:`UPDATE_BLOCK`
    elements (at most one set: the memory an out-of-place first update needs anyway).
    """

    def __init__(self) -> None:
        self._arrays: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.reused = 0  # how many updates wrote into a spare (for the tests)
        self.enabled = _references_counted()

    def offer(self, arrays: Sequence[Any]) -> None:
        kept = [
            a for a in arrays
            if type(a) is np.ndarray and _row_blocks(a.shape) is not None and a.base is None
            and a.flags.writeable and a.flags.c_contiguous
        ]  # fmt: skip
        with self._lock:
            self._arrays = kept if self.enabled else []

    def take(self, like: np.ndarray) -> np.ndarray | None:
        """A spare of ``like``'s shape and dtype that only the pool holds, or None."""
        with self._lock:
            arrays = self._arrays
            for i in range(len(arrays)):
                # 2: the list's reference and getrefcount's argument; anyone else's adds one
                if (
                    arrays[i].shape == like.shape
                    and arrays[i].dtype == like.dtype
                    and sys.getrefcount(arrays[i]) == 2
                ):
                    self.reused += 1
                    return arrays.pop(i)
        return None

    def clear(self) -> None:
        with self._lock:
            self._arrays = []


def _references_counted() -> bool:
    """Whether reference counts tell, as :class:`_Spares` reads them, that an array is held
    by one list only (CPython); elsewhere spares are never reused."""
    probe = [np.empty(1)]
    if sys.getrefcount(probe[0]) != 2:
        return False
    held = probe[0][:]  # a view holds its base
    return sys.getrefcount(probe[0]) == 3 and held.base is probe[0]


SPARES = _Spares()


class NumpyBackend(Backend, name="numpy"):
    """NumPy on the host: arrays are the host data itself (:attr:`on_host`)."""

    install_hint = "pip install numpy"
    updates_in_place = True
    on_host = True

    @classmethod
    def list_devices(cls) -> list[str]:
        return ["cpu"]

    @classmethod
    def resolve_device(cls, device: Any) -> Any:
        if device is None or (isinstance(device, str) and device.strip().lower() == "cpu"):
            return "cpu"
        raise BackendError(f"device {device!r} does not exist on backend 'numpy'; devices: ['cpu']")

    @classmethod
    def is_own_array(cls, array: Any) -> bool:
        return isinstance(array, np.ndarray)

    def _namespace(self) -> Any:
        # NumPy >= 2.1 implements the standard in its main namespace; calling it
        # directly skips array-api-compat's wrappers (about 1 us a call).
        if np.lib.NumpyVersion(np.__version__) >= "2.1.0":
            return _NumpyNamespace()
        return array_api_compat.array_namespace(np.empty(0))

    def _from_host(self, host: np.ndarray) -> Any:
        return host

    def owns(self, array: Any) -> bool:
        return isinstance(array, np.ndarray)

    def buffer_of(self, array: Any) -> int:
        return id(_memory_owner(array))

    def dlpack_device(self) -> tuple[int, int] | None:
        return _DL_CPU, 0

    def _stack(self, values: Sequence[Any]) -> Any:
        # NumPy reductions return scalars, which np.stack converts one by one (about
        # 1 us each); asarray reads the whole list at once.
        return np.asarray(values)

    def new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        blocks = _row_blocks(param.shape)
        if blocks is None:
            return param - lr * direction
        new = SPARES.take(param)
        if new is None:
            new = np.empty_like(param)
        for rows in blocks:  # each block written once, in place
            np.subtract(param[rows], lr * direction[rows], out=new[rows])
        return new

    def offer_spares(self, arrays: Sequence[Any]) -> None:
        SPARES.offer(arrays)

    def float_errors_silenced(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
