"""The training engine: optimizers, schedules, minibatches, history, callbacks, compiled steps.

References are independent: plain NumPy transcriptions of each algorithm (the
Adam paper's Algorithm 1, PyTorch's SGD formulation, minibatch SGD over the
documented shuffle order), PyTorch's own optimizers where installed, and the
NumPy float64 run of anynet for cross-backend agreement.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import anynet as an
from anynet import callbacks
from anynet.engine import fit as engine_fit
from anynet.engine import runner as engine_runner
from anynet.optimizers import SGD, Adam, AdamW, Cosine, Exponential, Momentum, Step
from anynet.testing import assert_close, assert_on_backend

OPTIMIZERS = {
    "sgd": SGD(lr=0.5),
    "momentum": Momentum(lr=0.2, momentum=0.8),
    "nesterov": Momentum(lr=0.2, momentum=0.8, nesterov=True),
    "adam": Adam(lr=0.02),
    "adamw": AdamW(lr=0.02, weight_decay=0.1),
    "sgd-l2": SGD(lr=0.5, l2=0.01),
}
SCHEDULES = {
    "constant": None,
    "step": Step(step_size=3, gamma=0.5),
    "exponential": Exponential(gamma=0.9),
    "cosine": Cosine(total=8, min_lr=0.01),
}
BATCHES = {"full": (None, False), "keep-last": (16, False), "drop-last": (16, True)}


def spirals_problem():
    X, y = an.datasets.spirals(n=90, n_classes=3, seed=1)
    return X, y


# -- plain NumPy references -------------------------------------------------------


def adam_paper(params, grad_fn, steps, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Kingma & Ba (2015), Algorithm 1, transcribed; optional decoupled decay (AdamW)."""
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    theta = {k: p.copy() for k, p in params.items()}
    for t in range(1, steps + 1):
        g = grad_fn(theta)
        for k in theta:
            m[k] = beta1 * m[k] + (1 - beta1) * g[k]
            v[k] = beta2 * v[k] + (1 - beta2) * g[k] ** 2
            m_hat = m[k] / (1 - beta1**t)
            v_hat = v[k] / (1 - beta2**t)
            theta[k] = theta[k] - lr * m_hat / (np.sqrt(v_hat) + eps) - lr * weight_decay * theta[k]
    return theta


def numpy_gradient_fn(net, X, y):
    """Gradients from an anynet NumPy float64 network (the optimizer is what is tested)."""
    reference = an.Network(
        net.sizes, net.activations, net.loss_name, dtype="float64", backend="numpy"
    )

    def grad(theta):
        return {k: np.asarray(v) for k, v in reference.set_params(theta).gradients(X, y).items()}

    return grad


# -- tests ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_matches_the_papers_algorithm(backend, name):
    X, y = spirals_problem()
    net = an.Network(
        [2, 6, 3], ["tanh", "softmax"], init="xavier", seed=0, dtype="float64", backend=backend
    )
    start = {k: an.to_numpy(v) for k, v in net.params.items()}
    decay = 0.1 if name == "adamw" else 0.0
    want = adam_paper(start, numpy_gradient_fn(net, X, y), steps=7, lr=0.03, weight_decay=decay)
    optimizer = AdamW(lr=0.03, weight_decay=0.1) if name == "adamw" else Adam(lr=0.03)
    net.fit(X, y, epochs=7, optimizer=optimizer)
    assert_close(net.params, want, backend=backend)
    assert_on_backend(net.optimizer_state["m.W1"], backend)


def test_sgd_momentum_matches_a_numpy_transcription(backend):
    X, y = spirals_problem()
    net = an.Network(
        [2, 5, 3], ["relu", "softmax"], init="he", seed=2, dtype="float64", backend=backend
    )
    theta = {k: an.to_numpy(v).copy() for k, v in net.params.items()}
    grad = numpy_gradient_fn(net, X, y)
    velocity = {k: np.zeros_like(v) for k, v in theta.items()}
    for _ in range(6):  # PyTorch's formulation, with nesterov
        g = grad(theta)
        for k in theta:
            velocity[k] = 0.7 * velocity[k] + g[k]
            theta[k] = theta[k] - 0.1 * (g[k] + 0.7 * velocity[k])
    net.fit(X, y, epochs=6, optimizer=Momentum(lr=0.1, momentum=0.7, nesterov=True))
    assert_close(net.params, theta, backend=backend)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "adamw"])
def test_optimizers_match_pytorch(name):
    import torch

    X, y = spirals_problem()
    net = an.Network([2, 5, 3], ["tanh", "softmax"], init="xavier", seed=3, dtype="float64")
    start = {k: np.array(v) for k, v in net.params.items()}
    grad = numpy_gradient_fn(net, X, y)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    make = {
        "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
    }[name]
    ours = {
        "momentum": Momentum(lr=0.1),
        "nesterov": Momentum(lr=0.1, nesterov=True),
        "adam": Adam(lr=0.01),
        "adamw": AdamW(lr=0.01, weight_decay=0.05),
    }[name]
    torch_opt = make(list(tensors.values()))
    for _ in range(5):
        g = grad({k: t.detach().numpy() for k, t in tensors.items()})
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        torch_opt.step()
    net.fit(X, y, epochs=5, optimizer=ours)
    for k, t in tensors.items():
        np.testing.assert_allclose(net.params[k], t.detach().numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_minibatches_follow_the_documented_order(backend, batch):
    """Plain minibatch SGD in NumPy over default_rng([seed, epoch]).permutation(n)."""
    batch_size, drop_last = BATCHES[batch]
    X, y = an.datasets.planar_flower(n=70)
    net = an.Network([2, 4, 1], init="xavier", seed=5, dtype="float64", backend=backend)
    theta = {k: an.to_numpy(v).copy() for k, v in net.params.items()}
    grad = numpy_gradient_fn(net, X, y)
    reference = an.Network([2, 4, 1], dtype="float64", backend="numpy")
    want_losses = []
    for epoch in range(4):
        order = np.random.default_rng([11, epoch]).permutation(70)
        size = batch_size or 70
        starts = range(0, 70, size)
        losses, counts = [], []
        for start in starts:
            idx = order[start : start + size] if batch_size else np.arange(70)
            if drop_last and len(idx) < size:
                continue
            reference.set_params(theta)
            losses.append(reference.loss(X[idx], y[idx]))
            counts.append(len(idx))
            g = {k: np.asarray(v) for k, v in reference.gradients(X[idx], y[idx]).items()}
            theta = {k: theta[k] - 0.7 * g[k] for k in theta}
        want_losses.append(np.dot(losses, counts) / sum(counts))
    del grad
    history = net.fit(X, y, epochs=4, lr=0.7, batch_size=batch_size, drop_last=drop_last, seed=11)
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-10)
    assert_close(net.params, theta, backend=backend)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_same_seed_same_training_on_every_backend(backend, optimizer, schedule):
    X, y = spirals_problem()
    kwargs = dict(init="he", seed=7, dtype="float64")
    sizes, acts = [2, 8, 3], ["leaky_relu", "softmax"]
    reference = an.Network(sizes, acts, backend="numpy", **kwargs)
    candidate = an.Network(sizes, acts, backend=backend, **kwargs)
    fit = dict(
        epochs=8,
        optimizer=OPTIMIZERS[optimizer],
        schedule=SCHEDULES[schedule],
        batch_size=16,
        seed=3,
        validation_data=(X[:30], y[:30]),
    )
    want = reference.fit(X, y, **fit)
    got = candidate.fit(X, y, **fit)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-10)
    np.testing.assert_allclose(got.val_loss, want.val_loss, rtol=1e-10)
    assert got.lr == want.lr
    assert_close(candidate.params, reference.params, backend=backend)


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("loss", ["binary_crossentropy", "categorical_crossentropy", "mse"])
def test_every_loss_and_batch_mode_agrees_with_numpy(backend, batch, loss):
    X, labels = an.datasets.moons(n=50, seed=4)
    spec = {
        "binary_crossentropy": ([2, 6, 1], ["tanh", "sigmoid"], labels),
        "categorical_crossentropy": ([2, 6, 2], ["relu", "softmax"], labels),
        "mse": ([2, 6, 2], ["sigmoid", "identity"], np.stack([X[:, 0] * 2, labels], axis=1)),
    }
    sizes, acts, y = spec[loss]
    batch_size, drop_last = BATCHES[batch]
    runs = []
    for name in ("numpy", backend):
        net = an.Network(sizes, acts, loss, init="xavier", seed=1, dtype="float64", backend=name)
        history = net.fit(
            X,
            y,
            epochs=5,
            optimizer="momentum",
            lr=0.1,
            batch_size=batch_size,
            drop_last=drop_last,
            seed=2,
        )
        runs.append((net, history))
    (ref, ref_history), (net, history) = runs
    np.testing.assert_allclose(history.loss, ref_history.loss, rtol=1e-10)
    assert_close(net.params, ref.params, backend=backend)


def test_schedules_follow_their_formulas():
    assert [Step(2, 0.5)(1.0, e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert Exponential(0.9)(2.0, 3) == pytest.approx(2.0 * 0.9**3)
    cosine = Cosine(total=10, min_lr=0.1)
    assert cosine(1.0, 0) == pytest.approx(1.0)
    assert cosine(1.0, 5) == pytest.approx(0.55)
    assert cosine(1.0, 10) == pytest.approx(0.1) == cosine(1.0, 20)


def test_history_records_the_scheduled_lr_and_a_function_schedule(backend):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    history = net.fit(X, y, epochs=4, lr=0.8, schedule=lambda lr, epoch: lr / (1 + epoch))
    assert history.lr == pytest.approx([0.8, 0.4, 0.8 / 3, 0.2])


def test_validation_figures_are_those_of_the_updated_params(backend):
    X, y = spirals_problem()
    Xv, yv = an.datasets.spirals(n=30, n_classes=3, seed=9)
    net = an.Network(
        [2, 8, 3], ["relu", "softmax"], init="he", seed=0, dtype="float64", backend=backend
    )
    history = net.fit(
        X, y, epochs=5, optimizer="adam", lr=0.05, batch_size=32, validation_data=(Xv, yv)
    )
    assert len(history.val_loss) == len(history.val_accuracy) == 5
    assert history.val_loss[-1] == pytest.approx(net.loss(Xv, yv), rel=1e-12)
    assert history.val_accuracy[-1] == pytest.approx(net.score(Xv, yv), abs=1e-12)


def test_regression_history_has_val_score_as_r2(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(60, 2))
    y = X[:, 0] - 0.5 * X[:, 1]
    net = an.Network(
        [2, 4, 1],
        ["tanh", "identity"],
        "mse",
        init="xavier",
        seed=0,
        dtype="float64",
        backend=backend,
    )
    history = net.fit(X, y, epochs=30, lr=0.3, validation_data=(X, y))
    assert history.val_score[-1] == pytest.approx(net.score(X, y), rel=1e-10)
    with pytest.raises(AttributeError, match="val_accuracy is for classifiers"):
        history.val_accuracy  # noqa: B018


class Recorder(an.Callback):
    def on_train_begin(self, network):
        self.params = []

    def on_epoch_end(self, epoch, logs, network):
        self.params.append(network.params)


def test_early_stopping_restores_the_best_weights(backend):
    X, y = an.datasets.planar_flower(n=80)
    flipped = 1 - y  # validation labels the training makes worse and worse
    net = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)
    recorder = Recorder()
    stopper = an.EarlyStopping(monitor="val_loss", patience=3, restore_best=True)
    history = net.fit(
        X, y, epochs=200, lr=1.2, validation_data=(X, flipped), callbacks=[recorder, stopper]
    )
    best = int(np.argmin(history.val_loss))
    assert stopper.best_epoch == best
    assert stopper.stopped_epoch == best + 3 == history.epochs - 1
    for key, value in net.params.items():
        np.testing.assert_array_equal(an.to_numpy(value), an.to_numpy(recorder.params[best][key]))
    assert net.loss(X, flipped) == pytest.approx(min(history.val_loss), rel=1e-12)


def test_early_stopping_needs_the_monitored_figure(backend):
    X, y = an.datasets.planar_flower(n=20)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    with pytest.raises(an.InputError, match="pass validation_data"):
        net.fit(X, y, epochs=3, callbacks=[an.EarlyStopping()])


def test_a_function_callback_can_stop_training(backend):
    X, y = an.datasets.planar_flower(n=20)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    seen = []
    history = net.fit(
        X, y, epochs=50, callbacks=lambda epoch, logs: seen.append(logs) or epoch == 4
    )
    assert history.epochs == 5 and len(seen) == 5
    assert seen[2]["loss"] == history.loss[2]


@pytest.mark.parametrize("optimizer, batch_size", [("momentum", None), ("sgd", 8)])
def test_divergence_keeps_the_last_finite_weights(backend, optimizer, batch_size):
    X = np.linspace(-1, 1, 40)[:, None] * np.array([[1.0, 2.0]])
    y = 1e3 * X[:, 0]
    net = an.Network(
        [2, 8, 1],
        ["identity", "identity"],
        "mse",
        init="he",
        seed=0,
        dtype="float64",
        backend=backend,
    )
    with pytest.raises(an.DivergenceError, match="smaller learning rate"):
        net.fit(X, y, epochs=3000, optimizer=optimizer, lr=50.0, batch_size=batch_size)
    for value in net.params.values():
        assert np.all(np.isfinite(an.to_numpy(value)))


def test_losses_are_read_back_once_per_chunk(backend, monkeypatch):
    calls = []
    real = engine_fit.to_numpy
    monkeypatch.setattr(engine_fit, "to_numpy", lambda a: calls.append(1) or real(a))
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    net.fit(X, y, epochs=2 * engine_fit.CHUNK + 5, lr=0.5)
    assert len(calls) == 3  # three chunks, one figure each: never one read per step


def test_compiled_runner_is_reused_across_fits(backend):
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    net.fit(X, y, epochs=20, lr=0.5)
    before = len(engine_runner._RUNNERS)
    runner = engine_runner.runner(
        backend, net.model, net.dtype, an.optimizers.SGD(), None, False, False
    )
    compiled = runner._cache_size() if backend.name == "jax" else None
    net.fit(X, y, epochs=20, lr=0.9)
    an.Network([2, 3, 1], seed=1, backend=backend).fit(X, y, epochs=20, lr=0.1)
    assert len(engine_runner._RUNNERS) == before
    if backend.name == "jax":
        assert runner._cache_size() == compiled  # no new compilation for the later fits


def test_progress_is_printed_every_n(backend, capsys):
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    net.fit(X, y, epochs=20, lr=0.5, verbose=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    net.fit(X, y, epochs=20, lr=0.5, verbose=5, validation_data=(X, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch 0: loss ")
    assert "val_loss" in lines[0] and "val_accuracy" in lines[0]


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="tqdm not installed")
def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = callbacks.Progress(True, 10, stream=stream)
    progress.update(0, [{"loss": 0.5, "lr": 0.1}] * 10)
    progress.close()
    assert "10/10" in stream.getvalue() and "loss=0.5" in stream.getvalue()


BAD_FIT_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    (
        dict(optimizer="rmsprop"),
        "optimizer must be one of ['adam', 'adamw', 'momentum', 'nesterov', 'sgd']",
    ),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(batch_size=2.5), "batch_size must be a positive integer, got 2.5"),
    (
        dict(schedule="linear"),
        "schedule must be one of ['constant', 'cosine', 'exponential', 'step']",
    ),
    (dict(schedule=lambda lr, e: float("nan")), "schedule must return finite learning rates"),
    (dict(validation_data=np.zeros((3, 2))), "validation_data must be a pair (X_val, y_val)"),
    (dict(validation_data=(np.zeros((3, 3)), np.zeros(3))), "X_val must have 2 feature"),
    (dict(callbacks=[42]), "callbacks[0] must be an anynet.Callback or a function"),
    (dict(seed=-2), "seed must be a non-negative integer or None, got -2"),
    (dict(verbose=-1), "verbose must be a positive integer, got -1"),
]


@pytest.mark.parametrize(
    "kwargs, fragment",
    BAD_FIT_ARGUMENTS,
    ids=[next(iter(k)) + str(i) for i, (k, _) in enumerate(BAD_FIT_ARGUMENTS)],
)
def test_bad_fit_arguments(backend, kwargs, fragment):
    X, y = an.datasets.planar_flower(n=10)
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    with pytest.raises(an.InputError) as info:
        net.fit(X, y, epochs=2, **kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Adam(betas=(0.9, 1.0)), "betas[1] must be a number in [0, 1), got 1.0"),
        (lambda: SGD(lr=-1), "lr must be a finite number > 0, got -1"),
        (lambda: SGD(nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda: Momentum(momentum=1.5), "momentum must be a number in [0, 1), got 1.5"),
        (lambda: AdamW(weight_decay=-0.1), "weight_decay must be a finite number >= 0"),
        (lambda: Step(step_size=0), "step_size must be a positive integer, got 0"),
        (lambda: an.EarlyStopping(monitor="accuracy"), "monitor must be one of"),
    ],
)
def test_bad_optimizer_arguments(make, fragment):
    with pytest.raises(an.InputError) as info:
        make()
    assert fragment in str(info.value)


@pytest.mark.needs("sklearn")
@pytest.mark.needs("matplotlib")
@pytest.mark.skip_backends("array_api_strict", reason="checked on numpy, jax, torch (slow here)")
def test_digits_example_reaches_97_percent(backend, tmp_path):
    from test_examples import load_example

    digits = load_example("digits")
    device = [] if backend.name == "numpy" else ["--device", str(backend.device)]
    if backend.name in ("jax", "torch"):
        device = []
    accuracy = digits.main(["--backend", backend.name, *device, "--out", str(tmp_path)])
    assert accuracy >= 0.97
    assert (tmp_path / "digits_learning_curve.png").read_bytes().startswith(b"\x89PNG")


class Interrupt(an.Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, epoch, logs, network):
        if epoch == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer, batch_size", [("adam", 16), ("sgd", None)])
def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(
    backend, tmp_path, optimizer, batch_size
):
    X, y = spirals_problem()
    settings = dict(
        epochs=14,
        optimizer=optimizer,
        lr=0.05,
        batch_size=batch_size,
        seed=4,
        schedule=Step(step_size=4, gamma=0.5),
    )
    whole = an.Network(
        [2, 6, 3], ["relu", "softmax"], init="he", seed=0, dtype="float64", backend=backend
    )
    full_history = whole.fit(X, y, **settings)

    path = tmp_path / "run.npz"
    first = an.Network(
        [2, 6, 3], ["relu", "softmax"], init="he", seed=0, dtype="float64", backend=backend
    )
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y, checkpoint=path, checkpoint_every=5, callbacks=[Interrupt(8)], **settings)
    assert path.exists()
    fresh = an.Network(
        [2, 6, 3], ["relu", "softmax"], init="he", seed=123, dtype="float64", backend=backend
    )
    history = fresh.fit(X, y, resume=path, **settings)
    assert history.loss == full_history.loss and history.lr == full_history.lr
    for key, value in whole.params.items():
        assert_on_backend(fresh.params[key], backend)
        np.testing.assert_array_equal(an.to_numpy(fresh.params[key]), an.to_numpy(value))


def test_resume_refuses_other_settings_or_networks(backend, tmp_path):
    X, y = spirals_problem()
    path = tmp_path / "run.npz"
    net = an.Network([2, 6, 3], ["relu", "softmax"], seed=0, backend=backend)
    net.fit(X, y, epochs=3, optimizer="momentum", batch_size=16, checkpoint=path)
    with pytest.raises(an.InputError, match="was trained with optimizer=.*resume with the same"):
        net.fit(X, y, epochs=6, optimizer="adam", batch_size=16, resume=path)
    with pytest.raises(an.InputError, match="was trained with batch_size=16"):
        net.fit(X, y, epochs=6, optimizer="momentum", batch_size=8, resume=path)
    other = an.Network([2, 5, 3], ["relu", "softmax"], seed=0, backend=backend)
    with pytest.raises(an.InputError, match="is for a network with sizes"):
        other.fit(X, y, epochs=6, optimizer="momentum", batch_size=16, resume=path)
    with pytest.raises(an.InputError, match="checkpoint_every needs checkpoint=path"):
        net.fit(X, y, epochs=2, checkpoint_every=1)


def test_same_seed_is_bit_identical_run_to_run(backend):
    X, y = spirals_problem()
    runs = []
    for _ in range(2):
        net = an.Network([2, 6, 3], ["relu", "softmax"], init="he", seed=5, backend=backend)
        history = net.fit(X, y, epochs=6, optimizer="adam", lr=0.01, batch_size=16, seed=2)
        runs.append((history.loss, {k: an.to_numpy(v) for k, v in net.params.items()}))
    assert runs[0][0] == runs[1][0]
    for key in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])


@pytest.mark.parametrize("layerwise", [False, True], ids=["whole", "layer-by-layer"])
def test_in_place_updates_give_the_pure_numbers(backend, layerwise, monkeypatch):
    """fit updates in place where the backend allows (and layer by layer on large models);
    its numbers equal the pure steps of anynet.functional (rows, the same batches), and
    it never writes into the arrays it was given."""
    monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1 if layerwise else 2**62)
    monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 1)  # this small model too
    monkeypatch.setattr(engine_runner, "_RUNNERS", engine_runner.Cache(8))
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(24, 5)), rng.integers(0, 3, 24)
    net = an.Network([5, 7, 6, 3], ["tanh", "relu", "softmax"], seed=4, dtype="float64",
                     backend=backend)  # fmt: skip
    optimizer = an.optimizers.Momentum(lr=0.1, momentum=0.9)
    params, opt_state = net.params, optimizer.init(net.params)
    original = net.params  # the network's own arrays, as a user may hold them
    taken = {key: np.array(an.to_numpy(value), copy=True) for key, value in original.items()}
    X_dev, y_dev = net.backend.asarray(X, "float64"), net.backend.asarray(y)
    losses = []
    for _ in range(3):  # epochs of two batches of 12, in order
        for start in (0, 12):
            params, opt_state, loss = an.functional.train_step(
                net.model, optimizer, params, opt_state,
                X_dev[start : start + 12, ...], y_dev[start : start + 12],
            )  # fmt: skip
            losses.append(float(an.to_numpy(loss)))
    history = net.fit(X, y, epochs=3, optimizer=optimizer, batch_size=12, shuffle=False)
    np.testing.assert_allclose(history.loss, np.mean(np.reshape(losses, (3, 2)), axis=1),
                               rtol=1e-13)  # fmt: skip
    for key, value in params.items():
        np.testing.assert_allclose(an.to_numpy(net.params[key]), an.to_numpy(value),
                                   rtol=1e-13, atol=1e-15)  # fmt: skip
    for key, value in original.items():  # never written, though the network trained
        np.testing.assert_array_equal(an.to_numpy(value), taken[key])
        assert not np.array_equal(an.to_numpy(net.params[key]), taken[key])


def test_an_optimizer_that_only_overrides_update_still_trains(backend):
    """A user's optimizer without ``directions``: fit updates all parameters at once."""

    @dataclass(frozen=True)
    class HalfStep(SGD):
        def update(self, params, grads, state, lr, *, xp=None, decay=None):
            return {key: p - 0.5 * lr * grads[key] for key, p in params.items()}, state

    assert not HalfStep().layerwise and SGD().layerwise
    X, y = an.datasets.planar_flower(n=40)
    nets = [an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend) for _ in range(2)]
    h1 = nets[0].fit(X, y, epochs=5, optimizer=HalfStep(lr=1.0))
    h2 = nets[1].fit(X, y, epochs=5, optimizer=SGD(lr=0.5))
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-12)


@pytest.mark.parametrize("layerwise", [False, True], ids=["whole", "layer-by-layer"])
def test_a_diverging_in_place_fit_keeps_exactly_the_last_good_parameters(
    backend, layerwise, monkeypatch
):
    """With updates written in place, the rewind still lands on the parameters at the
    start of the last epoch with a finite loss: those of a fit stopped there."""
    monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 1)
    monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1 if layerwise else 2**62)
    monkeypatch.setattr(engine_runner, "_RUNNERS", engine_runner.Cache(8))
    X = np.linspace(-1, 1, 40)[:, None] * np.array([[1.0, 2.0]])
    y = 1e3 * X[:, 0]

    def network():
        return an.Network([2, 8, 1], ["identity", "identity"], "mse", init="he", seed=0,
                          dtype="float64", backend=backend)  # fmt: skip

    diverging = network()
    with pytest.raises(an.DivergenceError) as caught:
        diverging.fit(X, y, epochs=3000, optimizer="momentum", lr=50.0)
    last_good = int(np.sum(np.isfinite(caught.value.history.loss))) - 1
    assert last_good >= 1
    stopped = network()
    stopped.fit(X, y, epochs=last_good, optimizer="momentum", lr=50.0)
    for key, value in stopped.params.items():
        np.testing.assert_array_equal(an.to_numpy(diverging.params[key]), an.to_numpy(value))


@pytest.mark.skip_backends(
    "jax", reason="JAX never updates in place; its layer-by-layer order is checked above"
)
def test_in_place_layer_by_layer_with_state_and_containers_gives_the_pure_numbers(
    backend, monkeypatch
):
    """Dropout, batch norm (running statistics), layer norm and a residual block, updated
    in place layer by layer: the numbers of pure rows-are-samples steps."""
    from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual

    monkeypatch.setattr(engine_runner, "IN_PLACE_ELEMENTS", 1)
    monkeypatch.setattr(engine_runner, "LAYERWISE_PARAMS", 1)
    monkeypatch.setattr(engine_runner, "_RUNNERS", engine_runner.Cache(8))
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(24, 4)), rng.integers(0, 2, 24)
    layers = [Dense(6), BatchNorm(), "relu", Dropout(0.3),
              Residual(LayerNorm(), Dense(6), "tanh"), Dense(1)]  # fmt: skip
    net = an.Sequential(layers, inputs=4, loss="binary_crossentropy", seed=5,
                        dtype="float64", backend=backend)  # fmt: skip
    optimizer = an.optimizers.Adam(lr=0.05)
    params, state, opt_state = net.params, net.state, optimizer.init(net.params)
    X_dev, y_dev = net.backend.asarray(X, "float64"), net.backend.asarray(y)
    losses = []
    for _ in range(2):
        for start in (0, 12):
            params, opt_state, loss, state = an.functional.train_step(
                net.model, optimizer, params, opt_state,
                X_dev[start : start + 12, ...], y_dev[start : start + 12], state=state,
            )  # fmt: skip
            losses.append(float(an.to_numpy(loss)))
    history = net.fit(X, y, epochs=2, optimizer=optimizer, batch_size=12, shuffle=False)
    np.testing.assert_allclose(history.loss, np.mean(np.reshape(losses, (2, 2)), axis=1),
                               rtol=1e-12)  # fmt: skip
    # b1 feeds batch norm: its gradient is zero but for rounding, so it holds only noise
    # of 1e-10 (BLAS sums round differently with the buffers' alignment)
    for key, value in params.items():
        np.testing.assert_allclose(an.to_numpy(net.params[key]), an.to_numpy(value),
                                   rtol=1e-11, atol=1e-9)  # fmt: skip
    for key, value in state.items():  # the running mean sees b1's noise too
        np.testing.assert_allclose(an.to_numpy(net.state[key]), an.to_numpy(value),
                                   rtol=1e-11, atol=1e-9)  # fmt: skip
