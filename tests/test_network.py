"""Network surface: params, predict/predict_proba/score semantics, training on real data."""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet.testing import assert_close, assert_on_backend


def test_params_are_shaped_as_in_the_tutorial(backend):
    net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, backend=backend)
    shapes = {key: tuple(value.shape) for key, value in net.params.items()}
    assert shapes == {"W1": (4, 2), "b1": (4,), "W2": (1, 4), "b2": (1,)}
    assert np.all(an.to_numpy(net.params["b1"]) == 0)
    assert "Network([2, 4, 1]" in repr(net) and backend.name in repr(net)


def test_one_default_initialiser_whichever_face_builds_the_network(backend):
    """Network(sizes), Sequential([Dense, ...]) and MLPClassifier start from the same weights:
    Glorot uniform U(-a, a), a = sqrt(6 / (fan_in + fan_out)), drawn in layer order."""
    from anynet.layers import Dense

    where = {"backend": backend.name, "device": backend.device, "dtype": "float64"}
    net = an.Network([2, 5, 3], ["tanh", "softmax"], seed=7, **where)
    seq = an.Sequential([Dense(5), "tanh", Dense(3), "softmax"], inputs=2, seed=7, **where)
    rng = np.random.default_rng(7)  # the documented draw, written out
    bound1, bound2 = np.sqrt(6 / (2 + 5)), np.sqrt(6 / (5 + 3))
    want = {
        "W1": rng.uniform(-bound1, bound1, size=(5, 2)),
        "b1": np.zeros(5),
        "W2": rng.uniform(-bound2, bound2, size=(3, 5)),
        "b2": np.zeros(3),
    }
    assert list(net.params) == list(seq.params) == list(want)
    for key, value in want.items():
        assert_on_backend(net.params[key], backend)
        np.testing.assert_array_equal(an.to_numpy(net.params[key]), value)
        np.testing.assert_array_equal(an.to_numpy(seq.params[key]), value)
    # the tutorial's start, asked for by name: N(0, 0.01^2)
    tutorial = an.Network([2, 5, 3], ["tanh", "softmax"], init="normal", init_scale=0.01,
                          seed=7, **where)  # fmt: skip
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(
        an.to_numpy(tutorial.params["W1"]), rng.standard_normal((5, 2)) * 0.01
    )


def test_float32_is_the_default_dtype(backend):
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    assert net.params["W1"].dtype == backend.dtype("float32")
    assert net.forward(np.zeros((2, 2))).dtype == backend.dtype("float32")


def test_set_params_copies_and_accepts_lists_and_backend_arrays(backend):
    net = an.Network([2, 2, 1], seed=0, dtype="float64", backend=backend)
    W1 = np.array([[1.0, 2.0], [3.0, 4.0]])
    net.set_params(
        {
            "W1": W1,
            "b1": [0.5, -0.5],
            "W2": [[1.0, -1.0]],
            "b2": backend.asarray(np.array([0.25]), "float64"),
        }
    )
    W1[0, 0] = 99.0  # the network holds a copy
    assert_close(net.params["W1"], np.array([[1.0, 2.0], [3.0, 4.0]]), backend=backend)
    assert_close(net.params["b1"], np.array([0.5, -0.5]), backend=backend)
    returned = net.params
    returned["W1"] = None  # a new dict each time: the network is unaffected
    assert net.params["W1"] is not None


def test_predict_proba_and_predict_for_a_sigmoid_head(backend):
    X, y = an.datasets.planar_flower(n=80)
    net = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)
    net.fit(X, y, epochs=300, lr=1.2)
    proba = net.predict_proba(X)
    assert_on_backend(proba, backend)
    assert tuple(proba.shape) == (80, 2)
    p = an.to_numpy(proba)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p[:, 1], an.to_numpy(net.forward(X))[:, 0], rtol=1e-12)
    labels = an.to_numpy(net.predict(X))
    np.testing.assert_array_equal(labels, (p[:, 1] > 0.5).astype(int))
    assert net.score(X, y) == pytest.approx(np.mean(labels == y))


def test_softmax_classifier_learns_spirals(backend):
    X, y = an.datasets.spirals(n=150, n_classes=3, seed=0)
    net = an.Network(
        [2, 32, 3], ["relu", "softmax"], init="he", seed=0, dtype="float64", backend=backend
    )
    history = net.fit(X, y, epochs=600, lr=1.0)
    assert history.loss[-1] < history.loss[0] / 2
    proba = an.to_numpy(net.predict_proba(X))
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    labels = net.predict(X)
    assert_on_backend(labels, backend)
    np.testing.assert_array_equal(an.to_numpy(labels), proba.argmax(axis=1))
    assert net.score(X, y) > 0.85
    assert net.score(X, np.eye(3)[y]) == net.score(X, y)  # one-hot targets score the same


def test_regression_score_is_r2(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1]
    net = an.Network(
        [2, 16, 1],
        ["tanh", "identity"],
        "mse",
        init="xavier",
        seed=0,
        dtype="float64",
        backend=backend,
    )
    net.fit(X, y, epochs=800, lr=0.2)
    prediction = an.to_numpy(net.predict(X))
    assert prediction.shape == (100,)
    r2 = 1 - np.sum((y - prediction) ** 2) / np.sum((y - y.mean()) ** 2)
    assert net.score(X, y) == pytest.approx(r2, rel=1e-10)
    assert r2 > 0.9


def test_loss_is_the_design_definition(backend):
    X, y = an.datasets.planar_flower(n=50)
    net = an.Network([2, 3, 1], seed=2, init="xavier", dtype="float64", backend=backend)
    p = an.to_numpy(net.forward(X))[:, 0]
    want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert net.loss(X, y) == pytest.approx(want, rel=1e-12)
    assert net.loss(X, y[:, None]) == pytest.approx(want, rel=1e-12)  # (n, 1) labels too


def test_saturated_logits_give_a_finite_loss_and_exact_gradient(backend):
    net = an.Network([1, 1], ["sigmoid"], dtype="float64", backend=backend)
    net.set_params({"W1": [[1e4]], "b1": [0.0]})
    X = np.array([[1.0], [-1.0]])
    y = np.array([0, 1])  # both maximally wrong: loss = 1e4
    assert net.loss(X, y) == pytest.approx(1e4, rel=1e-12)
    grads = net.gradients(X, y)
    # d/dW mean(softplus) = mean((p - y) * x) = (1*1 + (-1)*(-1)) / 2 = 1
    np.testing.assert_allclose(an.to_numpy(grads["W1"]), [[1.0]], rtol=1e-12)
    np.testing.assert_allclose(an.to_numpy(grads["b1"]), [0.0], atol=1e-12)


def test_fit_verbose_prints_every_n_epochs(backend, capsys):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    history = net.fit(X, y, epochs=30, lr=0.5, verbose=10)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 10", "epoch 20"]
    assert float(lines[1].split()[-1]) == pytest.approx(history.loss[10], abs=1e-6)
