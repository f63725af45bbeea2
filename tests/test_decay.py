"""L2 regularisation reaches users' layers: the default ``decay`` (weight matrices, not
vectors), checked against a plain NumPy transcription of loss + 0.5 * l2 * ||W||^2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet.layers import Dense, Layer, Residual
from anynet.optimizers import SGD
from anynet.testing import check_layer


@dataclass(frozen=True)
class Affine(Layer):
    """``y = x @ M.T + c``, a user's layer that declares no ``decay``."""

    units: int = 3
    param_names = ("M", "c")

    def init(self, rng, n_in):
        return {"M": rng.normal(size=(self.units, n_in)), "c": rng.normal(size=self.units)}, (
            self.units
        )

    def forward(self, params, x, *, xp, train):
        return x @ params["M"].T + params["c"], x

    def backward(self, params, cache, dy, *, xp):
        return dy @ params["M"], {"M": dy.T @ cache, "c": xp.sum(dy, axis=0)}


@dataclass(frozen=True)
class NoDecay(Affine):
    decay = ()  # declared: nothing decays


def _objective(p, X, y, l2, decayed):
    """Mean binary cross-entropy of Affine -> tanh -> Dense(1) -> sigmoid, plus the L2 term."""
    hidden = np.tanh(X @ p["M1"].T + p["c1"])
    z = (hidden @ p["W2"].T + p["b2"])[:, 0]
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    return loss + 0.5 * l2 * sum(np.sum(p[k] ** 2) for k in decayed)


def _numeric_gradient(p, X, y, l2, decayed, eps=1e-6):
    grads = {}
    for key, value in p.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            up = {k: v.copy() for k, v in p.items()}
            down = {k: v.copy() for k, v in p.items()}
            up[key][index] += eps
            down[key][index] -= eps
            grad[index] = (
                _objective(up, X, y, l2, decayed) - _objective(down, X, y, l2, decayed)
            ) / (2 * eps)
        grads[key] = grad
    return grads


@pytest.mark.parametrize("engine", ["auto", "eager"])
@pytest.mark.parametrize(
    "layer, decayed", [(Affine(3), ["M1", "W2"]), (NoDecay(3), ["W2"])], ids=["default", "declared"]
)
def test_l2_applies_to_a_user_layers_matrix_by_default(backend, engine, layer, decayed):
    X, y = an.datasets.planar_flower(n=60)
    net = an.Sequential([layer, "tanh", Dense(1), "sigmoid"], inputs=2, seed=0, dtype="float64",
                        backend=backend.name, device=backend.device)  # fmt: skip
    assert net.model.decay_keys == frozenset(decayed)
    start = {k: an.to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    lr, l2 = 0.5, 0.3
    grads = _numeric_gradient(start, X, y.astype(np.float64), l2, decayed)
    net.fit(X, y, epochs=1, optimizer=SGD(lr=lr, l2=l2), engine=engine)
    for key, value in start.items():
        np.testing.assert_allclose(
            an.to_numpy(net.params[key]), value - lr * grads[key], rtol=1e-7, atol=1e-9,
            err_msg=key,
        )  # fmt: skip


def test_the_default_decays_matrices_inside_containers_too():
    model = an.Sequential(
        [Affine(4), Residual(Affine(4), "relu", Dense(4)), Dense(1), "sigmoid"], inputs=2, seed=0
    ).model
    assert model.decay_keys == frozenset({"M1", "M2", "W3", "W4"})
    assert Affine(4).decayed(2) == ("M",)
    assert NoDecay(4).decayed(2) == ()
    assert Dense(4).decayed(2) == ("W",)
    assert an.layers.LayerNorm().decayed(4) == ()  # gamma, beta: vectors


def test_check_layer_reports_which_parameters_decay():
    report = check_layer(Affine(3), 2, backends=[])
    assert report.decay == ("M",) and not report.decay_declared
    assert "L2 (l2=) decays: M (by default: parameters with ndim >= 2)" in str(report)
    declared = check_layer(NoDecay(3), 2, backends=[])
    assert declared.decay == () and declared.decay_declared
    assert "L2 (l2=) decays: none (declared)" in str(declared)
    assert check_layer(Dense(3), 2, backends=[]).decay == ("W",)


def test_check_layer_refuses_a_decay_that_names_no_parameter():
    @dataclass(frozen=True)
    class Wrong(Affine):
        decay = ("W",)

    with pytest.raises(an.testing.LayerCheckError, match=r"decay must name parameters"):
        check_layer(Wrong(3), 2, backends=[])
