"""SciPy sparse inputs: the numbers of their dense equivalents, in bounded memory.

The reference is the same network on ``X.toarray()``; memory is measured with
tracemalloc (NumPy allocations are traced) on the NumPy backend.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import anynet as an
from anynet import _sparse

sparse = pytest.importorskip("scipy.sparse")


def _data(n=40, features=6, seed=0, fmt="csr"):
    rng = np.random.default_rng(seed)
    X = sparse.random(n, features, density=0.4, format=fmt, random_state=seed) * 3.0
    y = (np.asarray(X.sum(axis=1)).ravel() > 1.0).astype(np.int64)
    return X, y, rng


def _net(backend, sizes=(6, 5, 1), activations=("tanh", "sigmoid"), seed=0):
    return an.Network(list(sizes), list(activations), init="xavier", seed=seed, dtype="float64",
                      backend=backend.name, device=backend.device)  # fmt: skip


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_inference_gives_the_dense_numbers(backend, fmt):
    X, y, _ = _data(fmt=fmt)
    dense = X.toarray()
    net = _net(backend)
    for method in ("forward", "predict", "predict_proba"):  # the same batches of rows
        got = an.to_numpy(getattr(net, method)(X, batch_size=7))
        want = an.to_numpy(getattr(net, method)(dense, batch_size=7))
        np.testing.assert_array_equal(got, want, method)
    assert net.score(X, y, batch_size=7) == net.score(dense, y, batch_size=7)
    assert net.loss(X, y, batch_size=7) == net.loss(dense, y, batch_size=7)
    w = np.linspace(0.5, 2.0, X.shape[0])
    assert net.loss(X, y, sample_weight=w) == pytest.approx(
        net.loss(dense, y, sample_weight=w), rel=1e-15
    )


def test_sparse_training_gives_the_dense_numbers(backend):
    X, y, _ = _data(seed=1)
    dense = X.toarray()
    a, b = _net(backend), _net(backend)
    a.fit(X, y, epochs=5, lr=0.5, batch_size=8, seed=3, validation_data=(X, y))
    b.fit(dense, y, epochs=5, lr=0.5, batch_size=8, seed=3, validation_data=(dense, y))
    for key in a.params:
        np.testing.assert_array_equal(an.to_numpy(a.params[key]), an.to_numpy(b.params[key]))
    assert a.history.val_loss == b.history.val_loss
    ga, gb = a.gradients(X, y), b.gradients(dense, y)
    for key in ga:
        np.testing.assert_array_equal(an.to_numpy(ga[key]), an.to_numpy(gb[key]))


def test_a_multiclass_network_takes_sparse_input(backend):
    X, _, rng = _data(seed=2)
    y = rng.integers(0, 3, size=X.shape[0])
    net = _net(backend, sizes=(6, 5, 3), activations=("relu", "softmax"))
    net.fit(X, y, epochs=3, lr=0.1)
    np.testing.assert_array_equal(
        an.to_numpy(net.predict_proba(X)), an.to_numpy(net.predict_proba(X.toarray()))
    )


def test_bad_sparse_input_is_refused(backend):
    X, y, _ = _data()
    net = _net(backend)
    with pytest.raises(an.InputError, match=r"X must have 6 feature column\(s\)"):
        net.predict(sparse.random(5, 4, density=0.5, format="csr"))
    with pytest.raises(an.InputError, match=r"X must have 6 feature column\(s\)"):
        net.fit(sparse.random(5, 4, density=0.5, format="csr"), y[:5], epochs=1)
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(an.InputError, match="X must be finite"):
        net.predict(bad)
    with pytest.raises(an.InputError, match="X must be finite"):
        net.fit(bad, y, epochs=1)


@pytest.mark.backends("numpy", reason="tracemalloc sees NumPy's allocations")
def test_predicting_a_large_sparse_matrix_densifies_one_batch_at_a_time(backend):
    n, features = 100_000, 200  # 160 MB dense in float64, 80 MB in float32
    X = sparse.random(n, features, density=1e-3, format="csr", random_state=0, dtype=np.float64)
    net = an.Network([features, 4, 1], seed=0, dtype="float32", backend="numpy")
    net.predict(X[:10], batch_size=1000)  # warm up (imports, caches)
    tracemalloc.start()
    try:
        proba = net.predict_proba(X, batch_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert proba.shape == (n, 2)
    dense_bytes = n * features * 4
    # a batch (1000 x 200 in float64 and float32) and the (n, 2) results: a few MB
    assert peak < dense_bytes / 10, (peak, dense_bytes)


def test_densify_builds_one_array_of_the_networks_dtype_in_blocks():
    n, features = 20_000, 100
    X = sparse.random(n, features, density=0.01, format="csc", random_state=1)
    tracemalloc.start()
    try:
        dense = _sparse.densify(X, "float32", budget=features * 500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(dense, X.toarray().astype(np.float32))
    assert dense.dtype == np.float32
    target = n * features * 4
    # the float32 result, plus a block and the CSR copy: never a float64 copy of it all
    assert peak < target + n * features * 8 / 4, (peak, target)


def test_is_sparse_tells_sparse_from_dense():
    X, _, _ = _data()
    assert _sparse.is_sparse(X) and _sparse.is_sparse(sparse.csr_array(X))
    assert not _sparse.is_sparse(X.toarray()) and not _sparse.is_sparse([[1.0]])
