"""The examples run end to end on the backend under test and do what they promise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_args(backend) -> list[str]:
    """The ``--device`` option that puts an example on the backend's device under test."""
    device = [] if backend.device in ("cpu",) else ["--device", str(backend.device)]
    if backend.name == "array_api_strict" and "device1" in str(backend.device):
        device = ["--device", "device1"]
    return device


def test_flower_reaches_the_tutorials_accuracy(backend, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    flower = load_example("flower")
    device = device_args(backend)
    accuracy = flower.main(
        [
            "--backend",
            backend.name,
            *device,
            "--lr",
            "1.2",
            "--epochs",
            "10000",
            "--hidden",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    assert accuracy >= 0.88
    out = capsys.readouterr().out
    assert out.count("cost after iteration") == 10
    assert f"training accuracy: {100 * accuracy:.2f}%" in out
    for picture in ("flower_data.png", "flower_boundary.png"):
        data = (tmp_path / picture).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_residual_mlp_reaches_97_percent_on_digits(backend, capsys):
    pytest.importorskip("sklearn")
    residual = load_example("residual")
    accuracy = residual.main(["--backend", backend.name, *device_args(backend)])
    assert accuracy >= 0.97
    out = capsys.readouterr().out
    assert f"test accuracy: {100 * accuracy:.2f}%" in out
    for layer in ("Residual(LayerNorm", "Dropout(rate=0.1)", f"backend='{backend.name}'"):
        assert layer in out
    assert out.count("val_accuracy") == 5  # every fifth of the 20 epochs
