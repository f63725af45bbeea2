"""SciPy sparse matrices as inputs: densified a block of rows at a time, on the host.

The array API has no sparse arrays, and the math is written once against it, so a
sparse ``X`` (CSR, CSC or any ``scipy.sparse`` matrix or array) is turned into dense rows
before it reaches the layers. SciPy is never imported here: a sparse input can only come
from a program that imported it already, so ``sys.modules`` tells.

* Inference (``predict``, ``predict_proba``, ``forward``, ``score``, ``loss``): the matrix
  stays sparse; each inference batch of rows is densified, checked and moved to the
  device on its own (:class:`SparseRows`), so memory grows with the batch, never with
  the rows scored at once.
* Training with minibatches (``fit(batch_size=...)``): the matrix stays sparse too; the
  engine gathers each batch's rows on the host in the epoch's order and densifies just
  those (:class:`anynet.engine.host_rows.HostRows`), running the plain loop
  (``engine="eager"``): memory grows with the batch, not with the rows trained on.
* Where one batch is the whole data (full-batch ``fit``, ``gradients``, validation
  data): :func:`densify` writes it :data:`DENSIFY_BUDGET` values at a time into one
  dense array of the network's dtype. Memory: ``n_samples * n_features`` values of that
  dtype (what a dense ``X`` takes), plus one block; never a float64 copy of a float32
  network's data.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DENSIFY_BUDGET", "SparseRows", "densify", "is_sparse"]

#: Values per block of rows that :func:`densify` converts at a time (16 MiB of float32).
DENSIFY_BUDGET = 2**22


def is_sparse(value: Any) -> bool:
    """Whether ``value`` is a SciPy sparse matrix or array (False when SciPy was never
    imported)."""
    module = sys.modules.get("scipy.sparse")
    return module is not None and bool(module.issparse(value))


def _csr(X: Any, name: str) -> Any:
    """``X`` as CSR (rows cheap to slice), checked: 2-D, real numbers, finite."""
    if X.ndim != 2:
        raise InputError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if np.dtype(X.dtype).kind not in "biuf":
        raise InputError(f"{name} must hold real numbers, got sparse dtype {X.dtype}")
    csr = X.tocsr()
    data = np.asarray(csr.data)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise InputError(f"{name} must be finite, got NaN or infinite stored value(s)")
    return csr


def _block_rows(n_features: int, budget: int) -> int:
    return max(1, budget // max(1, n_features))


class SparseRows:
    """A sparse matrix that densifies on indexing: ``rows[start:stop, ...]`` (or
    ``rows[indices]``, a NumPy integer array) is a checked dense array of the network's
    backend, dtype and device.

    Parameters
    ----------
    X : scipy sparse matrix or array, shape (n_samples, n_features)
    dense : callable
        ``dense(block)``: a dense NumPy block ``(rows, n_features)`` checked and moved to
        the backend (the network's own check of dense inputs).
    name : str
        The argument's name, for messages.
    """

    def __init__(self, X: Any, dense: Callable[[np.ndarray], Any], name: str = "X") -> None:
        self._csr = _csr(X, name)
        self._dense = dense
        self.shape = tuple(int(n) for n in self._csr.shape)

    def __getitem__(self, index: Any) -> Any:
        rows = index[0] if isinstance(index, tuple) else index
        if not isinstance(rows, (slice, np.ndarray)):
            raise TypeError("SparseRows takes a slice or a NumPy array of row indices")
        return self._dense(self._csr[rows].toarray())

    def blocks(self, size: int) -> Any:
        """Dense blocks of ``size`` rows, in order."""
        n = self.shape[0]
        for start in range(0, n, size):
            yield self[start : min(start + size, n), ...]


def densify(X: Any, dtype: str, name: str = "X", budget: int = DENSIFY_BUDGET) -> np.ndarray:
    """A sparse ``X`` as one dense NumPy array of ``dtype``, converted ``budget`` values
    (a block of rows) at a time: ``n_samples * n_features`` values of ``dtype`` in all."""
    csr = _csr(X, name)
    n, f = csr.shape
    out = np.empty((n, f), dtype=dtype)
    size = _block_rows(f, budget)
    for start in range(0, n, size):
        stop = min(start + size, n)
        out[start:stop] = csr[start:stop].toarray()
    return out
