"""The engine contract: ``fit`` gives the functional loop's numbers, whatever the user's code.

The reference is the documented functional loop, written here in plain Python:
``anynet.functional.train_step`` over the host-drawn batches (one generator per
``(seed, epoch)``), the batches gathered on the host. Each test plants a user's layer,
optimizer or callback that one of the engine's optimizations (recorded replay, in-place
and layer-by-layer updates, chunks of epochs, cached runners) once got wrong.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet import functional as F
from anynet.engine import runner as engine_runner
from anynet.layers import Dense, Layer
from anynet.optimizers import SGD, Optimizer

EAGER = ("numpy", "array_api_strict", "torch", "cupy")


def functional_loop(net, X, y, *, epochs, optimizer, batch_size=None, shuffle=True, seed=0,
                    after_epoch=None, rate=None):  # fmt: skip
    """The documented loop: ``(params, losses)`` after ``epochs`` epochs from ``net``'s start.

    ``rate(step)``: the learning rate of the run's step ``step`` (default ``optimizer.lr``).
    """
    backend, xp = net.backend, net.backend.xp
    params, state = net.params, net.state
    opt_state = optimizer.init(params, xp=xp)
    n, losses, step = X.shape[0], [], 0
    for epoch in range(epochs):
        if batch_size is None or batch_size >= n:
            batches = [np.arange(n)]
        else:
            order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
            batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        total = 0.0
        for index in batches:
            xb = backend.asarray(X[index], net.dtype)
            yb = backend.asarray(y[index], None if net.is_classifier else net.dtype)
            lr = optimizer.lr if rate is None else rate(step)
            params, opt_state, loss, state = F.train_step(
                net.model, optimizer, params, opt_state, xb, yb, state=state, lr=lr
            )
            step += 1
            total += float(an.to_numpy(loss)) * len(index)
        losses.append(total / n)
        if after_epoch is not None:
            params = after_epoch(params)
    return params, losses


def _on(backend):
    return {"backend": backend.name, "device": backend.device}


def _close(got, want, rtol=1e-11, atol=1e-13):
    for key in want:
        np.testing.assert_allclose(an.to_numpy(got[key]), an.to_numpy(want[key]), rtol=rtol,
                                   atol=atol, err_msg=key)  # fmt: skip


def _data(n=64, features=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = (X[:, 0] * X[:, 1] + 0.3 * X[:, 2] > 0).astype(np.int64)
    return X, y


def _wide(backend, dtype="float64", layers=None, seed=0):
    """A network whose 64x64 weight reaches the in-place threshold (4096 elements)."""
    layers = layers or [Dense(64), "tanh", Dense(64), "tanh", Dense(1), "sigmoid"]
    return an.Sequential(layers, 8, seed=seed, dtype=dtype, backend=backend.name,
                         device=backend.device)  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_runners():
    engine_runner.clear_caches()
    yield
    engine_runner.clear_caches()


# -- 1. an optimizer that overrides update is always used -----------------------------


UPDATES: list[int] = []


@dataclass(frozen=True)
class ProjectedSGD(Optimizer):
    """``max(p - lr * g, 0)``: directions and update in one class."""

    def directions(self, params, grads, state, *, xp=None, decay=None):
        return {key: grads[key] for key in params}, state

    def update(self, params, grads, state, lr, *, xp=None, decay=None):
        UPDATES.append(1)
        directions, state = self.directions(params, grads, state, xp=xp)
        new = {}
        for key, p in params.items():
            q = p - lr * directions[key]
            new[key] = xp.where(q > 0, q, xp.zeros_like(q))
        return new, state


def test_an_overriding_update_is_used_on_a_wide_network(backend):
    X, y = _data()
    del UPDATES[:]
    net = _wide(backend)
    want, _ = functional_loop(net, X, y, epochs=4, optimizer=ProjectedSGD(lr=0.5))
    net.fit(X, y, epochs=4, optimizer=ProjectedSGD(lr=0.5))
    assert UPDATES, "update was never called"
    assert min(float(np.min(an.to_numpy(v))) for v in net.params.values()) >= 0.0
    _close(net.params, want)


# -- 2. in-place writes never go into arrays that optimizer state holds ---------------


@dataclass(frozen=True)
class HeavyBall(Optimizer):
    """Keeps the previous parameters themselves as state: ``prev = p``."""

    beta: float = 0.5

    def init(self, params, *, xp=None):
        return {f"prev.{key}": p * 1.0 for key, p in params.items()}

    def directions(self, params, grads, state, *, xp=None, decay=None):
        directions = {key: grads[key] + self.beta * (state[f"prev.{key}"] - p)
                      for key, p in params.items()}  # fmt: skip
        return directions, {f"prev.{key}": p for key, p in params.items()}


@pytest.mark.parametrize("layerwise", [False, True], ids=["whole", "layer-by-layer"])
def test_in_place_updates_leave_arrays_held_by_optimizer_state_alone(
    backend, layerwise, monkeypatch
):
    if layerwise:
        monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1)
    X, y = _data()
    net = _wide(backend)
    want, want_losses = functional_loop(net, X, y, epochs=6, optimizer=HeavyBall(lr=0.3),
                                        batch_size=16, seed=1)  # fmt: skip
    history = net.fit(X, y, epochs=6, optimizer=HeavyBall(lr=0.3), batch_size=16, seed=1)
    _close(net.params, want)
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-11)


# -- 3. a callback's set_params takes effect from the next epoch ----------------------


def _max_norm(xp_params, backend, limit=0.5):
    xp = backend.xp
    out = {}
    for key, p in xp_params.items():
        norm = xp.sqrt(xp.sum(p * p))
        out[key] = p * xp.minimum(limit / norm, xp.ones_like(norm)) if key.startswith("W") else p
    return out


def test_a_callbacks_set_params_takes_effect_from_the_next_epoch(backend):
    X, y = an.datasets.planar_flower(n=80)
    net = an.Network([2, 6, 1], ["tanh", "sigmoid"], init="xavier", seed=0, dtype="float64",
                     backend=backend.name, device=backend.device)  # fmt: skip
    want, _ = functional_loop(net, X, y, epochs=8, optimizer=SGD(lr=1.0),
                              after_epoch=lambda p: _max_norm(p, backend))  # fmt: skip

    def clip(epoch, logs):
        net.set_params(_max_norm(net.params, backend))

    net.fit(X, y, epochs=8, lr=1.0, callbacks=[clip])
    _close(net.params, want, rtol=1e-10, atol=1e-12)


# -- 4, 5, 8, 10: layers the recording must refuse, or see as the eager step does -------


@dataclass(frozen=True)
class MaskedMean(Layer):
    """Scales by the number of positive entries: a value-dependent shape."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        count = x[x > 0].shape[0]
        scale = 1.0 / max(count, 1)
        return x * scale, scale

    def backward(self, params, cache, dy, *, xp):
        return dy * cache, {}


@dataclass(frozen=True)
class TryFloat(Layer):
    """Reads a value inside ``try``/``except Exception``: the fallback must not be baked."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        try:
            scale = 1.0 if float(xp.sum(x)) > 0 else 0.5
        except Exception:
            scale = 3.0
        return x * scale, scale

    def backward(self, params, cache, dy, *, xp):
        return dy * cache, {}


@dataclass(frozen=True)
class OwnNamespace(Layer):
    """Asks its input for its namespace (``array_namespace(dy)``), as thinc-style code does."""

    def init(self, rng, n_in):
        return {"s": np.ones(n_in)}, n_in

    param_names = ("s",)

    def forward(self, params, x, *, xp, train):
        return x * params["s"], x

    def backward(self, params, cache, dy, *, xp):
        from array_api_compat import array_namespace

        own = array_namespace(dy)
        return dy * params["s"], {"s": own.sum(dy * cache, axis=0)}


COUNTER = itertools.count()


@dataclass(frozen=True)
class Counted(Layer):
    """Multiplies by a NumPy scalar that changes on every call (not an argument)."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        factor = np.float64(1.0 + 1e-3 * (next(COUNTER) % 7)) if train else 1.0
        return x * float(factor), factor

    def backward(self, params, cache, dy, *, xp):
        return dy * float(cache), {}


@pytest.mark.backends(*EAGER, reason="eager backends record steps; JAX follows jax.jit's rules")
@pytest.mark.parametrize("layer", [MaskedMean, TryFloat, OwnNamespace, Counted],
                         ids=["masked", "try-float", "own-namespace", "numpy-scalar"])  # fmt: skip
@pytest.mark.parametrize("wide", [False, True], ids=["replayed", "in-place"])
def test_a_layer_the_recording_cannot_bake_gives_the_functional_loops_numbers(backend, layer, wide):
    """Small networks replay whole steps; wide ones (a 64x64 weight) write updates in
    place, their replays and the eager steps that stand in for them alike."""
    X, y = _data(n=48)
    y = np.where(y > 0, 1, 0)
    middle = [Dense(64), "tanh"] if wide else []

    def network():
        return an.Sequential([Dense(6 if not wide else 64), layer(), "tanh", *middle, Dense(1),
                              "sigmoid"], 8, seed=2, dtype="float64", **_on(backend))  # fmt: skip

    globals()["COUNTER"] = itertools.count()
    want, want_losses = functional_loop(network(), X, y, epochs=8, optimizer=SGD(lr=0.7),
                                        batch_size=12, seed=4)  # fmt: skip
    globals()["COUNTER"] = itertools.count()
    net = network()
    history = net.fit(X, y, epochs=8, lr=0.7, batch_size=12, seed=4)
    _close(net.params, want, rtol=0, atol=0)  # the same operations in the same order
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-14)


# -- 6. optimizers see their real learning rate -----------------------------------------


@dataclass(frozen=True)
class FixedStep(Optimizer):
    """Reads ``self.lr`` inside ``directions``: the update is ``p - 0.1 * g`` at any lr."""

    def directions(self, params, grads, state, *, xp=None, decay=None):
        return {key: grads[key] * (0.1 / self.lr) for key in params}, state


def test_an_optimizer_sees_its_real_learning_rate(backend):
    X, y = an.datasets.planar_flower(n=60)
    for lr in (0.5, 0.25):
        net = an.Network([2, 5, 1], seed=1, dtype="float64", backend=backend.name,
                         device=backend.device)  # fmt: skip
        want, _ = functional_loop(net, X, y, epochs=5, optimizer=FixedStep(lr=lr))
        net.fit(X, y, epochs=5, optimizer=FixedStep(lr=lr))
        _close(net.params, want, rtol=1e-10, atol=1e-12)


# -- 7. a step that changes a parameter's dtype is refused ------------------------------


@dataclass(frozen=True)
class Widening(Layer):
    """Its gradient comes back as float64 in a float32 network."""

    param_names = ("s",)

    def init(self, rng, n_in):
        return {"s": np.ones(n_in)}, n_in

    def forward(self, params, x, *, xp, train):
        return x * params["s"], x

    def backward(self, params, cache, dy, *, xp):
        grad = xp.astype(xp.sum(dy * cache, axis=0), xp.float64)
        return dy * params["s"], {"s": grad}


def test_a_step_that_changes_a_parameters_dtype_raises_naming_the_layer(backend):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Sequential([Dense(4), Widening(), "tanh", Dense(1), "sigmoid"], 2, seed=0,
                        dtype="float32", backend=backend.name, device=backend.device)  # fmt: skip
    with pytest.raises(an.InputError, match=r"'s2' of layer 1 \(Widening\).*float32.*float64"):
        net.fit(X, y, epochs=3, lr=0.1)
    assert all(str(v.dtype).endswith("float32") for v in net.params.values())


# -- 9. equal models in different dtypes do not share a runner ---------------------------


def test_equal_models_in_other_dtypes_train_in_their_own(backend):
    X, y = an.datasets.planar_flower(n=50)
    nets = {dtype: an.Network([2, 4, 1], seed=0, dtype=dtype, **_on(backend))
            for dtype in ("float32", "float64")}  # fmt: skip
    assert nets["float32"].model == nets["float64"].model
    want, _ = functional_loop(nets["float64"], X, y, epochs=6, optimizer=SGD(lr=0.8))
    nets["float32"].fit(X, y, epochs=6, lr=0.8)
    nets["float64"].fit(X, y, epochs=6, lr=0.8)
    assert all(str(v.dtype).endswith("float64") for v in nets["float64"].params.values())
    _close(nets["float64"].params, want, rtol=1e-11)


# -- 11. an interrupted fit keeps its last completed epoch --------------------------------


TRIP: list = [10**9, RuntimeError]  # calls left before the n-th raises, and what


class Interrupt(BaseException):
    """A BaseException that is not KeyboardInterrupt (which pytest takes as the user's)."""


@dataclass(frozen=True)
class Tripwire(Layer):
    """Raises ``TRIP[1]`` on its ``TRIP[0]``-th training forward call."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        if train:
            TRIP[0] -= 1
            if TRIP[0] == 0:
                raise TRIP[1]("stop")
        return x, None

    def backward(self, params, cache, dy, *, xp):
        return dy, {}


@pytest.mark.backends(*EAGER, reason="a compiled chunk runs its layers' Python once")
@pytest.mark.parametrize("in_place", [False, True], ids=["new-arrays", "in-place"])
@pytest.mark.parametrize("error", [Interrupt, RuntimeError])
def test_an_exception_inside_a_chunk_keeps_the_last_completed_epoch(
    backend, in_place, error, monkeypatch
):
    # every step runs the layer's Python (a replay would skip the tripwire), so the
    # count says where the chunk stops
    monkeypatch.setattr(engine_runner, "REPLAY", False)
    if in_place:
        monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 4)
    X, y = _data(n=40)

    def network():
        return an.Sequential([Dense(8), Tripwire(), "tanh", Dense(1), "sigmoid"], 8, seed=5,
                             dtype="float64", **_on(backend))  # fmt: skip

    TRIP[:] = [10**9, error]
    want, want_losses = functional_loop(network(), X, y, epochs=7, optimizer=SGD(lr=0.5),
                                        batch_size=10, seed=2)  # fmt: skip
    net = network()
    TRIP[:] = [7 * 4 + 2, error]  # 4 batches an epoch: inside epoch 7 of a 50-epoch chunk
    with pytest.raises(error):
        net.fit(X, y, epochs=50, lr=0.5, batch_size=10, seed=2)
    assert net.history is not None and len(net.history.loss) == 7
    np.testing.assert_allclose(net.history.loss, want_losses, rtol=1e-14)
    assert len(net.history.lr) == 7
    _close(net.params, want, rtol=0, atol=0)


def test_an_exception_between_chunks_keeps_the_completed_chunks(backend):
    """On every backend (JAX compiles whole chunks): a schedule that raises at epoch 1500
    leaves the 1000 epochs of the first chunk, parameters and history."""
    X, y = an.datasets.planar_flower(n=40)

    def schedule(lr, epoch):
        if epoch == 1500:
            raise KeyboardInterrupt
        return lr

    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    reference = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend.name,
                           device=backend.device)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=2000, lr=0.5, schedule=schedule)
    reference.fit(X, y, epochs=1000, lr=0.5)
    assert len(net.history.loss) == 1000
    _close(net.params, reference.params, rtol=0, atol=0)


# -- and: DivergenceError's history is whole; threads; the plain-loop switch ------------


def test_a_divergence_error_carries_the_whole_history(backend):
    X = np.linspace(-1, 1, 40)[:, None] * np.array([[1.0, 2.0]])
    y = 1e3 * X[:, 0]
    net = an.Network([2, 8, 1], ["identity", "identity"], "mse", init="he", seed=0,
                     dtype="float64", **_on(backend))  # fmt: skip
    with pytest.raises(an.DivergenceError) as caught:
        net.fit(X, y, epochs=3000, optimizer="momentum", lr=50.0, validation_data=(X, y))
    history = caught.value.history
    assert len(history.loss) >= 1
    assert len(history.lr) == len(history.loss) == len(history.val_loss)
    assert "start of its start" not in str(caught.value)


@pytest.mark.backends("numpy", "torch", reason="threads on eager backends sharing a runner")
def test_threads_fitting_one_model_on_many_batch_sizes(backend):
    X, y = an.datasets.planar_flower(n=120)
    errors = []

    def work(sizes):
        try:
            for size in sizes:
                net = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend.name)
                net.fit(X, y, epochs=2, lr=0.5, batch_size=size, shuffle=False)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(range(3 + i, 80, 3),)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@pytest.mark.parametrize("fit", [dict(epochs=5, lr=1.2),
                                 dict(epochs=4, optimizer="adam", lr=0.05, batch_size=16)],
                         ids=["full-batch", "adam-minibatch"])  # fmt: skip
def test_the_eager_engine_is_the_functional_loop_bit_for_bit(backend, fit):
    X, y = an.datasets.planar_flower(n=64)
    net = an.Network([2, 5, 1], init="xavier", seed=3, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    optimizer = an.optimizers.get_optimizer(fit.get("optimizer", "sgd"), fit["lr"])
    want, want_losses = functional_loop(net, X, y, epochs=fit["epochs"], optimizer=optimizer,
                                        batch_size=fit.get("batch_size"), seed=7)  # fmt: skip
    history = net.fit(X, y, seed=7, engine="eager", **fit)
    _close(net.params, want, rtol=0, atol=0)
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-14)


# -- a per-step schedule and gradient clipping, on every path of the engine -----------


@pytest.mark.parametrize(
    "optimizer",
    [SGD(lr=0.4, momentum=0.9, clip_norm=0.3), an.optimizers.Adam(lr=0.02, clip_value=0.05)],
    ids=["momentum-clip-norm", "adam-clip-value"],
)
@pytest.mark.parametrize("path", ["replayed", "in-place", "layer-by-layer"])
def test_a_per_step_schedule_and_clipping_give_the_functional_loops_numbers(
    backend, optimizer, path, monkeypatch
):
    if path == "layer-by-layer":  # clip_norm needs every gradient: the engine goes whole
        monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1)
    X, y = _data()
    schedule = an.optimizers.Warmup(5, then=an.optimizers.Cosine(total=12, per="step"))

    def make():
        if path == "replayed":
            return an.Network([8, 5, 1], seed=0, dtype="float64", **_on(backend))
        return _wide(backend)

    net = make()
    want, want_losses = functional_loop(
        net, X, y, epochs=4, optimizer=optimizer, batch_size=24, seed=2,
        rate=lambda step: schedule(optimizer.lr, step),
    )  # fmt: skip
    for engine in ("auto", "eager"):
        net = make()
        history = net.fit(X, y, epochs=4, optimizer=optimizer, schedule=schedule, batch_size=24,
                          seed=2, engine=engine)  # fmt: skip
        exact = engine == "eager"
        _close(net.params, want, rtol=0 if exact else 1e-11, atol=0 if exact else 1e-13)
        np.testing.assert_allclose(history.loss, want_losses, rtol=1e-14 if exact else 1e-11)


def test_the_engine_switch_is_checked():
    net = an.Network([2, 3, 1], seed=0)
    X, y = an.datasets.planar_flower(n=20)
    with pytest.raises(an.InputError, match="engine must be one of"):
        net.fit(X, y, epochs=1, engine="fast")


@dataclass(frozen=True)
class Growing(Optimizer):
    """Keeps a history that grows every step: state whose shape changes."""

    def init(self, params, *, xp=None):
        return {"seen": xp.zeros((1,), dtype=next(iter(params.values())).dtype)}

    def directions(self, params, grads, state, *, xp=None, decay=None):
        seen = xp.concat([state["seen"], xp.ones((1,), dtype=state["seen"].dtype)])
        return {key: grads[key] for key in params}, {"seen": seen}


def test_optimizer_state_that_changes_shape_is_refused(backend):
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, dtype="float64", **_on(backend))
    with pytest.raises(an.InputError, match=r"Growing's state 'seen' changed"):
        net.fit(X, y, epochs=3, optimizer=Growing(lr=0.1))


# -- sample weights: shuffled with the rows, the same numbers on every path -----------


def weighted_loop(net, X, y, w, *, epochs, optimizer, batch_size, seed):
    """The documented loop with weights: each batch's weights gathered with its rows."""
    backend, xp = net.backend, net.backend.xp
    params, opt_state = net.params, optimizer.init(net.params, xp=xp)
    n, losses = X.shape[0], []
    for epoch in range(epochs):
        if batch_size is None:  # the data itself: BLAS may round a gathered copy, at
            batches = [slice(None)]  # another alignment, differently
        else:
            order = np.random.default_rng([seed, epoch]).permutation(n)
            batches = [order[start : start + batch_size] for start in range(0, n, batch_size)]
        total = 0.0
        for index in batches:
            params, opt_state, loss = F.train_step(
                net.model, optimizer, params, opt_state, backend.asarray(X[index], net.dtype),
                backend.asarray(y[index]), lr=optimizer.lr,
                sample_weight=backend.asarray(w[index], net.dtype),
            )  # fmt: skip
            total += float(an.to_numpy(loss)) * len(w[index])
        losses.append(total / n)
    return params, losses


@pytest.mark.parametrize("batch_size", [None, 16], ids=["full-batch", "minibatch"])
@pytest.mark.parametrize("wide", [False, True, "layerwise"],
                         ids=["small", "in-place", "layer-by-layer"])  # fmt: skip
@pytest.mark.parametrize("engine", ["eager", "auto"])
def test_sample_weights_are_shuffled_with_the_rows_on_every_path(
    backend, engine, wide, batch_size, monkeypatch
):
    if wide == "layerwise":
        monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1)
    X, y = _data(n=60)
    w = np.random.default_rng(5).uniform(0.0, 3.0, size=60)
    if wide:
        net = _wide(backend)
    else:
        net = an.Network([8, 5, 1], init="xavier", seed=2, dtype="float64", **_on(backend))
    optimizer = an.optimizers.get_optimizer("adam", 0.01)
    want, want_losses = weighted_loop(net, X, y, w, epochs=4, optimizer=optimizer,
                                      batch_size=batch_size, seed=9)  # fmt: skip
    history = net.fit(X, y, sample_weight=w, epochs=4, optimizer="adam", lr=0.01,
                      batch_size=batch_size,
                      seed=9, engine=engine, validation_data=(X[:20], y[:20], w[:20]))  # fmt: skip
    exact = engine == "eager" and not wide
    _close(net.params, want, rtol=0 if exact else 1e-11, atol=0 if exact else 1e-13)
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-12)
    assert history.val_loss[-1] == pytest.approx(
        net.loss(X[:20], y[:20], sample_weight=w[:20]), rel=1e-12
    )


# -- 8. what fit keeps between calls: a replayed first step, kept checks and orders --------


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_short_fits_in_a_loop_are_the_functional_loop_and_never_write_the_callers_arrays(
    backend, optimizer
):
    """``fit(epochs=1)`` in a loop, as research code trains: from the third call the
    chunk's first step is replayed, the shuffle orders and learning rates come from the
    engine's caches. Seeds and rates change between calls, so a cache keyed too loosely
    would visit another order or step with another rate."""
    X, y = _data(n=72)
    net = _wide(backend)
    calls = [(3, 0.1), (4, 0.1), (3, 0.05), (3, 0.05), (4, 0.2), (3, 0.1)]
    for seed, lr in calls:
        given = net.params
        before = {key: an.to_numpy(value).copy() for key, value in given.items()}
        opt = an.optimizers.get_optimizer(optimizer, lr / 10 if optimizer == "adam" else lr)
        want, want_losses = functional_loop(net, X, y, epochs=1, optimizer=opt, batch_size=16,
                                            seed=seed)  # fmt: skip
        history = net.fit(X, y, epochs=1, optimizer=opt, batch_size=16, seed=seed)
        _close(net.params, want)
        np.testing.assert_allclose(history.loss, want_losses, rtol=1e-12)
        for key, value in given.items():  # the arrays the caller held before the call
            np.testing.assert_array_equal(an.to_numpy(value), before[key], err_msg=key)


def test_an_input_written_between_calls_is_checked_again(backend):
    """Checks are kept only for arrays that can never change (JAX's): host arrays, and
    the backend's own where they can be written, are checked on every call."""
    X, y = _data(n=32)
    net = an.Network([8, 4, 1], seed=0, dtype="float64", **_on(backend))
    net.fit(X, y, epochs=2)
    X[3, 1] = np.nan
    with pytest.raises(an.InputError, match="X must be finite"):
        net.fit(X, y, epochs=2)
    with pytest.raises(an.InputError, match="X must be finite"):
        net.predict(X)
    X[3, 1] = 0.5
    y[0] = 2  # not a 0/1 label
    with pytest.raises(an.InputError, match="y"):
        net.fit(X, y, epochs=2)
    if backend.arrays_immutable:
        return  # nothing can write into its arrays
    xp = backend.xp
    Xd, yd = backend.asarray(X), backend.asarray((y > 0).astype(np.int64))
    net.fit(Xd, yd, epochs=2)
    net.predict(Xd)
    Xd[3, 1] = xp.nan
    with pytest.raises(an.InputError, match="X must be finite"):
        net.fit(Xd, yd, epochs=2)
    with pytest.raises(an.InputError, match="X must be finite"):
        net.predict(Xd)


def test_bad_arrays_of_the_backend_raise_on_every_call(backend):
    """A failed check is never kept: the same bad array raises the same error again."""
    X, y = _data(n=32)
    net = an.Network([8, 4, 1], seed=0, dtype="float64", **_on(backend))
    bad_X = X.copy()
    bad_X[5, 2] = np.inf
    bad_X, bad_y = backend.asarray(bad_X), backend.asarray(np.where(y > 0, 3, 0))
    good_X, good_y = backend.asarray(X), backend.asarray(y)
    for _ in range(3):
        with pytest.raises(an.InputError, match=r"X must be finite.*\(5, 2\)"):
            net.fit(bad_X, good_y, epochs=1)
        with pytest.raises(an.InputError, match="y"):
            net.fit(good_X, bad_y, epochs=1)
        with pytest.raises(an.InputError, match="sample_weight"):
            net.fit(good_X, good_y, epochs=1, sample_weight=backend.asarray(-np.ones(32)))
    net.fit(good_X, good_y, epochs=1)  # and the good ones still pass


def test_kept_checks_keep_no_array_alive(backend):
    """What ``fit`` and ``predict`` keep of their inputs lives only as long as the inputs:
    after the caller drops them, nothing of theirs stays in memory."""
    import gc
    import weakref

    from anynet import _checked

    X, y = _data(n=32)
    net = an.Network([8, 4, 1], seed=0, dtype="float64", **_on(backend))
    kept = len(_checked._entries)
    Xd, yd = backend.asarray(X, copy=True), backend.asarray(y, copy=True)
    refs = [weakref.ref(Xd), weakref.ref(yd)]
    for _ in range(3):
        net.fit(Xd, yd, epochs=1)
        net.predict(Xd)
    assert len(_checked._entries) == kept + (2 if backend.arrays_immutable else 0)
    del Xd, yd
    gc.collect()
    assert [ref() is None for ref in refs] == [True, True]
    assert len(_checked._entries) == kept


@dataclass(frozen=True)
class ReadsValue(Layer):
    """Decides in Python on a value: cannot be traced (fit on JAX refuses it; predict runs
    it op by op)."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        return x * (1.0 if float(xp.max(x)) > 0 else 2.0), None

    def backward(self, params, cache, dy, *, xp):
        return dy, {}


def _eager_outputs(net, X):
    xp = net.backend.xp
    x = net.backend.asarray(X, net.dtype)
    z, _, _ = net.model.forward(net.params, net.state, x, xp=xp, train=False)
    return an.to_numpy(net.model.head.output(z, xp=xp))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inference_of_any_number_of_rows_is_the_op_by_op_forward(backend, dtype):
    """On JAX each inference batch is one compiled call, padded to a power of two: the
    padding's rows are dropped and the real rows get the op-by-op forward's numbers."""
    from anynet.engine import parallel

    net = an.Network([8, 32, 16, 3], ["relu", "tanh", "softmax"], seed=0, dtype=dtype,
                     **_on(backend))  # fmt: skip
    X = np.random.default_rng(1).normal(size=(300, 8))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=2e-6, atol=1e-7)
    for n in (1, 2, 7, 8, 9, 33, 300):
        got = an.to_numpy(net.forward(X[:n]))
        np.testing.assert_allclose(got, _eager_outputs(net, X[:n]), **tol, err_msg=str(n))
        labels = an.to_numpy(net.predict(X[:n]))
        np.testing.assert_array_equal(labels, np.argmax(got, axis=1))
    np.testing.assert_allclose(an.to_numpy(net.forward(X, batch_size=64)),
                               _eager_outputs(net, X), **tol)  # fmt: skip
    if backend.compiles:  # 1..300 rows in 7 sizes: heights 8, 16, 64, 512 (and 64 for batches)
        run = parallel._INFERENCE.get((backend, net.model, "one device", True), lambda: None)
        assert run._cache_size() <= 5


def test_a_forward_that_cannot_be_traced_runs_op_by_op(backend):
    X, _ = _data(n=20)
    net = an.Sequential([Dense(5), ReadsValue(), "tanh", Dense(1), "sigmoid"], 8, seed=0,
                        dtype="float64", **_on(backend))  # fmt: skip
    for _ in range(2):  # the second call goes op by op at once
        np.testing.assert_array_equal(an.to_numpy(net.forward(X)), _eager_outputs(net, X))


@pytest.mark.backends("numpy", reason="NumPy's reference counts tell when nobody holds an array")
def test_spare_arrays_are_reused_only_when_nobody_holds_them(backend):
    """A fit's first update of a large parameter writes into the previous fit's starting
    array when nothing refers to it any more; an array the caller keeps, a view of it, a
    memoryview or an array sharing it through DLPack is never written."""
    from anynet.backend.numpy import SPARES

    X, y = _data(n=40)
    net = an.Network([8, 600, 600, 1], seed=0, dtype="float64")  # W2: 360000 elements
    keep = {
        1: lambda w: (w, w.copy()),
        3: lambda w: (w[:2], w[:2].copy()),
        5: lambda w: (memoryview(w), w.copy()),
        7: lambda w: (np.from_dlpack(w), w.copy()),
        9: lambda w: (w.T, w.T.copy()),
    }
    held, reused = [], SPARES.reused
    for call in range(11):
        if call in keep:
            held.append(keep[call](net.params["W2"]))
        want, want_losses = functional_loop(net, X, y, epochs=1, optimizer=SGD(lr=0.05))
        history = net.fit(X, y, epochs=1, lr=0.05)
        _close(net.params, want)
        np.testing.assert_allclose(history.loss, want_losses, rtol=1e-13)
    for kept, values in held:
        np.testing.assert_array_equal(np.asarray(kept), values)
    assert SPARES.reused >= reused + 5  # each call after one that kept nothing
