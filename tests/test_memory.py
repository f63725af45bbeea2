"""Memory grows with the data and the model, never with epochs or rows scored (and JAX
does not recompile when only the epoch count changes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import anynet as an
from anynet import backend as backend_module
from anynet import functional as F
from anynet.engine import fit as engine_fit
from anynet.engine import runner as engine_runner
from anynet.layers import BatchNorm, Dense, LayerNorm


def host(array):
    return np.asarray(an.to_numpy(array), dtype=np.float64)


def test_batched_inference_equals_unbatched(backend, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(103, 5))
    y = np.arange(103) % 3
    net = an.Sequential([Dense(16), LayerNorm(), "relu", BatchNorm(), Dense(3), "softmax"],
                        inputs=5, seed=0, dtype=dtype, backend=backend)  # fmt: skip
    net.fit(X, y, epochs=3, lr=0.1, batch_size=32)
    whole = host(net.forward(X, batch_size=103))
    for size in (1, 10, 64):
        np.testing.assert_allclose(
            host(net.forward(X, batch_size=size)), whole, rtol=1e-5 if dtype == "float32" else 1e-13
        )
        assert np.array_equal(host(net.predict(X, batch_size=size)), host(net.predict(X)))
        assert net.score(X, y, batch_size=size) == pytest.approx(net.score(X, y), rel=1e-6)
        assert net.loss(X, y, batch_size=size) == pytest.approx(net.loss(X, y), rel=1e-5)
    probabilities = F.apply(net.model, net.params, backend.asarray(X, dtype), state=net.state,
                            batch_size=10)  # fmt: skip
    np.testing.assert_allclose(
        host(probabilities), whole, rtol=1e-5 if dtype == "float32" else 1e-13
    )
    with pytest.raises(an.InputError, match="batch_size must be a positive integer, got 0"):
        net.predict(X, batch_size=0)


def test_regression_score_is_not_averaged_over_batches(backend):
    X = np.linspace(-1, 1, 50)[:, None]
    y = 3 * X[:, 0] + np.where(np.arange(50) < 25, 5.0, 0.0)
    net = an.Sequential([Dense(1)], inputs=1, loss="mse", seed=0, dtype="float64", backend=backend)
    net.fit(X, y, epochs=200, lr=0.1)
    predictions = host(net.predict(X))
    want = 1 - np.sum((y - predictions) ** 2) / np.sum((y - y.mean()) ** 2)
    assert net.score(X, y, batch_size=7) == pytest.approx(want, rel=1e-12)


def test_default_inference_batch_bounds_the_widest_layer():
    net = an.Network([20, 2048, 2048, 1], ["relu", "relu", "sigmoid"], seed=0)
    size = an.network.inference_batch_size(net.model)
    assert size * 2048 <= an.network.INFERENCE_BUDGET and size >= 1024


def test_shuffle_orders_stay_within_their_budget():
    n = 1_000_000
    rows = engine_fit._chunk_rows(n, shuffled=True)
    assert rows * n <= max(engine_fit.ORDER_BUDGET, 4 * n)
    orders = engine_fit._orders(seed=0, first=10, count=2, n=1000, rows=3)
    assert orders.dtype == np.int32 and orders.shape == (3, 1000)
    want = np.random.default_rng([0, 11]).permutation(1000)
    np.testing.assert_array_equal(orders[1], want)  # one generator per (seed, epoch)
    assert engine_fit._chunk_rows(1797, shuffled=True) == 2**18 // 1797  # W2: 145 epochs
    assert engine_fit._chunk_rows(200, shuffled=True) == engine_fit.CHUNK


@pytest.mark.backends("jax", reason="counts XLA compilations")
def test_changing_epochs_does_not_recompile_on_jax(backend):
    X, y = an.datasets.planar_flower(n=64)
    net = an.Network([2, 5, 1], seed=0, backend=backend)
    for batch_size in (None, 16):
        net.fit(X, y, epochs=11, lr=0.5, batch_size=batch_size)
        runner = engine_runner.runner(
            backend, net.model, net.dtype, an.optimizers.SGD(), batch_size, False, False
        )
        compiled = runner._cache_size()  # other tests may have compiled this runner too
        for epochs in (12, 3, 250, 1):
            net.fit(X, y, epochs=epochs, lr=0.5, batch_size=batch_size)
        assert runner._cache_size() == compiled


PEAK = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import anynet as an
    backend, epochs = sys.argv[1], int(sys.argv[2])
    X = np.random.default_rng(0).standard_normal((200_000, 20), dtype=np.float32)
    y = (X[:, 0] > 0).astype(np.int32)
    net = an.Network([20, 8, 1], ["relu", "sigmoid"], seed=0, backend=backend)
    net.fit(X, y, epochs=1, batch_size=4096, optimizer="adam")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net.fit(X, y, epochs=epochs, batch_size=4096, optimizer="adam")
    net.predict(np.repeat(X, 2, axis=0))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "after_kb": after}))
    """
)


@pytest.mark.backends("numpy", "jax", reason="peak memory of a whole run, in a fresh process")
def test_peak_memory_does_not_grow_with_epochs(backend):
    peaks = {}
    for epochs in (3, 60):
        result = subprocess.run(
            [sys.executable, "-c", PEAK, backend.name, str(epochs)],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        peaks[epochs] = json.loads(result.stdout.strip().splitlines()[-1])["after_kb"]
    # 60 epochs' shuffle orders alone would be 60 * 200_000 * 8 bytes = 96 MB
    assert peaks[60] <= peaks[3] * 1.10 + 8_000, peaks


def _peak_of_fit(net, X, y, **options):
    """Peak of NumPy memory newly allocated during ``fit`` (NumPy reports to tracemalloc)."""
    net.fit(X, y, epochs=1, **options)  # warm: the runner exists
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=3, **options)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.backends("numpy", reason="tracemalloc sees NumPy's buffers only")
def test_large_models_update_layer_by_layer_in_place(backend, monkeypatch):
    """At the update, all gradients never coexist and no parameter is rebuilt each step:
    the peak is the chunk's one new copy of the parameters, plus the largest layer's
    gradient and a block of the update (the pure update holds about 3.8 parameter copies)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 256)), rng.integers(0, 2, 8)
    widths = [256, 512, 512, 512, 512, 512, 1]  # layers of one size: where it matters most
    net = an.Network(widths, ["relu"] * 5 + ["sigmoid"], seed=0, dtype="float64",
                     backend=backend)  # fmt: skip
    sizes = [value.nbytes for value in net.params.values()]
    assert sum(v.size for v in net.params.values()) >= engine_runner.LAYERWISE_PARAMS
    taken = {key: host(value).copy() for key, value in net.params.items()}
    arrays = net.params
    peak = _peak_of_fit(net, X, y, lr=0.01)
    block = backend_module.UPDATE_BLOCK * 8
    assert peak <= sum(sizes) + max(sizes) + 2 * block, (peak, sizes)
    for key, value in arrays.items():  # the arrays taken before fit were never written
        np.testing.assert_array_equal(host(value), taken[key])
    # the same network trained with whole-model updates holds all gradients at once
    monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 2**62)
    monkeypatch.setattr(engine_runner, "_RUNNERS", engine_runner.Cache(8))
    whole = _peak_of_fit(net, X, y, lr=0.01)
    assert whole >= peak + 0.5 * sum(sizes), (whole, peak)
