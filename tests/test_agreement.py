"""Each backend against the NumPy float64 result: same start, same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import anynet as an
from anynet.testing import assert_close, assert_on_backend

MODELS = {
    "flower": ([2, 4, 1], ["tanh", "sigmoid"], "binary_crossentropy"),
    "spirals": ([2, 8, 6, 3], ["relu", "leaky_relu", "softmax"], "categorical_crossentropy"),
    "regression": ([2, 5, 2], ["sigmoid", "identity"], "mse"),
}


def data_for(model: str):
    if model == "flower":
        return an.datasets.planar_flower(n=120)
    X, labels = an.datasets.spirals(n=90, n_classes=3, seed=2)
    if model == "spirals":
        return X, labels
    return X, np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 0]], axis=1)


def pair(model: str, backend, init: str = "xavier", seed: int = 4):
    sizes, activations, loss = MODELS[model]
    kwargs: dict[str, Any] = dict(init=init, seed=seed, dtype="float64")
    reference = an.Network(sizes, activations, loss, backend="numpy", **kwargs)
    candidate = an.Network(sizes, activations, loss, backend=backend, **kwargs)
    return reference, candidate


@pytest.mark.parametrize("init", ["normal", "xavier", "he"])
def test_same_seed_gives_bit_identical_initial_weights(backend, init, dtype):
    reference = an.Network(
        [3, 5, 4, 2], ["tanh", "relu", "softmax"], init=init, seed=11, dtype=dtype, backend="numpy"
    )
    candidate = an.Network(
        [3, 5, 4, 2], ["tanh", "relu", "softmax"], init=init, seed=11, dtype=dtype, backend=backend
    )
    for key, value in candidate.params.items():
        assert_on_backend(value, backend)
        got = an.to_numpy(value)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, an.to_numpy(reference.params[key]))


def test_different_seeds_give_different_weights(backend):
    a = an.Network([3, 5, 1], seed=1, backend=backend)
    b = an.Network([3, 5, 1], seed=2, backend=backend)
    assert not np.array_equal(an.to_numpy(a.params["W1"]), an.to_numpy(b.params["W1"]))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_forward_loss_and_gradients_agree(backend, model):
    X, y = data_for(model)
    reference, candidate = pair(model, backend)
    output = candidate.forward(X)
    assert_close(output, reference.forward(X), backend=backend)
    assert candidate.loss(X, y) == pytest.approx(reference.loss(X, y), rel=1e-12)
    assert_close(candidate.gradients(X, y), reference.gradients(X, y), backend=backend)
    exact = {"rtol": 0, "atol": 0} if candidate.is_classifier else {}  # labels must be equal
    assert_close(candidate.predict(X), reference.predict(X), backend=backend, **exact)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_short_training_run_agrees(backend, model):
    X, y = data_for(model)
    reference, candidate = pair(model, backend)
    want = reference.fit(X, y, epochs=60, lr=0.5)
    got = candidate.fit(X, y, epochs=60, lr=0.5)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-10)
    assert_close(candidate.params, reference.params, backend=backend)
    assert candidate.score(X, y) == pytest.approx(reference.score(X, y), abs=1e-12)


def test_float32_matches_float64_loosely(backend):
    X, y = an.datasets.planar_flower(n=100)
    wide = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)
    narrow = an.Network([2, 4, 1], seed=0, dtype="float32", backend=backend)
    h64 = wide.fit(X, y, epochs=200, lr=1.2)
    h32 = narrow.fit(X, y, epochs=200, lr=1.2)
    assert narrow.params["W1"].dtype == narrow.backend.dtype("float32")
    np.testing.assert_allclose(h32.loss, h64.loss, rtol=1e-4)


def test_to_moves_bit_identical_parameters(backend):
    X, y = an.datasets.planar_flower(n=60)
    net = an.Network([2, 4, 1], seed=0, dtype="float64", backend="numpy")
    net.fit(X, y, epochs=20, lr=1.2)
    moved = net.to(backend.name, backend.device)
    assert moved.backend is backend
    assert net.backend.name == "numpy"  # the original stays where it was
    for key, value in moved.params.items():
        assert_on_backend(value, backend)
        np.testing.assert_array_equal(an.to_numpy(value), an.to_numpy(net.params[key]))
    trained = an.Network([2, 4, 1], seed=0, dtype="float64", backend="numpy")
    trained.fit(X, y, epochs=3, optimizer="adam")
    for value in trained.to(backend.name, backend.device).optimizer_state.values():
        assert_on_backend(value, backend)
    back = moved.to("numpy")
    for key, value in back.params.items():
        np.testing.assert_array_equal(value, net.params[key])
