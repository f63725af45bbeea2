"""The Poisson loss (half the deviance, log link) and the exp output activation.

References: scikit-learn's ``poisson_loss`` (``sklearn.neural_network._base``), a plain
NumPy transcription of the deviance, central finite differences in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet.layers import Dense, Exp
from anynet.losses import Poisson
from anynet.testing import check_gradients

sk_base = pytest.importorskip("sklearn.neural_network._base")


def _counts(n=30, features=3, outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    rate = np.exp(0.5 * X[:, :1] - 0.2 * X[:, 1:2])
    y = rng.poisson(np.repeat(rate, outputs, axis=1)).astype(np.float64)
    return X, (y[:, 0] if outputs == 1 else y)


def _half_deviance(y, mu):
    """NumPy transcription: mean of y log(y / mu) - y + mu, 0 log 0 = 0."""
    y = y.reshape(mu.shape)
    logs = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return np.mean(logs - y + mu)


def _net(backend, outputs=1, dtype="float64", seed=0):
    return an.Network([3, 6, outputs], ["tanh", "exp"], loss="poisson", init="xavier",
                      seed=seed, dtype=dtype, backend=backend.name,
                      device=backend.device)  # fmt: skip


def test_the_loss_is_scikit_learns_half_poisson_deviance(backend):
    X, y = _counts()
    net = _net(backend)
    mu = an.to_numpy(net.forward(X))
    assert np.all(mu > 0)
    assert net.loss(X, y) == pytest.approx(sk_base.poisson_loss(y[:, None], mu), rel=1e-13)
    assert net.loss(X, y) == pytest.approx(_half_deviance(y, mu), rel=1e-13)


def test_several_outputs_average_the_deviance(backend):
    X, y = _counts(outputs=3)
    net = _net(backend, outputs=3)
    mu = an.to_numpy(net.forward(X))
    assert net.loss(X, y) == pytest.approx(_half_deviance(y, mu), rel=1e-13)
    # scikit-learn sums its per-output means
    assert 3 * net.loss(X, y) == pytest.approx(sk_base.poisson_loss(y, mu), rel=1e-13)


def _central_differences(net, X, y, eps=1e-6):
    params = {key: an.to_numpy(value).copy() for key, value in net.params.items()}
    grads = {}
    for key, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            moved = {k: v.copy() for k, v in params.items()}
            moved[key][index] = value[index] + eps
            up = net.set_params(moved).loss(X, y)
            moved[key][index] = value[index] - eps
            down = net.set_params(moved).loss(X, y)
            grad[index] = (up - down) / (2 * eps)
        grads[key] = grad
    net.set_params(params)
    return grads


@pytest.mark.parametrize("outputs", [1, 2])
def test_gradients_match_finite_differences(backend, outputs):
    X, y = _counts(outputs=outputs, seed=1)
    net = _net(backend, outputs=outputs)
    got = net.gradients(X, y)
    want = _central_differences(net, X, y)
    for key in want:
        np.testing.assert_allclose(an.to_numpy(got[key]), want[key], rtol=1e-6, atol=1e-9,
                                   err_msg=key)  # fmt: skip


def test_the_fused_gradient_is_the_chained_one(backend):
    """``(exp(z) - t) / N`` from the logits equals the loss's own gradient through exp."""
    xp = backend.xp
    rng = np.random.default_rng(2)
    z = backend.asarray(rng.normal(size=(20, 2)), "float64")
    t = backend.asarray(rng.poisson(1.5, size=(20, 2)).astype(np.float64), "float64")
    loss, exp = Poisson(), Exp()
    value, dz = loss.fused(exp, z, t, xp=xp)
    mu = exp.value(z, xp=xp)
    chained = exp.derivative(loss.gradient(mu, t, xp=xp), z, mu, xp=xp)
    np.testing.assert_allclose(an.to_numpy(value), an.to_numpy(loss.value(mu, t, xp=xp)),
                               rtol=1e-14)  # fmt: skip
    np.testing.assert_allclose(an.to_numpy(dz), an.to_numpy(chained), rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(an.to_numpy(dz), (np.exp(an.to_numpy(z)) - an.to_numpy(t)) / 40,
                               rtol=1e-14, atol=1e-17)  # fmt: skip


def test_zero_counts_and_large_logits_stay_finite(backend):
    xp = backend.xp
    z = backend.asarray(np.array([[-40.0], [0.0], [30.0]]), "float64")
    t = backend.asarray(np.array([[0.0], [0.0], [5.0]]), "float64")
    value, dz = Poisson().fused(Exp(), z, t, xp=xp)
    assert np.isfinite(float(an.to_numpy(value)))
    assert np.all(np.isfinite(an.to_numpy(dz)))


def test_exp_is_the_default_output_and_training_fits_counts(backend):
    X, y = _counts(n=200, seed=3)
    net = an.Sequential([Dense(8), "tanh", Dense(1)], 3, "poisson", seed=0, dtype="float64",
                        backend=backend.name, device=backend.device)  # fmt: skip
    assert isinstance(net.head.activation, Exp)
    assert not net.is_classifier
    before = net.loss(X, y)
    history = net.fit(X, y, epochs=200, optimizer="adam", lr=0.02)
    assert history.loss[-1] < 0.8 * before
    assert np.all(an.to_numpy(net.predict(X)) > 0)


def test_negative_targets_are_refused(backend):
    X, y = _counts()
    y[3] = -1.0
    net = _net(backend)
    with pytest.raises(an.InputError, match=r"y must hold values >= 0 \(counts\) for the poisson"):
        net.fit(X, y, epochs=1)
    with pytest.raises(an.InputError, match="values >= 0"):
        net.loss(X, y)


def test_a_classifier_output_is_refused_naming_exp():
    with pytest.raises(an.InputError, match="loss 'poisson' needs a 'exp' output activation"):
        an.Network([3, 4, 1], ["tanh", "sigmoid"], loss="poisson")


def test_a_poisson_network_saves_and_loads(tmp_path):
    X, y = _counts()
    net = an.Network([3, 8, 1], ["relu", "exp"], loss="poisson", seed=0, dtype="float64")
    net.fit(X, y, epochs=3, lr=0.01)
    net.save(tmp_path / "p.npz")
    back = an.load(tmp_path / "p.npz")
    assert back.loss_name == "poisson"
    np.testing.assert_array_equal(an.to_numpy(back.predict(X)), an.to_numpy(net.predict(X)))


@pytest.mark.parametrize("oracle", ["torch", "jax"])
def test_gradients_match_autodiff(backend, oracle):
    pytest.importorskip(oracle)
    X, y = _counts(seed=4)
    report = check_gradients(_net(backend), X, y, oracle=oracle)
    assert report.ok, report
