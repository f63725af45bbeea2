"""The :class:`Backend` interface, placements, and what every backend shares.

A backend is one array library on one device. This module declares every method a
backend has, with the behaviour of an eager library that follows the array API; each
library's own file (``numpy.py``, ``strict.py``, ``jax.py``, ``torch.py``, ``cupy.py``)
subclasses :class:`Backend` with ``class NumpyBackend(Backend, name="numpy")``, which
registers it, and overrides only what differs. Nothing here names a library: selection
(:mod:`anynet.backend.select`) and conversion (:mod:`anynet.backend.convert`) ask the
registered classes.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from ..errors import BackendError, InputError

#: The backend classes by name, in the order their modules register them.
_REGISTRY: dict[str, type[Backend]] = {}

_FLOAT_DTYPES = ("float32", "float64")
_HALF_DTYPES = ("bfloat16", "float16")


def _half_note(name: Any) -> str:
    """For a half-precision dtype (a name, or a library's dtype object): what each
    registered backend supports, and why half precision is refused."""
    text = str(name).lower()
    half = next((h for h in _HALF_DTYPES if h in text), None)
    if half is None:
        return ""
    supported = "; ".join(
        f"{backend}: float32, float64"
        + (f" (float64 needs {cls.float64_switch}=1)" if cls.float64_switch else "")
        for backend, cls in sorted(_REGISTRY.items())
    )
    return (
        f". {half} is not supported on any backend (they run {supported}): bfloat16 is "
        "not a dtype of NumPy or of the array API standard, and in float16 (largest "
        "65504, smallest normal 6e-5) losses and gradients overflow or underflow without "
        "loss scaling, which anynet does not do; train in float32, and cast the trained "
        "parameters yourself for half-precision inference"
    )


# DLPack device types (dlpack.h): host memory and CUDA device memory.
_DL_CPU, _DL_CUDA = 1, 2

#: Elements of ``lr * direction`` formed at once by an update (1 MiB of float32).
UPDATE_BLOCK = 2**18


def device_text(device: Any) -> str:
    """A device as a short string: ``"cpu"``, ``"cpu:0"``, ``"device1"``."""
    text = str(device)
    quoted = re.search(r"'([^']*)'", text)
    if quoted:
        return quoted.group(1)
    return {"CpuDevice(id=0)": "cpu:0"}.get(text, text)


def same_device(a: Any, b: Any) -> bool:
    """Whether two device objects (of one library) are the same device."""
    try:
        return bool(a == b)
    except Exception:
        return str(a) == str(b)


def _dlpack_device(array: Any) -> tuple[int, int] | None:
    """``array.__dlpack_device__()`` as two ints, or None where it has none."""
    try:
        kind, index = array.__dlpack_device__()
        return int(kind), int(index)
    except Exception:  # no DLPack, or a deleted / multi-device buffer
        return None


def _host_view(array: Any) -> np.ndarray | None:
    """A NumPy view of ``array`` through DLPack where it lives in host memory; else None."""
    if _dlpack_device(array) != (_DL_CPU, 0):
        return None
    try:
        return np.from_dlpack(array)  # host memory: a view, no copy
    except (BufferError, TypeError, ValueError, RuntimeError):
        return None  # an unsupported dtype or layout: the caller copies


def _memory_owner(array: Any) -> Any:
    """The object that owns ``array``'s memory: ``.base`` followed to its end (NumPy,
    CuPy; a foreign owner such as a DLPack capsule's ends the chain)."""
    while True:
        base = getattr(array, "base", None)
        if base is None:
            return array
        array = base


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

    Instances are obtained from :func:`~anynet.backend.get_backend` and cached, so two
    networks on the same backend and device share one instance. A library's subclass
    registers itself by name: ``class NumpyBackend(Backend, name="numpy")``.

    Attributes
    ----------
    name : str
        One of :data:`~anynet.backend.BACKEND_NAMES`.
    device : object
        The library's own device object (``"cpu"`` for NumPy).
    xp : module
        The array-API namespace used by the math.
    """

    name: ClassVar[str] = ""
    #: The module the library is imported from (lazily: :meth:`library`).
    library_module: ClassVar[str] = ""
    #: The command that installs the library (in the error when it is missing).
    install_hint: ClassVar[str] = ""
    #: Non-default devices the test suites also run on (array-api-strict's stand-in GPU).
    stand_in_devices: tuple[str, ...] = ()
    #: The environment variable that float64 depends on, if any (JAX's 64-bit mode).
    float64_switch: str | None = None
    #: Whether its arrays are host NumPy arrays (no move needed for host data).
    on_host: bool = False
    #: Whether :meth:`jit` really compiles (JAX); elsewhere it returns the function.
    compiles: bool = False
    #: What tracing a function for :meth:`jit` raises when the function cannot be traced
    #: (a value read, NumPy called on a tracer); nothing where nothing traces.
    trace_errors: tuple[type[BaseException], ...] = ()
    #: Whether its arrays can never be written (JAX): the checks ``fit``, ``predict`` and
    #: ``score`` make of an input array are then kept for it (:mod:`anynet._checked`).
    arrays_immutable: bool = False
    #: Whether its arrays are exchanged with other libraries through DLPack (torch, JAX,
    #: CuPy; array-api-strict's devices are simulated: its arrays go through the host).
    exchanges_dlpack: bool = False

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            cls.library_module = cls.library_module or name
            _REGISTRY[name] = cls

    def __init__(self, device: Any) -> None:
        self.device = device
        self.xp = self._namespace()

    # -- the library and its devices (class level: no instance needed) -------------
    @classmethod
    def library(cls) -> Any:
        """The library's module, imported now (each call asks the import system, so a
        library uninstalled or refused later is noticed).

        Raises
        ------
        BackendError
            The library is not installed; the message says how to install it.
        """
        try:
            return importlib.import_module(cls.library_module)
        except ImportError as exc:
            raise BackendError(
                f"backend {cls.name!r} is not installed ({exc}); "
                f"install it with: {cls.install_hint}"
            ) from exc

    @classmethod
    def list_devices(cls) -> list[str]:
        """The devices of this library here, as short strings (``"cpu"``, ``"gpu:0"``)."""
        raise NotImplementedError

    @classmethod
    def resolve_device(cls, device: Any) -> Any:
        """The library's device object for ``device`` (None: the default device).

        Raises
        ------
        BackendError
            ``device`` does not exist here; the message lists the devices that do.
        """
        raise NotImplementedError

    @classmethod
    def is_own_array(cls, array: Any) -> bool:
        """Whether ``array`` is an array of this library (on any device)."""
        return False

    @classmethod
    def is_tracer(cls, value: Any) -> bool:
        """Whether ``value`` stands for an array while a compiler traces (JAX's tracers)."""
        return False

    @classmethod
    def to_host(cls, array: Any) -> np.ndarray:
        """An array of this library as a NumPy array (see :func:`~anynet.backend.to_numpy`:
        a view where the library can give one of host memory, a copy elsewhere)."""
        return np.asarray(array)

    @classmethod
    def dlpack_ready(cls, array: Any) -> Any:
        """``array`` in a form DLPack can export (torch: no autograd, conjugate or
        negative views); the array itself elsewhere."""
        return array

    # -- per-library hooks ---------------------------------------------------------
    def _namespace(self) -> Any:
        """The array-API namespace of this library (:attr:`xp`)."""
        raise NotImplementedError

    def _from_host(self, host: np.ndarray) -> Any:
        """Move a NumPy array to this backend's device (dtype kept)."""
        raise NotImplementedError

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend on this device."""
        return self.is_own_array(array) and same_device(array_api_compat.device(array), self.device)

    def buffer_of(self, array: Any) -> int:
        """An identity of the memory ``array``'s values live in.

        Two arrays with different numbers never share memory, so the engine may write
        into one without changing the other; two arrays that share memory (a view and
        its base) give the same number. The number is valid while ``array`` lives.
        By default the array's ``id`` (libraries without views, or whose arrays are
        never written: JAX, array-api-strict); NumPy and CuPy follow ``.base`` to the
        object that owns the memory, PyTorch asks the tensor's storage.
        """
        return id(array)

    def dlpack_device(self) -> tuple[int, int] | None:
        """The DLPack ``(device type, index)`` of this backend's device; None if unknown."""
        return None

    def device_copy(self, array: Any) -> Any:
        """A copy of ``array`` (already this backend's, on its device) made on that device."""
        return self.xp.asarray(array, copy=True)

    def from_same_library(self, array: Any, copy: bool) -> Any | None:
        """``array`` (an array of this library, on any device) moved by the library itself
        to this backend's device, a copy where ``copy``; None to go through the host."""
        return None

    def float64_problem(self) -> str | None:
        """Why float64 cannot be used here, or None when it can."""
        return None

    def jit(self, function: Callable, **options: Any) -> Callable:
        """Compile ``function`` where the backend can (:attr:`compiles`); identity elsewhere."""
        return function

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

    #: Whether :meth:`apply_update` may write into arrays (NumPy, CuPy, torch). The fit
    #: engine decides which arrays it writes (only those it alone owns:
    #: :mod:`anynet.engine.runner`).
    updates_in_place: bool = False

    def new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        """``param - lr * direction`` as a new array, without a full-size temporary.

        ``lr * direction`` is formed a block of rows at a time (:data:`UPDATE_BLOCK`
        elements) and written into the new array; ``param`` is never written.
        """
        blocks = _row_blocks(param.shape)
        if blocks is None:
            return param - lr * direction
        new = array_api_compat.array_namespace(param).empty_like(param)
        for rows in blocks:
            new[rows, ...] = param[rows, ...] - lr * direction[rows, ...]
        return new

    def offer_spares(self, arrays: Sequence[Any]) -> None:
        """Arrays a finished ``fit`` started from and no longer needs: where the backend
        can tell that nobody else holds one, a later :meth:`new_update` may write into it
        instead of a fresh array (NumPy; elsewhere nothing)."""

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

    # -- shared behaviour ----------------------------------------------------------
    def dtype(self, name: str) -> Any:
        """The backend dtype for ``"float32"`` or ``"float64"``, checking it is usable."""
        if not isinstance(name, str) or name not in _FLOAT_DTYPES:
            raise InputError(
                f"dtype must be one of {list(_FLOAT_DTYPES)}, got {name!r}{_half_note(name)}"
            )
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
        # namespace module it holds cannot be pickled, and the receiver resolves its own.
        # get_backend is the package's (anynet.backend.select imports this module).
        from . import get_backend

        return (get_backend, (self.name, device_text(self.device)))

    def __copy__(self) -> Backend:
        # copy.copy is a real copy (tests swap a copy's namespace), not the cached instance
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: dict) -> Backend:
        return self.__copy__()  # the namespace module and device object are shared

    def describe(self) -> str:
        """Human-readable ``"name (device)"``."""
        return f"{self.name} ({device_text(self.device)})"

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={device_text(self.device)!r})"


def _subtract(param: Any, lr: Any, direction: Any) -> Any:
    """``param - lr * direction``: the update where every update is a new array."""
    return param - lr * direction


def _row_blocks(shape: tuple[int, ...]) -> list[slice] | None:
    """Slices of rows holding about :data:`UPDATE_BLOCK` elements each; None when the
    whole array is one block (or 0-d)."""
    size = math.prod(shape)
    if not shape or size <= UPDATE_BLOCK:
        return None
    block = max(1, UPDATE_BLOCK * shape[0] // size)
    # the last stop clipped to the rows: the standard leaves out-of-bounds stops unspecified
    # (array-api-strict refuses them)
    rows = shape[0]
    return [slice(start, min(start + block, rows)) for start in range(0, rows, block)]


def _entries(x: Any, length: int) -> Iterable[Any]:
    """The first ``length`` entries of ``x`` along axis 0 (NumPy scalars from a 1-d NumPy
    array: cheaper in the arithmetic of a step than 0-d arrays). A lazy sequence of batches
    (host data densified per batch, :mod:`anynet.engine.host_rows`) yields its own, one
    at a time."""
    lazy = getattr(x, "lazy_entries", None)
    if lazy is not None:
        return lazy(length)
    if x.ndim == 1:
        return [x[i] for i in range(length)]
    return [x[i, ...] for i in range(length)]
