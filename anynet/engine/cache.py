"""Bounded, thread-safe caches of compiled and recorded functions, and one switch to empty them."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._checked import clear as clear_checked
from ..backend.numpy import SPARES

__all__ = ["Cache", "clear_caches"]

_ALL: weakref.WeakSet[Cache] = weakref.WeakSet()


class Cache:
    """A bounded, thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size
        _ALL.add(self)

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = make()  # outside the lock: compiling may take long
        with self._lock:
            value = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def put(self, key: Any, value: Any) -> None:
        """Replace whatever ``key`` holds."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def clear_caches() -> None:
    """Forget every cached runner, recorded step, compiled forward pass and kept input
    check (:mod:`anynet._checked`), and let go of the spare parameter arrays NumPy fits
    keep for their first updates."""
    for cache in list(_ALL):
        cache.clear()
    clear_checked()
    SPARES.clear()
