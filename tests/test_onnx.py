"""ONNX export: the network's math run on ndonnx arrays, the model run by onnxruntime.

Every exported model is run by onnxruntime and compared with the network itself
(``predict_proba``, ``predict``, ``forward``) at 1e-12 (float64) or 1e-6 (float32), on
two batch sizes from one session. Needs the optional extra ``anynet[onnx]`` (the NumPy
session installs it; ``nox -s onnx`` runs this file alone); the tests of ``import anynet``
without it run everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
    Exp,
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
from anynet.onnx import OUTPUTS, OnnxExportError, export_onnx, to_onnx


def needs_onnx(test):
    """Skip unless the optional extra anynet[onnx] is installed."""
    for module in ("onnxruntime", "onnx", "ndonnx"):
        test = pytest.mark.needs(module, reason=f"needs {module}: pip install anynet[onnx]")(test)
    return test


TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def host(array) -> np.ndarray:
    return np.asarray(an.to_numpy(array))


def run(path_or_model, X, names=None):
    """The model's outputs on ``X`` as a dict, through onnxruntime."""
    import onnxruntime as ort

    source = path_or_model if isinstance(path_or_model, str) else None
    if source is None:
        source = path_or_model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = names or [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"X": X}), strict=True))


def randomize(net: an.Network, seed: int) -> an.Network:
    """Random parameters and batch-norm statistics (no ones and zeros left to hide behind)."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, value in net.params.items():
        shape = tuple(value.shape)
        scale = 1 / np.sqrt(shape[1]) if len(shape) == 2 else 0.5
        params[key] = rng.normal(size=shape) * scale + (1.0 if key.startswith("gamma") else 0.0)
    state = {}
    for key, value in net.state.items():
        if key.startswith("mean"):
            state[key] = rng.normal(size=tuple(value.shape)) * 0.5
        elif key.startswith("var"):
            state[key] = rng.uniform(0.5, 2.0, size=tuple(value.shape))
        else:
            state[key] = host(value)
    return net.set_params(params).set_state(state)


def features(n: int, n_in: int, dtype: str, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n_in)).astype(dtype)


def logits_of(net: an.Network, X: np.ndarray) -> np.ndarray:
    xp = net.backend.xp
    z, _, _ = net.model.forward(net.params, net.state, xp.asarray(X), xp=xp, train=False)
    return host(z)


def check_against_network(net: an.Network, tmp_path, *, batches=(1, 7, 300), seed=1) -> None:
    """Export every output, run it on several batch sizes, compare with the network."""
    path = export_onnx(net, tmp_path / "net.onnx", outputs=OUTPUTS)
    tol = TOLERANCE[net.dtype]
    for n in batches:
        X = features(n, net.n_inputs, net.dtype, seed)
        got = run(str(path), X)
        assert {k: v.shape[0] for k, v in got.items()} == dict.fromkeys(OUTPUTS, n)
        expected_proba = net.predict_proba(X) if net.is_classifier else net.forward(X)
        for name, expected in [
            ("proba", expected_proba),
            ("outputs", net.forward(X)),
            ("logits", logits_of(net, X)),
        ]:
            assert got[name].dtype == np.dtype(net.dtype), name
            np.testing.assert_allclose(got[name], host(expected), rtol=tol, atol=tol, err_msg=name)
        labels = host(net.predict(X))
        if net.is_classifier:
            assert got["labels"].dtype == np.int64
            np.testing.assert_array_equal(got["labels"], labels)
        else:
            np.testing.assert_allclose(got["labels"], labels, rtol=tol, atol=tol)


# -- import anynet stays light --------------------------------------------------------


def test_import_anynet_does_not_import_the_onnx_tools():
    code = (
        "import sys, anynet, anynet.onnx; "
        "loaded = [m for m in ('ndonnx', 'onnx', 'onnxruntime', 'spox') if m in sys.modules]; "
        "assert not loaded, loaded; "
        "assert anynet.export_onnx is anynet.onnx.export_onnx"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_missing_tools_raise_an_import_error_saying_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ndonnx", None)  # import ndonnx now raises ImportError
    net = an.Network([2, 3, 1], seed=0, dtype="float64")
    with pytest.raises(ImportError, match=r"pip install anynet\[onnx\]"):
        export_onnx(net, tmp_path / "net.onnx")
    assert not (tmp_path / "net.onnx").exists()


# -- heads ------------------------------------------------------------------------------

HEADS = {
    "binary": dict(layers=[Dense(6), "tanh", Dense(1), "sigmoid"], loss=None),
    "multilabel": dict(layers=[Dense(6), "relu", Dense(3), "sigmoid"], loss=None),
    "multiclass": dict(layers=[Dense(6), "tanh", Dense(4), "softmax"], loss=None),
    "regression": dict(layers=[Dense(6), "tanh", Dense(1)], loss="mse"),
    "regression-2": dict(layers=[Dense(6), "relu", Dense(2), "identity"], loss="mse"),
    "regression-tanh": dict(layers=[Dense(6), "relu", Dense(2), "tanh"], loss="mse"),
    "regression-relu": dict(layers=[Dense(6), "tanh", Dense(2), "relu"], loss="mse"),
}


@needs_onnx
@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_matches_the_network(head, dtype, tmp_path):
    spec = HEADS[head]
    net = an.Sequential(spec["layers"], inputs=3, loss=spec["loss"], seed=0, dtype=dtype)
    check_against_network(randomize(net, seed=2), tmp_path)


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_trained_flower_network_exports(dtype, tmp_path):
    X, y = an.datasets.planar_flower()
    net = an.Network([2, 4, 1], seed=0, dtype=dtype)
    net.fit(X, y, epochs=300, lr=1.2)
    path = export_onnx(net, tmp_path / "flower.onnx", outputs=("proba", "labels"))
    got = run(str(path), X.astype(dtype))
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got["proba"], net.predict_proba(X), rtol=tol, atol=tol)
    np.testing.assert_array_equal(got["labels"], net.predict(X))
    assert list(got) == ["proba", "labels"]


# -- layers -----------------------------------------------------------------------------

LAYERS = {
    "Dense": Dense(5),
    "Tanh": Tanh(),
    "Sigmoid": Sigmoid(),
    "ReLU": ReLU(),
    "LeakyReLU": LeakyReLU(0.1),
    "LeakyReLU-steep": LeakyReLU(2.0),  # slope > 1: the where branch
    "Identity": Identity(),
    "Exp": Exp(),  # a hidden exp: the Poisson head's link, here between two Dense layers
    "Dropout": Dropout(0.5),
    "LayerNorm": LayerNorm(),
    "BatchNorm": BatchNorm(),
    "Residual": Residual(LayerNorm(), Dense(5), "relu", Dense(5)),
    "Residual-nested": Residual(BatchNorm(), Residual(Dense(5), "tanh"), Dropout(0.3)),
}


@needs_onnx
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_public_layer_exports(name, dtype, tmp_path):
    layers = [Dense(5), LAYERS[name], Dense(3), "softmax"]
    net = randomize(an.Sequential(layers, inputs=4, seed=0, dtype=dtype), seed=3)
    check_against_network(net, tmp_path)


@needs_onnx
def test_every_public_layer_is_covered():
    covered = {type(layer) for layer in LAYERS.values()} | {Softmax}
    public = {
        getattr(an.layers, name)
        for name in an.layers.__all__
        if isinstance(getattr(an.layers, name), type)
        and issubclass(getattr(an.layers, name), Layer)
        and getattr(an.layers, name) not in (Layer, an.layers.Activation)
    }
    assert public <= covered, public - covered


@needs_onnx
def test_batch_norm_exports_its_running_statistics_after_training(tmp_path):
    X, y = an.datasets.planar_flower()
    net = an.Sequential([Dense(8), BatchNorm(), "relu", Dropout(0.2), Dense(1), "sigmoid"],
                        inputs=2, seed=0, dtype="float64")  # fmt: skip
    net.fit(X, y, epochs=30, optimizer="adam", lr=0.01, batch_size=50)
    assert not np.allclose(host(net.state["mean2"]), 0)  # the statistics moved
    got = run(str(export_onnx(net, tmp_path / "bn.onnx")), X)
    np.testing.assert_allclose(got["proba"], net.predict_proba(X), rtol=1e-12, atol=1e-12)


def _random_layer(rng: np.random.Generator, width: int, depth: int) -> Layer:
    kinds = ["dense", "tanh", "sigmoid", "relu", "leaky", "identity", "dropout", "layernorm",
             "batchnorm"] + (["residual"] if depth < 2 else [])  # fmt: skip
    kind = kinds[rng.integers(len(kinds))]
    if kind == "dense":
        return Dense(width)
    if kind == "residual":
        n = int(rng.integers(1, 4))
        return Residual(*[_random_layer(rng, width, depth + 1) for _ in range(n)])
    return {
        "tanh": Tanh(),
        "sigmoid": Sigmoid(),
        "relu": ReLU(),
        "leaky": LeakyReLU(float(rng.choice([0.01, 0.3, 1.5]))),
        "identity": Identity(),
        "dropout": Dropout(0.4),
        "layernorm": LayerNorm(),
        "batchnorm": BatchNorm(),
    }[kind]


@needs_onnx
@pytest.mark.parametrize("seed", range(12))
def test_random_stacks_match_the_network(seed, dtype, tmp_path):
    rng = np.random.default_rng([seed, 2024])
    depth = int(rng.integers(1, 7))
    width = int(rng.integers(2, 9))
    layers = [Dense(width)] + [_random_layer(rng, width, 0) for _ in range(depth - 1)]
    n_out = int(rng.integers(1, 4))
    head = ["sigmoid", "softmax", "identity"][int(rng.integers(3))]
    if head == "softmax":
        n_out = max(n_out, 2)
    layers += [Dense(n_out), head]
    n_in = int(rng.integers(1, 6))
    net = randomize(an.Sequential(layers, inputs=n_in, seed=seed, dtype=dtype), seed)
    check_against_network(net, tmp_path, batches=(5, 64), seed=seed)


# -- the model file --------------------------------------------------------------------------


@needs_onnx
def test_the_model_has_a_symbolic_batch_dimension_and_declared_outputs(tmp_path):
    import onnx

    net = an.Sequential([Dense(4), "tanh", Dense(3), "softmax"], inputs=2, seed=0,
                        dtype="float32")  # fmt: skip
    path = export_onnx(net, tmp_path / "m.onnx", batch_dim="batch",
                       outputs=("labels", "proba", "logits"))  # fmt: skip
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [(i.name, dims(i)) for i in model.graph.input] == [("X", ["batch", 2])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [
        ("labels", ["batch"]),
        ("proba", ["batch", 3]),
        ("logits", ["batch", 3]),
    ]
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert types == {
        "labels": onnx.TensorProto.INT64,
        "proba": onnx.TensorProto.FLOAT,
        "logits": onnx.TensorProto.FLOAT,
    }
    props = {p.key: p.value for p in model.metadata_props}
    assert props["anynet.dtype"] == "float32"
    assert props["anynet.outputs"] == "labels,proba,logits"
    assert model.producer_name == "anynet"
    # one session, any batch size (the batch dimension is symbolic)
    for n in (1, 2, 333):
        got = run(str(path), features(n, 2, "float32"))
        assert got["proba"].shape == (n, 3) and got["labels"].shape == (n,)


@needs_onnx
def test_to_onnx_gives_the_model_in_memory_and_export_writes_it_atomically(tmp_path):
    net = an.Network([3, 4, 1], seed=0, dtype="float64")
    model = to_onnx(net, outputs=("proba",))
    X = features(10, 3, "float64")
    np.testing.assert_allclose(run(model, X)["proba"], net.predict_proba(X), rtol=1e-12)
    target = tmp_path / "net.onnx"
    target.write_bytes(b"old")
    assert export_onnx(net, str(target)) == target
    assert target.read_bytes() == model.SerializeToString()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]  # no temporary left


@needs_onnx
@pytest.mark.parametrize("backend_name", an.available_backends())
def test_a_network_on_any_installed_backend_exports(backend_name, dtype, tmp_path):
    """The export reads parameters from any backend (not through the ``backend`` fixture:
    the ONNX session installs NumPy only, and a backend run of this file alone, without
    the extra, must not count as a run in which nothing passed)."""
    backend = an.get_backend(backend_name)
    if dtype == "float64" and backend.float64_problem():
        pytest.skip(backend.float64_problem())
    layers = [Dense(5), "relu", LayerNorm(), Dense(2), "softmax"]
    net = an.Sequential(layers, inputs=3, seed=0, dtype=dtype, backend=backend)
    net = randomize(net, seed=4)
    X = features(20, 3, dtype)
    got = run(str(export_onnx(net, tmp_path / "net.onnx", outputs=("proba", "labels"))), X)
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got["proba"], host(net.predict_proba(X)), rtol=tol, atol=tol)
    np.testing.assert_array_equal(got["labels"], host(net.predict(X)))


# -- user layers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate(Layer):
    """``y = x * sigmoid(g) + where(x > 0, c, -c)``: a user's layer, standard functions only."""

    param_names: ClassVar[tuple[str, ...]] = ("g", "c")

    def init(self, rng, n_in):
        return {"g": rng.normal(size=n_in), "c": rng.normal(size=n_in)}, n_in

    def forward(self, params, x, *, xp, train):
        gate = 1 / (1 + xp.exp(-params["g"]))
        return x * gate + xp.where(x > 0, params["c"], -params["c"]), x


@dataclass(frozen=True)
class NumpyTanh(Layer):
    """Calls NumPy on its input: works on NumPy arrays, cannot be traced."""

    def forward(self, params, x, *, xp, train):
        return np.tanh(x), None


@dataclass(frozen=True)
class HostOnes(Layer):
    """Returns a NumPy array whatever ``xp`` is: cannot be traced."""

    def forward(self, params, x, *, xp, train):
        return np.ones((x.shape[0] or 1, x.shape[1])), None


@dataclass(frozen=True)
class ClipToMax(Layer):
    """Decides in Python on a value of the array: cannot be traced."""

    def forward(self, params, x, *, xp, train):
        return (x / float(xp.max(x)) if float(xp.max(x)) > 1 else x), None


@pytest.fixture
def user_layers(monkeypatch):
    for cls in (Gate, NumpyTanh, HostOnes, ClipToMax):
        monkeypatch.setitem(registry.layers._classes, cls.__name__, cls)
        monkeypatch.setitem(registry.layers._names, cls, cls.__name__)


@needs_onnx
@pytest.mark.usefixtures("user_layers")
def test_a_registered_user_layer_written_with_the_standard_exports(dtype, tmp_path):
    net = an.Sequential([Dense(4), Gate(), Residual(Gate(), Dense(4)), Dense(1), "sigmoid"],
                        inputs=3, seed=0, dtype=dtype)  # fmt: skip
    check_against_network(net, tmp_path)


@needs_onnx
@pytest.mark.usefixtures("user_layers")
@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (NumpyTanh(), r"TypeError: .*ufunc"),
        (HostOnes(), r"returned numpy.ndarray, not an array of the namespace xp"),
        (ClipToMax(), r"ValueError"),
    ],
)
def test_an_untraceable_layer_raises_naming_it(layer, reason, tmp_path):
    net = an.Sequential([Dense(4), "relu", layer, Dense(1)], inputs=3, seed=0, dtype="float64")
    name = type(layer).__name__
    message = rf"layers\[2\] {name}\(\) cannot be exported"
    with pytest.raises(OnnxExportError, match=message) as info:
        export_onnx(net, tmp_path / "net.onnx")
    assert isinstance(info.value, an.InputError) and isinstance(info.value, an.AnynetError)
    assert "array API standard" in str(info.value)
    assert re.search(reason, str(info.value)), str(info.value)
    assert not (tmp_path / "net.onnx").exists()


@needs_onnx
@pytest.mark.usefixtures("user_layers")
def test_an_untraceable_layer_inside_a_residual_block_is_named(tmp_path):
    block = Residual(Dense(4), Residual("tanh", ClipToMax()))
    net = an.Sequential([Dense(4), block, Dense(1)], inputs=3, seed=0, dtype="float32")
    with pytest.raises(
        OnnxExportError,
        match=r"layers\[1\] Residual\(.*\) \(inside it: layers\[1\]\[1\]\[1\] ClipToMax\(\)\)",
    ):
        export_onnx(net, tmp_path / "net.onnx")


@dataclass(frozen=True)
class HostTanh(an.layers.Activation):
    """An output activation computed through NumPy: cannot be traced."""

    def value(self, z, *, xp):
        return xp.asarray(np.tanh(np.asarray(z)))

    def derivative(self, dy, z, y, *, xp):
        return dy * (1 - y * y)


@needs_onnx
def test_an_untraceable_output_activation_raises_naming_it(tmp_path):
    net = an.Sequential([Dense(4), Dense(2), HostTanh()], inputs=3, loss="mse", seed=0,
                        dtype="float64")  # fmt: skip
    with pytest.raises(OnnxExportError, match=r"output activation HostTanh.*regression head"):
        export_onnx(net, tmp_path / "net.onnx")


# -- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": ()}, r"outputs must be a non-empty sequence of names .*got \(\)"),
        ({"outputs": ("proba", "scores")}, r"outputs must be .*got 'scores'"),
        ({"outputs": ("labels", "labels")}, r"outputs must not repeat a name"),
        ({"outputs": 3}, r"outputs must be a non-empty sequence .*got 3"),
        ({"batch_dim": ""}, r"batch_dim must be a non-empty string .*got ''"),
        ({"batch_dim": 5}, r"batch_dim must be a non-empty string .*got 5"),
    ],
)
def test_bad_arguments_are_named(kwargs, message, tmp_path):
    net = an.Network([2, 3, 1], seed=0, dtype="float64")
    with pytest.raises(an.InputError, match=message):
        export_onnx(net, tmp_path / "net.onnx", **kwargs)


def test_net_and_path_are_checked(tmp_path):
    with pytest.raises(an.InputError, match=r"net must be an anynet.Network .*got dict"):
        export_onnx({"W1": 1}, tmp_path / "net.onnx")
    net = an.Network([2, 3, 1], seed=0, dtype="float64")
    with pytest.raises(an.InputError, match=r"path must be a str or os.PathLike, got int"):
        export_onnx(net, 3)


@needs_onnx
def test_a_single_output_name_may_be_given_as_a_string(tmp_path):
    net = an.Network([2, 3, 3], activations=["relu", "softmax"], seed=0, dtype="float64")
    X = features(9, 2, "float64")
    got = run(str(export_onnx(net, tmp_path / "net.onnx", outputs="labels")), X)
    assert list(got) == ["labels"]
    np.testing.assert_array_equal(got["labels"], net.predict(X))


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_example_trains_exports_and_agrees(dtype, tmp_path, capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "export_onnx.py"
    spec = importlib.util.spec_from_file_location("example_export_onnx", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out_file = tmp_path / "flower.onnx"
    worst = example.main(["--dtype", dtype, "--epochs", "2000", "--out", str(out_file)])
    assert worst <= TOLERANCE[dtype] and out_file.stat().st_size > 500
    out = capsys.readouterr().out
    assert out.count("labels identical: True") == 2 and "400 rows" in out and "7 rows" in out
    assert "accuracy of the ONNX model: 0.8" in out or "accuracy of the ONNX model: 0.9" in out
