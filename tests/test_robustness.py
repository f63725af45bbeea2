"""Numerical robustness on every backend: saturated logits, huge inputs, float32 training.

What is checked, against closed forms worked out by hand:

* ``sigmoid``, ``softmax``, ``logsumexp`` and the fused losses
  ``binary_crossentropy_from_logits`` / ``categorical_crossentropy_from_logits`` stay
  finite for logits of ±1e4 in float32 and float64, with exact values where the exact
  answer is representable (``BCE(z=1e4, t=0) = 1e4``, ``CE = 2e4``, ...) and exact
  gradients ``(p - t) / n``;
* ``Network.gradients`` of a saturated sigmoid or softmax head equals ``(p - t) / n``
  propagated by hand, bit for bit, and ``Network.predict_proba`` stays finite for
  inputs of 1e30 with large (but not overflowing) weights;
* float32 training of the tutorial's network matches float64.

Measured float32-vs-float64 agreement (planar flower, ``[2, 4, 1]`` tanh/sigmoid,
``lr=1.2``, ``seed=0``, full batch; numpy, array_api_strict, jax and torch alike):

* the per-epoch loss agrees to a relative 6.7e-7 at most over the first 2000 epochs
  (4.3e-6 over 5000); after 300 epochs the parameters agree to 1.8e-6 absolute, the
  probabilities to 3.7e-7, and every predicted label is the same. The test below runs
  300 epochs and asserts ``rtol=1e-5`` on the loss and ``atol=1e-5`` on parameters
  and probabilities: at least 5x the worst case seen.
* Over the tutorial's full 10000 epochs the two part ways near epoch 7600 (their
  relative gap passes 1e-5 at epoch 7575-7614 and 1e-2 by 7685-7704, depending on the
  backend): there the float32 run's loss rises by 1% (0.2165 to 0.2185, lr 1.2 being
  too large for float32's rounding at that point) while float64's keeps falling. Final
  training accuracy on NumPy: 0.9075 in float32, 0.905 in float64.

Where finite inputs would still overflow (products beyond the dtype's range, float64
data beyond float32's), anynet raises its own exception instead of returning NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import anynet as an
from anynet.activations import (
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
)
from anynet.heads import make_head
from anynet.losses import (
    binary_crossentropy_from_logits,
    categorical_crossentropy_from_logits,
    logsumexp,
)
from anynet.testing import assert_on_backend

#: Relative tolerance for values that are not exactly representable.
RTOL = {"float32": 2e-6, "float64": 1e-14}


def on(backend, values, dtype):
    return backend.asarray(np.asarray(values, dtype=np.float64), dtype)


def host(array) -> np.ndarray:
    return an.to_numpy(array).astype(np.float64)


def assert_finite(array, backend) -> np.ndarray:
    if not (backend.name == "numpy" and isinstance(array, np.generic)):  # NumPy's 0-d results
        assert_on_backend(array, backend)
    values = host(array)
    assert np.all(np.isfinite(values)), values
    return values


# -- activations and losses at ±1e4 --------------------------------------------


def test_sigmoid_saturates_without_overflow(backend, dtype):
    z = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
    a = sigmoid(on(backend, z, dtype))
    got = assert_finite(a, backend)
    assert got[0] == 0.0 and got[-1] == 1.0  # e**-1e4 rounds to 0 in both dtypes
    assert got[3] == 0.5
    expected = np.where(
        z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))
    )
    np.testing.assert_allclose(got[1:-1], expected[1:-1], rtol=RTOL[dtype])
    slope = assert_finite(
        sigmoid_backward(on(backend, np.ones(7), dtype), on(backend, z, dtype), a), backend
    )
    assert slope[0] == 0.0 and slope[-1] == 0.0 and slope[3] == 0.25
    exact_slope = np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))) ** 2
    np.testing.assert_allclose(slope, exact_slope, rtol=1e-5, atol=0)


# sigmoid_backward works from z (e / (1 + e)**2), not from a * (1 - a), which cancels
# once a rounds to 1 (z > 17 in float32).
def test_sigmoid_backward_is_relatively_accurate_in_the_tail(backend, dtype):
    z = np.array([20.0, 30.0])
    a = sigmoid(on(backend, z, dtype))
    slope = host(sigmoid_backward(on(backend, np.ones(2), dtype), on(backend, z, dtype), a))
    np.testing.assert_allclose(slope, np.exp(-z) / (1 + np.exp(-z)) ** 2, rtol=1e-5)


def test_softmax_saturates_without_overflow(backend, dtype):
    z = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, 0.0]])
    a = softmax(on(backend, z, dtype), axis=-1)
    got = assert_finite(a, backend)
    e = math.exp(-1)
    expected = np.array(
        [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [1 / (1 + e), e / (1 + e), 0]]
    )
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=0)
    da = np.array([[1.0, 2.0, 3.0]] * 4)
    dz = softmax_backward(on(backend, da, dtype), on(backend, z, dtype), a, axis=-1)
    expected_dz = expected * (da - np.sum(da * expected, axis=-1, keepdims=True))
    np.testing.assert_allclose(assert_finite(dz, backend), expected_dz, rtol=1e-5, atol=1e-6)


def test_logsumexp_of_huge_logits(backend, dtype):
    z = np.array([[1e4, 1e4], [-1e4, -1e4], [1e4, -1e4], [1e4, 1e4 - 1]])
    got = assert_finite(logsumexp(on(backend, z, dtype), axis=-1), backend)
    expected = [1e4 + math.log(2), -1e4 + math.log(2), 1e4, 1e4 + math.log1p(math.exp(-1))]
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype])
    kept = logsumexp(on(backend, z, dtype), axis=0, keepdims=True)
    assert tuple(kept.shape) == (1, 2)


@pytest.mark.parametrize(
    "z, t, expected",
    [(1e4, 0, 1e4), (1e4, 1, 0.0), (-1e4, 1, 1e4), (-1e4, 0, 0.0), (0.0, 1, math.log(2))],
)
def test_binary_crossentropy_from_logits_and_its_gradient(backend, dtype, z, t, expected):
    logits, targets = on(backend, [[z, z]], dtype), on(backend, [[t, t]], dtype)
    value = binary_crossentropy_from_logits(logits, targets)
    assert tuple(value.shape) == ()
    np.testing.assert_allclose(assert_finite(value, backend), expected, rtol=RTOL[dtype])
    if abs(z) == 1e4:
        assert host(value) == expected  # exactly
    # the head's fused gradient, rows-are-samples: (sigmoid(z) - t) / n
    head = make_head("sigmoid", "binary_crossentropy", 2)
    value, dz = head.loss_and_delta(logits, targets, xp=backend.xp)
    p_exact = 1.0 if z > 0 else 0.0 if z < 0 else 0.5
    np.testing.assert_array_equal(assert_finite(dz, backend), [[(p_exact - t) / 2] * 2])


@pytest.mark.parametrize(
    "label, expected",
    [(0, 0.0), (1, 2e4), (2, 1e4)],
)
def test_categorical_crossentropy_from_logits_and_its_gradient(backend, dtype, label, expected):
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]])
    t = np.zeros_like(z)
    t[:, label] = 1
    logits, targets = on(backend, z, dtype), on(backend, t, dtype)
    value = categorical_crossentropy_from_logits(logits, targets, axis=-1)
    assert tuple(value.shape) == ()
    assert host(value) == expected  # exactly: logsumexp = 1e4 exactly here
    # the head's fused gradient, rows-are-samples: (softmax(z) - t) / n
    head = make_head("softmax", "categorical_crossentropy", 3)
    value, dz = head.loss_and_delta(logits, targets, xp=backend.xp)
    assert host(value) == expected
    p = np.array([1.0, 0.0, 0.0])[None, :]
    np.testing.assert_array_equal(assert_finite(dz, backend), (p - t) / 2)


# -- whole networks with saturated heads -----------------------------------------

# Hidden tanh units driven to exactly ±1, so that every gradient below is exact.
X_SAT = np.array([[1.0, 2.0], [2.0, 1.0], [-1.0, -2.0], [-2.0, -1.0]])
W1_SAT = np.array([[100.0, 100.0], [100.0, -100.0], [-100.0, 100.0]])
A1_SAT = np.sign(X_SAT @ W1_SAT.T)  # (4, 3), entries ±1: tanh(±100 or ±300) == ±1 exactly


def test_saturated_sigmoid_head_has_exact_gradients(backend, dtype):
    net = an.Network([2, 3, 1], ["tanh", "sigmoid"], seed=0, dtype=dtype, backend=backend)
    W2 = np.array([[5000.0, 3000.0, 2000.0]])
    net.set_params({"W1": W1_SAT, "b1": np.zeros(3), "W2": W2, "b2": np.zeros(1)})
    y = np.array([0, 1, 1, 0])
    z = A1_SAT @ W2.T  # (4, 1): 4000, 6000, -4000, -6000
    np.testing.assert_array_equal(z[:, 0], [4000, 6000, -4000, -6000])
    p = (z > 0).astype(float)  # the exact sigmoid, rounded: 1 or 0
    proba = assert_finite(net.predict_proba(X_SAT), backend)
    np.testing.assert_array_equal(proba, np.hstack([1 - p, p]))
    assert net.loss(X_SAT, y) == 2000.0  # mean(4000, 0, 4000, 0)
    dz = (p - y[:, None]) / 4  # (p - t) / n
    grads = net.gradients(X_SAT, y)
    expected = {
        "W2": dz.T @ A1_SAT,
        "b2": dz.sum(axis=0),
        "W1": np.zeros((3, 2)),  # tanh'(±100) = 1 - 1**2 = 0 exactly
        "b1": np.zeros(3),
    }
    for key, value in expected.items():
        np.testing.assert_array_equal(assert_finite(grads[key], backend), value, err_msg=key)


def test_saturated_softmax_head_has_exact_gradients(backend, dtype):
    net = an.Network([2, 3, 3], ["tanh", "softmax"], seed=0, dtype=dtype, backend=backend)
    W2 = 1e4 * np.eye(3)
    net.set_params({"W1": W1_SAT, "b1": np.zeros(3), "W2": W2, "b2": np.zeros(3)})
    y = np.array([0, 1, 2, 2])
    z = A1_SAT @ W2.T  # logits ±1e4
    top = z == z.max(axis=1, keepdims=True)
    p = top / top.sum(axis=1, keepdims=True)  # exact softmax: ties share, the rest is 0
    assert_finite(net.predict_proba(X_SAT), backend)
    np.testing.assert_array_equal(host(net.predict_proba(X_SAT)), p)
    t = np.eye(3)[y]
    lse = z.max(axis=1) + np.log(top.sum(axis=1))
    expected_loss = np.mean(lse - z[np.arange(4), y])
    assert net.loss(X_SAT, y) == pytest.approx(expected_loss, rel=RTOL[dtype])
    dz = (p - t) / 4
    grads = net.gradients(X_SAT, y)
    expected = {
        "W2": dz.T @ A1_SAT,
        "b2": dz.sum(axis=0),
        "W1": np.zeros((3, 2)),
        "b1": np.zeros(3),
    }
    for key, value in expected.items():
        np.testing.assert_array_equal(assert_finite(grads[key], backend), value, err_msg=key)


def test_a_training_step_from_a_saturated_head_stays_finite(backend, dtype):
    net = an.Network([2, 3, 1], ["tanh", "sigmoid"], seed=0, dtype=dtype, backend=backend)
    net.set_params({"W1": W1_SAT, "b1": np.zeros(3), "W2": [[5e3, 3e3, 2e3]], "b2": [0.0]})
    history = net.fit(X_SAT, np.array([0, 1, 1, 0]), epochs=3, lr=0.1)
    assert history.loss[0] == 2000.0 and all(math.isfinite(v) for v in history.loss)
    for value in net.params.values():
        assert_finite(value, backend)


def _predict_proba_is_finite(net: an.Network, X: np.ndarray) -> None:
    """A finite result, or anynet's own exception: never NaN, never a foreign error."""
    try:
        proba = net.predict_proba(X)
    except an.AnynetError:
        return
    values = host(proba)
    assert np.all(np.isfinite(values)), f"predict_proba returned {values}"
    np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-6)


#: Largest weights whose products with inputs of 1e30 cannot overflow the dtype.
BIG_WEIGHT = {"float32": 1e5, "float64": 1e200}


@pytest.mark.parametrize("hidden", ["tanh", "relu", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_predict_proba_is_finite_for_huge_inputs_and_weights(backend, dtype, hidden, head):
    n_out = 1 if head == "sigmoid" else 3
    net = an.Network([2, 4, n_out], [hidden, head], seed=0, dtype=dtype, backend=backend)
    X = np.array([[1e30, 1e30], [-1e30, 1e30], [1e30, -1e30], [0.0, -1e30], [3.0, -2.0]])
    _predict_proba_is_finite(net, X)  # the default, tiny weights
    rng = np.random.default_rng(0)
    scale = BIG_WEIGHT[dtype]
    w1 = scale * np.sign(rng.standard_normal((4, 2)))
    # hidden outputs may reach 2e30 * scale (relu): keep the next products in range too
    w2 = (1.0 if hidden in ("relu", "leaky_relu") else scale) * rng.standard_normal((n_out, 4))
    net.set_params({"W1": w1, "b1": np.zeros(4), "W2": w2, "b2": np.zeros(n_out)})
    _predict_proba_is_finite(net, X)


# Finite inputs times finite weights can overflow the dtype (inf - inf = NaN in the
# pre-activations; BLAS may also round to a signed inf): anynet then returns a finite
# result or raises NumericalError, never NaN.
@pytest.mark.parametrize("hidden", ["identity", "relu"])
def test_predict_proba_never_returns_nan_when_products_overflow(backend, dtype, hidden):
    net = an.Network([2, 3, 1], [hidden, "sigmoid"], seed=0, dtype=dtype, backend=backend)
    huge = float(np.finfo(dtype).max) / 1e20  # finite, but times 1e30 it is not
    w1 = np.array([[huge, -huge], [huge, huge], [-huge, -huge]])
    net.set_params({"W1": w1, "b1": np.zeros(3), "W2": [[1.0, -1.0, 1.0]], "b2": [0.0]})
    _predict_proba_is_finite(net, np.array([[1e30, 1e30]]))  # or raises NumericalError


# float64 input beyond float32's range would become inf in a float32 network: refused.
def test_float64_input_beyond_float32_range_is_refused(backend):
    net = an.Network([2, 3, 1], ["tanh", "sigmoid"], seed=0, dtype="float32", backend=backend)
    with pytest.raises(an.InputError, match="X must fit in float32"):
        net.predict_proba(np.array([[1e300, -1e300], [0.0, 1.0]]))


# -- float32 training agrees with float64 ----------------------------------------


def test_float32_training_matches_float64(backend):
    """The tutorial's network, 300 epochs: tolerances measured in the module docstring."""
    X, y = an.datasets.planar_flower()
    runs = {}
    for dtype in ("float32", "float64"):
        net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, dtype=dtype, backend=backend)
        history = net.fit(X, y, epochs=300, lr=1.2)
        runs[dtype] = (np.array(history.loss), net)
    (loss32, net32), (loss64, net64) = runs["float32"], runs["float64"]
    assert np.all(np.isfinite(loss32))
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    for key in net64.params:
        np.testing.assert_allclose(
            host(net32.params[key]), host(net64.params[key]), atol=1e-5, err_msg=key
        )
    np.testing.assert_allclose(
        host(net32.predict_proba(X)), host(net64.predict_proba(X)), atol=1e-5
    )
    np.testing.assert_array_equal(an.to_numpy(net32.predict(X)), an.to_numpy(net64.predict(X)))
