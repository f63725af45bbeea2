"""Continuing a run: what a checkpoint records of it, and what a resumed run must share.

A checkpoint written by ``fit(checkpoint=...)`` records the run configuration
(:func:`run_config`: optimizer, batch size, shuffling, schedule, and a fingerprint of
the data), the seed and the epoch reached; :func:`check_resume` compares a new call
with it, and :func:`restored_state` puts the saved optimizer state back on the device.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import Backend, to_numpy
from ..errors import InputError
from ..optimizers import get_schedule
from .host_rows import HostRows

if TYPE_CHECKING:
    from ..optimizers import Optimizer

__all__ = [
    "CHANGEABLE",
    "Start",
    "check_allowed_changes",
    "check_resume",
    "fingerprint",
    "restored_state",
    "run_config",
]

Array = Any


def run_config(
    optimizer: Optimizer, batch_size: Any, shuffle: Any, drop_last: Any, schedule: Any
) -> dict[str, Any]:
    """What a resumed run must share with the checkpointed one."""
    return {
        "optimizer": _recorded(optimizer),
        "batch_size": batch_size,
        "shuffle": bool(shuffle) if isinstance(shuffle, (bool, np.bool_)) else shuffle,
        "drop_last": bool(drop_last) if isinstance(drop_last, (bool, np.bool_)) else drop_last,
        "schedule": _recorded(get_schedule(schedule)),
    }


#: Fields added after checkpoints recorded their optimizer and schedule as ``repr``: at
#: their defaults they are left out, so earlier checkpoints resume with the same settings.
_ADDED_FIELDS = frozenset({"clip_norm", "clip_value", "per"})


def _recorded(obj: Any) -> str:
    """``repr(obj)`` as checkpoints record it: a dataclass's ``repr`` without the fields
    of :data:`_ADDED_FIELDS` that hold their defaults (the ``repr`` earlier versions
    wrote); anything else (or a class with a ``repr`` of its own), its ``repr``."""
    text = repr(obj)
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return text
    every, kept = [], []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        item = f"{f.name}={getattr(obj, f.name)!r}"
        every.append(item)
        if not (f.name in _ADDED_FIELDS and getattr(obj, f.name) == f.default):
            kept.append(item)
    name = type(obj).__qualname__
    if text != f"{name}({', '.join(every)})":  # not the generated repr
        return text
    return f"{name}({', '.join(kept)})"


#: What ``fit(resume=..., allow_changes=...)`` may name.
CHANGEABLE = ("data", "seed", "batch_size", "shuffle", "drop_last", "optimizer", "schedule")


def check_allowed_changes(allow_changes: Any) -> frozenset[str]:
    """``allow_changes`` checked: a sequence of names from :data:`CHANGEABLE`."""
    if isinstance(allow_changes, str) or not isinstance(allow_changes, (list, tuple, set)):
        raise InputError(
            f"allow_changes must be a tuple of names from {list(CHANGEABLE)}, got {allow_changes!r}"
        )
    unknown = [name for name in allow_changes if name not in CHANGEABLE]
    if unknown:
        raise InputError(f"allow_changes must name only {list(CHANGEABLE)}, got {unknown[0]!r}")
    return frozenset(allow_changes)


def fingerprint(x: Array, t: Array, backend: Backend, rows: int = 64) -> str:
    """A short hash of training data: shapes, dtypes and a fixed strided sample of rows.

    The sample moves to the host (``rows`` rows, not the data); the same data in the
    same dtype gives the same fingerprint on every backend, and a sparse ``X`` (host rows)
    that of its dense equivalent.
    """
    n = x.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, rows)).astype(np.int64))
    index = backend.asarray(picks)
    digest = hashlib.sha256()
    for array in (x, t):
        picked = (
            array.take(picks)  # host rows (sparse): the same rows, densified
            if isinstance(array, HostRows)
            else backend.xp.take(array, index, axis=0)
        )
        sample = np.ascontiguousarray(to_numpy(picked))
        digest.update(repr((tuple(array.shape), str(sample.dtype))).encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Start:
    """Where a resumed run starts: the checkpoint's epoch, seed, optimizer state, history."""

    epoch: int
    seed: int | None
    optimizer_state: Any
    history: Any


def restored_state(fresh: dict[str, Array], saved: Any, backend: Backend) -> dict[str, Array]:
    """The saved optimizer state on the device, checked against a fresh one's keys and shapes."""
    saved = saved or {}
    if sorted(saved) != sorted(fresh):
        raise InputError(
            f"resume checkpoint holds optimizer state {sorted(saved)}, this optimizer "
            f"needs {sorted(fresh)}"
        )
    restored = {}
    for key, value in fresh.items():
        given = saved[key]
        if backend.owns(given) and given.dtype == value.dtype and given.shape == value.shape:
            restored[key] = given  # live state on the device (partial_fit): used as it is
            continue
        host = np.asarray(to_numpy(given))
        if host.shape != tuple(value.shape):
            raise InputError(
                f"resume checkpoint's optimizer state {key!r} has shape {host.shape}, "
                f"expected {tuple(value.shape)}"
            )
        restored[key] = backend.xp.astype(backend.asarray(host, copy=True), value.dtype)
    return restored


def check_resume(
    fit_info: Any, wanted: dict[str, Any], allowed: frozenset[str], path: Any, epochs: Any
) -> Start:
    """Check that a run may continue the one a checkpoint recorded (``fit_info``, the
    checkpoint's ``extra["fit"]``) with the configuration ``wanted``; the start it gives
    (without optimizer state and history, which the caller adds)."""
    if not isinstance(fit_info, dict) or not isinstance(fit_info.get("epoch"), int):
        raise InputError(
            f"resume must be a checkpoint written by fit(checkpoint=...), got {str(path)!r}, "
            "which holds no training position"
        )
    for key, value in wanted.items():
        if key in allowed or (key == "schedule" and " at 0x" in str(value)):
            continue  # asked for, or a plain function: nothing stable to compare
        if fit_info.get(key) != value:
            what = "different training data" if key == "data" else f"{key}={value!r}"
            raise InputError(
                f"resume checkpoint {str(path)!r} was trained with "
                f"{'other data' if key == 'data' else f'{key}={fit_info.get(key)!r}'}, "
                f"this fit asks for {what}: resume with the same settings, or pass "
                f"allow_changes=({key!r},) to continue on purpose"
            )
    done = fit_info["epoch"]
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < done:
        raise InputError(
            f"epochs must be >= {done} (the epochs resume checkpoint {str(path)!r} has "
            f"already trained; epochs counts the whole run), got {epochs}"
        )
    return Start(epoch=done, seed=fit_info.get("seed"), optimizer_state=None, history=None)
