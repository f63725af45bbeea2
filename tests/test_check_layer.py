"""anynet.testing.check_layer: every public layer passes, planted bugs fail by name.

Each test runs once per backend under test (the ``backend`` fixture): the gradients and
finite differences are computed there, and the agreement check compares it with NumPy.
The references are independent of the code checked: central finite differences, and
PyTorch's or JAX's autodiff where installed (``oracle="all"``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import anynet as an
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
from anynet.testing import (
    GRADIENT_RTOL,
    RTOL,
    GradientCheckError,
    LayerCheckError,
    LayerReport,
    check_gradients,
    check_layer,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def case(backend: an.Backend) -> tuple[str, object]:
    """``backend`` as a (name, device) pair for ``backends=``."""
    return (backend.name, backend.device)


def generic_point(layer: Layer, n_in: int, seed: int = 1) -> tuple[dict, dict]:
    """Parameters and state away from the special values ``init`` draws (gamma = 1,
    beta = 0, running mean 0 and variance 1), where a missing factor would hide."""
    rng = np.random.default_rng(seed)
    params, _ = layer.init(rng, n_in)
    state = layer.init_state(rng, n_in)
    params = {key: value + 0.4 * rng.normal(size=value.shape) for key, value in params.items()}
    moved = {}
    for key, value in state.items():
        if key.endswith("var"):
            moved[key] = rng.uniform(0.5, 2.0, size=value.shape)
        elif key.endswith("mean"):
            moved[key] = rng.normal(size=value.shape)
        else:  # dropout's [seed, step]: kept
            moved[key] = value
    return params, moved


def check(layer: Layer, n_in: int, backend: an.Backend, **options) -> LayerReport:
    """check_layer on ``backend``, agreement with NumPy on ``backend``, every oracle here."""
    options.setdefault("oracle", "all")
    return check_layer(layer, n_in, backend=backend, backends=[case(backend)], **options)


# ------------------------------------------------------------------ every public layer

LAYERS = [
    ("dense", lambda: Dense(3), 4),
    ("tanh", Tanh, 4),
    ("sigmoid", Sigmoid, 4),
    ("relu", ReLU, 4),
    ("leaky_relu", lambda: LeakyReLU(0.2), 4),
    ("identity", Identity, 4),
    ("softmax", Softmax, 4),
    ("dropout", lambda: Dropout(0.3), 5),
    ("layer_norm", LayerNorm, 4),
    ("batch_norm", BatchNorm, 3),
    (
        "residual_two_deep",
        lambda: Residual(
            LayerNorm(),
            Dense(3),
            "tanh",
            Residual(BatchNorm(), Dense(3), LeakyReLU(0.2), Dropout(0.25)),
            Dense(3),
        ),
        3,
    ),
]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("make, n_in", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_every_public_layer_passes(backend, make, n_in, train):
    layer = make()
    params, state = generic_point(layer, n_in)
    report = check(layer, n_in, backend, train=train, params=params, state=state)
    assert isinstance(report, LayerReport) and report.ok, str(report)
    assert [row.name for row in report.rows] == ["dx", *layer.param_names]
    assert report.worst <= GRADIENT_RTOL["float64"]
    for oracle, errors in report.oracle_errors.items():
        assert max(errors.values()) <= RTOL["float64"], (oracle, str(report))
    (label,) = report.agreement.backends
    outputs = {row.output for row in report.agreement.rows if row.backend == label}
    assert {"y", "dx"} <= outputs
    assert {f"grads[{key}]" for key in layer.param_names} <= outputs
    assert {f"state[{key}]" for key in layer.state_names} <= outputs
    assert report.backend == backend.describe()


def test_train_mode_is_really_checked():
    """Dropout drops and BatchNorm uses batch statistics in train mode: other numbers."""
    for layer, n_in in [(Dropout(0.3), 5), (BatchNorm(), 3)]:
        params, state = generic_point(layer, n_in)
        options = {"params": params, "state": state, "backends": []}
        evaluation = check_layer(layer, n_in, train=False, **options)
        training = check_layer(layer, n_in, train=True, **options)
        assert abs(training.objective - evaluation.objective) > 1e-3


# ------------------------------------------------------------------ user-written layers


@dataclass(frozen=True)
class Affine(Layer):
    """A user's layer ``y = tanh(x @ W.T + b)`` with a hand-written backward.

    ``b_factor`` scales the gradient of ``b``; ``forget_tanh_in_dx`` leaves the tanh
    derivative out of ``dx``: two planted bugs.
    """

    units: int = 3
    b_factor: float = 1.0
    forget_tanh_in_dx: bool = False

    param_names: ClassVar[tuple[str, ...]] = ("W", "b")

    def init(self, rng, n_in):
        return {"W": rng.normal(size=(self.units, n_in)), "b": rng.normal(size=self.units)}, (
            self.units
        )

    def forward(self, params, x, *, xp, train):
        y = xp.tanh(xp.matmul(x, xp.matrix_transpose(params["W"])) + params["b"])
        return y, (x, y)

    def backward(self, params, cache, dy, *, xp):
        x, y = cache
        dz = dy * (1 - y * y)
        dx = xp.matmul(dy if self.forget_tanh_in_dx else dz, params["W"])
        grads = {"W": xp.matmul(xp.matrix_transpose(dz), x), "b": xp.sum(dz, axis=0)}
        return dx, {**grads, "b": grads["b"] * self.b_factor}


def test_a_correct_user_layer_passes(backend):
    report = check(Affine(), 4, backend)
    assert report.ok and [row.name for row in report.rows] == ["dx", "W", "b"]


def test_a_parameter_gradient_off_by_one_percent_is_caught_and_named(backend):
    with pytest.raises(LayerCheckError) as caught:
        check(Affine(b_factor=1.01), 4, backend)
    assert isinstance(caught.value, GradientCheckError)
    message = str(caught.value)
    report = caught.value.report
    assert "b[" in message and "backward gives" in message and "finite differences" in message
    assert "W[" not in message and "dx[" not in message  # only the broken gradient is named
    assert report.errors["b"] > 1e-3
    assert report.errors["W"] <= GRADIENT_RTOL["float64"]
    assert report.errors["dx"] <= GRADIENT_RTOL["float64"]
    for oracle, errors in report.oracle_errors.items():
        assert errors["b"] > 1e-3 and f"{oracle} autodiff" in message
    assert "FAILED" in message


def test_a_wrong_dx_is_caught_and_named(backend):
    with pytest.raises(LayerCheckError) as caught:
        check(Affine(forget_tanh_in_dx=True), 4, backend)
    message = str(caught.value)
    assert "dx[" in message
    assert "W[" not in message and "b[" not in message
    assert caught.value.report.errors["dx"] > 1e-2


@dataclass(frozen=True, init=False)
class ColumnsWithoutBias(Dense):
    """Declares itself layout-free but forgets the bias in the columns layout (a planted bug)."""

    def forward(self, params, x, *, xp, train, axis=-1):
        if axis == 0:
            return xp.matmul(params["W"], x), x
        return super().forward(params, x, xp=xp, train=train)


def test_a_layout_free_layer_is_checked_in_columns_too(backend):
    assert Dense.layout_free and Tanh.layout_free and not LayerNorm.layout_free
    assert check(Dense(3), 4, backend).ok
    params, _ = generic_point(ColumnsWithoutBias(3), 4)  # b is not zero there
    with pytest.raises(LayerCheckError) as caught:
        check(ColumnsWithoutBias(3), 4, backend, params=params)
    message = str(caught.value)
    assert "layout_free" in message and "axis=0" in message and "y" in message
    # the rows path is right: the gradients themselves still pass
    assert caught.value.report.errors["b"] <= GRADIENT_RTOL["float64"]


@dataclass(frozen=True)
class FastFirstLayer(Affine):
    """Overrides backward_params (used for a network's first layer) with a wrong ``W``."""

    def backward_params(self, params, cache, dy, *, xp):
        grads = self.backward(params, cache, dy, xp=xp)[1]
        return {**grads, "W": grads["W"] * 2}


@dataclass(frozen=True)
class WrongKeys(Affine):
    """Its backward forgets the gradient of ``b``."""

    def backward(self, params, cache, dy, *, xp):
        dx, grads = super().backward(params, cache, dy, xp=xp)
        return dx, {"W": grads["W"]}


def test_protocol_problems_are_caught():
    with pytest.raises(LayerCheckError, match="backward_params' gradient 'W' differs"):
        check_layer(FastFirstLayer(), 4, backends=[])
    with pytest.raises(LayerCheckError, match=r"backward must return gradients with the keys"):
        check_layer(WrongKeys(), 4, backends=[])


@dataclass(frozen=True)
class OffOnOtherBackends(Affine):
    """Correct on NumPy; off by 1e-6 relative in the gradient of ``W`` elsewhere."""

    def backward(self, params, cache, dy, *, xp):
        dx, grads = super().backward(params, cache, dy, xp=xp)
        if xp is an.get_backend("numpy").xp:
            return dx, grads
        return dx, {**grads, "W": grads["W"] * (1 + 1e-6)}


def test_a_backend_that_disagrees_is_caught_and_named(backend):
    if backend.name == "numpy":
        pytest.skip("the planted gradient differs on every backend but NumPy, the reference")
    # finite differences on NumPy pass; only the agreement check sees the other backend
    with pytest.raises(LayerCheckError) as caught:
        check_layer(OffOnOtherBackends(), 4, backends=[case(backend)])
    message = str(caught.value)
    label = caught.value.report.agreement.backends[0]
    assert f"gradient W on {label} disagrees with numpy" in message
    failed = {row.output for row in caught.value.report.agreement.failures()}
    assert failed == {"grads[W]"}


@dataclass(frozen=True)
class ForgetsGamma(LayerNorm):
    """A layer norm whose dx leaves out gamma: invisible where init puts gamma = 1."""

    def backward(self, params, cache, dy, *, xp):
        _, grads = super().backward(params, cache, dy, xp=xp)
        dx, _ = super().backward(
            {**params, "gamma": xp.ones_like(params["gamma"])}, cache, dy, xp=xp
        )
        return dx, grads


def test_params_move_the_check_away_from_special_points(backend):
    assert check(ForgetsGamma(), 4, backend).ok  # gamma = 1: the bug hides
    params, _ = generic_point(ForgetsGamma(), 4)
    with pytest.raises(LayerCheckError, match=r"dx\[") as caught:
        check(ForgetsGamma(), 4, backend, params=params)
    assert caught.value.report.errors["gamma"] <= GRADIENT_RTOL["float64"]


# ------------------------------------------------------------------ random stacks

ACTIVATIONS = [Tanh, Sigmoid, ReLU, lambda: LeakyReLU(0.2), Identity]


def random_stack(rng: np.random.Generator, width: int, depth: int, nest: int = 1) -> list:
    """Up to ``depth`` layers mixing Dense, activations, LayerNorm, BatchNorm, Dropout and
    (``nest`` levels of) nested Residual blocks; the last layer brings back ``width``."""
    layers: list[Layer] = []
    current = width
    kinds = ["dense", "activation", "layer_norm", "batch_norm", "dropout"]
    kinds += ["residual"] * (nest > 0)
    for _ in range(int(rng.integers(1, depth + 1))):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "dense":
            current = int(rng.integers(2, 5))
            layers.append(Dense(current))
        elif kind == "activation":
            layers.append(ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]())
        elif kind == "layer_norm":
            layers.append(LayerNorm())
        elif kind == "batch_norm":
            layers.append(BatchNorm())
        elif kind == "dropout":
            layers.append(Dropout(0.25))
        else:
            layers.append(Residual(*random_stack(rng, current, 3, nest - 1)))
    if current != width:
        layers.append(Dense(width))
    return layers


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_random_stacks_through_a_residual(backend, seed):
    rng = np.random.default_rng(seed)
    block = Residual(*random_stack(rng, 3, depth=6, nest=2))
    train = bool(seed % 2)
    params, state = generic_point(block, 3, seed)
    # finite differences and agreement; the oracles see every layer in the test above
    report = check(
        block, 3, backend, train=train, seed=seed, params=params, state=state, oracle=None
    )
    assert report.ok, str(report)
    assert len(report.rows) == 1 + len(block.param_names)


@pytest.mark.parametrize("seed", [10])
def test_random_stacks_in_a_network(backend, seed):
    """The same kind of stack as a whole model: the network's backprop (evaluation mode)."""
    rng = np.random.default_rng(seed)
    layers = [*random_stack(rng, 3, depth=6, nest=2), Dense(2), "softmax"]
    net = an.Sequential(layers, inputs=3, seed=seed, dtype="float64", backend=backend)
    X = rng.normal(size=(10, 3))
    y = rng.integers(0, 2, size=10)
    report = check_gradients(net, X, y, max_entries=None)
    assert report.ok and report.worst <= GRADIENT_RTOL["float64"], str(report)
    assert sorted(report.errors) == sorted(net.params)


# ------------------------------------------------------------------ report, arguments


def test_report_is_a_readable_table():
    report = check_layer(Affine(), 4, backends=["numpy"])
    lines = str(report).splitlines()
    assert lines[0].startswith("check_layer Affine(units=3, b_factor=1.0")
    assert "on numpy" in lines[0] and "x (8, 4) -> y (8, 3)" in lines[0]
    assert "L = sum(y * dy)" in lines[1] and "eps=1e-05" in lines[1]
    assert lines[2].split() == ["gradient", "shape", "max|grad|", "FD", "error", "status"]
    assert [line.split()[0] for line in lines[4:7]] == ["dx", "W", "b"]
    assert all(line.endswith("ok") for line in lines[4:7])
    assert lines[7] == "L2 (l2=) decays: W (by default: parameters with ndim >= 2)"
    assert lines[8].startswith("agreement across backends: backends against numpy (float64)")
    assert "failed" not in str(report)


def test_default_backends_are_every_float64_backend_and_the_stand_in_device():
    expected = []
    for name in an.available_backends():
        expected.append(name)
        if name == "array_api_strict":
            expected.append("array_api_strict:device1")
    report = check_layer(Dense(2), 3)
    assert report.agreement.backends == expected
    skipped = check_layer(Dense(2), 3, backends=[])
    assert skipped.agreement is None
    assert "agreement across backends: not checked" in str(skipped)


def test_arguments_are_checked():
    for kwargs, message in [
        ({"oracle": "tf"}, "oracle must be None, 'torch', 'jax' or 'all', got 'tf'"),
        ({"train": "yes"}, "train must be True or False, got 'yes'"),
        ({"n_samples": 0}, "n_samples must be a positive integer, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"eps": 0.0}, "eps must be a finite number > 0, got 0"),
        ({"backends": "torch"}, "backends must be a list of backends"),
        ({"params": {"W": np.ones((2, 3))}}, r"params must have exactly the keys \['W', 'b'\]"),
        ({"params": {"W": np.ones((3, 3)), "b": np.ones(2)}}, r"params\['W'\] must have shape"),
    ]:
        with pytest.raises(an.InputError, match=message):
            check_layer(Dense(2), 3, **kwargs)
    with pytest.raises(an.InputError, match="n_in must be a positive integer, got 0"):
        check_layer(Dense(2), 0)
    with pytest.raises(an.InputError, match="layer must be an anynet.layers.Layer"):
        check_layer(42, 3)
    assert check_layer("relu", 3, backends=[]).layer == "relu"  # a registered name


def test_missing_oracles(monkeypatch):
    real_import = importlib.import_module

    def refuse(module, *args, **kwargs):
        if module.split(".")[0] in ("torch", "jax"):
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    with pytest.raises(an.BackendError, match="oracle='torch' needs torch, which is not installed"):
        check_layer(Dense(2), 3, oracle="torch", backends=[])
    report = check_layer(Dense(2), 3, oracle="all", backends=[])  # every installed one: none
    assert report.oracles == () and report.ok


def test_jax_without_x64_is_explained(tmp_path):
    pytest.importorskip("jax", reason="needs jax")
    code = (
        "import anynet as an\n"
        "from anynet.layers import Dense\n"
        "from anynet.testing import check_layer\n"
        "try:\n"
        "    check_layer(Dense(2), 3, backend='jax', backends=[])\n"
        "except an.BackendError as e:\n"
        "    print('ERROR', e)\n"
        "print('ORACLE', check_layer(Dense(2), 3, oracle='jax', backends=[]).oracles)\n"
    )
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "JAX_ENABLE_X64": "0", "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR check_layer computes in float64 on the backend asked for" in result.stdout
    assert "JAX_ENABLE_X64=1" in result.stdout
    assert "ORACLE ('jax',)" in result.stdout  # the oracle turns x64 on locally
