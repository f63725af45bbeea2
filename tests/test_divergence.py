"""trace_divergence: where backends part, shown on planted differences and on chaos.

Each planted difference is a user's extension (a layer, a loss, an optimizer) that
computes other numbers on every backend but NumPy (the reference), and only at one
step that the test works out by itself from the batch arithmetic or the step count:
the report must name that backend, epoch, step, phase and layer. Built-in models give
no false alarm; the tutorial's flower network at lr 1.2 parts by amplification, no later
than its loss curves do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet.layers import Dense, Layer
from anynet.losses import BinaryCrossentropy, MeanSquaredError
from anynet.optimizers import Adam
from anynet.testing import TRAINING_RTOL, trace_divergence

BUMP = 1e-6
N, BATCH = 50, 16  # batches of 16, 16, 16 and a short one of 2: the short one is step 3
SHORT_STEP = N // BATCH
NUMPY_NAME = an.get_backend("numpy").xp.__name__


def off_numpy(xp) -> bool:
    """True on every backend but the reference (by name, as a user's code would test)."""
    return xp.__name__ != NUMPY_NAME


@dataclass(frozen=True)
class ShortBatchShift(Layer):
    """Identity, plus BUMP on the short last batch of an epoch, off NumPy only."""

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        if off_numpy(xp) and x.shape[0] == N % BATCH:
            return x + BUMP, None
        return x, None

    def backward(self, params, cache, dy, *, xp):
        return dy, {}


@dataclass(frozen=True)
class ShortBatchFusedBCE(BinaryCrossentropy):
    """Binary cross-entropy whose fused (sigmoid) gradient is off on the short batch."""

    def fused(self, activation, z, t, *, xp):
        value, dz = super().fused(activation, z, t, xp=xp)
        if off_numpy(xp) and z.shape[0] == N % BATCH:
            dz = dz * (1 + BUMP)
        return value, dz


@dataclass(frozen=True)
class ShortBatchMSE(MeanSquaredError):
    """Mean squared error whose gradient (no fused form) is off on the short batch."""

    def gradient(self, a, t, *, xp):
        grad = super().gradient(a, t, xp=xp)
        if off_numpy(xp) and a.shape[0] == N % BATCH:
            grad = grad * (1 + BUMP)
        return grad


PLANTED_UPDATE = 6  # the 7th update (state step 6 before it): epoch 1, step 2


@dataclass(frozen=True)
class AdamOffAtStep(Adam):
    """Adam whose update is off at one step count, off NumPy only (traceably)."""

    def update(self, params, grads, state, lr, *, xp, decay=frozenset()):
        new, new_state = super().update(params, grads, state, lr, xp=xp, decay=decay)
        if off_numpy(xp):
            hit = state["step"] == PLANTED_UPDATE
            new = {key: value + xp.astype(hit, value.dtype) * BUMP for key, value in new.items()}
        return new, new_state


def problem(kind: str = "binary", n: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    if kind == "binary":
        return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    if kind == "multiclass":
        return X, np.argmax(X, axis=1)
    return X, np.tanh(X[:, :2])


def traced(backend, net, X, y, **options):
    if backend.name == "numpy":
        pytest.skip("traces a backend against NumPy: needs a backend other than NumPy")
    return trace_divergence(net, X, y, backends=[backend], reference="numpy", **options)


def check_found(report, backend, *, epoch, step, phase, layer, quantity_prefix):
    label = report.backends[0]
    assert not report.agree
    first = report.first
    assert first is report.divergences[label]
    assert first.backend == label and label.startswith(backend.name)
    assert (first.epoch, first.step, first.phase, first.layer) == (epoch, step, phase, layer)
    assert first.quantity.startswith(quantity_prefix), first.quantity
    assert first.kind == "operation"
    assert first.rel_error > first.tolerance
    assert first.isolated_error > first.tolerance  # the operation's own difference
    text = str(report)
    assert f"epoch {epoch}, step {step}" in text and label in text
    json.dumps(report.to_dict())  # JSON-safe


@pytest.mark.dtypes("float64")
def test_a_layer_that_differs_in_its_forward_is_named(backend, dtype):
    X, y = problem()
    net = an.Sequential(
        [Dense(6), "tanh", ShortBatchShift(), Dense(1), "sigmoid"], inputs=3, seed=1,
        dtype=dtype, backend="numpy",
    )  # fmt: skip
    report = traced(backend, net, X, y, epochs=3, lr=0.5, batch_size=BATCH, seed=3)
    check_found(report, backend, epoch=0, step=SHORT_STEP, phase="forward", layer=2,
                quantity_prefix="output")  # fmt: skip
    assert report.first.layer_name == net.model.layers[2].describe()
    assert abs(abs(report.first.value - report.first.reference_value) - BUMP) < 1e-12


@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_a_loss_whose_gradient_differs_is_named(backend, dtype, fused):
    kind = "binary" if fused else "regression"
    X, y = problem(kind)
    loss = ShortBatchFusedBCE() if fused else ShortBatchMSE()
    head = "sigmoid" if fused else "identity"
    net = an.Sequential([Dense(5), "relu", Dense(y.shape[1] if y.ndim > 1 else 1), head],
                        inputs=3, loss=loss, seed=2, dtype=dtype, backend="numpy")  # fmt: skip
    report = traced(backend, net, X, y, epochs=2, lr=0.3, batch_size=BATCH, seed=5)
    check_found(report, backend, epoch=0, step=SHORT_STEP, phase="loss", layer=None,
                quantity_prefix="delta")  # fmt: skip


@pytest.mark.dtypes("float64")
def test_an_optimizer_whose_update_differs_is_named(backend, dtype):
    X, y = problem("multiclass", n=48)  # 3 batches of 16 per epoch
    net = an.Sequential([Dense(4), "tanh", Dense(3), "softmax"], inputs=3, seed=4, dtype=dtype,
                        backend="numpy")  # fmt: skip
    steps_per_epoch = 48 // BATCH
    report = traced(backend, net, X, y, epochs=4, optimizer=AdamOffAtStep(lr=0.01),
                    batch_size=BATCH, seed=6)  # fmt: skip
    epoch, step = divmod(PLANTED_UPDATE, steps_per_epoch)
    check_found(report, backend, epoch=epoch, step=step, phase="update", layer=None,
                quantity_prefix="W1")  # fmt: skip


SCHEDULES = {
    "per-epoch": lambda: an.optimizers.Cosine(total=6),
    "per-step": lambda: an.optimizers.Warmup(5, then=an.optimizers.Cosine(total=19, per="step")),
}


@pytest.mark.parametrize("per", list(SCHEDULES))
def test_builtin_models_with_adam_and_minibatches_agree(backend, dtype, per):
    X, y = problem("multiclass", n=60)
    net = an.Sequential(
        [Dense(8), "relu", Dense(8), "tanh", Dense(3), "softmax"], inputs=3, seed=7,
        dtype=dtype, backend="numpy",
    )  # fmt: skip
    schedule = SCHEDULES[per]()
    report = traced(backend, net, X, y, epochs=6, optimizer="adam", lr=0.01, batch_size=16,
                    schedule=schedule, seed=8)  # fmt: skip
    assert report.agree, str(report)
    curve = report.curve[report.backends[0]]
    assert curve.shape == (6,) and np.all(curve <= TRAINING_RTOL[dtype])
    # the lockstep run is fit's documented loop: the reference's loss is fit's, bit for bit
    history = net.fit(X, y, epochs=6, optimizer="adam", lr=0.01, batch_size=16,
                      schedule=schedule, seed=8, engine="eager")  # fmt: skip
    np.testing.assert_array_equal(report.loss["numpy"], np.asarray(history.loss))


@pytest.mark.slow
@pytest.mark.dtypes("float64")
@pytest.mark.skip_backends(
    "jax",
    reason="9000 eager JAX epochs take minutes here; docs/divergence.md traces the flower "
    "network on JAX (8000 epochs) in the docs session",
)
def test_the_flower_network_parts_by_amplification(backend, dtype):
    if backend is not an.get_backend(backend.name):
        pytest.skip("the default device covers it: a stand-in device adds no other arithmetic")
    X, y = an.datasets.planar_flower()
    net = an.Network([2, 4, 1], ["tanh", "sigmoid"], "binary_crossentropy", init="normal",
                     init_scale=0.01, seed=0, dtype=dtype, backend="numpy")  # fmt: skip
    report = traced(backend, net, X, y, epochs=9000, lr=1.2)
    label = report.backends[0]
    losses, reference = report.loss[label], report.loss["numpy"]
    parted = np.abs(losses - reference) > TRAINING_RTOL[dtype] * np.abs(reference)
    first = report.first
    if first is None:  # bit-identical arithmetic all the way: nothing to explain
        assert not parted.any()
        return
    assert first.kind == "amplification", str(report)
    assert first.operation_error <= 1e-12  # the step's own operations agree to rounding
    assert parted.any() and first.epoch <= int(np.argmax(parted))
    assert report.curve[label][first.epoch] > TRAINING_RTOL[dtype]
    assert "amplification" in str(report)


def test_arguments_are_checked():
    X, y = problem()
    net = an.Network([3, 2, 1], seed=0, dtype="float64", backend="numpy")
    with pytest.raises(an.InputError, match="net must be an anynet.Network"):
        trace_divergence("net", X, y)
    with pytest.raises(an.InputError, match="dtype must be"):
        trace_divergence(net, X, y, dtype="float16")
    with pytest.raises(an.InputError, match="rtol"):
        trace_divergence(net, X, y, rtol=-1.0)
    with pytest.raises(an.InputError, match="epochs"):
        trace_divergence(net, X, y, epochs=0, backends=["numpy"])


# ============================================ validation of the training people run


@dataclass(frozen=True)
class TracedScale(Layer):
    """y = x * s, a learned scale per feature (the docs' user layer)."""

    param_names = ("s",)

    def init(self, rng, n_in):
        return {"s": np.ones(n_in) + 0.1 * rng.normal(size=n_in)}, n_in

    def forward(self, params, x, *, xp, train):
        return x * params["s"], x

    def backward(self, params, cache, dy, *, xp):
        return dy * params["s"], {"s": xp.sum(dy * cache, axis=0)}


an.register_layer("TracedScale", TracedScale, replace=True)


def user_network(dtype="float64"):
    return an.Sequential(
        [Dense(6), "tanh", "TracedScale", Dense(3), "softmax"], inputs=3, seed=9, dtype=dtype,
        backend="numpy",
    )  # fmt: skip


def test_compare_backends_runs_any_training(backend, dtype):
    X, y = problem("multiclass", n=40)
    net = user_network(dtype)
    training = {"epochs": 4, "optimizer": "adam", "lr": 0.01, "batch_size": 8,
                "schedule": an.optimizers.Cosine(total=4), "seed": 2}  # fmt: skip
    comparison = an.testing.assert_backends_agree(net, X, y, backends=[backend], **training)
    label = comparison.backends[0]
    # the comparison trained what fit trains with these arguments: its reference history
    # is the reference backend's fit, and every backend's parameters moved off the start
    history = net.fit(X, y, **training)
    np.testing.assert_array_equal(comparison.outputs["numpy"]["fit loss"], history.loss)
    got = comparison.outputs[label]
    assert not np.array_equal(got["fit s2"], an.to_numpy(user_network(dtype).params["s2"]))


@pytest.mark.dtypes("float64")
def test_compare_backends_catches_a_planted_update(backend, dtype):
    if backend.name == "numpy":
        pytest.skip("plants a difference off NumPy: needs a backend other than NumPy")
    X, y = problem("multiclass", n=48)
    net = user_network(dtype)
    comparison = an.testing.compare_backends(
        net, X, y, backends=[backend], epochs=4, optimizer=AdamOffAtStep(lr=0.01),
        batch_size=BATCH, seed=6,
    )  # fmt: skip
    failed = {row.output for row in comparison.failures()}
    assert "fit W1" in failed and "forward" not in failed


# ============================================ anynet validate --model --import --explain

USER_MODULE = '''
from dataclasses import dataclass

import anynet as an
from anynet.layers import Layer

NUMPY_NAME = an.get_backend("numpy").xp.__name__


@dataclass(frozen=True)
class Wobble(Layer):
    """Identity; off NumPy, 1e-6 more on batches of 7 rows (the short last one)."""

    shift: float = 0.0

    def init(self, rng, n_in):
        return {}, n_in

    def forward(self, params, x, *, xp, train):
        if self.shift and xp.__name__ != NUMPY_NAME and x.shape[0] == 7:
            return x + self.shift, None
        return x, None

    def backward(self, params, cache, dy, *, xp):
        return dy, {}


an.register_layer("Wobble", Wobble)
'''


def validate_in(directory, *args):
    """``anynet validate ARGS`` as a shell runs it, from ``directory`` (its modules import)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-W", "error", "-m", "anynet", "validate", *args],
                          capture_output=True, text=True, env=env, cwd=directory,
                          timeout=300)  # fmt: skip


@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("planted", [False, True], ids=["honest", "planted"])
@pytest.mark.skip_backends(
    "jax", reason="a shell test per backend suffices; JAX's start-up makes it the slowest"
)
def test_validate_a_saved_user_model_from_the_shell(backend, dtype, planted, tmp_path):
    if backend.name == "numpy":
        pytest.skip("compares a backend with NumPy: needs a backend other than NumPy")
    if backend.name == "jax" and backend.float64_problem() is not None:
        pytest.skip(f"float64 unavailable: {backend.float64_problem()}")
    (tmp_path / "user_layers.py").write_text(USER_MODULE)
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        wobble = importlib.import_module("user_layers").Wobble(shift=1e-6 if planted else 0.0)
    finally:
        sys.path.remove(str(tmp_path))
        an.registry.layers._classes.pop("Wobble", None)  # the subprocess registers its own
        an.registry.layers._names.pop(type(wobble), None)
    X, y = problem("multiclass", n=39)  # batches of 16, 16 and a short one of 7
    an.register_layer("Wobble", type(wobble), replace=True)
    try:
        net = an.Sequential([Dense(5), "tanh", wobble, Dense(3), "softmax"], inputs=3, seed=3,
                            dtype=dtype, backend="numpy")  # fmt: skip
        net.save(tmp_path / "net.npz")
    finally:
        an.registry.layers._classes.pop("Wobble", None)
        an.registry.layers._names.pop(type(wobble), None)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    common = ["--model", "net.npz", "--import", "user_layers", "--data", "data.npz",
              "--backends", spec_of(backend), "--optimizer", "adam", "--batch-size", "16",
              "--schedule", "cosine", "--epochs", "3", "--explain"]  # fmt: skip
    text = validate_in(tmp_path, *common)
    assert text.returncode == (1 if planted else 0), text.stdout + text.stderr
    as_json = validate_in(tmp_path, *common, "--json")
    assert as_json.returncode == text.returncode, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["ok"] is (not planted) and summary["optimizer"] == "adam"
    if not planted:
        assert "all backends agree" in text.stdout and summary["trace"] is None
        return
    first = summary["trace"]["first"]
    assert (first["epoch"], first["step"], first["phase"], first["layer"]) == (0, 2, "forward", 2)
    assert first["kind"] == "operation" and first["layer_name"].startswith("Wobble")
    assert "parts at epoch 0, step 2, in the forward pass of layer 2" in text.stdout


def spec_of(backend) -> str:
    """The backend as ``--backends`` takes it: NAME or NAME:DEVICE."""
    if backend is an.get_backend(backend.name):
        return backend.name
    return f"{backend.name}:{str(backend.device).split(chr(39))[1]}"


# ============================================ the picture


def test_the_picture_draws_the_reports_curves(backend):
    pytest.importorskip("matplotlib")
    X, y = problem()
    net = an.Sequential(
        [Dense(6), "tanh", ShortBatchShift(), Dense(1), "sigmoid"], inputs=3, seed=1,
        dtype="float64", backend="numpy",
    )  # fmt: skip
    report = traced(backend, net, X, y, epochs=4, lr=0.5, batch_size=BATCH, seed=3)
    figure = an.plot.divergence(report)
    (axes,) = figure.axes
    label = report.backends[0]
    line = next(line for line in axes.get_lines() if line.get_label() == label)
    floor, _ = axes.get_ylim()
    np.testing.assert_allclose(line.get_ydata(), np.maximum(report.curve[label], floor))
    tolerance = [line for line in axes.get_lines() if line.get_label().startswith("tolerance")]
    assert tolerance and tolerance[0].get_ydata()[0] == report.rtol
    marks = [line for line in axes.get_lines() if line.get_marker() == "x"]
    assert [m.get_xdata()[0] for m in marks] == [report.first.epoch]
    assert axes.get_yscale() == "log" and "parts first" in axes.get_title()
    assert any("operation: epoch 0, layer 2" in text.get_text() for text in axes.texts)


def test_the_picture_refuses_other_objects():
    pytest.importorskip("matplotlib")
    with pytest.raises(an.InputError, match="DivergenceReport"):
        an.plot.divergence({"curve": {}})


@pytest.mark.parametrize("per", list(SCHEDULES))
def test_the_epoch_stepped_again_is_fits_epoch(backend, per):
    """What locate steps through (batches, order, rates) is fit's epoch, bit for bit."""
    from anynet.testing import divergence as tracing

    X, y = problem("multiclass", n=60)
    net = an.Sequential([Dense(8), "relu", Dense(3), "softmax"], inputs=3, seed=7,
                        dtype="float64", backend=backend)  # fmt: skip
    schedule, optimizer = SCHEDULES[per](), an.optimizers.Adam(lr=0.01)
    settings = {"epochs": 3, "optimizer": optimizer, "batch_size": 16, "shuffle": True,
                "seed": 8, "schedule": schedule}  # fmt: skip
    run = tracing._start(net, backend, "float64", X, y, settings)
    tracer = tracing._Tracer(net.model, optimizer, "float64", 8, 16, True,
                             an.optimizers.get_schedule(schedule))  # fmt: skip
    carry = run.start
    for epoch in range(3):
        for batch in tracer.batches(run, epoch):
            carry = tracer.one_step(run, carry, batch[:2], batch[2])
    fitted = an.Sequential([Dense(8), "relu", Dense(3), "softmax"], inputs=3, seed=7,
                           dtype="float64", backend=backend)  # fmt: skip
    fitted.fit(X, y, engine="eager", **settings)
    for key, value in fitted.params.items():
        np.testing.assert_array_equal(an.to_numpy(carry[0][key]), an.to_numpy(value))
