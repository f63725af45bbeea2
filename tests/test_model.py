"""The opened model: Sequential, parameter naming, dropout, batch norm, heads, extension points.

Numbers are compared with independent NumPy transcriptions of each layer (written here,
not taken from anynet), on the backend under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import anynet as an
from anynet import registry
from anynet.layers import (
    BatchNorm,
    Dense,
    Dropout,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)
from anynet.layers.dropout import P, hash_uniform


def host(array):
    return np.asarray(an.to_numpy(array), dtype=np.float64)


def data(n=40, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X, y


# -- building ------------------------------------------------------------------------


def test_parameter_keys_number_the_layers_that_own_parameters_or_state(backend):
    net = an.Sequential(
        [Dense(5), "relu", LayerNorm(), Dropout(0.1), Residual(Dense(5), BatchNorm()), Dense(1)],
        inputs=3,
        loss="binary_crossentropy",
        seed=0,
        backend=backend,
    )
    assert list(net.params) == [
        "W1",
        "b1",
        "gamma2",
        "beta2",
        "W4",
        "b4",
        "gamma5",
        "beta5",
        "W6",
        "b6",
    ]
    assert list(net.state) == ["rng3", "mean5", "var5"]
    assert net.model.decay_keys == {"W1", "W4", "W6"}
    assert isinstance(net.model.head.activation, Sigmoid)  # from the loss
    assert tuple(net.params["W4"].shape) == (5, 5)


def test_network_shortcut_equals_the_same_sequential_bit_for_bit(backend):
    X, y = an.datasets.planar_flower(n=60)
    short = an.Network([2, 4, 1], ["tanh", "sigmoid"], init="normal", seed=3, dtype="float64",
                       backend=backend)  # fmt: skip
    layers = [Dense(4, init="normal"), "tanh", Dense(1, init="normal"), "sigmoid"]
    long = an.Sequential(layers, inputs=2, seed=3, dtype="float64", backend=backend)
    for key in short.params:
        np.testing.assert_array_equal(host(short.params[key]), host(long.params[key]))
    h1 = short.fit(X, y, epochs=20, lr=1.2)
    h2 = long.fit(X, y, epochs=20, lr=1.2)
    assert h1.loss == h2.loss


def test_full_batch_fit_in_the_columns_layout_equals_rows_steps(backend):
    """fit keeps layout-free models in (features, samples) inside; the numbers are those of
    rows-are-samples steps through anynet.functional (float64, 1e-12)."""
    X, _ = data(n=50, n_in=3)
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)  # three classes
    layers = [Dense(6), "tanh", Dense(5), "relu", Dense(4), LeakyReLU(0.2), Dense(3)]
    net = an.Sequential(layers, inputs=3, loss="categorical_crossentropy", seed=2,
                        dtype="float64", backend=backend)  # fmt: skip
    assert net.model.layout_free
    assert not an.Sequential([Dense(4), LayerNorm(), Dense(1)], inputs=3).model.layout_free
    assert not an.Sequential([Dense(4), Dropout(0.5), Dense(1)], inputs=3).model.layout_free
    optimizer = an.optimizers.Adam(lr=0.05)
    params = dict(net.params)
    opt_state = optimizer.init(params)
    X_dev, y_dev = net.backend.asarray(X, "float64"), net.backend.asarray(labels)
    losses = []
    for _ in range(15):
        params, opt_state, loss = an.functional.train_step(
            net.model, optimizer, params, opt_state, X_dev, y_dev
        )
        losses.append(float(an.to_numpy(loss)))
    history = net.fit(X, labels, epochs=15, optimizer=optimizer)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12, atol=0)
    for key, value in params.items():
        np.testing.assert_allclose(host(net.params[key]), host(value), rtol=1e-11, atol=1e-14)


def test_sequential_refuses_bad_layer_lists():
    with pytest.raises(an.InputError, match=r"layers\[1\] must be an anynet.layers.Layer"):
        an.Sequential([Dense(3), "swishy"], inputs=2)
    with pytest.raises(an.InputError, match="allowed as the output only"):
        an.Sequential([Dense(3), "softmax", Dense(2), "softmax"], inputs=2)
    with pytest.raises(an.InputError, match="Residual layers must keep the width"):
        an.Sequential([Residual(Dense(3))], inputs=2)
    with pytest.raises(an.InputError, match="units must be a positive integer"):
        Dense(0)
    with pytest.raises(an.InputError, match="rate must be a number in"):
        Dropout(1.0)


# -- layers against NumPy transcriptions ------------------------------------------------


def _np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_residual_layer_norm_forward_matches_numpy(backend):
    X, _ = data(n=9, n_in=4)
    net = an.Sequential(
        [Dense(6), "tanh", Residual(LayerNorm(), Dense(6), "relu"), Dense(2)],
        inputs=4, loss="mse", seed=1, dtype="float64", backend=backend,
    )  # fmt: skip
    p = {k: host(v) for k, v in net.params.items()}
    h = np.tanh(X @ p["W1"].T + p["b1"])
    inner = _np_layer_norm(h, p["gamma2"], p["beta2"], 1e-5)
    h = h + np.maximum(inner @ p["W3"].T + p["b3"], 0)
    want = h @ p["W4"].T + p["b4"]
    np.testing.assert_allclose(host(net.forward(X)), want, rtol=1e-12, atol=1e-14)


def test_batch_norm_uses_batch_statistics_in_fit_and_running_ones_elsewhere(backend):
    X, _ = data(n=16, n_in=3)
    Y = np.random.default_rng(1).normal(size=(16, 1))
    net = an.Sequential(
        [Dense(4), BatchNorm(momentum=0.8), Dense(1)],
        inputs=3, loss="mse", seed=0, dtype="float64", backend=backend,
    )  # fmt: skip
    p = {k: host(v) for k, v in net.params.items()}
    h = X @ p["W1"].T + p["b1"]
    mean, var = h.mean(axis=0), h.var(axis=0)
    normed = p["gamma2"] * (h - mean) / np.sqrt(var + 1e-5) + p["beta2"]
    want_loss = np.mean((normed @ p["W3"].T + p["b3"] - Y) ** 2)
    history = net.fit(X, Y, epochs=1, lr=0.1)
    np.testing.assert_allclose(history.loss[0], want_loss, rtol=1e-12)
    state = {k: host(v) for k, v in net.state.items()}
    np.testing.assert_allclose(state["mean2"], 0.2 * mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state["var2"], 0.8 + 0.2 * var, rtol=1e-12)
    # evaluation mode: the running statistics, not the batch's
    p = {k: host(v) for k, v in net.params.items()}
    h = X @ p["W1"].T + p["b1"]
    normed = p["gamma2"] * (h - state["mean2"]) / np.sqrt(state["var2"] + 1e-5) + p["beta2"]
    np.testing.assert_allclose(
        host(net.predict(X)), (normed @ p["W3"].T + p["b3"])[:, 0], rtol=1e-12, atol=1e-14
    )


# -- dropout ------------------------------------------------------------------------------


def test_dropout_hash_is_identical_on_every_backend_and_uniform(backend):
    xp = backend.xp
    like = backend.asarray(np.zeros((300, 70)), "float64")
    seed = backend.asarray(np.array(1234, dtype=np.int32))
    got = an.to_numpy(hash_uniform(seed, seed * 0 + 77, 300, like, xp=xp))
    ref = hash_uniform(np.int32(1234), np.int32(77), 300, np.zeros((300, 70)), xp=np)
    np.testing.assert_array_equal(got, ref)
    assert got.min() >= 0 and got.max() < P
    counts = np.bincount((got.ravel() * 16) // P, minlength=16)
    expected = got.size / 16
    assert ((counts - expected) ** 2 / expected).sum() < 50  # chi-square, 15 dof: p < 1e-4
    again = hash_uniform(np.int32(1234), np.int32(78), 300, np.zeros((300, 70)), xp=np)
    assert abs(np.corrcoef(ref.ravel(), again.ravel())[0, 1]) < 0.02


def test_dropout_is_active_in_fit_only(backend):
    X, y = data()
    net = an.Sequential(
        [Dense(8), "tanh", Dropout(0.5), Dense(1), "sigmoid"],
        inputs=3, seed=0, dtype="float64", backend=backend,
    )  # fmt: skip
    plain = an.Sequential(
        [Dense(8), "tanh", Dense(1), "sigmoid"], inputs=3, seed=0, dtype="float64",
        backend=backend,
    )  # fmt: skip
    plain.set_params({"W1": net.params["W1"], "b1": net.params["b1"], "W2": net.params["W3"],
                      "b2": net.params["b3"]})  # fmt: skip
    np.testing.assert_array_equal(host(net.predict_proba(X)), host(plain.predict_proba(X)))
    assert net.loss(X, y) == plain.loss(X, y)
    for key, grad in net.gradients(X, y).items():
        other = {"W3": "W2", "b3": "b2"}.get(key, key)
        np.testing.assert_array_equal(host(grad), host(plain.gradients(X, y)[other]))
    trained = net.fit(X, y, epochs=3, lr=0.5).loss
    reference = plain.fit(X, y, epochs=3, lr=0.5).loss
    assert trained[0] != reference[0]  # the first training loss already sees dropped units
    assert host(net.state["rng2"])[1] == 3  # one step per full-batch epoch


def test_dropout_training_agrees_with_numpy(backend, dtype):
    X, y = an.datasets.planar_flower(n=96)
    layers = [
        Dense(12),
        "relu",
        Dropout(0.3),
        Residual(LayerNorm(), Dense(12), "tanh", Dropout(0.2)),
    ]
    layers += [BatchNorm(), Dense(1), "sigmoid"]

    def run(where):
        net = an.Sequential(layers, inputs=2, seed=5, dtype=dtype, backend=where)
        history = net.fit(X, y, epochs=4, lr=0.05, batch_size=32, optimizer="adam")
        return np.array(history.loss), net

    ours, net = run(backend)
    reference, ref_net = run("numpy")
    rtol = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(ours, reference, rtol=rtol)
    for key in ref_net.params:
        np.testing.assert_allclose(
            host(net.params[key]), host(ref_net.params[key]), rtol=rtol * 10, atol=rtol, err_msg=key
        )
    np.testing.assert_array_equal(host(net.state["rng2"]), host(ref_net.state["rng2"]))


# -- state in checkpoints and moves -------------------------------------------------------


def test_layer_state_is_saved_loaded_and_moved(backend, tmp_path):
    X, y = data()
    net = an.Sequential(
        [Dense(6), BatchNorm(), "relu", Dropout(0.2), Dense(2), "softmax"],
        inputs=3, seed=0, dtype="float64", backend=backend,
    )  # fmt: skip
    net.fit(X, y, epochs=5, lr=0.1, batch_size=16)
    path = net.save(tmp_path / "bn.npz")
    for target in (backend, "numpy"):
        loaded = an.load(path, backend=target)
        assert loaded.model == net.model
        for key in net.state:
            np.testing.assert_array_equal(host(loaded.state[key]), host(net.state[key]))
        np.testing.assert_allclose(  # bit for bit on one backend, to rounding across two
            host(loaded.predict_proba(X)),
            host(net.predict_proba(X)),
            rtol=0 if target is backend else 1e-12,
        )
    moved = net.to("numpy")
    for key in net.state:
        np.testing.assert_array_equal(host(moved.state[key]), host(net.state[key]))
    assert an.backend_of(moved.state["mean2"]) == "numpy"


# -- extension points ---------------------------------------------------------------------


@dataclass(frozen=True)
class Swish(an.layers.Activation):
    """``z * sigmoid(z)``: a user's activation."""

    def value(self, z, *, xp):
        return z / (1 + xp.exp(-z))

    def derivative(self, dy, z, y, *, xp):
        s = 1 / (1 + xp.exp(-z))
        return dy * (s + z * s * (1 - s))


@dataclass(frozen=True)
class Scale(Layer):
    """``y = x * s`` with a learned per-feature ``s``: a user's layer."""

    param_names: ClassVar[tuple[str, ...]] = ("s",)

    def init(self, rng, n_in):
        return {"s": np.ones(n_in)}, n_in

    def forward(self, params, x, *, xp, train):
        return x * params["s"], x

    def backward(self, params, cache, dy, *, xp):
        return dy * params["s"], {"s": xp.sum(dy * cache, axis=0)}


@pytest.fixture
def registered(monkeypatch):
    for kind in (registry.activations, registry.layers):
        monkeypatch.setitem(kind._classes, "swish", Swish)
        monkeypatch.setitem(kind._names, Swish, "swish")
    monkeypatch.setitem(registry.layers._classes, "Scale", Scale)
    monkeypatch.setitem(registry.layers._names, Scale, "Scale")


def test_a_registered_activation_and_layer_train_save_and_load(backend, tmp_path, registered):
    X, y = data()
    net = an.Network([3, 5, 1], ["swish", "sigmoid"], seed=0, dtype="float64", backend=backend)
    net.fit(X, y, epochs=5, lr=0.5)
    loaded = an.load(net.save(tmp_path / "swish.npz"), backend="numpy")
    np.testing.assert_allclose(host(loaded.predict_proba(X)), host(net.predict_proba(X)), 1e-12)
    seq = an.Sequential([Scale(), Dense(4), "swish", Dense(1), "sigmoid"], inputs=3, seed=1,
                        dtype="float64", backend=backend)  # fmt: skip
    seq.fit(X, y, epochs=5, lr=0.5)
    loaded = an.load(seq.save(tmp_path / "scale.npz"), backend="numpy")
    assert list(loaded.params) == ["s1", "W2", "b2", "W3", "b3"]
    np.testing.assert_allclose(host(loaded.predict_proba(X)), host(seq.predict_proba(X)), 1e-12)
    # the hand-written backward of the user's layers against central differences
    base = {k: host(v) for k, v in seq.params.items()}
    twin = seq.to("numpy")
    grads = {k: host(v) for k, v in seq.gradients(X, y).items()}
    for key in ("s1", "W2"):
        bumped = dict(base)
        bumped[key] = base[key].copy()
        bumped[key].flat[0] += 1e-6
        up = twin.set_params(bumped).loss(X, y)
        bumped[key].flat[0] -= 2e-6
        down = twin.set_params(bumped).loss(X, y)
        np.testing.assert_allclose(grads[key].flat[0], (up - down) / 2e-6, rtol=1e-6, atol=1e-9)


def test_unregistered_things_are_named_when_saving_and_loading(tmp_path, monkeypatch):
    @dataclass(frozen=True)
    class Shift(Layer):
        def forward(self, params, x, *, xp, train):
            return x + 1.0, None

        def backward(self, params, cache, dy, *, xp):
            return dy, {}

    net = an.Sequential([Shift(), Dense(1), "sigmoid"], inputs=2, seed=0)
    with pytest.raises(an.InputError, match=r"anynet.register_layer\('Shift', Shift\)"):
        net.save(tmp_path / "x.npz")
    monkeypatch.setitem(registry.layers._classes, "Shift", Shift)
    monkeypatch.setitem(registry.layers._names, Shift, "Shift")
    path = net.save(tmp_path / "x.npz")
    monkeypatch.delitem(registry.layers._classes, "Shift")
    with pytest.raises(
        an.CheckpointError, match=r"layer 'Shift' is not registered here.*register_layer"
    ):
        an.load(path)


def test_a_custom_loss_declares_its_head_and_gets_encoded_targets(backend):
    @dataclass(frozen=True)
    class Brier(an.losses.Loss):
        head: ClassVar[str | None] = "multiclass"

        def value(self, p, t, *, xp):
            return xp.sum((p - t) ** 2) / p.shape[0]

        def gradient(self, p, t, *, xp):
            return 2 * (p - t) / p.shape[0]

    X, _ = data()
    labels = np.arange(40) % 3
    net = an.Sequential([Dense(5), "tanh", Dense(3), "softmax"], inputs=3, loss=Brier(), seed=0,
                        dtype="float64", backend=backend)  # fmt: skip
    p = host(net.forward(X))
    want = np.sum((p - np.eye(3)[labels]) ** 2) / 40
    np.testing.assert_allclose(net.loss(X, labels), want, rtol=1e-12)
    history = net.fit(X, labels, epochs=30, lr=0.5)
    assert history.loss[-1] < history.loss[0]
    with pytest.raises(an.InputError, match="needs a 'softmax' output activation, got 'sigmoid'"):
        an.Sequential([Dense(1), "sigmoid"], inputs=3, loss=Brier())


def test_registries_refuse_clashes_and_wrong_kinds():
    with pytest.raises(an.InputError, match="already registered"):
        an.register_activation("tanh", Swish)
    with pytest.raises(an.InputError, match="subclass of Loss"):
        an.register_loss("swish", Swish)
    with pytest.raises(an.InputError, match="optimizer must be one of"):
        an.Network([2, 1]).fit([[0.0, 1.0]], [1], optimizer="lion", epochs=1)


# -- heads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, loss, n_out, kind",
    [
        (Sigmoid(), None, 1, "binary"),
        (Softmax(), None, 3, "multiclass"),
        (Identity(), None, 2, "regression"),
        (Tanh(), "mse", 1, "regression"),
        (None, "binary_crossentropy", 1, "binary"),
        (None, "categorical_crossentropy", 3, "multiclass"),
        (None, None, 2, "regression"),
        (ReLU(), "mse", 2, "regression"),
    ],
)
def test_the_head_is_chosen_by_loss_or_output_activation(output, loss, n_out, kind):
    layers = [Dense(4), Dense(n_out)] + ([] if output is None else [output])
    net = an.Sequential(layers, inputs=2, loss=loss, seed=0)
    assert net.model.head.kind == kind
    assert net.is_classifier == (kind != "regression")


def test_logits_are_the_evaluation_forward_without_its_caches(backend):
    """``Model.logits`` (what predict, score and validation run) gives ``forward(train=False)``'s
    logits bit for bit, layer state included, and holds one activation at a time."""
    import tracemalloc

    from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual

    X, y = an.datasets.spirals(n=60, n_classes=3, seed=2)
    net = an.Sequential(
        [Dense(16), BatchNorm(), "relu", Residual(LayerNorm(), Dense(16), "tanh"), Dropout(0.3),
         Dense(3)], 2, "categorical_crossentropy", seed=1, dtype="float64",
        backend=backend.name, device=backend.device,
    )  # fmt: skip
    net.fit(X, y, epochs=3, batch_size=16)  # running statistics that are not the initial ones
    xp, x = backend.xp, backend.asarray(X)
    want = net.model.forward(net.params, net.state, x, xp=xp, train=False)[0]
    got = net.model.logits(net.params, net.state, x, xp=xp)
    np.testing.assert_array_equal(an.to_numpy(got), an.to_numpy(want))
    # on JAX, Network.forward is one compiled call (XLA fuses: the same to rounding)
    np.testing.assert_allclose(an.to_numpy(net.forward(X)),
                               an.to_numpy(net.model.head.output(want, xp=xp)),
                               rtol=1e-13 if backend.compiles else 0, atol=0)  # fmt: skip
    if backend.name != "numpy":
        return  # tracemalloc sees NumPy's buffers only
    wide = an.Network([64, 512, 512, 512, 512, 10], seed=0, dtype="float64")
    rows = np.random.default_rng(0).standard_normal((2000, 64))
    peaks = []
    for run in (lambda: wide.model.forward(wide.params, wide.state, rows, xp=np, train=False),
                lambda: wide.model.logits(wide.params, wide.state, rows, xp=np)):  # fmt: skip
        tracemalloc.start()
        run()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    activation = 2000 * 512 * 8
    assert peaks[0] > 7 * activation  # every layer's input kept for backward
    assert peaks[1] < 4 * activation  # a layer's input, a temporary and its output
