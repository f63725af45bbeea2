"""Packaging and the notebook face: one version everywhere, py.typed, summary(), repr, and
the runner that executes the documentation's examples."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import io
import json
import math
import pathlib
import re
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout

import numpy as np
import pytest

import anynet as an
from anynet.layers import BatchNorm, Dense, Dropout, LayerNorm, Residual

ROOT = pathlib.Path(__file__).resolve().parent.parent


# -- the version, defined once ------------------------------------------------------------


def test_version_is_defined_once_and_reported_everywhere():
    from anynet._version import __version__

    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert an.__version__ == __version__
    assert importlib.metadata.version("anynet") == __version__  # the installed metadata
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "anynet._version.__version__" }' in pyproject
    project = pyproject.split("\n[project]\n")[1].split("\n[")[0]
    assert not re.search(r"^version\s*=", project, re.M)  # no second copy
    assignments = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "anynet").rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(), re.M)
    ]
    assert assignments == ["anynet/_version.py"]
    assert f"\n## {__version__}\n" in (ROOT / "CHANGELOG.md").read_text()


def test_the_command_prints_the_version():
    from anynet.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["--version"])
    assert status == 0
    assert out.getvalue().strip() == f"anynet {an.__version__}"
    done = subprocess.run(
        [sys.executable, "-m", "anynet", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"anynet {an.__version__}"
    script = pathlib.Path(sys.executable).parent / "anynet"  # the console script
    if script.exists():
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == f"anynet {an.__version__}"


def test_checkpoints_record_the_version(tmp_path):
    from anynet.io import _META

    path = an.Network([2, 3, 1], seed=0).save(tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as archive:
        metadata = json.loads(archive[_META].tobytes().decode("utf-8"))
    assert metadata["anynet_version"] == an.__version__


def test_the_package_is_typed():
    marker = importlib.resources.files("anynet") / "py.typed"
    assert marker.is_file()
    assert 'anynet = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()  # in wheels too


def test_extras_cover_every_optional_feature():
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras = dict(re.findall(r"^([a-z]+) = (\[.*?\])$", pyproject, re.M | re.S))
    for name in ("jax", "torch", "cupy", "plot", "sklearn", "dask", "onnx", "all", "docs"):
        assert name in extras, name
    everything = re.search(r"anynet\[([a-z,]+)\]", extras["all"]).group(1).split(",")
    assert {"jax", "torch", "plot", "sklearn", "dask", "onnx"} <= set(everything)
    assert "cupy" not in everything  # needs CUDA: not installable everywhere


# -- summary() and repr ---------------------------------------------------------------------


def _size(array) -> int:
    return math.prod(tuple(array.shape))


def _rows(text: str) -> list[tuple[int, str, str, int, list[str]]]:
    """(depth, layer, output shape, params, names) for each table row of a summary."""
    lines = text.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("layer ")))
    starts = [m.start() for m in re.finditer(r"\S+( \S+)?", lines[header])]
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith(" ") and ":" in line.split("  ")[0]:
            break  # the footer
        cells = [line[a:b].rstrip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        depth = (len(cells[0]) - len(cells[0].lstrip(" "))) // 2
        names = re.sub(r"\(state [^)]*\)", "", cells[3]).replace(",", " ").split()
        rows.append((depth, cells[0].strip(), cells[1], int(cells[2].replace(",", "")), names))
    return rows


def test_summary_of_the_tutorial_network(backend):
    net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, dtype="float64", backend=backend)
    text = net.summary()
    assert isinstance(text, str) and repr(text) == str(text)  # a notebook shows the table
    params = net.params
    assert _rows(text) == [
        (0, "Dense(4)", "(n, 4)", _size(params["W1"]) + _size(params["b1"]), ["W1", "b1"]),
        (0, "tanh", "(n, 4)", 0, []),
        (0, "Dense(1)", "(n, 1)", _size(params["W2"]) + _size(params["b2"]), ["W2", "b2"]),
        (0, "sigmoid (output)", "(n, 1)", 0, []),
    ]
    total = sum(_size(p) for p in params.values())
    assert total == 17
    assert f"parameters: {total} in 4 arrays ({total * 8} B as float64)" in text
    assert f"backend: {backend.name}, device: {backend.device}, dtype: float64" in text
    assert "init: xavier(scale=1) for W1, W2 (biases zero), seed 0" in text
    tutorial = an.Network([2, 4, 1], init="normal", init_scale=0.01, seed=3, backend=backend)
    assert "init: normal(scale=0.01) for W1, W2 (biases zero), seed 3" in tutorial.summary()
    assert text.splitlines()[0] == (
        "Network([2, 4, 1]): 2 inputs -> 1 output, loss binary_crossentropy"
    )


def test_summary_indents_nested_layers_and_counts_from_the_arrays(backend):
    net = an.Sequential(
        [Dense(8), BatchNorm(), "relu",
         Residual(LayerNorm(), Dense(8), "tanh", Residual(Dense(8), Dropout(0.2))),
         Dense(3), "softmax"],
        inputs=5, seed=0, backend=backend,
    )  # fmt: skip
    params, state = net.params, net.state
    rows = _rows(net.summary())
    layers = [(depth, layer, shape) for depth, layer, shape, _, _ in rows]
    assert layers == [
        (0, "Dense(8)", "(n, 8)"),
        (0, "BatchNorm(momentum=0.9, eps=1e-05)", "(n, 8)"),
        (0, "relu", "(n, 8)"),
        (0, "Residual", "(n, 8)"),
        (1, "LayerNorm(eps=1e-05)", "(n, 8)"),
        (1, "Dense(8)", "(n, 8)"),
        (1, "tanh", "(n, 8)"),
        (1, "Residual", "(n, 8)"),
        (2, "Dense(8)", "(n, 8)"),
        (2, "Dropout(rate=0.2)", "(n, 8)"),
        (0, "Dense(3)", "(n, 3)"),
        (0, "softmax (output)", "(n, 3)"),
    ]
    named = [names for *_, names in rows]
    assert named == [
        ["W1", "b1"], ["gamma2", "beta2"], [], [], ["gamma3", "beta3"], ["W4", "b4"], [], [],
        ["W5", "b5"], [], ["W7", "b7"], [],
    ]  # fmt: skip
    for _, _, _, count, names in rows:  # each leaf's count is its own arrays' size
        if names:
            assert count == sum(_size(params[k]) for k in names)
    # a container counts everything below it
    outer = sum(_size(params[k]) for k in ("gamma3", "beta3", "W4", "b4", "W5", "b5"))
    inner = _size(params["W5"]) + _size(params["b5"])
    assert [count for _, layer, _, count, _ in rows if layer == "Residual"] == [outer, inner]
    text = net.summary()
    assert "(state mean2, var2)" in text and "(state rng6)" in text
    total = sum(_size(p) for p in params.values())
    assert f"parameters: {total:,} in {len(params)} arrays" in text
    assert sum(count for depth, _, _, count, _ in rows if depth == 0) == total
    state_values = sum(_size(s) for s in state.values())
    assert f"layer state: {state_values} values in 3 arrays (mean2, var2, rng6)" in text


def test_repr_keeps_the_call_that_builds_the_network(backend):
    net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, dtype="float64", backend=backend)
    assert repr(net) == (
        "Network([2, 4, 1], activations=['tanh', 'sigmoid'], loss='binary_crossentropy', "
        f"init='xavier', seed=0, dtype='float64', backend='{backend.name}', "
        f"device={str(backend.device)!r})"
    )
    tutorial = an.Network([2, 4, 1], init="normal", init_scale=0.01, seed=3, backend=backend)
    assert "init='normal', init_scale=0.01, seed=3, " in repr(tutorial)
    small = an.Sequential([Dense(4), "relu", Dense(1)], inputs=2, seed=0, backend=backend)
    assert repr(small).startswith(
        "Sequential([Dense(4), relu, Dense(1), identity], inputs=2, loss='mse', seed=0, "
    )
    he = an.Sequential([Dense(4, init="he", init_scale=2.0), Dense(1)], inputs=2, backend=backend)
    assert repr(he).startswith("Sequential([Dense(4, init='he', init_scale=2.0), Dense(1), ")
    wide = an.Sequential(
        [Dense(16), LayerNorm(), "relu", Residual(LayerNorm(), Dense(16), "relu"), Dense(3),
         "softmax"],
        inputs=2, seed=0, backend=backend,
    )  # fmt: skip
    lines = repr(wide).splitlines()
    assert lines[0] == "Sequential(["
    assert lines[1:7] == [
        "    Dense(16),",
        "    LayerNorm(eps=1e-05),",
        "    relu,",
        "    Residual(LayerNorm(eps=1e-05), Dense(16), relu),",
        "    Dense(3),",
        "    softmax,",
    ]
    assert lines[7].startswith(
        "], inputs=2, loss='categorical_crossentropy', seed=0, dtype='float32'"
    )


def test_notebooks_see_an_html_table(backend):
    net = an.Sequential(
        [Dense(4), Residual(Dense(4), "relu"), Dense(1), "sigmoid"], inputs=3, backend=backend
    )
    html = net._repr_html_()
    assert html == net.summary()._repr_html_()
    assert html.count("<tr>") == 1 + 6  # the header and one row per layer
    assert "padding-left:2.0em" in html  # the nested layers, indented
    assert "<script" not in html and "-&gt;" in html  # text is escaped


# -- the documentation's examples ------------------------------------------------------------


def _runner():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import run_snippets  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return run_snippets


def _page(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_snippet_runner_runs_python_blocks_in_order_in_one_namespace(tmp_path, capsys):
    runner = _runner()
    page = _page(tmp_path, "good.md", '''
        # A page

        ```python
        value = 20
        ```

        ```bash
        exit 1
        ```

        ```text
        this is output, not code
        ```

        1. A block in a list:

            ```python
            value += 1
            ```

        ```python
        import os
        assert value == 21
        open("scratch.txt", "w").close()  # in a temporary folder, not here
        print("cwd", os.getcwd())
        ```
        ''')  # fmt: skip
    found = runner.blocks(page.read_text())
    assert [(b.number, b.line) for b in found] == [(1, 5), (2, 19), (3, 23)]
    assert runner.main([str(page)]) == 0
    out = capsys.readouterr().out
    assert "ok   good.md" in out and "all 3 block(s) of 1 page(s) ran" in out
    assert not (tmp_path / "scratch.txt").exists()


def test_snippet_runner_fails_on_a_broken_block_naming_page_and_block(tmp_path, capsys):
    runner = _runner()
    good = _page(tmp_path, "fine.md", "```python\nx = 1\n```\n")
    broken = _page(tmp_path, "broken.md", '''
        Some text.

        ```python
        import anynet as an
        net = an.Network([2, 3, 1], seed=0)
        ```

        More text.

        ```python
        net.predict([[1.0, 2.0, 3.0]])  # three features for a two-input network
        ```

        ```python
        raise SystemExit("never reached: the page stopped at its failing block")
        ```
        ''')  # fmt: skip
    assert runner.main([str(good), str(broken)]) == 1
    captured = capsys.readouterr()
    assert "ok   fine.md" in captured.out and "FAIL broken.md" in captured.out
    assert "1 of 2 page(s) failed" in captured.err
    assert "broken.md, block 2 (line 12) failed" in captured.err
    assert f'File "{broken}", line 12' in captured.err  # the page's own line numbers
    assert "InputError" in captured.err and "never reached" not in captured.err


def test_a_broken_block_planted_in_a_real_page_fails_the_run(tmp_path, capsys):
    runner = _runner()
    text = (ROOT / "docs" / "getting-started.md").read_text()
    text = text.split("## The same network on another backend")[0]  # NumPy and matplotlib only
    planted = text + '```python\nassert net.n_inputs == 3, "planted"\n```\n'
    page = _page(tmp_path, "getting-started.md", planted)
    number = len(runner.blocks(planted))
    assert runner.main([str(page)]) == 1
    err = capsys.readouterr().err
    line = planted.count("\n") - 1
    assert f"getting-started.md, block {number} (line {line}) failed" in err
    assert "AssertionError: planted" in err


def test_snippet_runner_fails_when_there_is_nothing_to_run(tmp_path, capsys):
    runner = _runner()
    empty = _page(tmp_path, "empty.md", "# no code here\n\n```text\nnothing\n```\n")
    assert runner.main([str(empty)]) == 1
    assert "no ```python blocks" in capsys.readouterr().err


@pytest.mark.parametrize(
    "page", sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "changelog.md")
)
def test_every_guide_page_has_examples_that_run_in_ci(page):
    assert _runner().blocks((ROOT / "docs" / page).read_text()), page
