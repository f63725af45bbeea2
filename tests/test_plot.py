"""anynet.plot: what each figure holds equals what the network, history or report says."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

import anynet as an
from anynet import plot

needs_matplotlib = pytest.mark.needs("matplotlib", reason="anynet.plot draws with matplotlib")


def _parts(figure):
    """The filled contour sets and the scatter collections of a figure's first axes."""
    from matplotlib.collections import PathCollection
    from matplotlib.contour import ContourSet

    (ax,) = figure.axes
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    scatters = [
        c for c in ax.collections if isinstance(c, PathCollection) and not isinstance(c, ContourSet)
    ]
    return ax, contours, scatters


def _regions(contour, points):
    """Index of the filled level containing each point (-1: none), refusing overlaps."""
    found = np.full(len(points), -1)
    for level, path in enumerate(contour.get_paths()):
        inside = path.contains_points(points)
        assert not np.any(inside & (found >= 0)), "filled levels overlap"
        found[inside] = level
    return found


def _inner_grid(X, resolution, pad):
    """The documented grid (linspace over the data plus pad), without its border nodes,
    which lie on the edges of the filled paths."""
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
    xx, yy = np.meshgrid(xs, ys)
    return np.stack([xx[1:-1, 1:-1].ravel(), yy[1:-1, 1:-1].ravel()], axis=1)


def _flower_net(backend, dtype="float64", epochs=300):
    X, y = an.datasets.planar_flower(n=200)
    net = an.Network([2, 6, 1], ["tanh", "sigmoid"], init="xavier", seed=0, dtype=dtype,
                     backend=backend)  # fmt: skip
    net.fit(X, y, epochs=epochs, lr=0.5)
    return net, X, y


# -- decision boundary ---------------------------------------------------------------------


@needs_matplotlib
@pytest.mark.dtypes("float64")
def test_decision_regions_are_the_networks_predictions_on_the_grid(backend, dtype):
    from matplotlib.figure import Figure

    net, X, y = _flower_net(backend, dtype)
    resolution, pad = 80, 0.7
    figure = plot.decision_boundary(net, X, y, resolution=resolution, pad=pad, title="flower")
    assert isinstance(figure, Figure)
    ax, contours, scatters = _parts(figure)
    assert len(contours) == 1 and len(scatters) == 1
    assert ax.get_title() == "flower" and ax.get_xlabel() == "$x_1$"
    np.testing.assert_array_equal(contours[0].levels, [-0.5, 0.5, 1.5])
    inner = _inner_grid(X, resolution, pad)
    expected = an.to_numpy(net.predict(inner))
    assert 0 < expected.mean() < 1  # both classes on the picture
    np.testing.assert_array_equal(_regions(contours[0], inner), expected)
    np.testing.assert_array_equal(scatters[0].get_offsets(), X)
    np.testing.assert_array_equal(scatters[0].get_array(), y)
    # data of the network's backend are drawn the same (the grid goes where they live)
    again = plot.decision_boundary(
        net, backend.asarray(X, dtype), y, resolution=resolution, pad=pad
    )
    np.testing.assert_array_equal(_regions(_parts(again)[1][0], inner), expected)


@needs_matplotlib
@pytest.mark.needs("sklearn")
@pytest.mark.filterwarnings("ignore:Stochastic Optimizer. Maximum iterations")  # few epochs
def test_decision_regions_of_a_string_labelled_three_class_classifier():
    from anynet.sklearn import MLPClassifier

    X, codes = an.datasets.spirals(n=300)
    names = np.array(["blue", "green", "amber"])[codes]
    clf = MLPClassifier((32,), learning_rate_init=0.02, max_iter=100, random_state=0)
    clf.fit(X, names)
    figure = plot.decision_boundary(clf, X, names, resolution=50)
    _, contours, scatters = _parts(figure)
    np.testing.assert_array_equal(contours[0].levels, [-0.5, 0.5, 1.5, 2.5])
    inner = _inner_grid(X, 50, 0.5)
    order = sorted(set(names))  # colours follow the sorted labels
    expected = np.searchsorted(order, clf.predict(inner))
    assert len(set(expected)) == 3
    np.testing.assert_array_equal(_regions(contours[0], inner), expected)
    np.testing.assert_array_equal(scatters[0].get_array(), np.searchsorted(order, names))


@needs_matplotlib
def test_decision_boundary_draws_on_the_axes_given():
    from matplotlib.figure import Figure

    net, X, _ = _flower_net("numpy", epochs=5)
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plot.decision_boundary(net, X, None, ax=right, resolution=10) is figure
    assert not left.collections and len(right.collections) == 2
    assert right.get_title() == ""
    assert len(right.collections[1].get_offsets()) == len(X)


@needs_matplotlib
@pytest.mark.parametrize(
    "change, message",
    [
        ({"X": np.zeros((5, 3))}, r"X must have shape \(n_samples, 2\).*got shape \(5, 3\)"),
        ({"X": np.full((5, 2), np.nan)}, "X must hold finite real numbers"),
        ({"y": np.zeros(4)}, r"y must have shape \(5,\) to match X, got shape \(4,\)"),
        ({"resolution": 1}, r"resolution must be an integer in \[2, 4000\], got 1"),
        ({"resolution": 2.5}, "resolution must be an integer >= 2, got 2.5"),
        ({"resolution": True}, "resolution must be an integer >= 2, got True"),
        ({"pad": -1.0}, "pad must be a finite number >= 0, got -1.0"),
        ({"ax": "left"}, "ax must be a matplotlib Axes or None, got str"),
        ({"net": object()}, "net must have a predict method"),
    ],
)
def test_decision_boundary_errors(change, message):
    net, _, _ = _flower_net("numpy", epochs=1)
    args = {"net": net, "X": np.random.default_rng(0).normal(size=(5, 2)), "y": np.ones(5)}
    args.update(change)
    with pytest.raises(an.InputError, match=message):
        plot.decision_boundary(args.pop("net"), args.pop("X"), args.pop("y"), **args)


@needs_matplotlib
def test_decision_boundary_refuses_regressors_and_multi_label_outputs():
    X = np.random.default_rng(0).normal(size=(20, 2))
    regressor = an.Network([2, 3, 1], ["tanh", "identity"], "mse", seed=0, dtype="float64")
    with pytest.raises(an.InputError, match="net.predict must return class labels"):
        plot.decision_boundary(regressor, X, None, resolution=5)
    multi = an.Network([2, 3, 2], ["tanh", "sigmoid"], seed=0, dtype="float64")
    with pytest.raises(an.InputError, match=r"one label per point, shape \(25,\), got shape"):
        plot.decision_boundary(multi, X, None, resolution=5)


# -- learning curves -----------------------------------------------------------------------


@needs_matplotlib
def test_learning_curves_plot_the_history(backend):
    X, y = an.datasets.moons(n=120)
    net = an.Network([2, 8, 1], ["tanh", "sigmoid"], init="xavier", seed=0, backend=backend)
    history = net.fit(X[:100], y[:100], epochs=12, lr=0.5, validation_data=(X[100:], y[100:]))
    figure = plot.learning_curves(history, logy=True, title="moons")
    loss_ax, score_ax = figure.axes
    lines = loss_ax.get_lines()
    assert [line.get_label() for line in lines] == ["training loss", "validation loss"]
    for line, values in zip(lines, (history.loss, history.val_loss), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(12))
        np.testing.assert_array_equal(line.get_ydata(), values)
    (score,) = score_ax.get_lines()
    np.testing.assert_array_equal(score.get_ydata(), history.val_score)
    assert score_ax.get_ylabel() == "validation accuracy" and score_ax.get_xlabel() == "epoch"
    assert loss_ax.get_yscale() == "log" and loss_ax.get_title() == "moons"
    only_loss = plot.learning_curves(history.to_dict() | {"val_loss": [], "val_score": []})
    (ax,) = only_loss.axes
    assert len(ax.get_lines()) == 1 and ax.get_yscale() == "linear"


@needs_matplotlib
@pytest.mark.needs("sklearn")
@pytest.mark.filterwarnings("ignore:Stochastic Optimizer. Maximum iterations")  # few epochs
def test_learning_curves_of_a_fitted_estimator():
    from anynet.sklearn import MLPRegressor

    X = np.random.default_rng(0).normal(size=(200, 3))
    reg = MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=15, random_state=0)
    reg.fit(X, X @ [1.0, 2.0, -1.0])
    loss_ax, score_ax = plot.learning_curves(reg).axes
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), reg.loss_curve_)
    np.testing.assert_array_equal(score_ax.get_lines()[0].get_ydata(), reg.validation_scores_)
    assert score_ax.get_ylabel() == "validation R²"


@needs_matplotlib
@pytest.mark.parametrize(
    "history, message",
    [
        (3, "history must be an anynet History .* got int"),
        ({"loss": []}, "history must hold at least one epoch of 'loss'"),
        ({"loss": [1.0, 0.5], "val_loss": [1.0]}, r"history\['val_loss'\] must have one value"),
    ],
)
def test_learning_curves_errors(history, message):
    with pytest.raises(an.InputError, match=message):
        plot.learning_curves(history)


# -- backend agreement -----------------------------------------------------------------------


def _comparison(rows):
    from anynet.testing import Comparison

    return Comparison(
        reference="numpy", dtype="float64", rtol=1e-10, atol=1e-12, rows=tuple(rows),
        times={}, outputs={},
    )  # fmt: skip


@needs_matplotlib
def test_backend_agreement_bars_are_the_reports_figures():
    from anynet.testing import BackendMismatch, OutputDifference

    rows = [
        OutputDifference("torch", "forward", (4, 1), 2e-16, 3e-16, True),
        OutputDifference("torch", "loss", (), 0.0, 0.0, True),
        OutputDifference("jax", "forward", (4, 1), 5e-9, 2e-8, False),
        OutputDifference("jax", "loss", (), math.inf, math.inf, False, "raised"),
    ]
    report = _comparison(rows)
    figure = plot.backend_agreement(BackendMismatch("mismatch", report))  # its comparison
    abs_ax, rel_ax = figure.axes
    assert "2 backend(s) against numpy (float64)" in abs_ax.get_title()
    assert "2 of 4 outputs disagree" in abs_ax.get_title()
    assert [t.get_text() for t in rel_ax.get_xticklabels()] == ["forward", "loss"]
    assert [t.get_text() for t in abs_ax.get_legend().get_texts()] == [
        "atol 1e-12", "torch", "jax",
    ]  # fmt: skip
    for ax, field, limit in ((abs_ax, "max_abs", 1e-12), (rel_ax, "max_rel", 1e-10)):
        bars = ax.patches
        assert len(bars) == 4  # torch's two outputs, then jax's
        top = ax.get_ylim()[1]
        for bar, row in zip(bars, rows, strict=True):
            value = getattr(row, field)
            if math.isfinite(value):
                assert bar.get_height() == value
            else:
                assert bar.get_y() + bar.get_height() == pytest.approx(top)
            assert (bar.get_hatch() == "//") == (not row.ok)
        assert ax.get_yscale() == "log"
        assert any(list(line.get_ydata()) == [limit, limit] for line in ax.get_lines())
    assert bars[0].get_x() < bars[2].get_x() < bars[1].get_x()  # grouped by output


@needs_matplotlib
def test_backend_agreement_of_a_real_comparison(backend):
    from anynet.testing import compare_backends

    x = np.random.default_rng(0).normal(size=(16, 4))
    report = compare_backends(lambda xp, x: {"tanh": xp.tanh(x), "sum": xp.sum(x)}, x,
                              backends=[(backend.name, backend.device)])  # fmt: skip
    figure = plot.backend_agreement(report)
    _, rel_ax = figure.axes
    assert [bar.get_height() for bar in rel_ax.patches] == [row.max_rel for row in report.rows]
    assert "all agree" in figure.axes[0].get_title()


@needs_matplotlib
def test_backend_agreement_refuses_other_objects():
    with pytest.raises(an.InputError, match="report must be an anynet.testing.Comparison"):
        plot.backend_agreement({"torch": 1e-9})


# -- saving ----------------------------------------------------------------------------------


@needs_matplotlib
def test_save_figure_writes_atomically_in_the_extensions_format(tmp_path):
    net, X, y = _flower_net("numpy", epochs=5)
    figure = plot.decision_boundary(net, X, y, resolution=20)
    png, svg = tmp_path / "b.png", tmp_path / "b.SVG"
    assert plot.save_figure(figure, png) == str(png)
    plot.save_figure(figure, str(svg))
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()[:400]
    umask = os.umask(0)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.SVG", "b.png"]  # no temporaries
    before = png.read_bytes()
    with pytest.raises(an.InputError, match="figure must be a matplotlib Figure"):
        plot.save_figure("not a figure", png)
    assert png.read_bytes() == before


@needs_matplotlib
@pytest.mark.parametrize(
    "name, message",
    [
        ("missing/b.png", "path must be in an existing folder"),
        ("b.bmp", r"path must end in a format matplotlib writes \(.*\.png.*\), got '.*b.bmp'"),
        ("b", "path must end in a format matplotlib writes"),
    ],
)
def test_check_figure_path_refuses_what_cannot_be_written(tmp_path, name, message):
    with pytest.raises(an.InputError, match=message):
        plot.check_figure_path(tmp_path / name)
    assert plot.check_figure_path(tmp_path / "ok.pdf") == (str(tmp_path / "ok.pdf"), "pdf")


def test_without_matplotlib_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    X = np.zeros((3, 2))
    for call in (
        lambda: plot.decision_boundary(an.Network([2, 1], seed=0), X, None),
        lambda: plot.learning_curves({"loss": [1.0]}),
        lambda: plot.check_figure_path("b.png"),
    ):
        with pytest.raises(ImportError, match=r"pip install anynet\[plot\]"):
            call()
