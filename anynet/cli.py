"""The ``anynet`` command: which backends work here, do they agree, and a quick training run.

::

    anynet --version
    anynet backends [--json]
    anynet validate [--backends NAME ...] [--dtype float64|float32]
                    [--model flower|digits|SPEC|FILE.npz] [--import MODULE ...]
                    [--data FILE.npz] [--epochs N] [--lr LR] [--optimizer NAME]
                    [--batch-size B] [--schedule NAME] [--seed S] [--explain] [--json]
    anynet train [--data flower|moons|circles|spirals] [--sizes 2-4-1]
                 [--activations tanh,sigmoid] [--backend NAME] [--device DEV]
                 [--epochs N] [--lr LR] [--seed S] [--out boundary.png]

``python -m anynet ...`` runs the same. :func:`main` returns the exit status:
0 success; 1 backends disagree (``validate``); 2 bad usage or an error.

A model SPEC is ``SIZES[:ACTIVATIONS[:LOSS]]``: layer widths joined by ``-``, then
optionally one activation per layer joined by ``,``, then optionally a loss name,
e.g. ``2-8-8-1:relu,relu,sigmoid`` or ``3-6-2:tanh,identity:mse``. Its data are drawn
from a fixed random "teacher" network (256 samples, seed 0), so every run sees the
same numbers. ``--model FILE.npz`` validates any saved network (``net.save``), on the
arrays ``X`` and ``y`` of ``--data FILE.npz`` (default: teacher data of its widths);
``--import MODULE`` imports a module first (the current directory is searched), so that
the layers, losses and optimizers it registers load. ``--explain`` runs
:func:`anynet.testing.trace_divergence` when backends disagree and prints where they
first part (``--json`` includes it).

This is an application, not the library: when ``JAX_ENABLE_X64`` is unset it sets it
to ``1`` before JAX is imported, so that JAX can take part in float64 checks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._version import __version__

__all__ = ["main", "parse_spec"]

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


#: Whether :func:`main` set JAX_ENABLE_X64 itself (reported by ``anynet backends``).
_x64_set_here = False


class CliError(Exception):
    """A problem with the command line that is not argparse's (reported, exit status 2)."""


# ======================================================================== entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``anynet`` command on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    global _x64_set_here
    if "JAX_ENABLE_X64" not in os.environ:
        os.environ["JAX_ENABLE_X64"] = "1"
        _x64_set_here = True
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    from .errors import AnynetError

    try:
        return args.run(args)
    except (AnynetError, CliError) as exc:
        print(f"anynet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader closed the pipe (`anynet validate --json | head`): stop quietly,
        # pointing stdout at devnull so that Python's exit flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anynet",
        description="anynet: one neural-network math, every array backend.",
    )
    parser.add_argument("--version", action="version", version=f"anynet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    backends = commands.add_parser(
        "backends",
        help="list the backends: installed, version, devices, float64",
        description="List every backend anynet knows: installed or not, version, devices, "
        "default floating dtype, and whether float64 works. Never fails on a missing one.",
    )
    backends.add_argument("--json", action="store_true", help="print JSON")
    backends.set_defaults(run=_cmd_backends)

    validate = commands.add_parser(
        "validate",
        help="train one network from identical weights on every backend and compare",
        description="Train the same network from identical initial weights on each backend "
        "and compare with NumPy (anynet.testing.compare_backends): outputs and gradients "
        "before training, final loss, parameters, predictions, a gradient check and the time "
        "per epoch. Exit status 0 only when every backend agrees within tolerance.",
        epilog="SPEC is SIZES[:ACTIVATIONS[:LOSS]], e.g. 2-8-8-1:relu,relu,sigmoid.",
    )
    validate.add_argument(
        "--backends",
        nargs="+",
        metavar="NAME",
        help="backends (NAME or NAME:DEVICE, space- or comma-separated); "
        "default: every available one",
    )
    validate.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    validate.add_argument(
        "--model",
        default="flower",
        help="flower (default), digits, a SPEC like 2-8-1, or a saved network FILE.npz",
    )
    validate.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first (repeatable): it registers your layers, losses, ...",
    )
    validate.add_argument(
        "--data", metavar="FILE.npz", help="arrays X and y to train on (default per model)"
    )
    validate.add_argument("--epochs", type=_positive_int, default=200, help="epochs of training")
    validate.add_argument("--lr", type=_positive_float, help="learning rate (default per model)")
    validate.add_argument(
        "--optimizer", default=None, help="sgd (default), momentum, adam, ... or a registered name"
    )
    validate.add_argument(
        "--batch-size", type=_positive_int, default=None, help="minibatches (default full batch)"
    )
    validate.add_argument("--schedule", default=None, help="constant, step, exponential, cosine")
    validate.add_argument(
        "--seed", type=int, default=0, help="seed of the initial weights and of the shuffles"
    )
    validate.add_argument(
        "--explain",
        action="store_true",
        help="when backends disagree, trace where they first part "
        "(anynet.testing.trace_divergence)",
    )
    validate.add_argument(
        "--rtol", type=_positive_float, help="tolerance of the parameters and loss after training"
    )
    validate.add_argument("--json", action="store_true", help="print JSON")
    validate.set_defaults(run=_cmd_validate)

    train = commands.add_parser(
        "train",
        help="train on a toy dataset and save the decision boundary",
        description="Train a network on a 2-D toy dataset (the flower example's job) and "
        "save a picture of its decision boundary.",
    )
    train.add_argument("--data", choices=sorted(_TRAIN_DEFAULTS), default="flower", help="dataset")
    train.add_argument("--sizes", help="layer widths, e.g. 2-4-1 (default per dataset)")
    train.add_argument("--activations", help="one per layer, e.g. tanh,sigmoid")
    train.add_argument("--backend", help="numpy, array_api_strict, jax, torch, cupy")
    train.add_argument("--device", help="cpu, gpu, gpu:1, ...")
    train.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    train.add_argument("--epochs", type=_positive_int, default=10000)
    train.add_argument("--lr", type=_positive_float, help="learning rate (default per dataset)")
    train.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    train.add_argument(
        "--out",
        default="boundary.png",
        help="picture of the boundary, in an existing folder; its extension (.png, .pdf, "
        ".svg, ...) is the format",
    )
    train.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    train.set_defaults(run=_cmd_train)
    return parser


# ======================================================================== anynet backends


def _probe(name: str) -> dict[str, Any]:
    """What ``anynet backends`` reports about one backend; never raises."""
    from .backend import install_hint, probe

    found = probe(name)
    info: dict[str, Any] = {
        "backend": name,
        "installed": found["installed"],
        "version": found["version"],
        "usable": False,
        "devices": found["devices"],
        "default_float": None,
        "float64": None,
        "note": "",
    }
    backend = found["backend"]
    if not found["installed"]:
        info["note"] = f"not installed: {install_hint(name)}"
        return info
    if found["error"] is not None or backend is None:
        info["note"] = found["error"]
        return info
    info["usable"] = True
    try:
        defaults = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
        info["default_float"] = str(defaults["real floating"]).rsplit(".", 1)[-1]
    except Exception:  # an old namespace without the inspection API
        info["default_float"] = None
    problem = backend.float64_problem()
    info["float64"] = problem is None
    if problem is not None:
        switch = backend.float64_switch
        info["note"] = f"float64 needs {switch}=1 (it is off)" if switch else problem
    elif backend.float64_switch is not None and _x64_set_here:
        info["note"] = (
            f"float64 works because this command set {backend.float64_switch}=1; "
            "set it yourself in your programs"
        )
    return info


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _cmd_backends(args: argparse.Namespace) -> int:
    from .backend import BACKEND_NAMES
    from .testing import text_table

    infos = [_probe(name) for name in BACKEND_NAMES]
    if args.json:
        print(json.dumps({"backends": infos}, indent=2))
        return EXIT_OK
    rows = [
        [
            info["backend"],
            _yes(info["installed"]),
            info["version"] or "-",
            _yes(info["usable"]) if info["installed"] else "-",
            ", ".join(info["devices"]) or "-",
            info["default_float"] or "-",
            _yes(info["float64"]),
        ]
        for info in infos
    ]
    headers = ["backend", "installed", "version", "usable", "devices", "default float", "float64"]
    print(text_table(headers, rows))
    notes = [f"  {info['backend']}: {info['note']}" for info in infos if info["note"]]
    if notes:
        print("notes:")
        print("\n".join(notes))
    return EXIT_OK


# ======================================================================== anynet validate


@dataclass(frozen=True)
class Problem:
    """A network spec with its data and learning rate, for ``validate`` and ``train``."""

    name: str
    sizes: list[int]
    activations: list[str] | None
    loss: str | None
    X: np.ndarray
    y: np.ndarray
    lr: float
    init: str
    init_scale: float | None = None


def parse_spec(text: str) -> tuple[list[int], list[str] | None, str | None]:
    """Parse a model SPEC ``SIZES[:ACTIVATIONS[:LOSS]]``.

    Parameters
    ----------
    text : str
        E.g. ``"2-8-8-1:relu,relu,sigmoid"``, ``"4-16-3"``, ``"3-6-2:tanh,identity:mse"``.

    Returns
    -------
    sizes : list of int
    activations : list of str or None
        None when the SPEC has no activations part (the network's defaults apply).
    loss : str or None

    Raises
    ------
    CliError
        A part that cannot be read; the message names it.
    """
    parts = text.strip().split(":")
    if len(parts) > 3 or not parts[0]:
        raise CliError(
            f"model SPEC must look like SIZES[:ACTIVATIONS[:LOSS]], e.g. "
            f"2-8-8-1:relu,relu,sigmoid; got {text!r}"
        )
    try:
        sizes = [int(size) for size in parts[0].split("-")]
    except ValueError:
        raise CliError(
            f"model SPEC sizes must be integers joined by '-', e.g. 2-8-1; got {parts[0]!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise CliError(f"model SPEC needs at least two positive sizes, got {parts[0]!r}")
    activations = None
    if len(parts) > 1 and parts[1]:
        activations = [name.strip() for name in parts[1].split(",")]
        if len(activations) != len(sizes) - 1:
            raise CliError(
                f"model SPEC needs one activation per layer ({len(sizes) - 1}), "
                f"got {len(activations)}: {parts[1]!r}"
            )
    loss = parts[2].strip() if len(parts) > 2 and parts[2] else None
    return sizes, activations, loss


def _teacher_data(
    sizes: list[int], head: Any, n: int = 256, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets drawn from a fixed random network, shaped for ``sizes``.

    Targets as ``head`` (the network's :class:`~anynet.heads.Head`) reads them: for a
    classifier the labels it predicts from the teacher's logits, else their tanh.
    """
    from .backend import get_backend

    rng = np.random.default_rng(seed)
    n_in, n_out = sizes[0], sizes[-1]
    X = rng.normal(size=(n, n_in))
    hidden = np.tanh(X @ rng.normal(size=(n_in, 8)))
    logits = hidden @ rng.normal(size=(8, n_out))
    if head.is_classifier:
        xp = get_backend("numpy").xp
        return X, np.asarray(head.predict(head.output(logits, xp=xp), xp=xp, int_dtype=np.int64))
    values = np.tanh(logits)
    return X, values[:, 0] if n_out == 1 else values


def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        datasets = importlib.import_module("sklearn.datasets")
    except ImportError as exc:
        raise CliError(
            f"--model digits needs scikit-learn, which is not installed ({exc}): "
            "pip install scikit-learn"
        ) from exc
    digits = datasets.load_digits()
    return digits.data / 16.0, digits.target.astype(np.int64)


def _problem(model: str) -> Problem:
    from . import datasets

    if model == "flower":
        X, y = datasets.planar_flower()
        return Problem(
            "flower",
            [2, 4, 1],
            ["tanh", "sigmoid"],
            "binary_crossentropy",
            X,
            y,
            lr=1.2,
            init="normal",
            init_scale=0.01,
        )
    if model == "digits":
        X, y = _digits()
        return Problem(
            "digits",
            [64, 32, 10],
            ["relu", "softmax"],
            "categorical_crossentropy",
            X,
            y,
            lr=0.5,
            init="he",
        )
    from .network import Network

    sizes, activations, loss = parse_spec(model)
    head = Network(sizes, activations, loss, dtype="float64", backend="numpy").head
    X, y = _teacher_data(sizes, head)
    return Problem(model, sizes, activations, loss, X, y, lr=0.1, init="xavier")


def _backend_specs(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    specs = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not specs:
        raise CliError("--backends needs at least one backend name")
    return specs


@dataclass
class Outcome:
    """One backend's row of ``anynet validate``."""

    backend: str
    loss: float | None = None
    max_param_diff: float | None = None
    param_rel_diff: float | None = None
    loss_rel_diff: float | None = None
    prediction_agreement: float | None = None
    gradient_error: float | None = None
    gradient_ok: bool | None = None
    ms_per_epoch: float | None = None
    ok: bool = False
    skipped: bool = False
    problems: str = ""


def _import_modules(names: list[str]) -> None:
    """``--import``: each module, the current directory searched first (as ``python -m``)."""
    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise CliError(f"--import {name}: the module did not import: {exc}") from exc


def _npz_arrays(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``--data``: the arrays ``X`` and ``y`` of a ``.npz`` file (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in ("X", "y") if name not in data.files]
            if missing:
                raise CliError(
                    f"--data {path}: needs arrays named X and y, it has {sorted(data.files)}"
                )
            return np.asarray(data["X"]), np.asarray(data["y"])
    except (OSError, ValueError) as exc:
        raise CliError(f"--data {path}: cannot read it as a .npz file: {exc}") from exc


def _saved_problem(path: str, data: str | None) -> tuple[Problem, Any]:
    """``--model FILE.npz``: the saved network (on NumPy) and the data to train it on."""
    from .network import load

    try:
        net = load(path, backend="numpy")
    except Exception as exc:
        raise CliError(
            f"--model {path}: cannot load the network ({type(exc).__name__}: {exc}); "
            "if it uses your own layers, losses or optimizers, pass --import MODULE"
        ) from exc
    if data is not None:
        X, y = _npz_arrays(data)
    else:
        X, y = _teacher_data([net.n_inputs, net.n_outputs], net.head)
    name = os.path.basename(path)
    return Problem(name, [], None, None, X, y, lr=0.1, init=""), net


def _gradient_subset(problem: Problem, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` evenly spaced samples (finite differences are cheap and kink-free on few)."""
    step = max(1, len(problem.X) // n)
    return problem.X[::step][:n], problem.y[::step][:n]


def _selected(specs: list[str] | None, dtype: str) -> list[tuple[str, Any, str | None, bool]]:
    """``(label, backend or None, problem, skipped)`` for each backend asked for.

    By default every available backend, those that cannot compute in ``dtype`` skipped;
    explicit ones are never skipped: one that does not load is a failed row.
    """
    from .backend import available_backends, get_backend
    from .testing import resolve_backend

    chosen: list[tuple[str, Any, str | None, bool]] = []
    if specs is None:
        for name in available_backends():
            try:
                backend = get_backend(name)
                backend.dtype(dtype)
            except Exception as exc:
                chosen.append((name, None, f"skipped: {exc}", True))
                continue
            chosen.append((name, backend, None, False))
        return chosen
    for spec in specs:
        try:
            chosen.append((spec, resolve_backend(spec), None, False))
        except Exception as exc:  # reported as a failed row; the other backends still run
            chosen.append((spec, None, f"{type(exc).__name__}: {exc}", False))
    return chosen


def _trained(start: Any, backend: Any, outputs: dict[str, np.ndarray]) -> Any:
    """``start`` on ``backend`` with the parameters (and state) it reached in training."""
    net = start.to(backend).set_params({key: outputs[f"fit {key}"] for key in start.params})
    if start.state:
        net.set_state({key: outputs[f"fit {key}"] for key in start.state})
    return net


def _compare(
    label: str,
    got: dict[str, np.ndarray],
    want: dict[str, np.ndarray],
    start: Any,
    gradient: Any,
    ms: float,
    dtype: str,
    rtol: float,
    before: list[str],
) -> Outcome:
    """One backend's row from its outputs of :func:`anynet.testing.compare_backends`.

    ``got``/``want`` are the backend's and the reference's host outputs, ``gradient`` the
    backend's :class:`~anynet.testing.GradientReport` after training, ``before`` the
    outputs before training that the comparison found out of tolerance.
    """
    from .backend import get_backend
    from .testing import GRADIENT_RTOL

    keys = list(start.params)
    diffs = [np.max(np.abs(got[f"fit {k}"] - want[f"fit {k}"])) for k in keys]
    scales = [max(np.max(np.abs(want[f"fit {k}"])), 1e-300) for k in keys]
    rel = max(float(d / s) for d, s in zip(diffs, scales, strict=True))
    loss, reference_loss = float(got["fit final loss"]), float(want["fit final loss"])
    loss_rel = abs(loss - reference_loss) / max(abs(reference_loss), 1e-300)
    xp = get_backend("numpy").xp
    predicted, expected = (
        np.asarray(start.head.predict(outputs["fit forward"], xp=xp, int_dtype=np.int64))
        for outputs in (got, want)
    )
    if start.is_classifier:
        agreement = float(np.mean(predicted == expected))
    else:
        bound = rtol * max(1.0, float(np.max(np.abs(expected))))
        agreement = float(np.mean(np.abs(predicted - expected) <= bound))
    minimum = 1.0 if dtype == "float64" else 0.99
    problems = []
    if not rel <= rtol:
        problems.append("parameters")
    if not loss_rel <= rtol:
        problems.append("loss")
    if not agreement >= minimum:
        problems.append("predictions")
    if not gradient.ok:
        problems.append(f"gradients (> {GRADIENT_RTOL[dtype]:g})")
    if before:
        problems.append(f"before training ({', '.join(before)})")
    return Outcome(
        backend=label,
        loss=loss,
        max_param_diff=float(max(diffs)),
        param_rel_diff=rel,
        loss_rel_diff=float(loss_rel),
        prediction_agreement=agreement,
        gradient_error=float(gradient.worst),
        gradient_ok=bool(gradient.ok),
        ms_per_epoch=ms,
        ok=not problems,
        problems=", ".join(problems),
    )


def _outcome(
    label: str,
    backend: Any,
    comparison: Any,
    start: Any,
    problem: Problem,
    epochs: int,
    dtype: str,
    rtol: float,
) -> Outcome:
    """The row of ``backend`` (labelled ``label``) in ``comparison``, after a gradient check
    of the network it trained."""
    from .testing import GradientCheckError, backend_label, check_gradients

    key = backend_label(backend)
    reference = comparison.reference
    rows = [row for row in comparison.rows if row.backend == key and key != reference]
    crashed = [row for row in rows if row.output == "(run)"]
    if crashed:
        return Outcome(label, problems=crashed[0].note.removeprefix("raised "))
    got = comparison.outputs[key]
    Xg, yg = _gradient_subset(problem)
    try:
        gradient = check_gradients(_trained(start, backend, got), Xg, yg, max_entries=16)
    except GradientCheckError as exc:
        gradient = exc.report
    except Exception as exc:  # reported as a failed row; the other backends still run
        return Outcome(label, problems=f"{type(exc).__name__}: {exc}")
    before = [row.output for row in rows if not row.ok and not row.output.startswith("fit ")]
    ms = comparison.fit_times[key] * 1000 / epochs
    want = comparison.outputs[reference]
    return _compare(label, got, want, start, gradient, ms, dtype, rtol, before)


def _cmd_validate(args: argparse.Namespace) -> int:
    from .backend import get_backend
    from .network import Network
    from .testing import (
        TRAINING_RTOL,
        backend_label,
        compare_backends,
        describe_network,
        trace_divergence,
    )

    _import_modules(args.imports)
    if args.model.endswith(".npz") or os.path.isfile(args.model):
        problem, start = _saved_problem(args.model, args.data)
        if start.dtype != args.dtype:
            start = start.astype(args.dtype)
    else:
        problem = _problem(args.model)
        if args.data is not None:
            X, y = _npz_arrays(args.data)
            problem = Problem(problem.name, problem.sizes, problem.activations, problem.loss, X,
                              y, problem.lr, problem.init, problem.init_scale)  # fmt: skip
        start = Network(
            problem.sizes,
            problem.activations,
            problem.loss,
            init=problem.init,
            init_scale=problem.init_scale,
            seed=args.seed,
            dtype=args.dtype,
            backend="numpy",
        )
    # the model's learning rate for full-batch SGD; an optimizer asked for keeps its own
    lr = args.lr if args.lr is not None else (problem.lr if args.optimizer is None else None)
    rtol = TRAINING_RTOL[args.dtype] if args.rtol is None else args.rtol
    training = {
        "epochs": args.epochs,
        "lr": lr,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "schedule": args.schedule,
        "seed": args.seed,
    }
    numpy = get_backend("numpy")
    selected = [
        entry
        for entry in _selected(_backend_specs(args.backends), args.dtype)
        if entry[1] is not numpy
    ]
    runs = list({id(entry[1]): entry[1] for entry in selected if entry[1] is not None}.values())
    # every backend trains a copy of start, bit for bit, on the same data
    comparison = compare_backends(
        start,
        problem.X,
        problem.y,
        backends=runs,
        reference=numpy,
        rtol=rtol,
        **training,
    )
    reference = _outcome("numpy", numpy, comparison, start, problem, args.epochs, args.dtype, rtol)
    reference.backend = "numpy (reference)"
    outcomes = [reference]
    for label, backend, note, skipped in selected:
        if backend is None:
            outcomes.append(Outcome(label, ok=skipped, skipped=skipped, problems=note or ""))
            continue
        outcomes.append(
            _outcome(label, backend, comparison, start, problem, args.epochs, args.dtype, rtol)
        )
    ok = all(outcome.ok for outcome in outcomes)
    trace = None
    if args.explain and not ok:
        parted = [b for b in runs if any(row.backend == backend_label(b) and not row.ok
                                         for row in comparison.rows)]  # fmt: skip
        if parted:
            trace = trace_divergence(start, problem.X, problem.y, backends=parted,
                                     reference=numpy, dtype=args.dtype, rtol=rtol,
                                     **training)  # fmt: skip
    summary = {
        "model": problem.name,
        "network": describe_network(start),
        "sizes": start.sizes,
        "activations": start.activations if start.sizes is not None else None,
        "loss": start.loss_name,
        "dtype": args.dtype,
        "epochs": args.epochs,
        "lr": lr,
        "optimizer": args.optimizer or "sgd",
        "batch_size": args.batch_size,
        "schedule": args.schedule,
        "seed": args.seed,
        "reference": "numpy",
        "tolerances": {
            "param_rtol": rtol,
            "loss_rtol": rtol,
            "min_prediction_agreement": 1.0 if args.dtype == "float64" else 0.99,
            "gradient_rtol": _gradient_rtol(args.dtype),
        },
        "results": [asdict(outcome) for outcome in outcomes],
        "ok": ok,
    }
    if args.explain:
        summary["trace"] = None if trace is None else trace.to_dict()
    if args.json:
        print(json.dumps(_finite(summary), indent=2))
    else:
        _print_validation(summary, outcomes)
        if trace is not None:
            print(trace)
    return EXIT_OK if ok else EXIT_MISMATCH


def _gradient_rtol(dtype: str) -> float:
    from .testing import GRADIENT_RTOL

    return GRADIENT_RTOL[dtype]


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _print_validation(summary: dict, outcomes: list[Outcome]) -> None:
    from .testing import format_number, text_table

    tol = summary["tolerances"]
    size = summary["batch_size"]
    batches = "full batch" if size is None else f"batch {size}"
    schedule = f", schedule {summary['schedule']}" if summary["schedule"] else ""
    print(
        f"validate: {summary['model']} {summary['network']}, {summary['dtype']}, "
        f"{summary['epochs']} epochs, {summary['optimizer']}, lr {summary['lr'] or 'default'}, "
        f"{batches}{schedule}, seed {summary['seed']}"
    )
    print(
        f"pass: parameters and loss within rtol {tol['param_rtol']:g} of numpy "
        f"(max|diff| / max|param| per array), predictions agree >= "
        f"{tol['min_prediction_agreement']:.0%}, gradient check <= {tol['gradient_rtol']:g}"
    )
    rows = []
    for o in outcomes:
        if o.skipped or o.loss is None:
            rows.append(
                [o.backend, "-", "-", "-", "-", "-", "-", "skipped" if o.skipped else "FAILED"]
            )
            continue
        rows.append(
            [
                o.backend,
                f"{o.loss:.10f}",
                format_number(o.max_param_diff),
                format_number(o.param_rel_diff),
                f"{o.prediction_agreement:.2%}",
                format_number(o.gradient_error),
                f"{o.ms_per_epoch:.3f}",
                "ok" if o.ok else "FAILED",
            ]
        )
    headers = ["backend", "loss", "max|dparam|", "rel", "agree", "grad err", "ms/epoch", "status"]
    print(text_table(headers, rows))
    for o in outcomes:
        if o.problems:
            verb = "" if o.skipped or o.loss is None else "disagrees in "
            print(f"  {o.backend}: {verb}{o.problems}")
    print(
        "all backends agree" if summary["ok"] else "FAILED: some backends disagree or did not run"
    )


# ======================================================================== anynet train

_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "flower": {"sizes": "2-4-1", "activations": "tanh,sigmoid", "lr": 1.2, "init": "normal"},
    "moons": {"sizes": "2-8-1", "activations": "tanh,sigmoid", "lr": 1.0, "init": "xavier"},
    "circles": {"sizes": "2-8-1", "activations": "tanh,sigmoid", "lr": 1.0, "init": "xavier"},
    "spirals": {"sizes": "2-32-3", "activations": "relu,softmax", "lr": 1.0, "init": "he"},
}


def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from . import datasets

    return {
        "flower": datasets.planar_flower,
        "moons": datasets.moons,
        "circles": datasets.circles,
        "spirals": datasets.spirals,
    }[name]()


def _plot_module() -> Any:
    """:mod:`anynet.plot`, once matplotlib is known to import (else a CliError saying how)."""
    from . import plot

    try:
        importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise CliError(
            f"drawing the boundary needs matplotlib ({exc}): pip install anynet[plot], "
            "or pass --no-plot"
        ) from exc
    return plot


def _cmd_train(args: argparse.Namespace) -> int:
    from .backend import get_backend
    from .network import Network

    defaults = _TRAIN_DEFAULTS[args.data]
    sizes, _, _ = parse_spec(args.sizes or defaults["sizes"])
    if args.activations is not None:
        activations = [name.strip() for name in args.activations.split(",")]
    elif args.sizes is None:
        activations = defaults["activations"].split(",")
    else:
        activations = None  # the network's defaults for the sizes given
    if sizes[0] != 2:
        raise CliError(f"--sizes must start with 2 (the data have 2 features), got {args.sizes}")
    X, y = _load(args.data)
    lr = defaults["lr"] if args.lr is None else args.lr
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    plot = None
    if not args.no_plot:  # refuse an unwritable --out before training, not after
        plot = _plot_module()
        plot.check_figure_path(args.out, name="--out")
    backend = get_backend(args.backend, args.device)
    net = Network(
        sizes,
        activations,
        init=defaults["init"] if args.sizes is None else "xavier",
        init_scale=0.01 if defaults["init"] == "normal" and args.sizes is None else None,
        seed=args.seed,
        dtype=args.dtype,
        backend=backend,
    )
    print(f"{args.data}: {net!r}, lr {lr}, {args.epochs} epochs")
    start = time.perf_counter()
    history = net.fit(X, y, epochs=args.epochs, lr=lr)
    seconds = time.perf_counter() - start
    every = max(1, args.epochs // 10)
    for epoch in range(0, len(history.loss), every):
        print(f"epoch {epoch}: loss {history.loss[epoch]:.6f}")
    accuracy = net.score(X, y)
    print(f"final loss {net.loss(X, y):.6f}, training accuracy {accuracy:.2%} ({seconds:.2f} s)")
    if plot is not None:
        title = f"{args.data}, {'-'.join(map(str, sizes))} on {backend.name}: {accuracy:.1%}"
        plot.save_figure(plot.decision_boundary(net, X, y, title=title), args.out)
        print(f"saved {args.out}")
    return EXIT_OK
