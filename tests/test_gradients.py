"""Hand-written backprop against central finite differences in float64, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from problems import HEADS, HIDDEN, make_problem

import anynet as an
from anynet.testing import assert_on_backend


def finite_difference_gradients(net: an.Network, X, y, eps: float = 1e-6) -> dict:
    """Central differences of net.loss, one parameter entry at a time, in float64."""
    base = {key: an.to_numpy(value).astype(np.float64) for key, value in net.params.items()}
    grads = {}
    for key, value in base.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in base.items()}
            shifted[key][index] = value[index] + eps
            up = net.set_params(shifted).loss(X, y)
            shifted[key][index] = value[index] - eps
            down = net.set_params(shifted).loss(X, y)
            grad[index] = (up - down) / (2 * eps)
        grads[key] = grad
    net.set_params(base)
    return grads


def assert_gradients_match(net: an.Network, X, y, backend) -> None:
    analytic = net.gradients(X, y)
    numeric = finite_difference_gradients(net, X, y)
    assert sorted(analytic) == sorted(numeric)
    for key, value in analytic.items():
        assert_on_backend(value, backend)
        assert tuple(value.shape) == numeric[key].shape
        np.testing.assert_allclose(
            an.to_numpy(value), numeric[key], rtol=1e-6, atol=1e-8, err_msg=key
        )


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(
    "head, loss, n_out", HEADS, ids=[f"{h}-{loss}-{n}" for h, loss, n in HEADS]
)
def test_every_activation_and_loss(backend, hidden, head, loss, n_out):
    X, y = make_problem(loss, n_out)
    net = an.Network(
        [3, 4, n_out], [hidden, head], loss, init="xavier", seed=1, dtype="float64", backend=backend
    )
    assert_gradients_match(net, X, y, backend)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "head, loss, n_out", [HEADS[0], HEADS[2], HEADS[3]], ids=["bce", "cce", "mse"]
)
def test_depths_one_to_four(backend, depth, head, loss, n_out):
    X, y = make_problem(loss, n_out, seed=depth)
    sizes = [3, *[4, 3, 5][: depth - 1], n_out]
    hidden = ["tanh", "leaky_relu", "sigmoid"][: depth - 1]
    net = an.Network(
        sizes, [*hidden, head], loss, init="xavier", seed=depth, dtype="float64", backend=backend
    )
    assert_gradients_match(net, X, y, backend)


def test_one_hot_targets_give_the_same_gradients_as_labels(backend):
    X, labels = make_problem("categorical_crossentropy", 3)
    net = an.Network([3, 4, 3], ["relu", "softmax"], dtype="float64", seed=3, backend=backend)
    from_labels = net.gradients(X, labels)
    from_one_hot = net.gradients(X, np.eye(3)[labels])
    for key in from_labels:
        np.testing.assert_allclose(
            an.to_numpy(from_one_hot[key]), an.to_numpy(from_labels[key]), rtol=1e-13, atol=1e-15
        )
