"""Recorded steps replayed as straight-line code (anynet.engine.replay, eager backends).

The reference is the eager step itself: a fit with the replay off (every step runs
the layers' Python) must give the same bits as a fit with it on, and a step whose
Python depends on values must keep running eagerly.
"""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet.engine import runner as engine_runner
from anynet.engine.replay import Replayer
from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual
from anynet.optimizers import Adam, Momentum

# Networks below IN_PLACE_ELEMENTS, whose steps the engine replays.
NETWORKS = {
    "tutorial": lambda backend: an.Network(
        [2, 4, 1], ["tanh", "sigmoid"], init="normal", seed=0, dtype="float64",
        backend=backend.name, device=backend.device,
    ),
    "stateful": lambda backend: an.Sequential(
        [Dense(16), BatchNorm(), "relu", Residual(LayerNorm(), Dense(16), "tanh"),
         Dropout(0.2), Dense(3)], 2, "categorical_crossentropy", seed=3, dtype="float64",
        backend=backend.name, device=backend.device,
    ),
}  # fmt: skip
FITS = {
    "tutorial": dict(epochs=12, lr=1.2),
    # minibatches with a shorter last batch (its own recording), Adam's state, a schedule
    "stateful": dict(epochs=6, batch_size=32, optimizer=Adam(lr=0.01), shuffle=True),
}


def _fit(backend, name, replay, monkeypatch):
    monkeypatch.setattr(engine_runner, "REPLAY", replay)
    X, y = an.datasets.spirals(n=90, n_classes=3, seed=1) if name == "stateful" else (
        an.datasets.planar_flower()
    )  # fmt: skip
    net = NETWORKS[name](backend)
    history = net.fit(X, y, **FITS[name])
    arrays = {**net.params, **net.state}
    return {k: an.to_numpy(v) for k, v in arrays.items()}, list(history.loss)


@pytest.fixture
def in_place(request, monkeypatch):
    """Whether these small networks run as the engine runs large ones: updates in place
    (the replays then write into the parameters from a chunk's second step)."""
    if request.param:
        monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 8)
    engine_runner.clear_caches()  # runners read the thresholds when they are made
    yield request.param
    engine_runner.clear_caches()


@pytest.mark.backends("numpy", "array_api_strict", "torch", "cupy", reason="eager backends")
@pytest.mark.parametrize("in_place", [False, True], ids=["new-arrays", "in-place"], indirect=True)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_replayed_fit_equals_the_eager_fit_bit_for_bit(backend, name, in_place, monkeypatch):
    eager, eager_losses = _fit(backend, name, False, monkeypatch)
    replayed, replayed_losses = _fit(backend, name, True, monkeypatch)
    assert replayed_losses == eager_losses
    assert sorted(replayed) == sorted(eager)
    for key in eager:
        np.testing.assert_array_equal(replayed[key], eager[key], err_msg=key)


def test_the_replay_skips_the_steps_python_and_follows_new_arguments():
    calls = []

    def step(xp, params, x, lr):
        calls.append(1)
        h = xp.tanh(xp.matmul(x, params["W"].T) + params["b"][None, :])
        return {"W": params["W"] - lr * xp.matmul(h.T, x), "b": params["b"]}, xp.sum(h * h)

    replayer = Replayer(step, np)
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=3)}
    for lr in (0.5, 0.25, 0.125):  # a Python float: an argument, never a constant
        x = rng.normal(size=(5, 2))
        expected = step(np, params, x, lr)
        got = replayer(params, x, lr)
        for a, b in zip((got[0]["W"], got[0]["b"], got[1]), (expected[0]["W"],
                        expected[0]["b"], expected[1]), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        params = got[0]
    # the two recordings called it (the second checks that nothing but the arguments
    # changed); the replay did not; the eager references did
    assert len(calls) == 2 + 3
    replayer(params, rng.normal(size=(7, 2)), 0.1)  # another shape: recorded anew
    assert len(calls) == 6


@pytest.mark.parametrize(
    "body",
    [
        # reads a value: Python control flow on data
        lambda xp, x: x * 2 if float(xp.sum(x)) > 0 else x * 3,
        # writes into an array
        lambda xp, x: _in_place_add(x),
        # a method outside the array API's functions and operators
        lambda xp, x: xp.tanh(x).reshape((-1,)),
    ],
    ids=["reads-value", "in-place", "method"],
)
def test_a_step_the_replay_could_not_repeat_runs_eagerly(body):
    calls = []

    def step(xp, x):
        calls.append(1)
        return body(xp, x)

    replayer = Replayer(step, np)
    rng = np.random.default_rng(1)
    for sign in (1.0, -1.0, 1.0):  # the value-dependent branch takes both ways
        x = sign * np.abs(rng.normal(size=(4, 3)))
        expected = body(np, x.copy())
        np.testing.assert_array_equal(replayer(x), expected)
    # every call ran the step's Python (the first one also for the recording attempt)
    assert len(calls) == 3 + 1


def _in_place_add(x):
    x += 1
    return x


def test_random_draws_inside_a_step_stay_fresh_on_every_call():
    replayer = Replayer(lambda xp, x: x + np.random.default_rng().normal(size=x.shape), np)
    x = np.zeros((3, 2))
    first, second = replayer(x), replayer(x)
    assert not np.array_equal(first, second)


def test_float32_and_float64_steps_have_their_own_recordings():
    replayer = Replayer(lambda xp, x: xp.astype(x, xp.float64) * 0.1 + x, np)
    for dtype in (np.float64, np.float32, np.float64):
        x = np.ones((2, 2), dtype=dtype)
        got = replayer(x)
        expected = x.astype(np.float64) * 0.1 + x
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_an_error_in_the_step_is_raised_as_the_eager_step_raises_it():
    def step(xp, x):
        return xp.matmul(x, x)  # (3, 2) @ (3, 2): a shape error

    with pytest.raises(ValueError, match="matmul|shape|dimension"):
        Replayer(step, np)(np.ones((3, 2)))


@pytest.mark.backends("numpy", "array_api_strict", "torch", "cupy", reason="eager backends")
def test_the_engine_replays_small_networks_and_not_large_ones(backend, monkeypatch):
    """The replay is really used: a layer counting its calls runs once per recording."""
    calls = []

    class Counting(an.layers.Tanh):
        def value(self, z, *, xp):
            calls.append(1)
            return super().value(z, xp=xp)

    X, y = an.datasets.planar_flower()
    net = an.Sequential([Dense(4), Counting(), Dense(1)], 2, "binary_crossentropy",
                        backend=backend.name, device=backend.device)  # fmt: skip
    net.fit(X, y, epochs=20, lr=0.5)
    assert 1 <= len(calls) < 20
    del calls[:]
    # "large": updated layer by layer, eagerly
    monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 4)
    monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 4)
    engine_runner.clear_caches()
    net.fit(X, y, epochs=20, lr=0.5)
    assert len(calls) >= 20
    engine_runner.clear_caches()


def test_a_momentum_fit_with_a_schedule_replays_the_learning_rates(monkeypatch):
    """The learning rate arrives per epoch as data: a baked one would show here."""
    X, y = an.datasets.planar_flower()
    results = []
    for replay in (False, True):
        monkeypatch.setattr(engine_runner, "REPLAY", replay)
        net = an.Network([2, 5, 1], ["relu", "sigmoid"], seed=2, dtype="float64")
        schedule = an.optimizers.Step(step_size=2, gamma=0.5)
        net.fit(X, y, epochs=7, optimizer=Momentum(lr=0.3, momentum=0.9), schedule=schedule)
        results.append(net.params)
    for key in results[0]:
        np.testing.assert_array_equal(results[1][key], results[0][key])


def test_recordings_are_kept_for_a_bounded_number_of_shapes(monkeypatch):
    from anynet.engine import replay as _replay

    monkeypatch.setattr(_replay, "MAX_RECORDINGS", 3)
    replayer = Replayer(lambda xp, x: xp.tanh(x) * 2.0, np)
    for n in range(1, 8):  # batches of ever new sizes, as partial_fit may see
        x = np.linspace(-1, 1, n)
        np.testing.assert_array_equal(replayer(x), np.tanh(x) * 2.0)
        assert len(replayer._replays) <= 3


@pytest.mark.backends("numpy", "array_api_strict", "torch", "cupy", reason="eager backends")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_integer_constants_give_the_eager_numbers(backend, dtype):
    """Recorded as floats of the same value (faster on torch): still the same bits."""
    constants = (1, 3, 400, 2**24 + 1, -(2**40) - 3, 2**53)

    def step(xp, x):
        out = x
        for c in constants:
            out = (c - out * c) / c + (out + c) / (c * 7)
        return out, c / (x + 2) - 1

    x = backend.asarray(np.linspace(-3.0, 3.0, 24).reshape(4, 6), dtype)
    replayer = Replayer(step, backend.xp)
    expected = [an.to_numpy(a) for a in step(backend.xp, x)]
    for _ in range(2):  # the recording, then the replay
        got = [an.to_numpy(a) for a in replayer(x)]
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(replayer._replays) == 1 and callable(next(iter(replayer._replays.values())))


# -- the refusals: each either replays the eager numbers or runs eagerly --------------

_DRAWS = iter(range(10**6))


def _swallowing(xp, x):
    try:
        scale = 2.0 if float(xp.sum(x)) > 0 else 3.0
    except Exception:  # a user's fallback: must not be what the replay bakes
        scale = 5.0
    return x * scale


def _probing(xp, x):
    return x * (2.0 if hasattr(x, "sum") else 3.0)  # an attribute outside the standard


def _own_namespace(xp, x):
    from array_api_compat import array_namespace

    return array_namespace(x).sum(x, axis=0)


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (lambda xp, x: x[x > 0] * (1.0 / x[x > 0].shape[0]), True),  # boolean mask
        (lambda xp, x: x * (1.0 / xp.nonzero(x > 0)[0].shape[0]), True),
        (lambda xp, x: xp.unique_values(x > 0.5), True),
        (lambda xp, x: x[:, 0] * (1.0 / (x[:, 0] > 0)[0:1].shape[0]), False),  # static shape
        (_swallowing, True),
        (_probing, True),
        (lambda xp, x: np.tanh(x), True),  # a NumPy ufunc on a stand-in
        (lambda xp, x: x * np.float64(next(_DRAWS)), True),  # a NumPy scalar that changes
        (lambda xp, x: x * float(next(_DRAWS)), True),  # a Python number that changes
        (lambda xp, x: x * np.float64(2.5) + 1.0, False),  # constants that do not
        (_own_namespace, False),
    ],
    ids=["mask", "nonzero", "unique", "static", "except-Exception", "hasattr", "ufunc",
         "numpy-draw", "python-draw", "constants", "own-namespace"],
)  # fmt: skip
def test_a_step_is_replayed_only_where_it_gives_the_eager_numbers(body, refused):
    import itertools

    global _DRAWS
    rng = np.random.default_rng(3)
    inputs = [rng.normal(size=(6, 3)) for _ in range(5)]
    _DRAWS = itertools.count()
    expected = [np.asarray(body(np, x.copy())) for x in inputs]
    _DRAWS = itertools.count()
    replayer = Replayer(body, an.get_backend("numpy").xp)
    for x, want in zip(inputs, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(replayer(x)), want)
    replays = [v for v in replayer._replays.values() if callable(v)]
    assert bool(replayer.refusals) == refused, replayer.refusals
    assert bool(replays) != refused


def test_recordings_are_keyed_by_the_whole_structure_of_the_arguments():
    """Dict entries of another dtype, or other keys, get their own recording."""

    def step(xp, params, x):  # the dtype is read from the parameters: a recorded constant
        return {key: p * 2.0 + xp.ones(p.shape, dtype=p.dtype) for key, p in params.items()}

    replayer = Replayer(step, np)
    x = np.ones((2, 2))
    for params in (
        {"a": np.ones(3, dtype=np.float32)}, {"a": np.ones(3, dtype=np.float32)},
        {"a": np.ones(3)}, {"a": np.ones(3)}, {"a": np.ones(3), "b": np.zeros(2)},
        {"a": np.ones(3, dtype=np.float32)}, {"a": np.ones(3)},
    ):  # fmt: skip
        got = replayer(params, x)
        want = step(np, params, x)
        assert sorted(got) == sorted(want)
        for key in want:
            assert got[key].dtype == want[key].dtype
            np.testing.assert_array_equal(got[key], want[key])
