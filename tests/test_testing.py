"""anynet.testing: gradient checks, cross-backend comparison, pytest helpers.

Each feature is shown to pass on correct code *and* to fail on planted bugs: a
wrong derivative, a backend whose tanh is off by 1e-6, a backend that crashes.
"""

from __future__ import annotations

import copy
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
from problems import HEADS, HIDDEN, make_problem, plant_activation

import anynet as an
from anynet import backend as backend_module
from anynet.testing import (
    ATOL,
    GRADIENT_RTOL,
    RTOL,
    BackendMismatch,
    Comparison,
    GradientCheckError,
    GradientReport,
    assert_backends_agree,
    backend_fixture,
    backend_params,
    check_gradients,
    compare_backends,
    relative_errors,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pythonpath() -> str:
    """This checkout first, then whatever PYTHONPATH the test run has."""
    return os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))


def every_kind_of_network(backend, dtype="float64"):
    """(net, X, y) covering every hidden activation (twice), every output and every loss."""
    for index, (head, loss, n_out) in enumerate(HEADS):
        hidden = [HIDDEN[index % 5], HIDDEN[(index + 1) % 5]]
        X, y = make_problem(loss, n_out, n=12, seed=index)
        net = an.Network(
            [3, 4, 3, n_out],
            [*hidden, head],
            loss,
            init="xavier",
            seed=index,
            dtype=dtype,
            backend=backend,
        )
        yield net, X, y


def flower_net(backend, dtype="float64", init="xavier"):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network(
        [2, 4, 1], ["tanh", "sigmoid"], init=init, seed=0, dtype=dtype, backend=backend
    )
    return net, X, y


class ShiftedTanh:
    """A backend's namespace whose ``tanh`` is off by 1e-6; everything else passes through."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def tanh(self, x):
        return self._xp.tanh(x) + 1e-6


def shifted(backend: an.Backend) -> an.Backend:
    """A copy of ``backend`` computing with :class:`ShiftedTanh`."""
    clone = copy.copy(backend)
    clone.xp = ShiftedTanh(backend.xp)
    return clone


def case(backend: an.Backend):
    """``backend`` as a (name, device) pair for the ``backends=`` argument."""
    return (backend.name, backend.device)


# ------------------------------------------------------------------ check_gradients


def test_check_gradients_passes_on_every_activation_and_loss(backend):
    for net, X, y in every_kind_of_network(backend):
        report = check_gradients(net, X, y, max_entries=6)
        assert isinstance(report, GradientReport)
        assert sorted(report.errors) == sorted(net.params)
        assert report.ok and report.worst <= GRADIENT_RTOL["float64"], str(report)


def test_check_gradients_float32_uses_float32_tolerances(backend):
    net, X, y = flower_net(backend, dtype="float32")
    report = check_gradients(net, X, y)
    assert report.rtol == GRADIENT_RTOL["float32"]
    assert report.dtype == "float32"
    assert report.worst < report.rtol
    assert net.params["W1"].dtype == backend.dtype("float32")  # the network is untouched


def test_check_gradients_leaves_the_network_unchanged(backend):
    net, X, y = flower_net(backend)
    before = {key: an.to_numpy(value).copy() for key, value in net.params.items()}
    check_gradients(net, X, y)
    for key, value in net.params.items():
        np.testing.assert_array_equal(an.to_numpy(value), before[key])
        assert an.backend_of(value) == backend.name


def test_wrong_derivative_is_caught_and_named(backend, monkeypatch):
    plant_activation(monkeypatch, "tanh", backward_factor=1.1)
    net, X, y = flower_net(backend)
    with pytest.raises(GradientCheckError) as caught:
        check_gradients(net, X, y)
    message = str(caught.value)
    report = caught.value.report
    # the hidden layer's tanh derivative feeds W1 and b1 only
    assert report.errors["W1"] > 1e-2 and report.errors["b1"] > 1e-2
    assert report.errors["W2"] < 1e-6 and report.errors["b2"] < 1e-6
    assert "FAILED" in message and "W1[" in message and "b1[" in message
    assert "hand-written gradient" in message and "finite differences" in message
    assert "W2[" not in message  # only failing parameters are listed


def test_report_is_a_readable_table():
    net, X, y = flower_net("numpy")
    report = check_gradients(net, X, y, max_entries=3)
    text = str(report)
    lines = text.splitlines()
    assert "[2, 4, 1] tanh,sigmoid binary_crossentropy" in lines[0]
    assert lines[2].split() == ["param", "shape", "checked", "max|grad|", "FD", "error", "status"]
    assert lines[4].startswith("W1") and "3/8" in lines[4] and lines[4].endswith("ok")
    assert [row.checked for row in report.rows] == [3, 3, 3, 1]


def test_check_gradients_arguments_are_checked():
    net, X, y = flower_net("numpy")
    with pytest.raises(an.InputError, match="oracle must be None, 'jax' or 'torch', got 'tf'"):
        check_gradients(net, X, y, oracle="tf")
    with pytest.raises(an.InputError, match="max_entries must be an integer >= 0 or None"):
        check_gradients(net, X, y, max_entries=-1)
    with pytest.raises(an.InputError, match="max_entries=0 skips the finite differences"):
        check_gradients(net, X, y, max_entries=0)
    with pytest.raises(an.InputError, match="eps must be a finite number"):
        check_gradients(net, X, y, eps=-1.0)


ORACLES = ["jax", "torch"]


@pytest.mark.parametrize("oracle", ORACLES)
def test_oracle_agrees_on_every_activation_and_loss(backend, oracle):
    pytest.importorskip(oracle, reason=f"oracle={oracle!r} needs {oracle}, not installed here")
    for net, X, y in every_kind_of_network(backend):
        report = check_gradients(net, X, y, oracle=oracle, max_entries=0)
        assert report.oracle == oracle
        assert max(report.oracle_errors.values()) <= RTOL["float64"], str(report)


@pytest.mark.parametrize("oracle", ORACLES)
def test_oracle_catches_a_derivative_finite_differences_blur(oracle, monkeypatch):
    pytest.importorskip(oracle, reason=f"oracle={oracle!r} needs {oracle}, not installed here")
    plant_activation(monkeypatch, "tanh", backward_factor=1 + 1e-8)
    net, X, y = flower_net("numpy")
    assert check_gradients(net, X, y).ok  # 1e-8 hides in finite differences' noise
    with pytest.raises(GradientCheckError, match=f"{oracle} autodiff") as caught:
        check_gradients(net, X, y, oracle=oracle)
    assert "finite differences" not in "\n".join(caught.value.report.failures())
    assert caught.value.report.oracle_errors["W1"] > RTOL["float64"]


def test_missing_oracle_library_is_explained(monkeypatch):
    real_import = importlib.import_module

    def refuse(module, *args, **kwargs):
        if module == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    net, X, y = flower_net("numpy")
    with pytest.raises(an.BackendError, match="oracle='torch' needs torch, which is not installed"):
        check_gradients(net, X, y, oracle="torch")


def test_jax_without_x64(tmp_path):
    """Finite differences on JAX need x64 (clear error); the JAX oracle turns it on locally."""
    pytest.importorskip("jax", reason="needs jax")
    code = (
        "import anynet as an\n"
        "from anynet.testing import check_gradients\n"
        "X, y = an.datasets.planar_flower(n=20)\n"
        "net = an.Network([2, 3, 1], seed=0, dtype='float32', backend='jax')\n"
        "try:\n"
        "    check_gradients(net, X, y)\n"
        "except an.BackendError as e:\n"
        "    print('ERROR', e)\n"
        "ref = an.Network([2, 3, 1], seed=0, dtype='float64', backend='numpy')\n"
        "print('ORACLE', max(check_gradients(ref, X, y, oracle='jax').oracle_errors.values()))\n"
        "import jax\n"
        "print('x64', jax.config.read('jax_enable_x64'))\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "PYTHONPATH": pythonpath()}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR check_gradients computes finite differences in float64" in result.stdout
    assert "JAX_ENABLE_X64=1" in result.stdout
    oracle_error = float(result.stdout.split("ORACLE ")[1].split()[0])
    assert oracle_error <= 1e-10
    assert "x64 False" in result.stdout  # the oracle's x64 was local


# ------------------------------------------------------------------ compare_backends


def several_outputs(xp, x, labels, scale):
    h = xp.tanh(x) * scale
    return {"h": h, "pair": (xp.sum(h, axis=0), xp.max(h)), "labels": labels + 1}


def test_compare_backends_on_a_function(backend):
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(5, 3)), np.arange(5)
    result = compare_backends(several_outputs, x, labels, 2.0, backends=[case(backend)])
    assert isinstance(result, Comparison)
    assert result.ok, str(result)
    assert result.reference == "numpy" and result.dtype == "float64"
    assert result.rtol == RTOL["float64"] and result.atol == ATOL["float64"]
    assert [row.output for row in result.rows] == ["h", "pair[0]", "pair[1]", "labels"]
    assert [row.shape for row in result.rows] == [(5, 3), (3,), (), (5,)]
    assert result.max_rel() <= RTOL["float64"]
    label = result.backends[0]
    np.testing.assert_array_equal(result.outputs[label]["labels"], labels + 1)
    assert set(result.times) == {"numpy", label}
    assert label in str(result) and "max|diff|" in str(result)


def test_compare_backends_on_a_network(backend):
    net, X, y = flower_net("numpy")
    before = an.to_numpy(net.params["W1"]).copy()
    result = compare_backends(net, X, y, backends=[case(backend)], epochs=5, lr=0.5)
    outputs = [row.output for row in result.rows]
    assert outputs[:3] == ["forward", "loss", "gradients[W1]"]
    assert "fit loss" in outputs and "fit W1" in outputs and "fit b2" in outputs
    assert result.ok, str(result)
    label = result.backends[0]
    assert result.outputs[label]["fit loss"].shape == (5,)
    np.testing.assert_array_equal(an.to_numpy(net.params["W1"]), before)  # not trained
    assert not np.array_equal(result.outputs["numpy"]["fit W1"], before)
    # the trained network's outputs and loss, recomputed here from its parameters
    assert outputs[-2:] == ["fit forward", "fit final loss"]
    trained = net.to("numpy").set_params({k: result.outputs[label][f"fit {k}"] for k in net.params})
    np.testing.assert_allclose(
        result.outputs[label]["fit forward"], an.to_numpy(trained.forward(X))
    )
    assert float(result.outputs[label]["fit final loss"]) == pytest.approx(trained.loss(X, y))
    assert set(result.fit_times) == {"numpy", label}
    assert all(0 < result.fit_times[key] <= result.times[key] for key in result.fit_times)


def test_compare_backends_on_a_sequential_network_with_state(backend):
    from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm

    layers = [Dense(5), BatchNorm(), "tanh", Dropout(0.2), LayerNorm(), Dense(1), "sigmoid"]
    net = an.Sequential(layers, inputs=2, seed=0, dtype="float64")
    assert sorted(net.state) == ["mean2", "rng3", "var2"]
    X, y = an.datasets.planar_flower(n=40)
    result = compare_backends(net, X, y, backends=[case(backend)], epochs=4, lr=0.5)
    assert result.ok, str(result)
    label = result.backends[0]
    outputs = {row.output for row in result.rows if row.backend == label}
    assert {f"fit {key}" for key in [*net.params, *net.state]} <= outputs
    trained = result.outputs[label]
    assert not np.array_equal(trained["fit mean2"], np.zeros(5))  # running statistics moved
    assert trained["fit rng3"][1] == 4  # one dropout step per full-batch epoch
    report = check_gradients(net, X[:12], y[:12], max_entries=4)
    assert report.network.startswith("[Dense(5), BatchNorm(momentum=0.9, eps=1e-05), tanh")
    assert report.network.endswith("-> sigmoid + binary_crossentropy")


def test_float32_comparison_uses_float32_tolerances(backend):
    x = np.linspace(-3, 3, 7)
    result = compare_backends(lambda xp, x: xp.exp(x), x, backends=[case(backend)], dtype="float32")
    assert result.rtol == RTOL["float32"] and result.atol == ATOL["float32"]
    label = result.backends[0]
    assert result.outputs[label]["output"].dtype == np.float32
    assert result.ok, str(result)


def test_a_backend_whose_tanh_is_off_by_1e6_is_caught(backend):
    bad = shifted(backend)
    x = np.linspace(-2, 2, 9)
    with pytest.raises(BackendMismatch) as caught:
        assert_backends_agree(lambda xp, x: xp.tanh(x), x, backends=[bad])
    message = str(caught.value)
    assert "FAILED" in message and "output" in message
    row = caught.value.comparison.rows[0]
    assert not row.ok and row.max_abs == pytest.approx(1e-6, rel=1e-3)
    net, X, y = flower_net("numpy")
    with pytest.raises(BackendMismatch, match="forward"):
        assert_backends_agree(net, X, y, backends=[bad], epochs=3)
    # a looser tolerance accepts it: the tolerance really is the criterion
    assert_backends_agree(lambda xp, x: xp.tanh(x), x, backends=[bad], rtol=1e-3, atol=1e-5)


def test_a_planted_tanh_in_the_library_is_caught(backend, monkeypatch):
    if backend.name == "numpy":
        pytest.skip("the planted tanh differs on every backend but NumPy, the reference")
    plant_activation(monkeypatch, "tanh", forward_shift=1e-6)
    net, X, y = flower_net("numpy")
    with pytest.raises(BackendMismatch) as caught:
        assert_backends_agree(net, X, y, backends=[case(backend)], epochs=3)
    failed = {row.output for row in caught.value.comparison.failures()}
    assert {"forward", "gradients[W1]", "fit W1"} <= failed


def test_a_crashing_backend_is_reported_and_the_others_still_run():
    numpy = an.get_backend("numpy")
    bad = shifted(numpy)

    def fragile(xp, x):
        if isinstance(xp, ShiftedTanh):
            raise RuntimeError("kernel exploded")
        return xp.tanh(x)

    result = compare_backends(fragile, np.ones(3), backends=[bad, "numpy"])
    assert not result.ok
    assert result.rows[0].note == "raised RuntimeError: kernel exploded"
    assert result.rows[1].ok  # the reference run again: deterministic
    with pytest.raises(BackendMismatch, match="kernel exploded"):
        result.check()


def test_shape_and_key_mismatches_are_failures():
    bad = shifted(an.get_backend("numpy"))

    def inconsistent(xp, x):
        if isinstance(xp, ShiftedTanh):
            return {"a": x[:2], "extra": x}
        return {"a": x, "b": x}

    result = compare_backends(inconsistent, np.ones(3), backends=[bad])
    notes = {row.output: row.note for row in result.rows}
    assert notes == {
        "a": "shape (2,) != reference (3,)",
        "b": "missing on this backend",
        "extra": "not in the reference's outputs",
    }
    assert not result.ok


def test_compare_backends_arguments_are_checked():
    with pytest.raises(an.InputError, match="fn_or_net must be a function"):
        compare_backends(42, np.ones(2))
    with pytest.raises(an.InputError, match="dtype must be 'float32' or 'float64', got 'int8'"):
        compare_backends(lambda xp, x: x, np.ones(2), dtype="int8")
    with pytest.raises(an.BackendError, match="backend must be one of"):
        compare_backends(lambda xp, x: x, np.ones(2), backends=["tensorflow"])
    net, X, _ = flower_net("numpy")
    with pytest.raises(an.InputError, match="needs exactly the inputs X and y"):
        compare_backends(net, X)


def test_relative_errors_floor_and_non_finite_values():
    errors = relative_errors(
        [1.0, 1e-20, np.nan, np.inf, 2.0], [1.0 + 1e-9, 0.0, np.nan, 1.0, 2.0], rtol=1e-6, atol=1e-9
    )
    assert errors[0] == pytest.approx(1e-9, rel=1e-6)
    assert errors[1] == pytest.approx(1e-20 / 1e-3)  # below atol / rtol: compared absolutely
    assert errors[2] == 0 and errors[3] == np.inf and errors[4] == 0


# ------------------------------------------------------------------ pytest helpers


def test_backend_params_cover_every_backend_and_device():
    params = backend_params()
    ids = [param.id for param in params]
    assert ids == [*an.BACKEND_NAMES[:2], "array_api_strict-device1", *an.BACKEND_NAMES[2:]]
    available = set(an.available_backends())
    for param in params:
        ((name, _device),) = param.values
        skips = [mark for mark in param.marks if mark.name == "skip"]
        assert bool(skips) == (name not in available)


def test_backend_params_skip_missing_backends_with_the_reason(monkeypatch):
    real_import = importlib.import_module

    def refuse(module, *args, **kwargs):
        if module == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    monkeypatch.setattr(backend_module.select, "_cache", {})
    (param,) = backend_params(["torch"])
    (mark,) = param.marks
    assert mark.name == "skip"
    assert "torch: backend 'torch' is not installed" in mark.kwargs["reason"]
    assert "pip install torch" in mark.kwargs["reason"]


def test_backend_params_can_require_a_dtype():
    pytest.importorskip("jax", reason="needs jax")
    jax = pytest.importorskip("jax")
    (param,) = backend_params(["jax"], dtype="float64")
    assert bool(param.marks) != bool(jax.config.read("jax_enable_x64"))


my_backend = backend_fixture(["numpy", "array_api_strict"], name="my_backend")


def test_backend_fixture_gives_backends(my_backend):
    assert isinstance(my_backend, an.Backend)
    assert my_backend.name in ("numpy", "array_api_strict")
    net, X, _ = flower_net(my_backend)
    assert an.backend_of(net.forward(X)) == my_backend.name


def test_importing_anynet_testing_needs_neither_pytest_nor_backends():
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None  # as if pytest were not installed\n"
        "import anynet.testing\n"
        "loaded = [m for m in ('jax', 'torch', 'cupy', 'array_api_strict', '_pytest') "
        "if m in sys.modules]\n"
        "print('loaded', loaded)\n"
        "try:\n"
        "    anynet.testing.backend_params()\n"
        "except ImportError as e:\n"
        "    print('ImportError', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "loaded []" in result.stdout
    assert "ImportError anynet.testing.backend_params needs pytest" in result.stdout
