"""Pictures: decision boundaries, learning curves and cross-backend agreement.

Each function draws with matplotlib and returns the :class:`matplotlib.figure.Figure`::

    import anynet as an

    fig = an.plot.decision_boundary(net, X, y, title="2-4-1 on the flower")
    an.plot.save_figure(fig, "boundary.png")      # atomic; or fig.savefig(...)
    an.plot.learning_curves(net.fit(X, y, epochs=200, validation_data=(Xv, yv)))
    an.plot.backend_agreement(anynet.testing.compare_backends(net, X, y))
    an.plot.divergence(anynet.testing.trace_divergence(net, X, y, epochs=500))

Without ``ax=``, a function draws on a new figure that is not registered with pyplot
(nothing global, no display needed, nothing to close): return it from a notebook cell
to see it, or save it. To draw into a pyplot window, pass ``ax=plt.gca()``.

matplotlib is optional (``pip install anynet[plot]``) and imported only when a
function here is called: ``import anynet`` never imports it.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .backend import backend_of, get_backend, to_numpy
from .errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "backend_agreement",
    "check_figure_path",
    "divergence",
    "decision_boundary",
    "learning_curves",
    "save_figure",
]

#: Colour map of the classes, as the tutorial's pictures (``plt.cm.Spectral``).
CMAP = "Spectral"


def _matplotlib() -> Any:
    """The ``matplotlib.figure`` module, or an ImportError saying how to install it."""
    try:
        import matplotlib.figure
    except ImportError as exc:
        raise ImportError(
            "anynet.plot needs matplotlib, which is not installed here: "
            "pip install anynet[plot]  (or: pip install matplotlib)"
        ) from exc
    return matplotlib.figure


def _axes(ax: Any, figsize: tuple[float, float], rows: int = 1) -> list[Axes]:
    """``rows`` stacked axes on a new (pyplot-free) figure, or ``[ax]`` when one is given."""
    figure_module = _matplotlib()
    if ax is None:
        figure = figure_module.Figure(figsize=figsize, layout="constrained")
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
        return [row[0] for row in axes]
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise InputError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    if rows != 1:
        raise InputError(f"ax must be None for a picture of {rows} panels, got an Axes")
    return [ax]


def _host_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(to_numpy(value))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be an array, got {type(value).__name__}") from exc


# -- decision boundary -------------------------------------------------------------------


def _check_resolution(resolution: Any) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral):
        raise InputError(f"resolution must be an integer >= 2, got {resolution!r}")
    if not 2 <= int(resolution) <= 4000:
        raise InputError(f"resolution must be an integer in [2, 4000], got {resolution!r}")
    return int(resolution)


def _grid(X: np.ndarray, resolution: int, pad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid :func:`decision_boundary` predicts on: ``xx, yy`` of shape
    ``(resolution, resolution)`` spanning the data plus ``pad`` on every side, and the
    points as rows ``(resolution**2, 2)`` float64."""
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy, np.stack([xx.ravel(), yy.ravel()], axis=1)


def decision_boundary(
    net: Any,
    X: Any,
    y: Any = None,
    *,
    ax: Axes | None = None,
    resolution: int = 300,
    pad: float = 0.5,
    title: str | None = None,
) -> Figure:
    """The classifier's decision regions over two features, with the data on top.

    The tutorial's last picture: ``net.predict`` on a ``resolution`` by ``resolution`` grid
    spanning the data (plus ``pad``) drawn as filled contours, one colour per class,
    and the samples coloured by their label.

    Parameters
    ----------
    net : anynet.Network or classifier
        Anything with ``predict(points) -> labels``: an :class:`anynet.Network` with a
        sigmoid (one output) or softmax head, an ``anynet.sklearn.MLPClassifier``, any
        scikit-learn classifier.
    X : array, shape (n_samples, 2)
        The data, of any backend (copied to the host to be drawn). The grid is built on
        the host in float64 and given to ``net.predict`` on ``X``'s backend and device.
    y : array, shape (n_samples,), optional
        Labels of the points (ints, strings, ...); None draws them uncoloured.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure of 6 by 5 inches.
    resolution : int
        Grid points per axis, in [2, 4000] (the grid is predicted in one call; the
        network scores it in batches).
    pad : float
        Margin around the data, in data units.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes: a filled contour set (the regions, levels half-way
        between class indices) and a scatter of the points.

    Raises
    ------
    InputError
        ``X`` not of shape (n, 2), ``y`` of another length, a bad ``resolution`` or
        ``pad``, or ``net.predict`` not returning one label per grid point.
    ImportError
        matplotlib is not installed.
    """
    if not callable(getattr(net, "predict", None)):
        raise InputError(
            f"net must have a predict method (an anynet.Network or a classifier), "
            f"got {type(net).__name__}"
        )
    points = _host_array(X, "X")
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise InputError(
            "X must have shape (n_samples, 2) (the picture's two axes), "
            f"got shape {tuple(points.shape)}"
        )
    if points.dtype.kind not in "iuf" or not np.all(np.isfinite(points)):
        raise InputError("X must hold finite real numbers")
    labels = None
    if y is not None:
        labels = _host_array(y, "y")
        if labels.shape != (points.shape[0],):
            raise InputError(
                f"y must have shape ({points.shape[0]},) to match X, got shape {labels.shape}"
            )
    resolution = _check_resolution(resolution)
    if isinstance(pad, bool) or not isinstance(pad, numbers.Real) or not 0 <= pad < math.inf:
        raise InputError(f"pad must be a finite number >= 0, got {pad!r}")
    (axes,) = _axes(ax, (6, 5))

    xx, yy, grid = _grid(points.astype(np.float64), resolution, float(pad))
    kind = backend_of(X)
    if kind is not None and not isinstance(X, np.ndarray):
        grid = get_backend(kind, X.device).asarray(grid)  # where the caller's data live
    predicted = _host_array(net.predict(grid), "net.predict(grid)")
    if predicted.shape != (grid.shape[0],):
        raise InputError(
            f"net.predict must return one label per point, shape ({grid.shape[0]},), "
            f"got shape {predicted.shape}: decision_boundary draws classifiers with one "
            "label per sample"
        )
    if predicted.dtype.kind == "f" and not np.all(predicted == np.round(predicted)):
        raise InputError(
            "net.predict must return class labels, got non-integer values (a regressor?): "
            "decision_boundary draws classifiers"
        )
    known = predicted if labels is None else np.concatenate([predicted, labels])
    classes = np.unique(known)
    regions = np.searchsorted(classes, predicted).reshape(xx.shape)
    top = max(len(classes) - 1, 1)
    axes.contourf(
        xx, yy, regions, levels=np.arange(len(classes) + 1) - 0.5, cmap=CMAP, alpha=0.4,
        vmin=0, vmax=top,
    )  # fmt: skip
    colour: dict[str, Any] = {"c": "none"}  # hollow points when there are no labels
    if labels is not None:
        colour = {"c": np.searchsorted(classes, labels), "cmap": CMAP, "vmin": 0, "vmax": top}
    axes.scatter(points[:, 0], points[:, 1], s=20, edgecolors="k", linewidths=0.3, **colour)
    axes.set_xlabel("$x_1$")
    axes.set_ylabel("$x_2$")
    if title is not None:
        axes.set_title(title)
    return axes.figure


# -- learning curves -----------------------------------------------------------------------


def _series(history: Any) -> tuple[dict[str, list[float]], bool | None]:
    """Per-epoch figures of a History, a dict of lists, or a fitted estimator."""
    if hasattr(history, "to_dict") and hasattr(history, "loss"):
        return history.to_dict(), bool(getattr(history, "classifier", True))
    if isinstance(history, Mapping):
        return {str(k): v for k, v in history.items()}, None
    curve = getattr(history, "loss_curve_", None)
    if curve is not None:
        from_estimator = {"loss": list(curve)}
        scores = getattr(history, "validation_scores_", None)
        if scores:
            from_estimator["val_score"] = list(scores)
        return from_estimator, hasattr(history, "classes_")
    raise InputError(
        "history must be an anynet History (what fit returns), a dict of per-epoch lists "
        f"or a fitted estimator with loss_curve_, got {type(history).__name__}"
    )


def learning_curves(history: Any, *, logy: bool = False, title: str | None = None) -> Figure:
    """Loss and validation figures per epoch.

    Parameters
    ----------
    history : anynet.History, dict or fitted estimator
        What :meth:`anynet.Network.fit` returns; or its ``to_dict()`` / a checkpoint's
        history (``{"loss": [...], "val_loss": [...], "val_score": [...]}``); or a
        fitted ``anynet.sklearn`` (or scikit-learn) MLP, whose ``loss_curve_`` and
        ``validation_scores_`` are drawn.
    logy : bool
        Logarithmic loss axis.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes with a line per loss (``"training loss"``, and ``"validation loss"``
        when recorded) against the epoch index (0, 1, ...); below it, when recorded, a
        second axes with the validation accuracy (classifiers) or R² (regressors)
        ("validation score" for a plain dict, which does not say which).

    Raises
    ------
    InputError
        Not a history, no epoch recorded, or series of unequal length.
    """
    series, classifier = _series(history)
    loss = series.get("loss")
    if not isinstance(loss, Sequence) or isinstance(loss, str) or len(loss) == 0:
        raise InputError(
            f"history must hold at least one epoch of 'loss', got {series.get('loss')!r}"
        )
    n = len(loss)
    for key in ("val_loss", "val_score"):
        values = series.get(key) or []
        if len(values) not in (0, n):
            raise InputError(
                f"history['{key}'] must have one value per epoch ({n}), got {len(values)}"
            )
    if not isinstance(logy, (bool, np.bool_)):
        raise InputError(f"logy must be True or False, got {logy!r}")
    scores = list(series.get("val_score") or [])
    panels = _axes(None, (6, 6.5 if scores else 4), rows=2 if scores else 1)
    epochs = np.arange(n)
    top = panels[0]
    top.plot(epochs, np.asarray(loss, dtype=np.float64), label="training loss")
    if series.get("val_loss"):
        top.plot(epochs, np.asarray(series["val_loss"], dtype=np.float64), label="validation loss")
    top.set_ylabel("loss")
    if logy:
        top.set_yscale("log")
    top.legend()
    if scores:
        what = (
            "validation score"
            if classifier is None
            else ("validation accuracy" if classifier else "validation R²")
        )
        panels[1].plot(epochs, np.asarray(scores, dtype=np.float64), label=what, color="C2")
        panels[1].set_ylabel(what)
        panels[1].legend()
    panels[-1].set_xlabel("epoch")
    if title is not None:
        top.set_title(title)
    return cast("Figure", top.figure)  # a new Figure of its own, never a SubFigure


# -- backend agreement ---------------------------------------------------------------------


def backend_agreement(report: Any, *, title: str | None = None) -> Figure:
    """Bar charts of how far each backend's outputs are from the reference's.

    Parameters
    ----------
    report : anynet.testing.Comparison
        What :func:`anynet.testing.compare_backends` returns (or a ``BackendMismatch``
        raised by ``assert_backends_agree``, whose ``comparison`` is drawn).
    title : str, optional
        Default: ``"<n> backend(s) against <reference> (<dtype>)"`` and whether all agree.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing the outputs as x axis, one bar per (output, backend), in one
        colour per backend, on logarithmic scales: above ``max |a - r|`` with the
        ``atol`` line, below the max relative difference (what pass/fail is decided on)
        with the ``rtol`` line. Bar heights are the report's values (exact agreement, 0,
        is a bar of height 0 with a "0" mark); a failing output has a red, hatched bar,
        drawn to the top of the axes when its difference is infinite (a failed run, a
        shape mismatch).

    Raises
    ------
    InputError
        ``report`` is not a comparison.
    """
    report = getattr(report, "comparison", report)
    rows = getattr(report, "rows", None)
    if rows is None or not hasattr(report, "rtol") or not hasattr(report, "backends"):
        raise InputError(
            "report must be an anynet.testing.Comparison (what compare_backends returns), "
            f"got {type(report).__name__}"
        )
    backends = list(report.backends)
    outputs = list(dict.fromkeys(row.output for row in rows))
    top, bottom = _axes(None, (max(6.0, 0.45 * len(outputs) * max(len(backends), 1) + 2), 6.5),
                        rows=2)  # fmt: skip
    width = 0.8 / max(len(backends), 1)
    position = {name: i for i, name in enumerate(outputs)}
    for panel, field, limit, label in (
        (top, "max_abs", float(report.atol), "max |a - r|"),
        (bottom, "max_rel", float(report.rtol), "max relative difference"),
    ):
        values = [float(getattr(row, field)) for row in rows]
        finite = [v for v in values if math.isfinite(v) and v > 0]
        floor = min([*finite, limit]) / 100 if limit > 0 or finite else 1e-18
        floor = floor if floor > 0 else 1e-18
        ceiling = max([*finite, limit, floor * 100]) * 100
        for index, name in enumerate(backends):
            mine = [row for row in rows if row.backend == name]
            xs = [position[row.output] + (index - (len(backends) - 1) / 2) * width for row in mine]
            heights = [float(getattr(row, field)) for row in mine]
            drawn = [h if math.isfinite(h) else ceiling - floor for h in heights]
            bars = panel.bar(
                xs, drawn, width=width, bottom=floor, color=f"C{index}",
                label=name if panel is top else None,
            )  # fmt: skip
            for bar, row, height, x in zip(bars, mine, heights, xs, strict=True):
                if not row.ok:
                    bar.set_edgecolor("red")
                    bar.set_hatch("//")
                    bar.set_linewidth(1.5)
                if height == 0:
                    panel.text(x, floor, "0", ha="center", va="bottom", fontsize=7)
        panel.axhline(limit if limit > 0 else floor, color="k", linestyle="--", linewidth=1,
                      label=("atol" if panel is top else "rtol") + f" {limit:g}")  # fmt: skip
        panel.set_yscale("log")
        panel.set_ylim(floor, ceiling)
        panel.set_ylabel(label)
        panel.legend(fontsize=8, loc="upper right")
    bottom.set_xticks(range(len(outputs)), outputs, rotation=45, ha="right")
    if title is None:
        failures = [row for row in rows if not row.ok]
        verdict = (
            "all agree"
            if not failures
            else f"{len(failures)} of {len(rows)} outputs disagree (hatched)"
        )
        title = f"{len(backends)} backend(s) against {report.reference} ({report.dtype}): {verdict}"
    top.set_title(title)
    return cast("Figure", top.figure)  # a new Figure of its own, never a SubFigure


def divergence(report: Any, *, title: str | None = None, ax: Any = None) -> Figure:
    """How far each backend's parameters are from the reference's, epoch by epoch.

    Parameters
    ----------
    report : anynet.testing.DivergenceReport
        What :func:`anynet.testing.trace_divergence` returns.
    title : str, optional
        Default: the backends, the dtype and where the first divergence is.
    ax : matplotlib Axes, optional
        Draw into it; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One line per backend: the worst relative parameter difference after each epoch
        (``report.curve``), on a logarithmic scale (exact agreement, 0, is drawn at the
        axis' floor); the tolerance as a dashed line; each backend's first divergence
        marked with a cross and labelled with its kind, epoch and layer.

    Raises
    ------
    InputError
        ``report`` is not a divergence report.
    """
    curves = getattr(report, "curve", None)
    if not isinstance(curves, Mapping) or not hasattr(report, "divergences"):
        raise InputError(
            "report must be an anynet.testing.DivergenceReport (what trace_divergence "
            f"returns), got {type(report).__name__}"
        )
    (panel,) = _axes(ax, (7.0, 4.0))
    rtol = float(report.rtol)
    values = [v for c in curves.values() for v in np.asarray(c, dtype=float) if 0 < v < math.inf]
    floor = min([*values, rtol]) / 10
    ceiling = max([*values, rtol]) * 10
    for index, (label, curve) in enumerate(curves.items()):
        curve = np.asarray(curve, dtype=float)
        epochs = np.arange(curve.size)
        drawn = np.clip(np.where(np.isfinite(curve), curve, ceiling), floor, ceiling)
        panel.plot(epochs, drawn, color=f"C{index}", linewidth=1.2, label=label)
        found = report.divergences.get(label)
        if found is not None and found.epoch < curve.size:
            y = drawn[found.epoch]
            panel.plot([found.epoch], [y], marker="x", color=f"C{index}", markersize=10,
                       markeredgewidth=2, linestyle="none")  # fmt: skip
            where = "" if found.layer is None else f", layer {found.layer}"
            late = found.epoch > 0.6 * max(curve.size - 1, 1)  # label on the left of it
            panel.annotate(f"{found.kind}: epoch {found.epoch}{where}", (found.epoch, y),
                           textcoords="offset points", xytext=(-8 if late else 6, 6),
                           ha="right" if late else "left", fontsize=8,
                           color=f"C{index}")  # fmt: skip
    panel.axhline(rtol, color="k", linestyle="--", linewidth=1, label=f"tolerance {rtol:g}")
    panel.set_yscale("log")
    panel.set_ylim(floor, ceiling)
    panel.set_xlabel("epoch")
    panel.set_ylabel("max |a - r| / max |r| (parameters)")
    panel.legend(fontsize=8, loc="upper left")
    if title is None:
        first = report.first
        verdict = (
            "all agree"
            if first is None
            else f"{first.backend} parts first, at epoch {first.epoch} ({first.kind})"
        )
        title = f"{len(curves)} backend(s) against {report.reference} ({report.dtype}): {verdict}"
    panel.set_title(title, fontsize=10)
    return cast("Figure", panel.figure)


# -- saving --------------------------------------------------------------------------------


def check_figure_path(path: str | os.PathLike, *, name: str = "path") -> tuple[str, str]:
    """Check that a figure can be written to ``path``, before any work is done.

    ``name`` is how messages call the argument (``"--out"`` for a command line).

    Returns
    -------
    (str, str)
        The path and the format (its extension, lower case).

    Raises
    ------
    InputError
        ``path`` is not a path, its folder does not exist, or its extension is not a
        format matplotlib writes (png, pdf, svg, jpg, ...).
    ImportError
        matplotlib is not installed.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{name} must be a file path (str or os.PathLike), got {path!r}")
    text = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise InputError(
            f"{name} must be in an existing folder, got {text!r} ({folder} is not one)"
        )
    formats = sorted(_matplotlib().Figure().canvas.get_supported_filetypes())
    extension = os.path.splitext(text)[1].lower().lstrip(".")
    if extension not in formats:
        raise InputError(
            f"{name} must end in a format matplotlib writes "
            f"({', '.join('.' + f for f in formats)}), "
            f"got {text!r}"
        )
    return text, extension


def save_figure(figure: Figure, path: str | os.PathLike, *, dpi: int = 100) -> str:
    """Write ``figure`` to ``path`` atomically, in the format its extension names.

    The picture goes to a temporary file in the same folder, which then replaces
    ``path``: an interrupted save never leaves a half-written file in place of a
    good one. The file gets the ordinary permissions of a new file (umask).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    InputError
        As :func:`check_figure_path`, or ``figure`` is not a matplotlib Figure.
    """
    text, extension = check_figure_path(path)
    if not isinstance(figure, _matplotlib().Figure):
        raise InputError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    folder = os.path.dirname(os.path.abspath(text))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".anynet-", suffix=f".{extension}")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format=extension, dpi=dpi, bbox_inches="tight")
        os.replace(temporary, text)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return text
