"""Backends: names to array namespaces and devices, selection, and conversion.

This is the only package that knows backend libraries by name, each in its own module:
:mod:`~anynet.backend.numpy`, :mod:`~anynet.backend.strict`, :mod:`~anynet.backend.jax`,
:mod:`~anynet.backend.torch`, :mod:`~anynet.backend.cupy`, each a subclass of
:class:`Backend` (:mod:`~anynet.backend.base`) that registers itself by name. Each library
is imported lazily, the first time it is asked for, so ``import anynet`` needs nothing
but NumPy and array-api-compat. :mod:`~anynet.backend.select` chooses a backend (names,
defaults, :func:`use_backend`, the instance cache, :func:`probe`);
:mod:`~anynet.backend.convert` moves arrays between them (:func:`to_numpy`,
:func:`convert`, DLPack) by asking the registered classes.

Selection order for the backend of a new network: an explicit ``backend=`` /
``device=`` argument, else the innermost :func:`use_backend` block (a
``contextvars`` variable, so threads and asyncio tasks do not see each other's
blocks), else :func:`set_backend`, else the environment variables
``ANYNET_BACKEND`` / ``ANYNET_DEVICE``, else ``"numpy"``.
"""

from __future__ import annotations

# each library's module registers its Backend subclass (none imports its library here)
from . import cupy, jax, numpy, strict, torch  # noqa: F401
from .base import SINGLE_DEVICE, UPDATE_BLOCK, Backend, Placement, device_text, same_device
from .convert import backend_of, convert, is_traced, namespace_of, to_floats, to_numpy
from .jax import jax_devices
from .select import (
    BACKEND_NAMES,
    available_backends,
    get_backend,
    install_hint,
    probe,
    set_backend,
    stand_in_devices,
    use_backend,
)

__all__ = [
    "BACKEND_NAMES",
    "SINGLE_DEVICE",
    "UPDATE_BLOCK",
    "Backend",
    "Placement",
    "available_backends",
    "backend_of",
    "convert",
    "device_text",
    "get_backend",
    "install_hint",
    "is_traced",
    "jax_devices",
    "namespace_of",
    "probe",
    "same_device",
    "set_backend",
    "stand_in_devices",
    "to_floats",
    "to_numpy",
    "use_backend",
]
