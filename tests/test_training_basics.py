"""Training basics: gradient clipping, per-step schedules with warm-up, the dtypes on offer.

References are independent of the code under test: clipping against a plain NumPy
transcription of ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` (and torch
itself where it is installed), warm-up rates against values computed by hand, and a
per-step schedule in ``fit`` against a hand-written ``functional.train_step`` loop.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet import functional as F
from anynet.optimizers import (
    SGD,
    Adam,
    Cosine,
    Exponential,
    Optimizer,
    Step,
    Warmup,
    clip_gradients,
)

SHAPES = {"W1": (4, 3), "b1": (4,), "W2": (2, 4), "b2": (2,)}


def _grads(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {key: scale * rng.normal(size=shape) for key, shape in SHAPES.items()}


def _numpy_clip_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_'s documented formula, in plain NumPy (float64)."""
    total = math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values()))
    coefficient = min(1.0, max_norm / (total + 1e-6))
    return {key: np.asarray(g, np.float64) * coefficient for key, g in grads.items()}


def _host(array):
    return np.asarray(an.to_numpy(array), dtype=np.float64)


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3], ids=["clips", "near", "no-op"])
def test_clip_norm_is_the_global_norm_of_a_numpy_reference(backend, dtype, max_norm):
    grads = _grads(scale=1.0)
    on_device = {key: backend.asarray(g, dtype) for key, g in grads.items()}
    host_grads = {key: _host(g) for key, g in on_device.items()}  # the rounded inputs
    got = clip_gradients(on_device, clip_norm=max_norm)
    want = _numpy_clip_norm(host_grads, max_norm)
    rtol = 1e-14 if dtype == "float64" else 1e-6
    for key in grads:
        assert an.backend_of(got[key]) == backend.name
        assert got[key].dtype == backend.dtype(dtype)
        np.testing.assert_allclose(_host(got[key]), want[key], rtol=rtol, atol=0, err_msg=key)
    norm = math.sqrt(sum(float(np.sum(_host(g) ** 2)) for g in got.values()))
    assert norm <= max_norm * (1 + 1e-6)


def test_clip_value_clips_every_element(backend, dtype):
    grads = {key: backend.asarray(g, dtype) for key, g in _grads(scale=2.0).items()}
    got = clip_gradients(grads, clip_value=0.7)
    for key, g in grads.items():
        host = an.to_numpy(g)  # the bound rounded to the gradients' dtype, as NumPy does
        np.testing.assert_array_equal(an.to_numpy(got[key]), np.clip(host, -0.7, 0.7))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_norm_matches_torch_clip_grad_norm(max_norm):
    import torch

    grads = _grads(seed=3, scale=1.5)
    tensors = [
        torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()
    ]
    for tensor, g in zip(tensors, grads.values(), strict=True):
        tensor.grad = torch.tensor(g, dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    got = clip_gradients(grads, clip_norm=max_norm)
    for tensor, key in zip(tensors, grads, strict=True):
        np.testing.assert_allclose(got[key], tensor.grad.numpy(), rtol=1e-14, atol=1e-16)


@pytest.mark.dtypes("float64")
def test_an_optimizer_clips_before_its_update(backend, dtype):
    """``SGD(clip_norm=...)``'s update is ``p - lr * clip(g)``; ``l2`` is added after the
    clip (PyTorch's order: ``clip_grad_norm_`` on ``.grad``, then ``step`` adds decay)."""
    params = {key: backend.asarray(g, dtype) for key, g in _grads(seed=1).items()}
    grads = {key: backend.asarray(g, dtype) for key, g in _grads(seed=2, scale=3.0).items()}
    opt = SGD(lr=0.1, l2=0.01, clip_norm=0.5)
    new, _ = opt.update(params, grads, opt.init(params), 0.1)
    clipped = _numpy_clip_norm({key: _host(g) for key, g in grads.items()}, 0.5)
    for key, p in params.items():
        want = _host(p) - 0.1 * (clipped[key] + 0.01 * _host(p))
        np.testing.assert_allclose(_host(new[key]), want, rtol=1e-14, atol=1e-16, err_msg=key)


@dataclass(frozen=True)
class ProjectedSGD(Optimizer):
    """Overrides ``update`` (``max(p - lr * g, 0)``) and honours clipping through ``clip``."""

    def directions(self, params, grads, state, *, xp=None, decay=None):
        return {key: grads[key] for key in params}, state

    def update(self, params, grads, state, lr, *, xp=None, decay=None):
        grads = self.clip(grads, xp=xp)
        new = {key: p - lr * grads[key] for key, p in params.items()}
        return {key: xp.where(q > 0, q, xp.zeros_like(q)) for key, q in new.items()}, state


def test_an_optimizer_overriding_update_clips_through_clip(backend):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    start = {key: _host(p) for key, p in net.params.items()}
    grads = _numpy_clip_norm({key: _host(g) for key, g in net.gradients(X, y).items()}, 0.05)
    net.fit(X, y, epochs=1, optimizer=ProjectedSGD(lr=0.5, clip_norm=0.05))
    for key, p in start.items():
        want = np.maximum(p - 0.5 * grads[key], 0.0)
        np.testing.assert_allclose(_host(net.params[key]), want, rtol=1e-12, atol=1e-15)


@pytest.mark.backends("jax", reason="jax.jit traces the clip: no branch on values")
@pytest.mark.dtypes("float64")
def test_clipping_traces_under_jax_jit(backend, dtype):
    import jax

    grads = {key: backend.asarray(g, dtype) for key, g in _grads(scale=2.0).items()}
    for kwargs in (dict(clip_norm=0.5), dict(clip_value=0.3)):
        got = jax.jit(lambda g, kwargs=kwargs: clip_gradients(g, **kwargs))(grads)
        want = clip_gradients(grads, **kwargs)
        for key in grads:
            np.testing.assert_allclose(_host(got[key]), _host(want[key]), rtol=1e-14)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: SGD(clip_norm=0.0), "clip_norm must be a finite number > 0, got 0.0"),
        (lambda: Adam(clip_value=-1.0), "clip_value must be a finite number > 0, got -1.0"),
        (lambda: SGD(clip_norm=1.0, clip_value=1.0), "clip_norm and clip_value cannot both"),
        (lambda: Warmup(0), "steps must be a positive integer, got 0"),
        (lambda: Warmup(5, then=Cosine(total=10)), "then must count steps as the warm-up"),
        (lambda: Cosine(per="batch"), "per must be one of ['epoch', 'step'], got 'batch'"),
    ],
)
def test_bad_clipping_and_schedule_arguments(make, fragment):
    with pytest.raises(an.InputError) as info:
        make()
    assert fragment in str(info.value)


# -- schedules per step ----------------------------------------------------------------


def test_warmup_rates_are_the_hand_computed_ones():
    warm = Warmup(4)
    assert [warm(0.8, s) for s in range(6)] == [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 0.8]
    started = Warmup(2, start=0.5)
    assert [started(1.0, s) for s in range(3)] == [0.5, 0.75, 1.0]
    cosine = Warmup(2, then=Cosine(total=4, min_lr=0.1, per="step"))
    # after the warm-up, the cosine's own clock: 0.1 + 0.45 * (1 + cos(pi * k / 4))
    half = math.sqrt(0.5)
    want = [0.0, 0.5, 1.0, 0.1 + 0.45 * (1 + half), 0.55, 0.1 + 0.45 * (1 - half), 0.1, 0.1]
    got = [cosine(1.0, s) for s in range(8)]
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-16)
    per_epoch = Warmup(3, then=Exponential(0.5), per="epoch")
    assert [per_epoch(0.9, e) for e in range(5)] == [0.0, 0.3, 0.6, 0.9, 0.45]


def _hand_loop(net, X, y, *, epochs, optimizer, schedule, batch_size, drop_last):
    """Per-step rates by hand: step ``s`` of the run gets ``schedule(lr, s)``."""
    backend = net.backend
    params, opt_state = net.params, optimizer.init(net.params)
    n, s, losses = X.shape[0], 0, []
    for _ in range(epochs):
        total, seen = 0.0, 0
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if drop_last and stop - start < batch_size:
                break
            xb = backend.asarray(X[start:stop], "float64")
            yb = backend.asarray(y[start:stop])
            params, opt_state, loss = F.train_step(
                net.model, optimizer, params, opt_state, xb, yb, lr=schedule(optimizer.lr, s)
            )
            s += 1
            total += float(an.to_numpy(loss)) * (stop - start)
            seen += stop - start
        losses.append(total / seen)
    return params, losses


@pytest.mark.parametrize(
    "batch_size, drop_last",
    [(16, False), (16, True), (50, False)],
    ids=["keep-last", "drop-last", "full-batch"],
)
@pytest.mark.parametrize("engine", ["auto", "eager"])
def test_a_per_step_schedule_in_fit_is_the_hand_written_loop(
    backend, batch_size, drop_last, engine
):
    X, y = an.datasets.planar_flower(n=50)
    schedule = Warmup(6, then=Step(step_size=5, gamma=0.7, per="step"))
    optimizer = SGD(lr=0.6, momentum=0.9, clip_norm=0.4)
    net = an.Network([2, 4, 1], seed=2, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    want, want_losses = _hand_loop(net, X, y, epochs=4, optimizer=optimizer, schedule=schedule,
                                   batch_size=batch_size, drop_last=drop_last)  # fmt: skip
    history = net.fit(X, y, epochs=4, optimizer=optimizer, schedule=schedule, batch_size=batch_size,
                      shuffle=False, drop_last=drop_last, engine=engine)  # fmt: skip
    exact = engine == "eager"
    for key in want:
        np.testing.assert_allclose(_host(net.params[key]), _host(want[key]),
                                   rtol=0 if exact else 1e-12, atol=0 if exact else 1e-15,
                                   err_msg=key)  # fmt: skip
    np.testing.assert_allclose(history.loss, want_losses, rtol=1e-14)
    steps = {16: 3 if drop_last else 4, 50: 1}[batch_size]
    assert history.lr == [schedule(0.6, epoch * steps) for epoch in range(4)]


def test_a_per_step_schedule_resumes_where_it_stopped(backend, tmp_path):
    X, y = an.datasets.planar_flower(n=40)
    schedule = Warmup(5, then=Cosine(total=30, per="step"))

    def make():
        return an.Network([2, 3, 1], seed=1, dtype="float64", backend=backend.name,
                          device=backend.device)  # fmt: skip

    whole = make()
    whole.fit(X, y, epochs=6, lr=0.5, optimizer="adam", schedule=schedule, batch_size=16, seed=3)
    path = tmp_path / "run.npz"
    first = make()
    first.fit(X, y, epochs=3, lr=0.5, optimizer="adam", schedule=schedule, batch_size=16, seed=3,
              checkpoint=path)  # fmt: skip
    second = make()
    second.fit(X, y, epochs=6, lr=0.5, optimizer="adam", schedule=schedule, batch_size=16, seed=3,
               resume=path)  # fmt: skip
    for key in whole.params:
        np.testing.assert_allclose(_host(second.params[key]), _host(whole.params[key]),
                                   rtol=1e-12, atol=1e-15)  # fmt: skip


def test_a_function_with_per_step_is_asked_every_step(backend):
    def halving(lr, step):
        return lr / (1 + step)

    halving.per = "step"
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    history = net.fit(X, y, epochs=3, lr=0.4, batch_size=16, schedule=halving)  # 3 steps an epoch
    assert history.lr == [0.4, 0.4 / 4, 0.4 / 7]


def test_a_schedule_with_an_unknown_clock_is_refused(backend):
    class Odd:
        per = "batch"

        def __call__(self, lr, i):
            return lr

    net = an.Network([2, 3, 1], seed=0, backend=backend.name, device=backend.device)
    X, y = an.datasets.planar_flower(n=20)
    with pytest.raises(an.InputError, match=r"schedule.per must be one of \['epoch', 'step'\]"):
        net.fit(X, y, epochs=1, schedule=Odd())


# -- dtypes ----------------------------------------------------------------------------


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_is_refused_naming_what_each_backend_runs(backend, half):
    with pytest.raises(an.InputError) as info:
        an.Network([2, 1], dtype=half, backend=backend.name, device=backend.device)
    message = str(info.value)
    assert message.startswith(f"dtype must be one of ['float32', 'float64'], got '{half}'. ")
    assert f"{half} is not supported on any backend" in message
    for name in an.available_backends():
        assert f"{name}: float32, float64" in message
    assert "float64 needs JAX_ENABLE_X64=1" in message


def test_checkpoints_of_earlier_versions_still_resume():
    """A checkpoint records its optimizer and schedule as text; the fields added since
    (clip_norm, clip_value, per) are left out at their defaults, so what an earlier
    version wrote (the dataclass repr of the fields it had) still matches."""
    from anynet.engine.resume import run_config

    config = run_config(SGD(lr=0.1, momentum=0.9), 16, True, False, Cosine(total=40))
    assert config["optimizer"] == "SGD(lr=0.1, l2=0.0, momentum=0.9, nesterov=False)"
    assert config["schedule"] == "Cosine(total=40, min_lr=0.0)"
    config = run_config(Adam(clip_norm=1.0), None, True, False, Cosine(total=40, per="step"))
    assert "clip_norm=1.0" in config["optimizer"] and "per='step'" in config["schedule"]
