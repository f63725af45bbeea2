"""The ``anynet`` command: backends, validate, train; in-process and as a real subprocess."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from problems import plant_activation

import anynet as an
from anynet import backend as backend_module
from anynet.cli import main, parse_spec
from anynet.testing import TRAINING_RTOL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHERS = ["array_api_strict", "jax", "torch", "cupy"]


def spec(backend: an.Backend) -> str:
    """The backend as ``validate --backends`` takes it: NAME or NAME:DEVICE."""
    if backend is an.get_backend(backend.name):
        return backend.name
    return f"{backend.name}:{str(backend.device).split(chr(39))[1]}"  # array_api_strict:device1


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m anynet ARGS`` in a fresh interpreter."""
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "anynet", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=300,
    )


def hide(monkeypatch, names):
    """Make the backend libraries ``names`` fail to import, as on a NumPy-only install."""
    real_import = importlib.import_module

    def refuse(module, *args, **kwargs):
        if module.split(".")[0] in names:
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    monkeypatch.setattr(backend_module.select, "_cache", {})


# ------------------------------------------------------------------ usage


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["validate", "--epochs", "0"]) == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


# ------------------------------------------------------------------ anynet backends


def test_backends_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    header, _, *rows = out.split("notes:")[0].strip().splitlines()
    assert header.split()[:3] == ["backend", "installed", "version"]
    assert [row.split()[0] for row in rows] == list(an.BACKEND_NAMES)
    numpy_row = rows[0].split()
    assert numpy_row[1:3] == ["yes", np.__version__]
    assert numpy_row[-2:] == ["float64", "yes"]


def test_backends_json_matches_available_backends(capsys):
    assert main(["backends", "--json"]) == 0
    infos = {info["backend"]: info for info in json.loads(capsys.readouterr().out)["backends"]}
    assert sorted(infos) == sorted(an.BACKEND_NAMES)
    usable = [name for name in an.BACKEND_NAMES if infos[name]["usable"]]
    assert usable == an.available_backends()
    assert infos["numpy"]["devices"] == ["cpu"]
    if infos["array_api_strict"]["usable"]:
        assert "device1" in infos["array_api_strict"]["devices"]


def test_backends_with_only_numpy_reports_the_others_not_installed(monkeypatch, capsys):
    hide(monkeypatch, OTHERS)
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for name in OTHERS:
        assert rows[name][1:3] == ["no", "-"], rows[name]
        assert f"{name}: not installed: pip install" in out
    assert rows["numpy"][1] == "yes"
    assert main(["backends", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)["backends"]
    assert [info["installed"] for info in infos] == [True, False, False, False, False]


def test_backends_subprocess_without_backend_libraries(tmp_path):
    """A real interpreter in which jax, torch, cupy and array_api_strict cannot be imported."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('jax', 'torch', 'cupy', 'array_api_strict'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    result = run_cli("backends", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["numpy", "yes"] for line in lines)
    for name in OTHERS:
        assert any(line.split()[:3] == [name, "no", "-"] for line in lines), result.stdout


def test_backends_subprocess(tmp_path):
    result = run_cli("backends", "--json", env={"JAX_ENABLE_X64": None})
    assert result.returncode == 0, result.stderr
    infos = {info["backend"]: info for info in json.loads(result.stdout)["backends"]}
    assert [name for name in an.BACKEND_NAMES if infos[name]["usable"]] == (an.available_backends())
    if infos["jax"]["usable"]:  # the command turned x64 on, and says so
        assert infos["jax"]["float64"] is True
        assert "this command set JAX_ENABLE_X64=1" in infos["jax"]["note"]


# ------------------------------------------------------------------ anynet validate


def validate_json(capsys, *args: str) -> tuple[int, dict]:
    status = main(["validate", "--json", *args])
    return status, json.loads(capsys.readouterr().out)


def test_validate_catches_a_backend_whose_tanh_is_off(backend, monkeypatch, capsys):
    if backend.name == "numpy":
        pytest.skip("the planted tanh differs on every backend but NumPy, the reference")
    plant_activation(monkeypatch, "tanh", forward_shift=1e-6)
    status = main(["validate", "--backends", spec(backend), "--epochs", "30"])
    out = capsys.readouterr().out
    assert status == 1
    assert f"{spec(backend)}: disagrees in parameters" in out
    assert "before training (forward, gradients[W1]" in out  # rows of the agreement API
    assert "FAILED: some backends disagree" in out
    row = next(line for line in out.splitlines() if line.startswith(spec(backend) + " "))
    assert row.split()[-1] == "FAILED"


def test_validate_catches_a_wrong_derivative(monkeypatch, capsys):
    plant_activation(monkeypatch, "tanh", backward_factor=1.1)
    status, summary = validate_json(capsys, "--backends", "numpy", "--epochs", "5")
    assert status == 1
    (row,) = summary["results"]
    assert row["gradient_ok"] is False and row["gradient_error"] > 1e-3
    assert "gradients" in row["problems"]


def test_validate_reports_what_the_agreement_api_measured(backend, monkeypatch, capsys):
    """validate runs compare_backends over a Network; its rows are that comparison's."""
    import anynet.testing

    calls = []
    real = anynet.testing.compare_backends

    def spy(*args, **kwargs):
        calls.append((args, kwargs, real(*args, **kwargs)))
        return calls[-1][2]

    monkeypatch.setattr(anynet.testing, "compare_backends", spy)
    status, summary = validate_json(capsys, "--backends", spec(backend), "--epochs", "7")
    assert status == 0, summary
    ((args, kwargs, comparison),) = calls
    net, X, _ = args
    assert isinstance(net, an.Network) and kwargs["epochs"] == 7 and kwargs["lr"] == 1.2
    np.testing.assert_array_equal(X, an.datasets.planar_flower()[0])
    assert summary["network"] == "[2, 4, 1] tanh,sigmoid binary_crossentropy"
    labels = [comparison.reference, *comparison.backends]
    assert len(summary["results"]) == len(labels)
    for row, label in zip(summary["results"], labels, strict=True):
        outputs = comparison.outputs[label]
        assert row["loss"] == float(outputs["fit final loss"])
        assert row["ms_per_epoch"] == pytest.approx(comparison.fit_times[label] * 1000 / 7)
        reference = comparison.outputs[comparison.reference]["fit W1"]
        assert row["max_param_diff"] >= float(np.max(np.abs(outputs["fit W1"] - reference)))


def test_validate_float32_uses_float32_tolerances(capsys):
    status, summary = validate_json(
        capsys, "--backends", "numpy", "--dtype", "float32", "--epochs", "5"
    )
    assert status == 0
    assert summary["dtype"] == "float32"
    assert summary["tolerances"]["param_rtol"] == TRAINING_RTOL["float32"]
    assert summary["tolerances"]["min_prediction_agreement"] == 0.99


def test_validate_an_unavailable_backend_fails(monkeypatch, capsys):
    hide(monkeypatch, ["torch"])
    status = main(["validate", "--backends", "torch", "--epochs", "2"])
    captured = capsys.readouterr()
    assert status == 1
    assert "torch: BackendError: backend 'torch' is not installed" in captured.out


def test_validate_without_float64_on_jax(monkeypatch, capsys):
    """By default a backend that cannot do the dtype is skipped; asked for, it fails."""
    pytest.importorskip("jax", reason="needs jax")
    monkeypatch.setattr(type(an.get_backend("jax")), "float64_problem", lambda self: "x64 off")
    monkeypatch.setattr(an.backend, "available_backends", lambda: ["numpy", "jax"])
    status, summary = validate_json(capsys, "--epochs", "2")
    assert status == 0
    assert summary["results"][1]["skipped"] is True
    assert summary["results"][1]["problems"] == "skipped: x64 off"
    status, summary = validate_json(capsys, "--epochs", "2", "--backends", "jax")
    assert status == 1
    assert summary["results"][1]["problems"] == "BackendError: x64 off"


def test_validate_spec_and_digits(capsys):
    status, summary = validate_json(
        capsys, "--backends", "numpy", "--epochs", "3", "--model", "3-5-4-2:relu,leaky_relu,softmax"
    )
    assert status == 0
    assert summary["sizes"] == [3, 5, 4, 2]
    assert summary["loss"] == "categorical_crossentropy"
    pytest.importorskip("sklearn", reason="--model digits needs scikit-learn")
    status, summary = validate_json(
        capsys, "--backends", "numpy", "--epochs", "2", "--model", "digits"
    )
    assert status == 0
    assert summary["sizes"] == [64, 32, 10] and summary["activations"] == ["relu", "softmax"]


def test_validate_digits_without_sklearn_says_so(monkeypatch, capsys):
    hide(monkeypatch, ["sklearn"])
    assert main(["validate", "--model", "digits", "--backends", "numpy"]) == 2
    assert "--model digits needs scikit-learn" in capsys.readouterr().err


def test_parse_spec():
    assert parse_spec("2-8-8-1:relu,relu,sigmoid") == (
        [2, 8, 8, 1],
        ["relu", "relu", "sigmoid"],
        None,
    )
    assert parse_spec("4-3") == ([4, 3], None, None)
    assert parse_spec("3-6-2:tanh,identity:mse") == ([3, 6, 2], ["tanh", "identity"], "mse")
    for bad, message in [
        ("2-x-1", "integers joined by '-'"),
        ("5", "at least two positive sizes"),
        ("2-0-1", "at least two positive sizes"),
        ("2-4-1:tanh", "one activation per layer \\(2\\), got 1"),
        ("2-4-1:a,b:c:d", "SIZES\\[:ACTIVATIONS\\[:LOSS\\]\\]"),
    ]:
        with pytest.raises(Exception, match=message):
            parse_spec(bad)


def test_validate_bad_spec_names_the_problem(capsys):
    assert main(["validate", "--model", "2-4-1:tanh,softmax"]) == 2
    assert "softmax output needs at least 2 units" in capsys.readouterr().err


def test_validate_subprocess(backend):
    """The real command, JAX_ENABLE_X64 unset: the command turns it on for float64."""
    args = ["validate", "--json", "--backends", spec(backend), "--epochs", "30"]
    result = run_cli(*args, env={"JAX_ENABLE_X64": None})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["dtype"] == "float64"
    rows = summary["results"]
    labels = [row["backend"] for row in rows]
    assert labels == ["numpy (reference)"] + ([spec(backend)] if backend.name != "numpy" else [])
    for row in rows:
        assert row["ok"] is True and row["problems"] == ""
        assert row["param_rel_diff"] <= 1e-10 and row["loss_rel_diff"] <= 1e-10
        assert row["prediction_agreement"] == 1.0
        assert row["gradient_ok"] is True and row["gradient_error"] < 1e-6
        assert row["ms_per_epoch"] > 0


# ------------------------------------------------------------------ anynet train


def test_train_saves_the_boundary(backend, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the picture needs matplotlib")
    out = tmp_path / "pictures" / "boundary.png"
    out.parent.mkdir()
    args = ["train", "--epochs", "300", "--out", str(out), "--backend", backend.name]
    if backend is not an.get_backend(backend.name):
        args += ["--device", spec(backend).split(":", 1)[1]]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "epoch 0: loss 0.69" in text and "training accuracy" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(out.parent) == ["boundary.png"]  # no temporary file left behind


@pytest.mark.parametrize("data", ["moons", "circles", "spirals"])
def test_train_other_datasets(data, capsys):
    assert main(["train", "--data", data, "--epochs", "50", "--no-plot"]) == 0
    accuracy = float(capsys.readouterr().out.split("training accuracy ")[1].split("%")[0])
    assert 0 <= accuracy <= 100


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "missing/boundary.png",
            "--out must be in an existing folder, got '.*missing/boundary.png'",
        ),
        ("boundary.bmp", r"--out must end in a format matplotlib writes \(.*\.png.*\), got"),
    ],
)
def test_train_refuses_an_unwritable_out_before_training(tmp_path, capsys, name, message):
    pytest.importorskip("matplotlib", reason="the picture needs matplotlib")
    assert main(["train", "--epochs", "5", "--out", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert re.search(message, captured.err) and "epoch 0" not in captured.out
    assert os.listdir(tmp_path) == []


def test_train_writes_the_format_of_the_extension(tmp_path):
    pytest.importorskip("matplotlib", reason="the picture needs matplotlib")
    out = tmp_path / "boundary.svg"
    assert main(["train", "--epochs", "5", "--out", str(out)]) == 0
    assert b"<svg" in out.read_bytes()[:400]


def test_train_keeps_the_old_picture_when_writing_fails(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib", reason="the picture needs matplotlib")
    out = tmp_path / "boundary.png"
    out.write_bytes(b"old picture")

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        main(["train", "--epochs", "5", "--out", str(out)])
    assert out.read_bytes() == b"old picture"
    assert os.listdir(tmp_path) == ["boundary.png"]


def test_train_errors_name_the_argument(capsys):
    assert main(["train", "--sizes", "3-4-1", "--no-plot"]) == 2
    assert "--sizes must start with 2" in capsys.readouterr().err
    assert (
        main(["train", "--data", "spirals", "--sizes", "2-4-1", "--no-plot", "--epochs", "2"]) == 2
    )
    assert "y must hold 0/1 labels" in capsys.readouterr().err
    assert main(["train", "--backend", "tensorflow", "--no-plot"]) == 2
    assert "backend must be one of" in capsys.readouterr().err
