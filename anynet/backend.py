"""Backends: names to array namespaces and devices, selection, and conversion.

This is the only module that knows backend libraries by name. Each one is
imported lazily, the first time it is asked for, so ``import anynet`` needs
nothing but NumPy and array-api-compat.

Selection order for the backend of a new network: an explicit ``backend=`` /
``device=`` argument, else the innermost :func:`use_backend` block (a
``contextvars`` variable, so threads and asyncio tasks do not see each other's
blocks), else :func:`set_backend`, else the environment variables
``ANYNET_BACKEND`` / ``ANYNET_DEVICE``, else ``"numpy"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import math
import numbers
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import array_api_compat
import numpy as np

from .errors import BackendError, InputError

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "Placement",
    "available_backends",
    "backend_of",
    "get_backend",
    "set_backend",
    "use_backend",
    "convert",
    "to_numpy",
]

#: Every backend anynet knows, in the order tests and tables list them.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "array_api_strict", "jax", "torch", "cupy")

_INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "array_api_strict": "pip install array-api-strict",
    "jax": "pip install 'jax[cpu]' (or 'jax[cuda12]' for NVIDIA GPUs)",
    "torch": "pip install torch",
    "cupy": "pip install cupy-cuda12x (needs an NVIDIA GPU and CUDA driver)",
}

_FLOAT_DTYPES = ("float32", "float64")
_DEVICE_PATTERN = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def _import(name: str) -> Any:
    """Import backend library ``name`` or raise a BackendError saying how to install it."""
    module_name = {"array_api_strict": "array_api_strict"}.get(name, name)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"backend {name!r} is not installed ({exc}); install it with: {_INSTALL_HINTS[name]}"
        ) from exc


def _parse_device_string(device: str) -> tuple[str, int | None] | None:
    """Split ``"gpu:1"`` into ``("gpu", 1)``; None for strings of another form."""
    match = _DEVICE_PATTERN.match(device.strip().lower())
    if match is None:
        return None
    kind = "gpu" if match.group(1) == "cuda" else match.group(1)
    index = None if match.group(2) is None else int(match.group(2))
    return kind, index


class Placement:
    """Where the fit engine and inference put their arrays: here, one device.

    This base class is the single-device placement (:data:`SINGLE_DEVICE`): every
    method returns its input, so the engine's code is the same with and without data
    parallelism. :meth:`Backend.data_parallel` gives the placement over several
    devices (JAX only), which overrides these hooks:

    * outside compiled code, :meth:`replicate` puts a copy of a pytree of arrays on
      every device (data, per-chunk inputs), :meth:`broadcast` does the same with the
      first process's values (parameters, state, seeds), :meth:`shard_rows` splits an
      array's rows over the devices, and :meth:`local` brings replicated results back
      to the backend's own device;
    * inside compiled code, ``constrain_*`` tell the compiler how to split an array:
      the stacked minibatches ``(batches, rows, features)`` by rows
      (:meth:`constrain_batches`), a batch ``(rows, features)`` by rows
      (:meth:`constrain_rows`), results replicated (:meth:`constrain_replicated`).
      The compiler then inserts the all-reduce of the gradients itself.
    """

    #: How many devices a batch is split over.
    size: int = 1

    def replicate(self, tree: Any) -> Any:
        """A pytree of arrays with a copy on every device (each process's own values)."""
        return tree

    def broadcast(self, tree: Any) -> Any:
        """As :meth:`replicate`, with the values of the first process in every process."""
        return tree

    def agree(self, value: int) -> int:
        """The first process's ``value`` (a Python int below 2**32), in every process."""
        return value

    def shard_rows(self, array: Any) -> Any:
        """``array``'s rows split over the devices (rows: a multiple of :attr:`size`)."""
        return array

    def local(self, tree: Any) -> Any:
        """A pytree of replicated arrays as arrays on the backend's own device."""
        return tree

    def constrain_batches(self, array: Any) -> Any:
        """Inside compiled code: split ``(batches, rows, ...)`` over the devices by rows."""
        return array

    def constrain_rows(self, array: Any) -> Any:
        """Inside compiled code: split ``(rows, ...)`` over the devices by rows."""
        return array

    def constrain_replicated(self, tree: Any) -> Any:
        """Inside compiled code: a copy of every array of ``tree`` on every device."""
        return tree

    def __repr__(self) -> str:
        return "Placement(single device)"


#: The placement of a computation on its backend's one device: nothing moves.
SINGLE_DEVICE = Placement()


class Backend:
    """One array library on one device.

    Instances are obtained from :func:`get_backend` and cached, so two
    networks on the same backend and device share one instance.

    Attributes
    ----------
    name : str
        One of :data:`BACKEND_NAMES`.
    device : object
        The library's own device object (``"cpu"`` for NumPy).
    xp : module
        The array-API namespace used by the math.
    """

    name: str = ""
    #: Non-default devices the test suites also run on (array-api-strict's stand-in GPU).
    stand_in_devices: tuple[str, ...] = ()
    #: The environment variable that float64 depends on, if any (JAX's 64-bit mode).
    float64_switch: str | None = None
    #: Whether its arrays are host NumPy arrays (no move needed for host data).
    on_host: bool = False

    def __init__(self, device: Any) -> None:
        self.device = device
        self.xp = self._namespace()

    # -- per-library hooks, overridden below ---------------------------------
    def _namespace(self) -> Any:
        raise NotImplementedError

    def _from_host(self, host: np.ndarray) -> Any:
        """Move a NumPy array to this backend's device (dtype kept)."""
        raise NotImplementedError

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on this device."""
        return backend_of(array) == self.name and _same_device(
            array_api_compat.device(array), self.device
        )

    def float64_problem(self) -> str | None:
        """Why float64 cannot be used here, or None when it can."""
        return None

    def jit(self, function: Callable, **options: Any) -> Callable:
        """Compile ``function`` where the backend can; identity elsewhere."""
        return function

    def replayer(self, function: Callable, *, in_place: bool = False) -> Callable:
        """``function(xp, *args)`` as a callable of ``args`` that skips its Python.

        Eager backends record the first call of each shape and replay the recorded
        operations as straight-line code (:class:`anynet._replay.Replayer`: the same
        calls, so the same numbers). Where a step is compiled whole (JAX), the step is
        simply called: its Python runs once, when it is traced.

        With ``in_place``, the step is ``function(xp, update, *args)`` and applies its
        updates with ``update(param, lr, direction)``: :meth:`apply_update` in the
        replays where :attr:`updates_in_place` (so ``param`` must be an array the
        caller may write), a new array elsewhere and while recording.
        """
        from ._replay import Replayer

        if not in_place:
            return Replayer(function, self.xp)
        write = self.apply_update if self.updates_in_place else self._new_update
        return Replayer(function, self.xp, writes=(write, self._new_update))

    def scan(self, body: Callable, carry: Any, xs: tuple, length: int) -> tuple[Any, Any]:
        """``jax.lax.scan`` semantics: ``carry, y = body(carry, x)`` over the leading axis.

        ``xs`` is a tuple of arrays (or None entries) with leading length ``length``;
        ``y`` is a tuple of 0-d arrays, stacked into 1-d arrays of length ``length``.
        Backends without a compiler run it as a plain Python loop, so the loop body
        is the same code everywhere.
        """
        # each input split into its entries once, not a tuple built per step: on a tiny
        # network the loop's own Python is a tenth of an epoch
        columns = [[None] * length if x is None else _entries(x, length) for x in xs]
        outputs = []
        for entry in zip(*columns, strict=True) if columns else [()] * length:
            carry, y = body(carry, entry)
            outputs.append(y)
        stacked = tuple(self._stack(column) for column in zip(*outputs, strict=True))
        return carry, stacked

    def _stack(self, values: Sequence[Any]) -> Any:
        """Stack 0-d arrays into a 1-d array (the scan's outputs)."""
        return self.xp.stack(values)

    #: Whether compiled functions need fixed shapes (JAX): chunks are then padded to one
    #: length and :meth:`loop` runs a traced count of steps, so no epoch count recompiles.
    fixed_shapes: bool = False

    def loop_count(self, count: int) -> Any:
        """``count`` as :meth:`loop` takes it (a traced array where shapes are fixed)."""
        return count

    def loop(self, body: Callable, carry: Any, xs: tuple, count: Any) -> tuple[Any, Any]:
        """:meth:`scan` over the first ``count`` entries of ``xs`` (which may be longer).

        Outputs have ``count`` entries here; on JAX they keep the full length of ``xs``
        (entries past ``count`` are zeros) so that one compiled loop serves every count.
        """
        return self.scan(
            body, carry, tuple(None if x is None else x[:count, ...] for x in xs), count
        )

    #: Whether updates may be written into the parameters (NumPy, CuPy, torch): see
    #: :meth:`updater`.
    updates_in_place: bool = False

    def updater(self) -> Callable[[Any, Any, Any], Any]:
        """A function ``update(param, lr, direction) -> param - lr * direction`` for one
        chunk of training.

        Where :attr:`updates_in_place`, the first update of a parameter writes a new
        array (the caller's arrays, and a chunk's start that a divergence rewinds to, are
        never written), and later updates of the array it returned write into it
        (:meth:`apply_update`): no new parameter per step, and no copy per chunk.
        Elsewhere (JAX, array-api-strict) every update is a new array.
        """
        if not self.updates_in_place:
            return _new_update
        produced: set[int] = set()  # ids of arrays this chunk made: alive while it runs

        def update(param: Any, lr: Any, direction: Any) -> Any:
            if id(param) in produced:
                return self.apply_update(param, lr, direction)
            new = self._new_update(param, lr, direction)
            produced.add(id(new))
            return new

        return update

    def _new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        """``param - lr * direction`` as a new array, without a full-size temporary."""
        return _blocked_new_update(param, lr, direction)

    def apply_update(self, param: Any, lr: Any, direction: Any) -> Any:
        """``param -= lr * direction`` in place (where :attr:`updates_in_place`); returns
        ``param``. ``lr * direction`` is formed a block of rows at a time, so no
        temporary as large as a big weight matrix exists."""
        blocks = _row_blocks(param.shape)
        if blocks is None:
            param -= lr * direction
            return param
        for rows in blocks:
            part = param[rows, ...]  # a view: written in place
            part -= lr * direction[rows, ...]
        return param

    def synchronize(self, *arrays: Any) -> None:
        """Wait until ``arrays`` (and queued device work) are computed; for timing.

        A no-op on synchronous backends.
        """

    def detached(self, array: Any) -> Any:
        """``array`` without autograd history (PyTorch); the array itself elsewhere.

        Inputs and parameters enter anynet through this, so no graph is ever kept.
        """
        return array

    def float_errors_silenced(self) -> contextlib.AbstractContextManager:
        """Context in which overflow/invalid floating-point warnings are not raised.

        The fit loop checks every loss itself and raises :class:`DivergenceError`
        naming the epoch, so NumPy's RuntimeWarnings would only be noise.
        """
        return contextlib.nullcontext()

    def data_parallel(self, devices: Any) -> Placement:
        """The placement of a data-parallel computation over ``devices``.

        ``None`` is this backend's one device (:data:`SINGLE_DEVICE`). Anything else
        asks for data parallelism, which only JAX provides (meshes and shardings).

        Raises
        ------
        BackendError
            ``devices`` is not None on a backend other than JAX, or names devices that
            do not exist.
        """
        if devices is None:
            return SINGLE_DEVICE
        raise BackendError(
            f"devices={devices!r} asks for data parallelism, which needs backend 'jax' "
            f"(JAX meshes and shardings); this network's backend is {self.name!r}: "
            "use backend='jax', or devices=None"
        )

    def is_primary_process(self) -> bool:
        """Whether this process writes shared files (checkpoints): the first of a
        ``jax.distributed`` job, and every process elsewhere."""
        return True

    # -- shared behaviour ----------------------------------------------------
    def dtype(self, name: str) -> Any:
        """The backend dtype for ``"float32"`` or ``"float64"``, checking it is usable."""
        if not isinstance(name, str) or name not in _FLOAT_DTYPES:
            raise InputError(f"dtype must be one of {list(_FLOAT_DTYPES)}, got {name!r}")
        if name == "float64":
            problem = self.float64_problem()
            if problem is not None:
                raise BackendError(problem)
        return getattr(self.xp, name)

    @property
    def int_dtype(self) -> Any:
        """The backend's default integer dtype (int64, or int32 on JAX without x64)."""
        return self.xp.__array_namespace_info__().default_dtypes(device=self.device)["integral"]

    def asarray(self, host: Any, dtype: str | None = None, copy: bool = False) -> Any:
        """Move host data (NumPy array, list, scalar) to this backend's device.

        Parameters
        ----------
        host : array_like
            NumPy array or nested sequence; never an array of another backend.
        dtype : {"float32", "float64"}, optional
            Cast on the host first, so every backend receives identical bits.
        copy : bool
            Copy even where the backend could share the host memory (NumPy).
        """
        array = np.array(host, copy=True) if copy else np.asarray(host)
        if dtype is not None:
            self.dtype(dtype)
            array = array.astype(dtype, copy=False)
        return self._from_host(array)

    def __reduce__(self) -> tuple:
        # a backend travels (pickle, Dask workers) as its name and device: the
        # namespace module it holds cannot be pickled, and the receiver resolves its own
        return (get_backend, (self.name, _device_text(self.device)))

    def __copy__(self) -> Backend:
        # copy.copy is a real copy (tests swap a copy's namespace), not the cached instance
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: dict) -> Backend:
        return self.__copy__()  # the namespace module and device object are shared

    def describe(self) -> str:
        """Human-readable ``"name (device)"``."""
        return f"{self.name} ({_device_text(self.device)})"

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={_device_text(self.device)!r})"


#: Elements of ``lr * direction`` formed at once by an update (1 MiB of float32).
_UPDATE_BLOCK = 2**18


def _new_update(param: Any, lr: Any, direction: Any) -> Any:
    return param - lr * direction


def _row_blocks(shape: tuple[int, ...]) -> list[slice] | None:
    """Slices of rows holding about :data:`_UPDATE_BLOCK` elements each; None when the
    whole array is one block (or 0-d)."""
    size = math.prod(shape)
    if not shape or size <= _UPDATE_BLOCK:
        return None
    block = max(1, _UPDATE_BLOCK * shape[0] // size)
    return [slice(start, start + block) for start in range(0, shape[0], block)]


def _blocked_new_update(param: Any, lr: Any, direction: Any) -> Any:
    """``param - lr * direction`` as a new array, without a full-size temporary."""
    blocks = _row_blocks(param.shape)
    if blocks is None:
        return param - lr * direction
    new = array_api_compat.array_namespace(param).empty_like(param)
    for rows in blocks:
        new[rows, ...] = param[rows, ...] - lr * direction[rows, ...]
    return new


def _entries(x: Any, length: int) -> list[Any]:
    """The first ``length`` entries of ``x`` along axis 0 (NumPy scalars from a 1-d NumPy
    array: cheaper in the arithmetic of a step than 0-d arrays)."""
    if x.ndim == 1:
        return [x[i] for i in range(length)]
    return [x[i, ...] for i in range(length)]


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


class _NumpyBackend(Backend):
    name = "numpy"
    updates_in_place = True
    on_host = True

    @staticmethod
    def list_devices() -> list[str]:
        return ["cpu"]

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

    def _stack(self, values: Sequence[Any]) -> Any:
        # NumPy reductions return scalars, which np.stack converts one by one (about
        # 1 us each); asarray reads the whole list at once.
        return np.asarray(values)

    def _new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        blocks = _row_blocks(param.shape)
        if blocks is None:
            return param - lr * direction
        new = np.empty_like(param)
        for rows in blocks:  # each block written once, in place
            np.subtract(param[rows], lr * direction[rows], out=new[rows])
        return new

    def float_errors_silenced(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    @staticmethod
    def resolve_device(device: Any) -> Any:
        if device is None or (isinstance(device, str) and device.strip().lower() == "cpu"):
            return "cpu"
        raise BackendError(f"device {device!r} does not exist on backend 'numpy'; devices: ['cpu']")


class _StrictBackend(Backend):
    name = "array_api_strict"
    stand_in_devices = ("device1",)

    @staticmethod
    def list_devices() -> list[str]:
        strict = _import("array_api_strict")
        return [_device_text(d) for d in strict.__array_namespace_info__().devices()]

    def _namespace(self) -> Any:
        return _import("array_api_strict")

    def _from_host(self, host: np.ndarray) -> Any:
        return self.xp.asarray(host, device=self.device)

    def float_errors_silenced(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    @staticmethod
    def resolve_device(device: Any) -> Any:
        strict = _import("array_api_strict")
        devices = list(strict.__array_namespace_info__().devices())
        if device is None or (isinstance(device, str) and device.strip().lower() == "cpu"):
            return strict.Device("CPU_DEVICE")
        if isinstance(device, str):
            for candidate in devices:
                if device in (str(candidate), repr(candidate).split("'")[1]):
                    return candidate
        elif device in devices:
            return device
        raise BackendError(
            f"device {device!r} does not exist on backend 'array_api_strict'; "
            f"devices: ['cpu'] + {devices}"
        )


class _JaxBackend(Backend):
    name = "jax"
    float64_switch = "JAX_ENABLE_X64"

    @staticmethod
    def list_devices() -> list[str]:
        return _jax_all_devices(_import("jax"))

    def _namespace(self) -> Any:
        return _import("jax").numpy

    def _from_host(self, host: np.ndarray) -> Any:
        return _import("jax").device_put(host, self.device)

    def float64_problem(self) -> str | None:
        jax = _import("jax")
        if jax.config.read("jax_enable_x64"):
            return None
        return (
            "dtype='float64' on backend 'jax' needs JAX's 64-bit mode, which is off: "
            "set the environment variable JAX_ENABLE_X64=1 before Python starts, or call "
            "jax.config.update('jax_enable_x64', True) before creating arrays; "
            "or use dtype='float32'. anynet never flips this switch for you."
        )

    def jit(self, function: Callable, **options: Any) -> Callable:
        return _import("jax").jit(function, **options)

    def replayer(self, function: Callable, *, in_place: bool = False) -> Callable:
        return functools.partial(function, self.xp, *([_new_update] if in_place else []))

    def scan(self, body: Callable, carry: Any, xs: tuple, length: int) -> tuple[Any, Any]:
        return _import("jax").lax.scan(body, carry, xs, length=length)

    fixed_shapes = True

    def loop_count(self, count: int) -> Any:
        return _import("jax").numpy.asarray(count, dtype="int32")

    def loop(self, body: Callable, carry: Any, xs: tuple, count: Any) -> tuple[Any, Any]:
        jax = _import("jax")
        lax, jnp = jax.lax, jax.numpy
        length = next(x.shape[0] for x in xs if x is not None)
        first = tuple(None if x is None else x[0] for x in xs)
        shapes = jax.eval_shape(lambda c, x: body(c, x)[1], carry, first)
        outputs = tuple(jnp.zeros((length, *s.shape), s.dtype) for s in shapes)

        def step(index: Any, loop_state: tuple) -> tuple:
            carry, outputs = loop_state
            x = tuple(
                None if a is None else lax.dynamic_index_in_dim(a, index, 0, False) for a in xs
            )
            carry, ys = body(carry, x)
            return carry, tuple(o.at[index].set(y) for o, y in zip(outputs, ys, strict=True))

        return lax.fori_loop(0, count, step, (carry, outputs))

    def synchronize(self, *arrays: Any) -> None:
        # JAX dispatches asynchronously: wait on the arrays themselves
        _import("jax").block_until_ready(arrays)

    def data_parallel(self, devices: Any) -> Placement:
        if devices is None:
            return SINGLE_DEVICE
        return _JaxPlacement(_jax_mesh(_import("jax"), devices, self.device), self.device)

    def is_primary_process(self) -> bool:
        return _import("jax").process_index() == 0

    @staticmethod
    def resolve_device(device: Any) -> Any:
        # This process's own devices only: under jax.distributed, jax.devices() lists
        # every process's, and an array on another process's device is never computed.
        jax = _import("jax")
        if device is None:
            return jax.local_devices()[0]
        if not isinstance(device, str):
            if isinstance(device, jax.Device) and device in _jax_devices(jax):
                return device
            raise BackendError(_no_device("jax", device, _jax_all_devices(jax)))
        parsed = _parse_device_string(device)
        if parsed is None:
            raise BackendError(_no_device("jax", device, _jax_all_devices(jax)))
        kind, index = parsed
        try:
            candidates = jax.local_devices(backend=kind)
        except RuntimeError:
            candidates = []
        if index is None:
            index = 0
        if index >= len(candidates):
            raise BackendError(_no_device("jax", device, _jax_all_devices(jax)))
        return candidates[index]


def _jax_devices(jax: Any) -> list[Any]:
    """This process's JAX devices (all of them outside ``jax.distributed``)."""
    found = []
    for kind in ("cpu", "gpu"):
        try:
            found += jax.local_devices(backend=kind)
        except RuntimeError:
            pass
    return found


def _jax_all_devices(jax: Any) -> list[str]:
    found = []
    for kind in ("cpu", "gpu"):
        try:
            found += [f"{kind}:{i}" for i, _ in enumerate(jax.local_devices(backend=kind))]
        except RuntimeError:
            pass
    return found


#: The mesh axis a batch is split over.
DATA_AXIS = "data"


def _jax_mesh(jax: Any, devices: Any, device: Any) -> Any:
    """``fit(devices=...)`` as a 1-D mesh over axis ``"data"`` (or the user's own mesh).

    ``devices``: a number (the first devices of ``device``'s platform), ``"all"``
    (every device of that platform, in every process), a sequence of JAX devices, or a
    ``jax.sharding.Mesh`` with a ``"data"`` axis. Axes are made Auto: under Explicit
    axes (``jax.make_mesh``'s default) the batch contraction raises ShardingTypeError,
    and the compiler, not the types, is to place the gradient all-reduce.
    """
    sharding = jax.sharding
    auto = sharding.AxisType.Auto
    if isinstance(devices, sharding.Mesh):
        if DATA_AXIS not in devices.axis_names:
            raise BackendError(
                f"devices must be a mesh with an axis named {DATA_AXIS!r} (a batch is split "
                f"over it), got a mesh with axes {list(devices.axis_names)}"
            )
        axes = (auto,) * len(devices.axis_names)
        if tuple(devices.axis_types) == axes:
            return devices
        return sharding.Mesh(devices.devices, devices.axis_names, axis_types=axes)
    everything = jax.devices(device.platform)
    names = f"the {len(everything)} {device.platform} devices here"
    if isinstance(devices, str) and devices.strip().lower() == "all":
        chosen = list(everything)
    elif isinstance(devices, numbers.Integral) and not isinstance(devices, (bool, np.bool_)):
        if not 1 <= int(devices) <= len(everything):
            raise BackendError(
                f"devices must be between 1 and {len(everything)} ({names}), got {devices}"
            )
        chosen = list(everything[: int(devices)])
    elif isinstance(devices, (list, tuple)) and devices:
        chosen = list(devices)
        for index, item in enumerate(chosen):
            if not isinstance(item, jax.Device) or item not in everything:
                raise BackendError(
                    f"devices[{index}] must be one of {names} ({everything}), got {item!r}"
                )
        if len(set(chosen)) != len(chosen):
            raise BackendError(f"devices must not repeat a device, got {chosen}")
    else:
        raise BackendError(
            "devices must be None, a number of devices, 'all', a list of JAX devices or a "
            f"jax.sharding.Mesh with a {DATA_AXIS!r} axis, got {devices!r}"
        )
    return sharding.Mesh(np.array(chosen, dtype=object), (DATA_AXIS,), axis_types=(auto,))


class _JaxPlacement(Placement):
    """Data parallel over a mesh's ``"data"`` axis: arrays replicated, batches split.

    Parameters, layer state, optimizer state and the data sit whole on every device;
    inside the compiled runner each batch is constrained to be split by rows, so every
    device computes the gradients of its rows and XLA sums them with one all-reduce.
    (A dataset split by rows and gathered with ``take`` instead compiles to an
    all-reduce of the whole dataset every epoch: 2-4 times slower, measured.)
    """

    def __init__(self, mesh: Any, device: Any) -> None:
        jax = _import("jax")
        named, spec = jax.sharding.NamedSharding, jax.sharding.PartitionSpec
        self.mesh, self.device = mesh, device
        self.size = int(mesh.shape[DATA_AXIS])
        self._replicated = named(mesh, spec())
        self._rows = named(mesh, spec(DATA_AXIS))
        self._batches = named(mesh, spec(None, DATA_AXIS))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _JaxPlacement)
            and self.mesh == other.mesh
            and self.device == other.device
        )

    def __hash__(self) -> int:
        return hash((self.mesh, self.device))

    def __repr__(self) -> str:
        return f"Placement(mesh={dict(self.mesh.shape)}, devices={list(self.mesh.devices.flat)})"

    def _put(self, array: Any, sharding: Any) -> Any:
        jax = _import("jax")
        if sharding.is_fully_addressable:
            return jax.device_put(array, sharding)
        # other processes' devices: each process supplies its own devices' parts
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    def replicate(self, tree: Any) -> Any:
        return _import("jax").tree.map(lambda a: self._put(a, self._replicated), tree)

    def broadcast(self, tree: Any) -> Any:
        jax = _import("jax")
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            tree = multihost_utils.broadcast_one_to_all(tree)  # host copies, process 0's
        return self.replicate(tree)

    def agree(self, value: int) -> int:
        jax = _import("jax")
        if jax.process_count() == 1:
            return value
        from jax.experimental import multihost_utils

        return int(multihost_utils.broadcast_one_to_all(np.asarray(value, dtype=np.uint32)))

    def shard_rows(self, array: Any) -> Any:
        return self._put(array, self._rows)

    def local(self, tree: Any) -> Any:
        jax = _import("jax")

        def one(array: Any) -> Any:
            if array.is_fully_replicated:  # this process's copy, on our device if it has one
                shards = array.addressable_shards
                array = next((s.data for s in shards if s.device == self.device), shards[0].data)
            return jax.device_put(array, self.device)  # no copy where it already is

        return jax.tree.map(one, tree)

    def _constrain(self, tree: Any, sharding: Any) -> Any:
        return _import("jax").lax.with_sharding_constraint(tree, sharding)

    def constrain_batches(self, array: Any) -> Any:
        return self._constrain(array, self._batches)

    def constrain_rows(self, array: Any) -> Any:
        return self._constrain(array, self._rows)

    def constrain_replicated(self, tree: Any) -> Any:
        return self._constrain(tree, self._replicated)


class _TorchNamespace(types.ModuleType):
    """array-api-compat's torch namespace, with ``matmul``, ``maximum`` and ``sum`` sped up.

    The compat wrappers first work out type promotion (5.5 us for a small ``matmul``
    against 1.4 us for ``torch.matmul``; 8.8 us for ``maximum(x, 0.0)`` against 1.8 us
    for ``torch.clamp_min``). anynet's math hands them operands of one dtype, or an
    array and a Python float; anything else still goes through the compat wrappers.
    """

    def __init__(self, compat: Any, torch: Any) -> None:
        super().__init__("anynet_torch")
        self.__dict__.update({k: v for k, v in vars(compat).items() if not k.startswith("__")})
        self.__array_api_version__ = compat.__array_api_version__
        self.__array_namespace_info__ = compat.__array_namespace_info__
        compat_matmul, compat_maximum, compat_sum = compat.matmul, compat.maximum, compat.sum
        tensor = torch.Tensor

        def matmul(x1: Any, x2: Any, /) -> Any:
            if x1.dtype == x2.dtype:
                return torch.matmul(x1, x2)
            return compat_matmul(x1, x2)

        def maximum(x1: Any, x2: Any, /) -> Any:
            if isinstance(x2, float) and isinstance(x1, tensor) and x1.is_floating_point():
                return torch.clamp_min(x1, x2)
            return compat_maximum(x1, x2)

        def sum(x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
            # the compat wrapper costs about 4 us a call on top of torch.sum
            if dtype is None and axis != () and isinstance(x, tensor) and x.is_floating_point():
                if axis is None:
                    return torch.sum(x) if not keepdims else compat_sum(x, keepdims=True)
                return torch.sum(x, dim=axis, keepdim=keepdims)
            return compat_sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

        self.matmul, self.maximum, self.sum = matmul, maximum, sum


class _TorchBackend(Backend):
    name = "torch"
    updates_in_place = True

    def _new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        torch = _import("torch")
        blocks = _row_blocks(tuple(param.shape))
        if blocks is None:
            return param - lr * direction
        new = torch.empty_like(param)
        for rows in blocks:  # each block written once, in place
            torch.sub(param[rows], lr * direction[rows], out=new[rows])
        return new

    @staticmethod
    def list_devices() -> list[str]:
        torch = _import("torch")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu", *(f"gpu:{index}" for index in range(count))]

    def _namespace(self) -> Any:
        torch = _import("torch")
        return _TorchNamespace(array_api_compat.array_namespace(torch.empty(0)), torch)

    def _from_host(self, host: np.ndarray) -> Any:
        torch = _import("torch")
        if not host.flags.writeable:
            host = host.copy()  # torch warns on read-only memory
        return torch.from_numpy(np.asarray(host, order="C")).to(self.device)  # keeps 0-d

    def detached(self, array: Any) -> Any:
        return array.detach() if array.requires_grad else array

    def synchronize(self, *arrays: Any) -> None:
        torch = _import("torch")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @staticmethod
    def resolve_device(device: Any) -> Any:
        torch = _import("torch")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        existing = ["cpu"] + [f"gpu:{i}" for i in range(count)]
        if device is None:
            return torch.device("cpu")
        if isinstance(device, torch.device):
            if device.type == "cpu" or (device.type == "cuda" and (device.index or 0) < count):
                return device
            raise BackendError(_no_device("torch", device, existing))
        parsed = _parse_device_string(str(device)) if isinstance(device, str) else None
        if parsed is None:
            raise BackendError(_no_device("torch", device, existing))
        kind, index = parsed
        if kind == "cpu":
            return torch.device("cpu")
        index = 0 if index is None else index
        if index >= count:
            raise BackendError(_no_device("torch", device, existing))
        return torch.device("cuda", index)


class _CupyBackend(Backend):
    name = "cupy"
    updates_in_place = True

    @staticmethod
    def list_devices() -> list[str]:
        return [f"gpu:{i}" for i in range(_import("cupy").cuda.runtime.getDeviceCount())]

    def _namespace(self) -> Any:
        return array_api_compat.array_namespace(_import("cupy").empty(0))

    def _from_host(self, host: np.ndarray) -> Any:
        cupy = _import("cupy")
        with self.device:
            return cupy.asarray(host)

    def synchronize(self, *arrays: Any) -> None:
        self.device.synchronize()

    @staticmethod
    def resolve_device(device: Any) -> Any:
        cupy = _import("cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing or broken
            raise BackendError(
                f"backend 'cupy' is installed but no CUDA device answers ({exc}); "
                "use another backend (see anynet.available_backends())"
            ) from exc
        existing = [f"gpu:{i}" for i in range(count)]
        if isinstance(device, cupy.cuda.Device):
            if device.id < count:
                return device
            raise BackendError(_no_device("cupy", device, existing))
        parsed: tuple[str, int | None] | None = ("gpu", None) if device is None else None
        if isinstance(device, str):
            parsed = _parse_device_string(device)
        if parsed is None or parsed[0] == "cpu":
            raise BackendError(_no_device("cupy", device, existing))
        index = 0 if parsed[1] is None else parsed[1]
        if index >= count:
            raise BackendError(_no_device("cupy", device, existing))
        return cupy.cuda.Device(index)


_BACKEND_CLASSES: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (_NumpyBackend, _StrictBackend, _JaxBackend, _TorchBackend, _CupyBackend)
}


def _no_device(name: str, device: Any, existing: list[str]) -> str:
    return f"device {device!r} does not exist on backend {name!r}; devices found: {existing}"


def _device_text(device: Any) -> str:
    """A device as a short string: ``"cpu"``, ``"cpu:0"``, ``"device1"``."""
    text = str(device)
    quoted = re.search(r"'([^']*)'", text)
    if quoted:
        return quoted.group(1)
    return {"CpuDevice(id=0)": "cpu:0"}.get(text, text)


def _same_device(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return str(a) == str(b)


# -- selection -----------------------------------------------------------------

_context_choice: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "anynet_backend", default=None
)
_process_choice: tuple[str, Any] | None = None
_cache: dict[tuple[str, str], Backend] = {}
_cache_lock = threading.Lock()


def _check_name(name: Any, source: str) -> str:
    if isinstance(name, str) and name.strip().lower().replace("-", "_") in BACKEND_NAMES:
        return name.strip().lower().replace("-", "_")
    raise BackendError(f"{source} must be one of {list(BACKEND_NAMES)}, got {name!r}")


def _instantiate(name: str, device: Any) -> Backend:
    cls = _BACKEND_CLASSES[name]
    resolved = cls.resolve_device(device)  # type: ignore[attr-defined]
    key = (name, f"{type(resolved).__name__}:{resolved!r}")
    with _cache_lock:
        backend = _cache.get(key)
        if backend is None:
            backend = cls(resolved)
            _cache[key] = backend
    return backend


def get_backend(name: str | Backend | None = None, device: Any = None) -> Backend:
    """Resolve a backend name and device to a :class:`Backend`.

    Parameters
    ----------
    name : str or Backend, optional
        ``"numpy"``, ``"array_api_strict"``, ``"jax"``, ``"torch"`` or ``"cupy"``.
        None takes the default: :func:`use_backend` block, else
        :func:`set_backend`, else ``ANYNET_BACKEND``, else ``"numpy"``.
    device : str or device object, optional
        ``"cpu"``, ``"gpu"`` / ``"cuda"``, ``"gpu:1"``, or the library's own device
        object. None takes the default device that goes with the chosen backend.

    Raises
    ------
    BackendError
        Unknown name, backend not installed (the message says how to install it),
        or a device that does not exist (the message lists those that do).
    """
    if isinstance(name, Backend):
        return name if device is None else _instantiate(name.name, device)
    if name is not None:
        return _instantiate(_check_name(name, "backend"), device)
    choice = _context_choice.get() or _process_choice
    if choice is None:
        env_name = os.environ.get("ANYNET_BACKEND", "").strip()
        env_device = os.environ.get("ANYNET_DEVICE", "").strip() or None
        if env_name:
            choice = (_check_name(env_name, "environment variable ANYNET_BACKEND"), env_device)
        else:
            choice = ("numpy", env_device)
    chosen_name, chosen_device = choice
    return _instantiate(chosen_name, chosen_device if device is None else device)


def set_backend(name: str | None, device: Any = None) -> Backend | None:
    """Set the process-wide default backend (``None`` restores the environment/NumPy default).

    The backend is imported and the device checked at once, so a typo fails here.
    """
    global _process_choice
    if name is None:
        _process_choice = None
        return None
    backend = get_backend(name, device)
    _process_choice = (backend.name, backend.device)
    return backend


@contextlib.contextmanager
def use_backend(name: str, device: Any = None) -> Iterator[Backend]:
    """Context manager making ``name``/``device`` the default inside the block.

    Safe across threads and asyncio tasks: the choice lives in a
    ``contextvars.ContextVar``.

    Examples
    --------
    >>> import anynet as an
    >>> with an.use_backend("numpy"):
    ...     net = an.Network([2, 3, 1], seed=0)
    """
    backend = get_backend(name, device)
    token = _context_choice.set((backend.name, backend.device))
    try:
        yield backend
    finally:
        _context_choice.reset(token)


def install_hint(name: str) -> str:
    """The command that installs backend ``name``."""
    return _INSTALL_HINTS.get(name, f"pip install {name}")


def stand_in_devices(name: str) -> tuple[str, ...]:
    """Non-default devices a test suite should also cover for ``name`` (nothing is imported)."""
    return _BACKEND_CLASSES[_check_name(name, "name")].stand_in_devices


def probe(name: str) -> dict[str, Any]:
    """What is known about backend ``name`` here; never raises.

    Returns
    -------
    dict
        ``installed`` (bool), ``version`` (str or None), ``devices`` (list of str),
        ``error`` (why it cannot be used, or None), ``backend`` (a :class:`Backend`
        on the default device, or None).
    """
    name = _check_name(name, "name")
    info: dict[str, Any] = {
        "installed": False, "version": None, "devices": [], "error": None, "backend": None,
    }  # fmt: skip
    try:
        module = _import(name)
    except BackendError as exc:
        info["error"] = str(exc)
        return info
    except Exception as exc:  # a broken install is reported, never a crash
        info["error"] = f"import failed: {type(exc).__name__}: {exc}"
        return info
    info["installed"] = True
    info["version"] = str(getattr(module, "__version__", "?"))
    try:
        info["backend"] = get_backend(name)
        info["devices"] = _BACKEND_CLASSES[name].list_devices()  # type: ignore[attr-defined]
    except Exception as exc:
        info["error"] = str(exc)
    return info


def available_backends() -> list[str]:
    """Backends that import and can compute here, in :data:`BACKEND_NAMES` order.

    CuPy is listed only where a CUDA device answers.
    """
    found = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
        except BackendError:
            continue
        except Exception:  # a broken install counts as unavailable, never as a crash
            continue
        found.append(name)
    return found


# -- conversion ----------------------------------------------------------------


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (inside ``jax.jit``, ``vmap`` or ``grad``).

    Looks only if JAX is already imported: a tracer cannot exist otherwise.
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    tracer = getattr(getattr(jax, "core", None), "Tracer", None)
    return tracer is not None and isinstance(value, tracer)


def backend_of(array: Any) -> str | None:
    """Name of the backend that ``array`` belongs to, or None for non-arrays (lists, scalars)."""
    if isinstance(array, np.ndarray):
        return "numpy"
    if array_api_compat.is_torch_array(array):
        return "torch"
    if array_api_compat.is_jax_array(array):
        return "jax"
    if array_api_compat.is_cupy_array(array):
        return "cupy"
    if type(array).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return None


def to_floats(array: Any) -> np.ndarray:
    """A 0-d or 1-d array of any backend as float64 NumPy values, for reports and histories.

    float32 values become the float64 nearest their shortest decimal form, so a
    float32 accuracy of 364/400 reads 0.91, not 0.9100000262260437.
    """
    host = to_numpy(array)
    if host.dtype == np.float32:
        return np.array([float(str(v)) for v in host.reshape(-1)]).reshape(host.shape)
    return host.astype(np.float64)


def to_numpy(array: Any) -> np.ndarray:
    """An array of any backend (or a list or scalar) as a NumPy array on the host.

    This is the explicit, visible device-to-host transfer; anynet never does it
    silently inside the math.

    Parameters
    ----------
    array : array or array_like
        An array of any backend and device, any shape and dtype, or host data.

    Returns
    -------
    numpy.ndarray
        The same shape, dtype and values. **Zero-copy where the array already lives in
        host memory**: a NumPy array is returned as it is, a CPU torch tensor as a
        writable view of its storage (``Tensor.numpy(force=True)``, which also resolves
        autograd, conjugate and negative views), a CPU JAX array as a read-only view
        through DLPack. Arrays on a GPU (CuPy, torch, JAX) and array-api-strict arrays
        are copied.

    Notes
    -----
    A shared result stays valid and unchanged when the network it came from trains
    on: anynet never writes into a parameter or state array (``fit``, ``set_params``
    and every optimizer replace the arrays), so ``W = to_numpy(net.params["W1"])`` keeps
    the values it had when it was taken. The converse does not hold: writing into a
    shared result writes into the network's array. Copy it first
    (``np.array(to_numpy(a))``) if you mean to modify it.
    """
    kind = backend_of(array)
    if kind == "torch":
        # torch's own zero-copy path: DLPack would export a negative view's storage
        # without its sign bit (np.from_dlpack(torch._neg_view(t)) gives t's values)
        return array.numpy(force=True)
    if kind in ("jax", "cupy") and _dlpack_device(array) == (_DL_CPU, 0):
        try:
            return np.from_dlpack(array)  # host memory: a view, no copy
        except (BufferError, TypeError, ValueError, RuntimeError):
            pass  # an unsupported dtype or layout: copy below
    if kind == "cupy":
        return array.get()
    if kind == "array_api_strict":
        strict = _import("array_api_strict")
        on_cpu = strict.asarray(array, device=strict.Device("CPU_DEVICE"))
        return np.asarray(on_cpu)
    return np.asarray(array)


# DLPack device types (dlpack.h): host memory and CUDA device memory.
_DL_CPU, _DL_CUDA = 1, 2
#: Backends whose arrays are exchanged through DLPack (array-api-strict's devices are
#: simulated: its arrays always go through the host).
_DLPACK_BACKENDS = ("torch", "jax", "cupy")
_DLPACK_FAILURES = (BufferError, TypeError, ValueError, RuntimeError, NotImplementedError)


def _dlpack_device(array: Any) -> tuple[int, int] | None:
    """``array.__dlpack_device__()`` as two ints, or None where it has none."""
    try:
        kind, index = array.__dlpack_device__()
        return int(kind), int(index)
    except Exception:  # no DLPack, or a deleted / multi-device buffer
        return None


def _backend_dlpack_device(target: Backend) -> tuple[int, int] | None:
    """The DLPack ``(device type, index)`` of ``target``'s device; None if unknown."""
    device = target.device
    if target.name == "numpy":
        return _DL_CPU, 0
    if target.name == "torch":
        if device.type == "cpu":
            return _DL_CPU, 0
        return (_DL_CUDA, device.index or 0) if device.type == "cuda" else None
    if target.name == "jax":
        if device.platform == "cpu":
            return _DL_CPU, 0
        hardware = getattr(device, "local_hardware_id", None)
        if device.platform not in ("gpu", "cuda") or hardware is None:
            return None
        return _DL_CUDA, int(hardware)
    if target.name == "cupy":
        return _DL_CUDA, int(device.id)
    return None


def _dtype_name(dtype: Any) -> str:
    return str(dtype).rsplit(".", 1)[-1]


def _device_copy(array: Any, target: Backend) -> Any:
    """A copy of ``array`` (already ``target``'s, on its device) made on that device."""
    if target.name == "torch":
        return array.clone()
    if target.name == "jax":
        return _import("jax").numpy.array(array, copy=True)
    with target.device:  # cupy
        return array.copy()


def _same_library(array: Any, target: Backend, copy: bool) -> Any | None:
    """``array`` moved by its own library to ``target``'s device; None to go through the host."""
    if target.name == "torch":
        return array.detach().to(target.device, copy=copy)
    if target.name == "jax":
        moved = _import("jax").device_put(array, target.device)
        return _device_copy(moved, target) if copy else moved
    if target.owns(array):  # cupy: the same device only; another GPU goes through the host
        return _device_copy(array, target) if copy else array
    return None


def convert(array: Any, target: Backend | str, *, copy: bool = True) -> Any:
    """``array`` of any backend as an array of ``target`` (its backend and device).

    The conversion that :meth:`anynet.Network.to` applies to every parameter and state
    array. Between torch, JAX and CuPy on one device (the CPU, or one GPU) it goes
    through DLPack (``target.xp.from_dlpack``): the data never leave the device and are
    never staged through the host. An array of the target's own library moves with that
    library (``Tensor.to``, ``jax.device_put``). Everything else (NumPy or host data,
    array-api-strict, another device, a layout or dtype DLPack does not carry) is copied
    through the host as before: ``target.asarray(to_numpy(array))``. Values are the same
    bits in every case.

    Parameters
    ----------
    array : array or array_like
        An array of any backend and device, any shape and dtype, or host data (NumPy
        array, nested list, scalar).
    target : Backend or str
        The backend (and device) to convert to; a name means its default device.
    copy : bool, default True
        True: the result never shares memory with ``array`` (a copy is made on the
        target device after DLPack), so in-place writes to either one, by the user or by
        a library that donates buffers (``jax.jit(..., donate_argnums=...)``), never
        reach the other. False: the result may share memory with ``array`` (zero-copy
        where DLPack allows; JAX on the CPU takes a buffer only when it is 64-byte
        aligned and copies it otherwise); treat both as read-only then.

    Returns
    -------
    array
        An array of ``target``'s backend on ``target``'s device, with ``array``'s shape,
        dtype and values.
    """
    if not isinstance(target, Backend):
        target = get_backend(target)
    if not isinstance(copy, bool):
        raise InputError(f"copy must be True or False, got {copy!r}")
    kind = backend_of(array)
    if kind in _DLPACK_BACKENDS and target.name in _DLPACK_BACKENDS:
        if kind == "torch":
            array = array.detach().resolve_conj().resolve_neg()  # views DLPack cannot carry
        try:
            if kind == target.name:
                moved = _same_library(array, target, copy)
            elif _dlpack_device(array) == _backend_dlpack_device(target):
                moved = target.xp.from_dlpack(array)
                if copy:
                    moved = _device_copy(moved, target)
            else:
                moved = None
        except _DLPACK_FAILURES:
            moved = None
        if (
            moved is not None
            and target.owns(moved)
            and _dtype_name(moved.dtype) == _dtype_name(array.dtype)
        ):
            return moved
    return target.asarray(to_numpy(array), copy=copy)
