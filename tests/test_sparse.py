"""SciPy sparse inputs: the numbers of their dense equivalents, in bounded memory.

The reference is the same network on ``X.toarray()``; memory is measured with
tracemalloc (NumPy allocations are traced) on the NumPy backend.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet import _sparse
from anynet.layers import Dense, Layer

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


def _same_params(a, b):
    for key in a.params:
        np.testing.assert_array_equal(an.to_numpy(a.params[key]), an.to_numpy(b.params[key]), key)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 8},
        {"batch_size": 8, "shuffle": False},
        {"batch_size": 7, "drop_last": True},
        {"batch_size": 6, "sample_weight": True},
        {"batch_size": 9, "optimizer": "adam", "schedule": "cosine"},
    ],
    ids=["shuffled", "in-order", "drop-last", "weighted", "adam-cosine"],
)
def test_sparse_minibatches_give_the_plain_loops_numbers(backend, options):
    """Minibatches of a sparse X are densified one at a time on the host and trained by the
    plain loop: ``fit(X.toarray(), engine="eager")``'s numbers bit for bit, and those of
    the optimized dense fit to the contract's rounding (bit for bit where nothing compiles)."""
    X, y, _ = _data(seed=1)
    dense = X.toarray()
    options = dict(options)
    if options.pop("sample_weight", False):
        options["sample_weight"] = np.linspace(0.0, 2.0, X.shape[0])
    lr = 0.05 if options.get("optimizer") == "adam" else 0.5
    a, b, c = _net(backend), _net(backend), _net(backend)
    a.fit(X, y, epochs=5, lr=lr, seed=3, validation_data=(X, y), **options)
    b.fit(dense, y, epochs=5, lr=lr, seed=3, validation_data=(dense, y), engine="eager",
          **options)  # fmt: skip
    c.fit(dense, y, epochs=5, lr=lr, seed=3, validation_data=(dense, y), **options)
    _same_params(a, b)
    assert a.history.loss == b.history.loss and a.history.val_loss == b.history.val_loss
    for key in a.params:
        np.testing.assert_allclose(an.to_numpy(a.params[key]), an.to_numpy(c.params[key]),
                                   rtol=1e-12, atol=1e-14)  # fmt: skip
    if not backend.compiles:
        _same_params(a, c)


def test_sparse_full_batch_training_gives_the_dense_numbers(backend):
    X, y, _ = _data(seed=1)
    dense = X.toarray()
    a, b = _net(backend), _net(backend)
    a.fit(X, y, epochs=5, lr=0.5, validation_data=(X, y))
    b.fit(dense, y, epochs=5, lr=0.5, validation_data=(dense, y))
    _same_params(a, b)
    assert a.history.val_loss == b.history.val_loss
    ga, gb = a.gradients(X, y), b.gradients(dense, y)
    for key in ga:
        np.testing.assert_array_equal(an.to_numpy(ga[key]), an.to_numpy(gb[key]))


def test_a_sparse_run_resumes_from_a_dense_runs_checkpoint(backend, tmp_path):
    """The data fingerprint of a sparse X is that of its dense equivalent."""
    X, y, _ = _data(seed=4)
    path = tmp_path / "run.npz"
    first = _net(backend)
    first.fit(
        X.toarray(), y, epochs=2, lr=0.5, batch_size=8, seed=1, checkpoint=path, engine="eager"
    )
    resumed = _net(backend)
    resumed.fit(X, y, epochs=4, lr=0.5, batch_size=8, seed=1, resume=path)
    plain = _net(backend)
    plain.fit(X.toarray(), y, epochs=4, lr=0.5, batch_size=8, seed=1, engine="eager")
    _same_params(resumed, plain)
    other = _net(backend)
    with pytest.raises(an.InputError, match="data"):
        other.fit(X * 2.0, y, epochs=4, lr=0.5, batch_size=8, seed=1, resume=path)


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


@pytest.mark.backends("numpy", reason="tracemalloc sees NumPy's allocations")
def test_training_on_a_large_sparse_matrix_densifies_one_batch_at_a_time(backend):
    n, features = 50_000, 200  # 80 MB dense in float64, 40 MB in float32
    X = sparse.random(n, features, density=1e-3, format="csr", random_state=0, dtype=np.float64)
    y = (np.asarray(X.sum(axis=1)).ravel() > 0.05).astype(np.int64)
    net = an.Network([features, 4, 1], seed=0, dtype="float32", backend="numpy")
    net.fit(X[:100], y[:100], epochs=1, batch_size=50)  # warm up (imports, caches)
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=2, lr=0.1, batch_size=500, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(net.history.loss) == 2 and np.isfinite(net.history.loss).all()
    dense_bytes = n * features * 4
    # a batch (500 x 200), the targets, an epoch's order and the CSR rows gathered: a few MB
    assert peak < dense_bytes / 10, (peak, dense_bytes)


@pytest.mark.needs("sklearn", reason="anynet.sklearn needs scikit-learn")
@pytest.mark.backends("numpy", reason="tracemalloc sees NumPy's allocations")
@pytest.mark.filterwarnings("ignore:Stochastic Optimizer. Maximum iterations")
@pytest.mark.parametrize("early_stopping", [False, True])
def test_the_estimators_train_and_predict_a_large_sparse_matrix_a_batch_at_a_time(
    backend, early_stopping
):
    from anynet.sklearn import MLPClassifier

    n, features = 200_000, 200  # 160 MB dense in float32
    X = sparse.random(n, features, density=1e-3, format="csr", random_state=2, dtype=np.float32)
    y = (np.asarray(X.sum(axis=1)).ravel() > 0.05).astype(np.int64)
    settings = dict(hidden_layer_sizes=(4,), batch_size=500, max_iter=2, random_state=0,
                    early_stopping=early_stopping, validation_fraction=0.01)  # fmt: skip
    MLPClassifier(**settings).fit(X[:1000], y[:1000])  # warm up (imports, caches)
    tracemalloc.start()
    try:
        clf = MLPClassifier(**settings).fit(X, y)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        labels = clf.predict(X)
        _, predict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert labels.shape == (n,) and clf.n_iter_ == 2
    dense_bytes = n * features * 4
    # training: a batch of 500 rows, the targets, an epoch's order (and the held-out
    # rows, densified a batch at a time as well)
    assert fit_peak < dense_bytes / 5, (fit_peak, dense_bytes)
    # inference: a few copies of one inference batch (anynet.network.INFERENCE_BUDGET
    # values of the widest layer) whatever the number of rows
    assert predict_peak < dense_bytes / 2, (predict_peak, dense_bytes)
    # the same numbers as on the dense matrix, trained by the plain loop
    dense = MLPClassifier(**settings).fit(X[:2000].toarray(), y[:2000])
    again = MLPClassifier(**settings).fit(X[:2000], y[:2000])
    np.testing.assert_allclose(again.loss_curve_, dense.loss_curve_, rtol=1e-6)


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


@pytest.mark.backends("jax", reason="data parallel (devices=) is JAX's")
def test_data_parallel_training_refuses_a_sparse_matrix(backend):
    X, y, _ = _data()
    net = _net(backend)
    with pytest.raises(an.InputError, match=r"X must be a dense array with devices="):
        net.fit(X, y, epochs=1, batch_size=8, devices=1)


class _Stop(BaseException):
    """Stands in for a Ctrl-C (pytest takes a real KeyboardInterrupt as the user's)."""


_TRIP = [10**9]  # training forward calls left before the tripwire raises


@dataclass(frozen=True)
class _Tripwire(Layer):
    """Raises :class:`_Stop` on its ``_TRIP[0]``-th training forward call."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        if train:
            _TRIP[0] -= 1
            if _TRIP[0] == 0:
                raise _Stop("stop")
        return x, None

    def backward(self, params, cache, dy, *, xp):
        return dy, {}


def test_an_interrupt_inside_a_sparse_epoch_keeps_the_last_completed_epoch(backend):
    """A user's layer raising mid-epoch (5 batches an epoch, inside epoch 3): the network
    keeps epoch 3's start, as the plain loop on the dense matrix computes it."""
    X, y, _ = _data(n=40, seed=5)

    def network():
        return an.Sequential([Dense(5), _Tripwire(), "tanh", Dense(1), "sigmoid"], 6, seed=2,
                             dtype="float64", backend=backend.name,
                             device=backend.device)  # fmt: skip

    reference = network()
    _TRIP[:] = [10**9]
    reference.fit(X.toarray(), y, epochs=3, lr=0.5, batch_size=8, seed=1, engine="eager")
    net = network()
    _TRIP[:] = [3 * 5 + 2]
    with pytest.raises(_Stop):
        net.fit(X, y, epochs=20, lr=0.5, batch_size=8, seed=1)
    assert len(net.history.loss) == 3 and net.history.loss == reference.history.loss
    _same_params(net, reference)


def test_a_diverging_sparse_run_rewinds_as_the_plain_loop(backend):
    X, _, _ = _data(n=40, seed=6)
    X = X * 50.0
    targets = np.asarray(X.sum(axis=1)).ravel() * 1e3
    nets = [
        an.Network(
            [6, 8, 1],
            ["identity", "identity"],
            "mse",
            init="he",
            seed=0,
            dtype="float64",
            backend=backend.name,
            device=backend.device,
        )
        for _ in range(2)
    ]
    for net, data, engine in ((nets[0], X, "auto"), (nets[1], X.toarray(), "eager")):
        with pytest.raises(an.DivergenceError):
            net.fit(data, targets, epochs=200, lr=1.0, batch_size=16, seed=0, engine=engine)
    assert len(nets[0].history.loss) == len(nets[1].history.loss) >= 1
    _same_params(*nets)
