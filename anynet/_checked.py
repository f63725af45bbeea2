"""Input checks remembered for arrays that can never change (JAX's).

``fit``, ``predict`` and ``score`` check every input (finite values, shapes, the head's
encoding of the targets) and cast it; on JAX each check is a few dispatches and a
read-back, about a millisecond per call on the digits MLP, paid again by a loop that
calls ``fit(epochs=1)`` or ``predict`` on the same arrays. A JAX array cannot be written,
so once an array has passed a check with given settings, the same array passes it again
with the same result: the result is kept (keyed by the array's identity, while it lives)
and handed back. Nothing changes for arrays that can be written (NumPy, PyTorch, CuPy,
array-api-strict, host data passed to a JAX network): they are checked on every call.
Failed checks are never kept, so bad input raises the same error every time.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["MAX_CHECKED", "checked"]

#: Arrays whose checks are kept (the least recently used dropped first). Each entry holds
#: at most the checked array (a cast or encoded copy; nothing when the check returned the
#: array itself) while the user's array lives.
MAX_CHECKED = 16

_SAME = object()  # the check returned its input: keep no second reference to it
_entries: OrderedDict[tuple, tuple[weakref.ref, Any]] = OrderedDict()
_lock = threading.Lock()


def checked(value: Any, backend: Any, settings: Hashable, check: Callable[[], Any]) -> Any:
    """``check()``'s result for ``value``, remembered when ``value`` is an array of
    ``backend`` and the backend's arrays cannot change (:attr:`Backend.arrays_immutable`).

    ``settings`` must hold everything the result depends on besides ``value`` (the kind
    of check, the backend, the dtype, shapes the check expects, the head).
    """
    if not backend.arrays_immutable or not backend.is_own_array(value):
        return check()
    key = (id(value), settings)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry[0]() is value:
            _entries.move_to_end(key)
            return value if entry[1] is _SAME else entry[1]
    result = check()  # raises for bad input: nothing is kept

    def forget(_: weakref.ref) -> None:  # the array died: its id may be reused
        _forget(key)

    try:
        ref = weakref.ref(value, forget)
    except TypeError:  # an array type without weak references: nothing to key it by
        return result
    with _lock:
        _entries[key] = (ref, _SAME if result is value else result)
        while len(_entries) > MAX_CHECKED:
            _entries.popitem(last=False)
    return result


def _forget(key: tuple) -> None:
    with _lock:
        _entries.pop(key, None)


def clear() -> None:
    """Forget every kept check (:func:`anynet.engine.clear_caches` calls it)."""
    with _lock:
        _entries.clear()
