"""Arrays between libraries and devices: to the host, between backends, through DLPack.

Nothing here names a library: each question (whose array is this, how does it reach the
host, which DLPack device is a backend on) goes to the registered backend classes
(:mod:`anynet.backend.base`), which answer for their own library.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ..errors import InputError
from .base import _REGISTRY, Backend, _dlpack_device
from .select import BACKEND_NAMES, get_backend

_DLPACK_FAILURES = (BufferError, TypeError, ValueError, RuntimeError, NotImplementedError)


def _class_of(array: Any) -> type[Backend] | None:
    """The registered backend class whose library ``array`` belongs to, or None."""
    for name in BACKEND_NAMES:  # NumPy first: the common case, and the cheapest test
        cls = _REGISTRY[name]
        if cls.is_own_array(array):
            return cls
    return None


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (inside ``jax.jit``, ``vmap`` or ``grad``).

    Looks only if JAX is already imported: a tracer cannot exist otherwise.
    """
    return any(cls.is_tracer(value) for cls in _REGISTRY.values())


def backend_of(array: Any) -> str | None:
    """Name of the backend that ``array`` belongs to, or None for non-arrays (lists, scalars)."""
    cls = _class_of(array)
    return None if cls is None else cls.name


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
    cls = _class_of(array)
    return np.asarray(array) if cls is None else cls.to_host(array)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).rsplit(".", 1)[-1]


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
    source = _class_of(array)
    if source is not None and source.exchanges_dlpack and target.exchanges_dlpack:
        array = source.dlpack_ready(array)
        try:
            if source.name == target.name:
                moved = target.from_same_library(array, copy)
            elif _dlpack_device(array) == target.dlpack_device():
                moved = target.xp.from_dlpack(array)
                if copy:
                    moved = target.device_copy(moved)
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


def namespace_of(*arrays: Any) -> Any:
    """The namespace anynet computes with for these arrays: their backend's own
    :attr:`Backend.xp` (on NumPy the fast namespace ``fit`` uses), so
    :mod:`anynet.functional` and the fit engine run the same functions on the same
    arrays. Arrays of no registered backend (a JAX tracer, another library) get
    ``array_namespace(*arrays)``, which also raises for mixed namespaces.
    """
    namespace = array_api_compat.array_namespace(*arrays)
    name = backend_of(arrays[0])
    if name is None:
        return namespace
    try:
        backend = get_backend(name, array_api_compat.device(arrays[0]))
    except Exception:  # a device the selector does not know: the standard namespace
        return namespace
    return backend.xp
