"""Choosing a backend: names, defaults, the scoped choice, the instance cache, probing.

Selection order for the backend of a new network: an explicit ``backend=`` /
``device=`` argument, else the innermost :func:`use_backend` block (a
``contextvars`` variable, so threads and asyncio tasks do not see each other's
blocks), else :func:`set_backend`, else the environment variables
``ANYNET_BACKEND`` / ``ANYNET_DEVICE``, else ``"numpy"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import BackendError
from .base import _REGISTRY, Backend

#: Every backend anynet knows, in the order tests and tables list them.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "array_api_strict", "jax", "torch", "cupy")

_DEVICE_PATTERN = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def parse_device_string(device: str) -> tuple[str, int | None] | None:
    """Split ``"gpu:1"`` into ``("gpu", 1)``; None for strings of another form."""
    match = _DEVICE_PATTERN.match(device.strip().lower())
    if match is None:
        return None
    kind = "gpu" if match.group(1) == "cuda" else match.group(1)
    index = None if match.group(2) is None else int(match.group(2))
    return kind, index


def no_device(name: str, device: Any, existing: list[str]) -> str:
    """The message of a BackendError for a ``device`` that backend ``name`` lacks."""
    return f"device {device!r} does not exist on backend {name!r}; devices found: {existing}"


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
    cls = _REGISTRY[name]
    resolved = cls.resolve_device(device)
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
    cls = _REGISTRY.get(name)
    return cls.install_hint if cls is not None else f"pip install {name}"


def stand_in_devices(name: str) -> tuple[str, ...]:
    """Non-default devices a test suite should also cover for ``name`` (nothing is imported)."""
    return _REGISTRY[_check_name(name, "name")].stand_in_devices


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
    cls = _REGISTRY[name]
    info: dict[str, Any] = {
        "installed": False, "version": None, "devices": [], "error": None, "backend": None,
    }  # fmt: skip
    try:
        module = cls.library()
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
        info["devices"] = cls.list_devices()
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
