"""Training data that stays on the host and reaches the device one batch at a time.

A SciPy sparse ``X`` cannot go to the device whole (the array API has no sparse arrays,
and the dense matrix may not fit), so ``Network.fit`` hands the engine a
:class:`HostRows`: the engine gathers each minibatch's rows on the host, in the order
drawn for the epoch, and ``take`` densifies, checks and moves just those rows. Memory:
one batch of dense rows at a time (plus the sparse matrix itself).

The contract is the plain loop's: a run on ``HostRows`` runs ``engine="eager"`` (the
compiled and replayed chunks gather from a device array), so its numbers are those of
``fit(dense_X, ..., engine="eager")`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["HostRows"]

Array = Any


class HostRows:
    """Rows of ``X`` kept on the host, densified on demand.

    Parameters
    ----------
    take : callable
        ``take(index)``: the rows ``index`` (a NumPy integer array, or a slice) as a
        checked dense array ``(len(index), n_features)`` on the backend, in the network's
        dtype.
    shape : tuple of int
        ``(n_samples, n_features)``.
    whole : callable
        ``whole()``: every row as one dense array (used only where a batch is the whole
        data: full-batch training).
    """

    def __init__(
        self, take: Callable[[Any], Array], shape: tuple[int, int], whole: Callable[[], Array]
    ) -> None:
        self.take, self.shape, self.whole = take, shape, whole

    def batches(self, order: np.ndarray | None, batch_size: int, count: int) -> _Batches:
        """The epoch's first ``count`` full batches of ``batch_size`` rows, in ``order``
        (None: the data's own order), densified as the loop reaches each."""
        return _Batches(self, order, batch_size, count)

    def rest(self, order: np.ndarray | None, start: int) -> Array:
        """The rows from position ``start`` of ``order`` on: the epoch's short last batch."""
        return self.take(slice(start, self.shape[0]) if order is None else order[start:])


class _Batches:
    """A lazy sequence of an epoch's dense batches, for :meth:`Backend.scan`'s loop."""

    def __init__(self, rows: HostRows, order: np.ndarray | None, size: int, count: int) -> None:
        self.rows, self.order, self.size, self.count = rows, order, size, count

    def lazy_entries(self, length: int) -> Iterator[Array]:
        """The first ``length`` batches, one at a time (never all of them at once)."""
        for i in range(min(length, self.count)):
            start, stop = i * self.size, (i + 1) * self.size
            index = slice(start, stop) if self.order is None else self.order[start:stop]
            yield self.rows.take(index)
