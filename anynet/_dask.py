"""Dask arrays as inputs of inference: blockwise over chunks of samples, lazily.

A trained network scores data larger than memory, or spread over a Dask cluster,
through :func:`map_rows`: each chunk of rows is a NumPy block that the network moves to
its backend, computes on and reads back. Dask is imported only when a Dask array
arrives (``sys.modules``), so ``import anynet`` never needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import to_numpy
from .errors import InputError

__all__ = ["is_dask_array", "map_rows"]


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a ``dask.array.Array`` (False when Dask was never imported)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def map_rows(
    X: Any, function: Callable[[np.ndarray], Any], n_features: int, n_out: int | None, dtype: Any
) -> Any:
    """``function`` over each chunk of rows of the dask array ``X``, as a lazy dask array.

    Parameters
    ----------
    X : dask.array.Array, shape (n_samples, n_features)
        Rechunked to one chunk along features if needed; chunks along samples are kept.
    function : callable
        NumPy block ``(rows, n_features)`` -> array of any backend, ``(rows,)`` or
        ``(rows, n_out)``.
    n_out : int or None
        Output columns; None for a 1-D output.
    dtype : numpy dtype
        Of the result.

    Returns
    -------
    dask.array.Array, shape (n_samples,) or (n_samples, n_out)
    """
    if X.ndim != 2 or X.shape[1] != n_features:
        raise InputError(
            f"X must be a 2-D dask array (n_samples, n_features={n_features}), "
            f"got shape {tuple(X.shape)}"
        )
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})

    def block(rows: np.ndarray) -> np.ndarray:
        return np.asarray(to_numpy(function(np.asarray(rows))), dtype=dtype)

    if n_out is None:
        return X.map_blocks(block, drop_axis=1, chunks=(X.chunks[0],), dtype=dtype)
    return X.map_blocks(block, chunks=(X.chunks[0], (n_out,)), dtype=dtype)


def compute(value: Any) -> Any:
    """A dask array computed to NumPy; anything else unchanged."""
    return np.asarray(value.compute()) if is_dask_array(value) else value
