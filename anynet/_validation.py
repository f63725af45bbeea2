"""Argument checks shared by every public entry point: one place, one style.

Messages follow one pattern: ``"<argument> must be <expected>, got <received>"``.
Array checks run in the array's own namespace, so they cost O(1) device syncs
per call (a handful of reductions read back once), never one per element or step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Literal, overload

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from ._checked import checked
from .backend import Backend, backend_of, device_text, is_traced, same_device, to_numpy
from .errors import BackendError, InputError

Array = Any


def check_sizes(sizes: Any) -> list[int]:
    """Layer widths: a sequence of at least two positive integers."""
    one_dimensional = isinstance(sizes, (list, tuple, range)) or (
        isinstance(sizes, np.ndarray) and sizes.ndim == 1
    )
    if not one_dimensional:
        raise InputError(f"sizes must be a list of at least two positive integers, got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise InputError(
            f"sizes must be a list of at least two positive integers (inputs, ..., outputs), "
            f"got {sizes!r}"
        )
    for index, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise InputError(f"sizes[{index}] must be a positive integer, got {size!r}")
    return [int(size) for size in sizes]


@overload
def check_positive_int(value: Any, name: str, *, allow_none: Literal[False] = False) -> int: ...
@overload
def check_positive_int(value: Any, name: str, *, allow_none: bool) -> int | None: ...
def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """A positive integer (bools refused); None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_non_negative_float(value: Any, name: str) -> float:
    """A finite number >= 0 (bools refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str) -> float:
    """A number in [0, 1) (bools refused): momentum and decay rates."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0 <= float(value) < 1
    ):
        raise InputError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_positive_float(value: Any, name: str) -> float:
    """A finite number > 0 (bools refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _describe_array(array: Array) -> str:
    kind = backend_of(array)
    device = "" if kind == "numpy" else f" on {getattr(array, 'device', '?')}"
    return f"a {kind} array{device}"


def _describe_operand(array: Array, kind: str) -> str:
    if is_traced(array):
        return f"a traced {kind} array"
    if kind == "numpy":
        return "a numpy array"
    return f"a {kind} array on {device_text(device_of(array))}"


def check_one_backend(arrays: Iterable[tuple[str, Any]], where: str) -> None:
    """All named arrays of one backend, and (untraced ones) on one device.

    For the pure functions, which compute with what they are given and never move it
    (``Network`` moves host data itself, :func:`to_own_backend`). Raises a
    :class:`BackendError` naming the first argument that differs and the first one, or an
    :class:`InputError` for a value that is no array at all.
    """
    arrays = list(arrays)
    if all(isinstance(array, (np.ndarray, np.generic)) for _, array in arrays):
        return  # NumPy only: one backend, one device (the common case, checked cheaply)
    first: tuple[str, Any, str] | None = None
    for name, array in arrays:
        if isinstance(array, np.generic):  # a NumPy scalar (plain SGD's step count)
            continue
        kind = backend_of(array)
        if kind is None:
            raise InputError(
                f"{name} must be an array of one backend (NumPy, JAX, PyTorch, ...), got "
                f"{type(array).__name__}: {where} does not convert its inputs"
            )
        if first is None:
            first = (name, array, kind)
            continue
        name0, array0, kind0 = first
        differs = kind != kind0
        if not differs and not is_traced(array) and not is_traced(array0):
            differs = not same_device(device_of(array), device_of(array0))
        if differs:
            raise BackendError(
                f"{name} must be an array of the backend and device of {name0} "
                f"({_describe_operand(array0, kind0)}), got {_describe_operand(array, kind)}: "
                f"{where} computes with the arrays it is given and never moves them between "
                "backends or devices. Move them first, e.g. params = {k: jnp.asarray(v) for "
                "k, v in params.items()} (anynet.functional.init gives NumPy float64 arrays), "
                "or anynet.backend.convert(array, backend)"
            )


def to_own_backend(value: Any, backend: Backend, name: str) -> tuple[Array, bool]:
    """``value`` as a NumPy array (host data) or an array of ``backend``.

    Returns the array and whether it still has to be moved to the device.
    Arrays of another backend or device raise: anynet never copies them silently.
    """
    if is_traced(value):
        raise InputError(
            f"{name} is a traced array (inside jax.jit, jax.vmap or jax.grad): Network methods "
            "check and move their inputs and cannot be traced; use the pure functions of "
            "anynet.functional (apply, value_and_grad, train_step) with net.model and "
            "net.params instead"
        )
    kind = backend_of(value)
    if kind is None:
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{name} must be an array or a nested list of numbers, got {type(value).__name__} "
                f"that NumPy cannot read as an array ({exc})"
            ) from exc
        kind = "numpy"
    if kind == "numpy":
        return value, not backend.on_host
    if backend.owns(value):
        return backend.detached(value), False
    raise BackendError(
        f"{name} is {_describe_array(value)} but this network runs on {backend.describe()}; "
        f"anynet does not copy between backends silently: move the network with "
        f"net.to({kind!r}) or convert {name} explicitly with anynet.to_numpy({name})"
    )


def _check_numeric(array: Array, xp: Any, name: str, *, allow_bool: bool = False) -> None:
    kinds = ("real floating", "integral", "bool") if allow_bool else ("real floating", "integral")
    dtype = array.dtype
    if isinstance(array, np.ndarray) and dtype.kind not in "biuf":
        raise InputError(f"{name} must hold real numbers, got dtype {dtype}")
    if not xp.isdtype(dtype, kinds):
        raise InputError(f"{name} must hold real numbers, got dtype {dtype}")


def _check_finite(array: Array, xp: Any, name: str) -> None:
    if not xp.isdtype(array.dtype, "real floating"):
        return
    if bool(xp.all(xp.isfinite(array))):  # one pass, one temporary: the usual case
        return
    bad = xp.logical_not(xp.isfinite(array))
    n_bad = int(xp.sum(xp.astype(bad, xp.int32)))
    if n_bad:
        first = tuple(int(i) for i in np.argwhere(to_numpy(bad))[0])
        raise InputError(
            f"{name} must be finite, got {n_bad} NaN or infinite value(s), the first at {first}"
        )


def check_features(
    X: Any,
    backend: Backend,
    n_features: int,
    dtype: str,
    name: str = "X",
    width_name: str = "sizes[0]",
) -> Array:
    """Feature matrix ``(n_samples, n_features)`` on the backend's device, cast to ``dtype``
    (kept for an array that cannot change: :mod:`anynet._checked`)."""
    settings = ("features", backend, n_features, dtype)
    return checked(
        X, backend, settings, lambda: _check_features(X, backend, n_features, dtype, name,
                                                      width_name)
    )  # fmt: skip


def _check_features(
    X: Any, backend: Backend, n_features: int, dtype: str, name: str, width_name: str
) -> Array:
    array, on_host = to_own_backend(X, backend, name)
    xp = array_namespace(array)
    _check_numeric(array, xp, name, allow_bool=True)
    if array.ndim != 2:
        hint = (
            f" (use X.reshape(-1, {n_features}) for one sample per row)" if array.ndim == 1 else ""
        )
        raise InputError(
            f"{name} must be 2-D (n_samples, n_features={n_features}), "
            f"got shape {tuple(array.shape)}{hint}"
        )
    if array.shape[1] != n_features:
        raise InputError(
            f"{name} must have {n_features} feature column(s) ({width_name}), "
            f"got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise InputError(f"{name} must hold at least one sample, got shape {tuple(array.shape)}")
    _check_finite(array, xp, name)
    _check_range(array, array_namespace(array), name, dtype)
    return _finish(array, on_host, backend, dtype)


def check_targets(
    y: Any,
    head: Any,
    n_samples: int,
    backend: Backend,
    dtype: str,
    name: str = "y",
    width_name: str = "sizes[-1]",
) -> Array:
    """Targets as a float array ``(n_samples, n_outputs)`` on the backend's device.

    The head encodes them (one-hot for integer class labels) and its loss checks
    their values (0/1 labels, rows summing to one). Kept for an array that cannot change
    (:mod:`anynet._checked`).
    """
    settings = ("targets", backend, head, n_samples, dtype)
    return checked(
        y, backend, settings, lambda: _check_targets(y, head, n_samples, backend, dtype, name,
                                                     width_name)
    )  # fmt: skip


def _check_targets(
    y: Any, head: Any, n_samples: int, backend: Backend, dtype: str, name: str,
    width_name: str,
) -> Array:  # fmt: skip
    array, on_host = to_own_backend(y, backend, name)
    array = check_target_values(array, head, n_samples, name, width_name)
    _check_range(array, array_namespace(array), name, dtype)
    return _finish(array, on_host, backend, dtype)


def check_target_values(
    array: Array, head: Any, n_samples: int, name: str = "y", width_name: str = "sizes[-1]"
) -> Array:
    """Targets of any one backend, checked as ``fit`` checks them (numbers, shape, finite,
    the head's encoding and its loss's values: 0/1 labels, classes in range, one-hot
    rows); returns them encoded, ``(n_samples, n_outputs)``, on their backend. Reads
    values: not for traced arrays."""
    xp = array_namespace(array)
    _check_numeric(array, xp, name, allow_bool=True)
    if xp.isdtype(array.dtype, "bool"):
        array = xp.astype(array, xp.int32)
    if array.ndim not in (1, 2) or array.shape[0] != n_samples:
        raise InputError(
            f"{name} must have shape ({n_samples},) or ({n_samples}, {head.n_outputs}) "
            f"to match X's {n_samples} samples, got shape {tuple(array.shape)}"
        )
    _check_finite(array, xp, name)
    return head.encode(array, name=name, width_name=width_name)


def _check_range(array: Array, xp: Any, name: str, dtype: str) -> None:
    """Refuse float64 values that the cast to float32 would turn into infinities."""
    if dtype != "float32" or array.dtype != xp.float64:
        return
    largest = float(to_numpy(xp.max(xp.abs(array)))) if array.shape[0] else 0.0
    limit = float(np.finfo(np.float32).max)
    if largest > limit:
        raise InputError(
            f"{name} must fit in float32 (|value| <= {limit:.4g}) for this float32 network, "
            f"got a value of magnitude {largest:.4g}; use dtype='float64' or rescale {name}"
        )


def check_parameter(
    value: Any, name: str, shape: tuple[int, ...], backend: Backend, dtype: str
) -> Array:
    """One parameter array: any backend, NumPy or nested lists; a copy on ``backend``.

    Arrays of the network's own backend and device stay there; others are copied
    through the host (an explicit conversion: ``set_params`` documents it).
    """
    if backend_of(value) in (None, "numpy") or not backend.owns(value):
        try:
            value = np.asarray(to_numpy(value))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{name} must be an array of numbers, got {type(value).__name__}"
            ) from exc
        on_host = True
    else:
        on_host = False
        value = backend.detached(value)
    xp = array_namespace(value)
    _check_numeric(value, xp, name, allow_bool=True)
    if tuple(value.shape) != shape:
        raise InputError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    if xp.isdtype(value.dtype, "bool"):
        value = xp.astype(value, xp.int32)
    if xp.isdtype(value.dtype, "real floating") and not bool(xp.all(xp.isfinite(value))):
        raise InputError(f"{name} must be finite, got NaN or infinite values")
    _check_range(value, xp, name, dtype)
    if on_host:
        return backend.asarray(value, dtype, copy=True)
    return xp.astype(value, backend.dtype(dtype), copy=True)


def _finish(array: Array, on_host: bool, backend: Backend, dtype: str) -> Array:
    """Cast and move a checked 2-D array."""
    if on_host:
        return backend.asarray(array, dtype)
    xp = array_namespace(array)
    wanted = backend.dtype(dtype)
    return array if array.dtype == wanted else xp.astype(array, wanted)


def check_sample_weight(
    value: Any, n_samples: int, backend: Backend, dtype: str, name: str = "sample_weight"
) -> Array:
    """Sample weights: ``(n_samples,)`` real numbers, finite, >= 0, not all 0; on the
    backend's device in ``dtype`` (kept for an array that cannot change)."""
    settings = ("sample_weight", backend, n_samples, dtype)
    return checked(
        value, backend, settings,
        lambda: _check_sample_weight(value, n_samples, backend, dtype, name),
    )  # fmt: skip


def _check_sample_weight(
    value: Any, n_samples: int, backend: Backend, dtype: str, name: str
) -> Array:
    array, on_host = to_own_backend(value, backend, name)
    xp = array_namespace(array)
    _check_numeric(array, xp, name, allow_bool=True)
    if tuple(array.shape) != (n_samples,):
        raise InputError(
            f"{name} must have shape ({n_samples},) (one weight per sample), "
            f"got shape {tuple(array.shape)}"
        )
    if xp.isdtype(array.dtype, "bool"):
        array = xp.astype(array, xp.int32)
    _check_finite(array, xp, name)
    low = float(to_numpy(xp.min(array)))
    if low < 0:
        raise InputError(f"{name} must be >= 0, got a minimum of {low!r}")
    if not bool(xp.any(array > 0)):
        raise InputError(f"{name} must not be all zero (the weighted mean is undefined)")
    _check_range(array, xp, name, dtype)
    return _finish(array, on_host, backend, dtype)


def check_class_weight(
    class_weight: Any, head: Any, t: Array, w: Array | None, backend: Backend, dtype: str
) -> Array:
    """Sample weights ``(n,)`` from ``class_weight`` (``"balanced"`` or ``{class: weight}``)
    and the head's encoded targets ``t``, times the sample weights ``w`` when given.

    ``"balanced"`` is scikit-learn's ``compute_class_weight("balanced", classes=
    np.unique(y), y=y)``: ``n_samples / (n_classes * bincount(y))``, ``n_classes`` the
    classes present.
    """
    labels = head.class_labels(to_numpy(t), "class_weight")
    n_classes = head.n_classes
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise InputError(
                f"class_weight must be 'balanced' or a dict {{class: weight}}, got {class_weight!r}"
            )
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.ones(n_classes)
        per_class[present] = labels.size / (int(np.sum(present)) * counts[present])
    elif isinstance(class_weight, dict):
        per_class = np.ones(n_classes)
        for key, weight in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, numbers.Integral):
                raise InputError(
                    f"class_weight keys must be class labels 0 .. {n_classes - 1}, got {key!r}"
                )
            if not 0 <= int(key) < n_classes:
                raise InputError(
                    f"class_weight keys must be class labels 0 .. {n_classes - 1}, got {key!r}"
                )
            per_class[int(key)] = check_non_negative_float(weight, f"class_weight[{key!r}]")
    else:
        raise InputError(
            "class_weight must be 'balanced' or a dict {class: weight}, "
            f"got {type(class_weight).__name__}"
        )
    weights = per_class[labels]
    if w is not None:
        weights = weights * to_numpy(w).astype(np.float64)
    return check_sample_weight(weights, labels.size, backend, dtype, "class_weight")
