"""anynet.functional: the pure core, inside jax.jit / jax.vmap / torch.func.vmap / torch.compile."""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet import functional as F
from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual


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
