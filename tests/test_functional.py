"""anynet.functional: the pure core, inside jax.jit / jax.vmap / torch.func.vmap / torch.compile."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet import functional as F
from anynet import registry
from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual
from anynet.losses import Loss


def host(array):
    return np.asarray(an.to_numpy(array), dtype=np.float64)


def mixed(backend, seed=0, dtype="float64"):
    layers = [Dense(6), "tanh", Residual(LayerNorm(), Dense(6), "relu"), BatchNorm(), Dense(3)]
    return an.Sequential([*layers, "softmax"], inputs=2, seed=seed, dtype=dtype, backend=backend)


X, Y = an.datasets.planar_flower(n=48)
LABELS = (np.arange(48) % 3).astype(np.int64)


def test_apply_and_value_and_grad_match_the_network(backend):
    net = mixed(backend)
    x = backend.asarray(X, "float64")
    out, state = F.apply_with_state(net.model, net.params, x, state=net.state)
    np.testing.assert_allclose(host(out), host(net.forward(X)), rtol=1e-14)
    assert set(state) == set(net.state)
    value, grads, _ = F.value_and_grad(
        net.model, net.params, x, backend.asarray(LABELS), state=net.state
    )
    assert float(value) == pytest.approx(net.loss(X, LABELS), rel=1e-14)
    for key, grad in net.gradients(X, LABELS).items():  # BLAS may round by alignment
        np.testing.assert_allclose(host(grads[key]), host(grad), rtol=1e-13, atol=1e-16)


def test_train_step_is_one_full_batch_epoch_of_fit(backend):
    net = mixed(backend)
    opt = an.optimizers.Adam(lr=0.01)
    params, state = net.params, net.state
    opt_state = opt.init(params)
    x, y = backend.asarray(X, "float64"), backend.asarray(LABELS)
    losses = []
    for _ in range(3):
        params, opt_state, loss, state = F.train_step(
            net.model, opt, params, opt_state, x, y, state=state
        )
        losses.append(float(loss))
    history = net.fit(X, LABELS, epochs=3, optimizer=opt)
    np.testing.assert_allclose(losses, history.loss, rtol=1e-13)
    for key in params:
        np.testing.assert_allclose(host(params[key]), host(net.params[key]), rtol=1e-12, atol=1e-15)
    for key in state:
        np.testing.assert_allclose(host(state[key]), host(net.state[key]), rtol=1e-12)


def test_a_model_with_state_needs_it():
    net = an.Sequential([Dense(3), Dropout(0.2), Dense(1)], inputs=2, loss="mse", seed=0)
    with pytest.raises(an.InputError, match=r"state must be given.*\['rng2'\]"):
        F.apply(net.model, net.params, np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(an.InputError, match="params must be a non-empty dict"):
        F.apply(net.model, {}, np.zeros((2, 2)))


def test_init_draws_what_sequential_draws():
    net = mixed("numpy", seed=4)
    params, state = F.init(net.model, 4)
    for key, value in params.items():
        np.testing.assert_array_equal(value, host(net.params[key]))
    assert set(state) == set(net.state)


# -- JAX ----------------------------------------------------------------------------------


@pytest.mark.backends("jax", reason="jax.jit and jax.vmap")
@pytest.mark.dtypes("float64")
def test_jax_vmap_ensemble_of_16_equals_16_fits(backend, dtype):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    nets = [
        an.Network([2, 5, 1], ["tanh", "sigmoid"], seed=s, dtype=dtype, backend=backend)
        for s in range(16)
    ]
    model, opt = nets[0].model, an.optimizers.Momentum(lr=0.3)
    stacked = {k: jnp.stack([net.params[k] for net in nets]) for k in nets[0].params}
    x, y = jnp.asarray(X), jnp.asarray(Y)

    def train(params):
        def body(carry, _):
            params, opt_state = carry
            params, opt_state, loss = F.train_step(model, opt, params, opt_state, x, y)
            return (params, opt_state), loss

        (params, _), losses = jax.lax.scan(body, (params, opt.init(params)), None, length=40)
        return params, losses

    params, losses = jax.jit(jax.vmap(train))(stacked)
    for index, net in enumerate(nets):
        history = net.fit(X, Y, epochs=40, optimizer=opt)
        np.testing.assert_allclose(host(losses[index]), history.loss, rtol=1e-10)
        for key in net.params:
            np.testing.assert_allclose(
                host(params[key][index]), host(net.params[key]), rtol=1e-10, atol=1e-12
            )


@pytest.mark.backends("jax", reason="JAX tracing")
def test_jax_jit_of_optimizer_init_and_apply(backend):
    jax = pytest.importorskip("jax")
    net = mixed(backend)
    state = jax.jit(lambda p: an.optimizers.Adam().init(p))(net.params)
    assert float(state["step"]) == 0 and set(state) > {"m.W1", "v.W1"}
    apply = jax.jit(lambda p, s, x: F.apply(net.model, p, x, state=s))
    np.testing.assert_allclose(
        host(apply(net.params, net.state, backend.asarray(X, "float64"))),
        host(net.forward(X)),
        rtol=1e-13,
    )


@pytest.mark.backends("jax", reason="JAX tracing")
def test_network_methods_under_a_jax_trace_point_to_functional(backend):
    jax = pytest.importorskip("jax")
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    with pytest.raises(an.InputError, match=r"traced array.*anynet\.functional"):
        jax.jit(net.forward)(backend.asarray(X, "float64"))
    with pytest.raises(an.InputError, match=r"traced array.*anynet\.functional"):
        jax.vmap(lambda x: net.predict(x[None, :]))(backend.asarray(X, "float64"))


# -- PyTorch ------------------------------------------------------------------------------


@pytest.mark.backends("torch", reason="torch.func")
def test_torch_func_vmap_train_step_equals_separate_steps(backend):
    torch = pytest.importorskip("torch")
    nets = [an.Network([2, 4, 1], seed=s, dtype="float64", backend=backend) for s in range(4)]
    model, opt = nets[0].model, an.optimizers.Adam(lr=0.05)
    stacked = {k: torch.stack([net.params[k] for net in nets]) for k in nets[0].params}
    x, y = torch.asarray(X, device=backend.device), torch.asarray(Y, device=backend.device)
    step = torch.func.vmap(lambda p, s: F.train_step(model, opt, p, s, x, y))
    params, opt_state = stacked, torch.func.vmap(opt.init)(stacked)
    for _ in range(3):
        params, opt_state, losses = step(params, opt_state)
    for index, net in enumerate(nets):
        history = net.fit(X, Y, epochs=3, optimizer=opt)
        assert float(losses[index]) == pytest.approx(history.loss[-1], rel=1e-13)
        # fit runs this full-batch model in the (features, samples) layout: the same sums
        # in another order, a few ulps apart, which Adam's first steps amplify
        for key in net.params:
            np.testing.assert_allclose(
                host(params[key][index]), host(net.params[key]), rtol=1e-10, atol=1e-15
            )


@pytest.mark.backends("torch", reason="torch.compile")
@pytest.mark.filterwarnings("ignore::UserWarning")  # dynamo notes array-api-compat's caches
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # and torch's own internals
def test_torch_compile_train_step_equals_eager(backend):
    torch = pytest.importorskip("torch")
    net = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)
    opt = an.optimizers.SGD(lr=0.5)
    x, y = torch.asarray(X, device=backend.device), torch.asarray(Y, device=backend.device)

    def step(p, s):
        return F.train_step(net.model, opt, p, s, x, y)

    eager = step(net.params, opt.init(net.params))
    compiled = torch.compile(step)(net.params, opt.init(net.params))
    assert float(compiled[2]) == pytest.approx(float(eager[2]), rel=1e-14)
    for key in net.params:
        np.testing.assert_allclose(
            host(compiled[0][key]), host(eager[0][key]), rtol=1e-12, atol=1e-15
        )


# -- the edges: one backend and device, one return shape, checked labels, other losses ---


def _small(backend, **kwargs):
    return an.Network([2, 3, 1], ["tanh", "sigmoid"], seed=1, dtype="float64",
                      backend=backend.name, device=backend.device, **kwargs)  # fmt: skip


def test_init_params_with_another_backends_data_raise_naming_both(backend):
    net = _small(backend)
    params, _ = F.init(net.model, 1)  # NumPy float64 on the host
    x, y = backend.asarray(X, "float64"), backend.asarray(Y)
    if backend.name == "numpy":  # one backend: it just runs
        np.testing.assert_allclose(host(F.apply(net.model, params, x)), host(net.forward(X)),
                                   rtol=1e-14)  # fmt: skip
        return
    calls = {
        "apply": lambda: F.apply(net.model, params, x),
        "apply_with_state": lambda: F.apply_with_state(net.model, params, x),
        "value_and_grad": lambda: F.value_and_grad(net.model, params, x, y),
        "train_step": lambda: F.train_step(net.model, an.optimizers.SGD(), params, {}, x, y),
    }
    for where, call in calls.items():
        with pytest.raises(an.BackendError) as info:
            call()
        message = str(info.value)
        assert message.startswith(
            f"params['W1'] must be an array of the backend and device of X (a {backend.name} "
        ), message
        assert "got a numpy array" in message and f"anynet.functional.{where}" in message


@pytest.mark.skip_backends("numpy", reason="NumPy labels are this backend's own")
def test_labels_of_another_backend_raise(backend):
    net = _small(backend)
    x = backend.asarray(X, "float64")
    with pytest.raises(
        an.BackendError, match=r"^y must be an array of the backend and device of X"
    ):
        F.value_and_grad(net.model, net.params, x, Y)


@pytest.mark.backends("array_api_strict", reason="the backend with two devices on a CPU")
def test_arrays_on_two_devices_raise_naming_both(backend):
    other = "device1" if backend.device != an.get_backend("array_api_strict", "device1").device \
        else None  # fmt: skip
    net = _small(backend)
    x = an.get_backend("array_api_strict", other).asarray(X, "float64")
    with pytest.raises(an.BackendError) as info:
        F.apply(net.model, net.params, x)
    assert "must be an array of the backend and device of X" in str(info.value)
    assert f"array_api_strict array on {an.backend.device_text(backend.device)}" in str(info.value)


def test_a_list_is_not_an_array_for_the_pure_functions():
    net = an.Network([2, 3, 1], seed=0)
    with pytest.raises(an.InputError, match="X must be an array of one backend.*got list"):
        F.apply(net.model, net.params, [[0.0, 1.0]])


def test_apply_returns_the_outputs_whether_or_not_state_is_given(backend):
    stateless, stateful = _small(backend), mixed(backend)
    for net in (stateless, stateful):
        x = backend.asarray(X, "float64")
        out = F.apply(net.model, net.params, x, state=net.state)
        assert tuple(out.shape) == (48, net.model.n_outputs)
        np.testing.assert_allclose(host(out), host(net.forward(X)), rtol=1e-13)
        pair = F.apply_with_state(net.model, net.params, x, state=net.state)
        assert isinstance(pair, tuple) and len(pair) == 2
        np.testing.assert_array_equal(host(pair[0]), host(out))
        assert set(pair[1]) == set(net.state)
    out = F.apply(stateless.model, stateless.params, backend.asarray(X, "float64"))
    assert tuple(out.shape) == (48, 1)
    assert (
        F.apply_with_state(stateless.model, stateless.params, backend.asarray(X, "float64"))[1]
        == {}
    )


def test_a_training_pass_returns_its_new_state_through_apply_with_state(backend):
    net = mixed(backend)
    x = backend.asarray(X, "float64")
    with pytest.raises(an.InputError, match=r"train=True changes this model's layer state"):
        F.apply(net.model, net.params, x, state=net.state, train=True)
    _, new_state = F.apply_with_state(net.model, net.params, x, state=net.state, train=True)
    _, _, want = F.value_and_grad(net.model, net.params, x, backend.asarray(LABELS),
                                  state=net.state, train=True)  # fmt: skip
    for key in want:  # batch norm's running statistics: the same pass
        np.testing.assert_array_equal(host(new_state[key]), host(want[key]))
    assert any(not np.array_equal(host(new_state[k]), host(net.state[k])) for k in new_state)


def _unnamed(error):
    return re.sub(r"\((outputs|sizes\[-1\]|the last layer's width) = ", "(width = ", str(error))


@pytest.mark.parametrize(
    "bad, kind",
    [(np.where(Y == 1, 0.5, 0.0), "binary"), (LABELS + 1, "multiclass"), (Y[:-1], "binary")],
    ids=["half-label", "class-out-of-range", "too-few"],
)
def test_labels_are_checked_as_fit_checks_them(backend, bad, kind):
    net = _small(backend) if kind == "binary" else mixed(backend)
    x, y = backend.asarray(X, "float64"), backend.asarray(bad)
    with pytest.raises(an.InputError) as by_fit:
        net.fit(X, bad, epochs=1)
    opt = an.optimizers.SGD()
    for call in (
        lambda: F.value_and_grad(net.model, net.params, x, y, state=net.state),
        lambda: F.train_step(net.model, opt, net.params, {}, x, y, state=net.state),
    ):
        with pytest.raises(an.InputError) as by_functional:
            call()
        # the same check; only the name of the output width differs ("outputs", "sizes[-1]")
        assert _unnamed(by_functional.value) == _unnamed(by_fit.value)


@dataclass(frozen=True)
class LogCosh(Loss):
    """``mean(log(cosh(p - t)))`` over all elements: a user's loss, any head."""

    def value(self, p, t, *, xp):
        d = p - t
        # log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log(2): no overflow
        return xp.mean(xp.abs(d) + xp.log1p(xp.exp(-2 * xp.abs(d))) - math.log(2.0))

    def gradient(self, p, t, *, xp):
        return xp.tanh(p - t) / math.prod(p.shape)


def _reference_loss(params, x, y, loss):
    """The 2-3-1 tanh/sigmoid network and the loss, in plain NumPy float64."""
    a1 = np.tanh(x @ params["W1"].T + params["b1"])
    p = 1 / (1 + np.exp(-(a1 @ params["W2"].T + params["b2"])))
    d = p - y.reshape(-1, 1)
    return float(np.mean(d * d)) if loss == "mse" else float(np.mean(np.log(np.cosh(d))))


@pytest.mark.parametrize(
    "loss",
    ["mse", LogCosh(), "logcosh_of_test_functional"],
    ids=["built-in-by-name", "custom-object", "user-registered-by-name"],
)
def test_value_and_grad_with_another_loss_against_finite_differences(backend, loss, monkeypatch):
    # registered for this test only (as an.register_loss would, undone afterwards)
    monkeypatch.setitem(registry.losses._classes, "logcosh_of_test_functional", LogCosh)
    monkeypatch.setitem(registry.losses._names, LogCosh, "logcosh_of_test_functional")
    net = _small(backend)
    reference = {key: host(value) for key, value in net.params.items()}
    x, y = backend.asarray(X, "float64"), backend.asarray(Y)
    value, grads = F.value_and_grad(net.model, net.params, x, y, loss=loss)
    name = "mse" if loss == "mse" else "logcosh"
    assert float(value) == pytest.approx(_reference_loss(reference, X, Y, name), rel=1e-13)
    h = 1e-6
    for key, p in reference.items():
        numeric = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            up, down = dict(reference), dict(reference)
            up[key], down[key] = p.copy(), p.copy()
            up[key][index] += h
            down[key][index] -= h
            numeric[index] = (_reference_loss(up, X, Y, name)
                              - _reference_loss(down, X, Y, name)) / (2 * h)  # fmt: skip
        np.testing.assert_allclose(host(grads[key]), numeric, rtol=1e-6, atol=1e-9, err_msg=key)
    # the model's own loss is untouched, and a loss that needs another head is refused
    assert float(F.value_and_grad(net.model, net.params, x, y)[0]) == pytest.approx(
        net.loss(X, Y), rel=1e-13
    )
    with pytest.raises(an.InputError, match="needs a 'softmax' output activation"):
        F.value_and_grad(net.model, net.params, x, y, loss="categorical_crossentropy")


def test_another_loss_checks_the_labels_it_takes(backend):
    net = _small(backend)
    x, soft = backend.asarray(X, "float64"), backend.asarray(np.where(Y == 1, 0.9, 0.1))
    F.value_and_grad(net.model, net.params, x, soft, loss="mse")  # soft targets: fine for mse
    with pytest.raises(an.InputError, match="must hold 0/1 labels for binary_crossentropy"):
        F.value_and_grad(net.model, net.params, x, soft)


@pytest.mark.backends("jax", reason="jax.jit: labels are not read inside a trace")
def test_value_and_grad_with_a_loss_under_jax_jit(backend):
    jax = pytest.importorskip("jax")
    net = _small(backend)
    x, y = backend.asarray(X, "float64"), backend.asarray(Y)
    jitted = jax.jit(lambda p: F.value_and_grad(net.model, p, x, y, loss=LogCosh()))
    value, grads = jitted(net.params)
    want_value, want_grads = F.value_and_grad(net.model, net.params, x, y, loss=LogCosh())
    assert float(value) == pytest.approx(float(want_value), rel=1e-14)
    for key in grads:
        np.testing.assert_allclose(host(grads[key]), host(want_grads[key]), rtol=1e-13)
