"""Check one layer, built in or your own: its backward pass and its agreement across backends.

:func:`check_layer` draws the layer's parameters and state, a random input ``x`` and a
random upstream gradient ``dy``, and checks the layer's hand-written
:meth:`~anynet.layers.Layer.backward` for the objective ``L = sum(y * dy)``:

* against central finite differences of ``L`` in float64, on the backend asked for;
* optionally against PyTorch's and/or JAX's autodiff of ``L`` through the layer's
  :meth:`~anynet.layers.Layer.reference` (or ``forward_state`` for layers with state);
* and runs ``forward_state`` and ``backward`` on every backend asked for, from the same
  host inputs, comparing outputs, ``dx``, parameter gradients and the new state with
  NumPy's (:func:`~anynet.testing.compare_backends`).

It also checks what the rest of anynet relies on: the keys and shapes ``init``,
``init_state``, ``shapes``, ``output_width``, ``backward`` and ``backward_params``
return, and that results stay arrays of the backend they were computed on.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..backend import Backend, get_backend, to_numpy
from ..errors import BackendError, InputError
from ..layers.base import Layer, as_layer
from ._text import _worst, format_number, text_table
from .agreement import (
    Comparison,
    _unusable_cases,
    _usable_cases,
    compare_backends,
    resolve_backend,
)
from .gradients import GradientCheckError
from .oracles import ORACLES, _import_oracle, _installed_oracles, _layer_oracle_gradients
from .tolerances import (
    ATOL,
    DEFAULT_EPS,
    GRADIENT_ATOL,
    GRADIENT_RTOL,
    RTOL,
    _check_tolerance,
    relative_errors,
)

__all__ = ["LayerCheckError", "LayerGradientCheck", "LayerReport", "check_layer"]

Array = Any
Worst = tuple[tuple[int, ...], float, float]


class LayerCheckError(GradientCheckError):
    """A layer's backward pass (or its agreement across backends) fails :func:`check_layer`.

    Attributes
    ----------
    report : LayerReport
        The full check; ``str(report)`` is the message.
    """

    def __init__(self, message: str, report: LayerReport) -> None:
        super().__init__(message, report)


@dataclass(frozen=True)
class LayerGradientCheck:
    """The check of one gradient of a layer (a row of a :class:`LayerReport`).

    Attributes
    ----------
    name : str
        ``"dx"`` for the gradient with respect to the input, else the parameter's key
        in the layer's own params dict (``"W"``, ``"gamma"``, ``"0.W"`` in a Residual).
    shape : tuple of int
    scale : float
        Largest absolute entry of the hand-written gradient.
    fd_error : float
        Worst relative error (see :func:`~anynet.testing.relative_errors`) against the
        finite differences, over every entry.
    fd_worst : tuple
        ``(index, backward's value, finite difference)`` of that worst entry.
    oracle_errors : dict of str to float
        Worst relative error against each autodiff oracle that ran.
    oracle_worst : dict of str to tuple
        ``(index, backward's value, oracle's value)`` of that worst entry, per oracle.
    """

    name: str
    shape: tuple[int, ...]
    scale: float
    fd_error: float
    fd_worst: Worst
    oracle_errors: dict[str, float] = field(default_factory=dict)
    oracle_worst: dict[str, Worst] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerReport:
    """Result of :func:`check_layer`; ``str(report)`` is a readable table.

    Attributes
    ----------
    layer : str
        The layer's :meth:`~anynet.layers.Layer.describe`.
    backend : str
        Where the gradients and finite differences were computed.
    train : bool
    n_in, n_out, n_samples : int
        ``x`` is ``(n_samples, n_in)``, ``y`` and ``dy`` ``(n_samples, n_out)``.
    objective : float
        ``L = sum(y * dy)`` on that backend.
    scale : float
        ``max(1, sum(|y * dy|))``: the absolute tolerances are multiplied by it (the
        rounding noise of ``L``, hence of its finite differences, grows with it).
    eps : float
        Step of the central differences.
    rtol, atol : float
        Tolerances against the finite differences.
    oracles : tuple of str
        The autodiff oracles that ran (``"torch"``, ``"jax"``).
    oracle_rtol, oracle_atol : float
        Tolerances against them.
    rows : tuple of LayerGradientCheck
        ``"dx"`` first, then one per parameter.
    agreement : Comparison or None
        The run on every backend against NumPy; None when ``backends=[]`` (or when a
        broken protocol stopped the check first).
    problems : tuple of str
        Broken promises of the layer protocol (keys, shapes, backends of results,
        disagreement between ``backward`` and ``backward_params`` or between the
        oracle's value of ``L`` and the layer's).
    dtype : str
        The dtype the layer ran in (the finite differences are float64).
    skipped : dict of str to str
        Backends of the default list that cannot compute in ``dtype`` here, with the
        reason: left out of the agreement check, not failed.
    decay : tuple of str
        The parameters L2 regularisation (``l2=``) applies to:
        :meth:`~anynet.layers.Layer.decayed`.
    decay_declared : bool
        Whether the layer declares ``decay``; False means the default (the parameters
        of two or more dimensions).
    """

    layer: str
    backend: str
    train: bool
    n_in: int
    n_out: int
    n_samples: int
    objective: float
    scale: float
    eps: float
    rtol: float
    atol: float
    oracles: tuple[str, ...]
    oracle_rtol: float
    oracle_atol: float
    rows: tuple[LayerGradientCheck, ...]
    agreement: Comparison | None = None
    problems: tuple[str, ...] = ()
    dtype: str = "float64"
    skipped: dict[str, str] = field(default_factory=dict)
    decay: tuple[str, ...] = ()
    decay_declared: bool = False

    @property
    def errors(self) -> dict[str, float]:
        """Worst finite-difference relative error per gradient (``"dx"`` and parameters)."""
        return {row.name: row.fd_error for row in self.rows}

    @property
    def oracle_errors(self) -> dict[str, dict[str, float]]:
        """Per oracle, its worst relative error per gradient (empty without oracles)."""
        return {
            oracle: {row.name: row.oracle_errors[oracle] for row in self.rows}
            for oracle in self.oracles
        }

    @property
    def worst(self) -> float:
        """The largest finite-difference error over every gradient."""
        return max(self.errors.values(), default=0.0)

    def _row_ok(self, row: LayerGradientCheck) -> bool:
        return row.fd_error <= self.rtol and all(
            error <= self.oracle_rtol for error in row.oracle_errors.values()
        )

    def failures(self) -> list[str]:
        """One line per failure; each names the gradient (``dx`` or the parameter)."""
        lines = list(self.problems)
        for row in self.rows:
            if not row.fd_error <= self.rtol:
                index, analytic, numeric = row.fd_worst
                lines.append(
                    f"{row.name}{list(index)}: backward gives {analytic:.10g}, finite "
                    f"differences {numeric:.10g} (relative error {row.fd_error:.2e} > rtol "
                    f"{self.rtol:.0e})"
                )
            for oracle, error in row.oracle_errors.items():
                if not error <= self.oracle_rtol:
                    index, analytic, exact = row.oracle_worst[oracle]
                    lines.append(
                        f"{row.name}{list(index)}: backward gives {analytic:.10g}, {oracle} "
                        f"autodiff {exact:.10g} (relative error {error:.2e} > rtol "
                        f"{self.oracle_rtol:.0e})"
                    )
        if self.agreement is not None:
            for diff in self.agreement.failures():
                detail = diff.note or (
                    f"max relative difference {diff.max_rel:.2e} > rtol {self.agreement.rtol:g}"
                )
                lines.append(
                    f"{_agreement_name(diff.output)} on {diff.backend} disagrees with "
                    f"{self.agreement.reference}: {detail}"
                )
        return lines

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.failures()

    def __str__(self) -> str:
        floor = self.atol / self.rtol * self.scale if self.rtol > 0 else 0.0
        head = [
            f"check_layer {self.layer} on {self.backend}, {self.dtype}, train={self.train}: "
            f"x ({self.n_samples}, {self.n_in}) -> y ({self.n_samples}, {self.n_out})",
            f"objective L = sum(y * dy) = {self.objective:.6g}; finite differences: central, "
            f"eps={self.eps:g}; pass when relative error <= {self.rtol:g} (entries below "
            f"{floor:.0e} compared absolutely)",
        ]
        if self.oracles:
            head.append(
                f"oracles: {', '.join(self.oracles)} autodiff of L in float64; pass when "
                f"relative error <= {self.oracle_rtol:g}"
            )
        headers = ["gradient", "shape", "max|grad|", "FD error"]
        headers += [f"{oracle} error" for oracle in self.oracles]
        headers.append("status")
        body = []
        for row in self.rows:
            cells = [
                row.name,
                str(row.shape),
                format_number(row.scale),
                format_number(row.fd_error),
            ]
            cells += [format_number(row.oracle_errors.get(oracle)) for oracle in self.oracles]
            cells.append("ok" if self._row_ok(row) else "FAILED")
            body.append(cells)
        text = "\n".join(head) + "\n" + text_table(headers, body)
        how = "declared" if self.decay_declared else "by default: parameters with ndim >= 2"
        text += f"\nL2 (l2=) decays: {', '.join(self.decay) or 'none'} ({how})"
        if self.agreement is None:
            text += "\nagreement across backends: not checked"
        else:
            text += "\nagreement across backends: " + str(self.agreement)
        for label, reason in self.skipped.items():
            text += f"\nskipped: {label} cannot compute in {self.dtype} here ({reason})"
        failures = self.failures()
        if failures:
            text += "\nfailed:\n" + "\n".join(f"  {line}" for line in failures)
        return text


def _agreement_name(output: str) -> str:
    """``"grads[W]"`` -> ``"gradient W"``: an agreement row's output, as failures name it."""
    if output.startswith("grads[") and output.endswith("]"):
        return f"gradient {output[6:-1]}"
    if output.startswith("state[") and output.endswith("]"):
        return f"new state {output[6:-1]}"
    return output


# -------------------------------------------------------------------- arguments


def _check_oracle(oracle: Any) -> tuple[str, ...]:
    if oracle is None:
        return ()
    if oracle == "all":
        return _installed_oracles()
    if oracle in ORACLES:
        return (oracle,)
    raise InputError(f"oracle must be None, 'torch', 'jax' or 'all', got {oracle!r}")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _dtype_backend(backend: Any, device: Any, dtype: str) -> Backend:
    target = get_backend(backend, device)
    try:
        target.dtype(dtype)
    except BackendError as exc:
        raise BackendError(
            f"check_layer computes in {dtype} on the backend asked for "
            f"({target.describe()}), which cannot use {dtype} here: {exc} "
            f"Alternatively check on NumPy: check_layer(layer, n_in, backend='numpy')."
        ) from exc
    return target


def _as_float64(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {key: np.asarray(to_numpy(v), dtype=np.float64) for key, v in values.items()}


def _state_on_host(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Float state as float64, integer state (random streams) as it is."""
    host = {key: np.asarray(to_numpy(v)) for key, v in values.items()}
    return {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in host.items()}


def _override(given: Any, drawn: dict[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """``given`` (the user's values for the check), keys and shapes those ``init`` drew."""
    if not isinstance(given, Mapping):
        raise InputError(f"{what} must be a dict of arrays, got {type(given).__name__}")
    if sorted(given) != sorted(drawn):
        raise InputError(f"{what} must have exactly the keys {sorted(drawn)}, got {sorted(given)}")
    out = {}
    for key, value in drawn.items():
        array = np.asarray(to_numpy(given[key]))
        if array.shape != value.shape:
            raise InputError(
                f"{what}[{key!r}] must have shape {value.shape}, got {tuple(array.shape)}"
            )
        out[key] = array.astype(np.float64 if value.dtype.kind == "f" else value.dtype)
    return out


# -------------------------------------------------------------------- the protocol


def _protocol_problems(
    layer: Layer,
    n_in: int,
    params: dict[str, np.ndarray],
    n_out: Any,
    state: dict[str, np.ndarray],
) -> list[str]:
    """What ``init``, ``init_state``, ``shapes`` and ``output_width`` promise each other."""
    name = type(layer).__name__
    problems = []
    if isinstance(n_out, bool) or not isinstance(n_out, numbers.Integral) or n_out < 1:
        return [f"{name}.init must return (params, n_out) with n_out a positive int, got {n_out!r}"]
    for method, got, declared in (
        ("init", params, layer.param_names),
        ("init_state", state, layer.state_names),
    ):
        if sorted(got) != sorted(declared):
            problems.append(
                f"{name}.{method} must return the keys {sorted(declared)} (its declared "
                f"names), got {sorted(got)}"
            )
    width = layer.output_width(n_in)
    if width != n_out:
        problems.append(f"{name}.output_width({n_in}) gives {width}, init gives n_out {n_out}")
    shapes, state_shapes = layer.shapes(n_in)
    drawn = {k: tuple(v.shape) for k, v in params.items()}
    if {k: tuple(v) for k, v in shapes.items()} != drawn:
        problems.append(f"{name}.shapes({n_in}) gives parameter shapes {shapes}, init {drawn}")
    drawn_state = {k: (v.dtype.kind, tuple(v.shape)) for k, v in state.items()}
    if {k: (v[0], tuple(v[1])) for k, v in state_shapes.items()} != drawn_state:
        problems.append(
            f"{name}.shapes({n_in}) gives state (kind, shape) {state_shapes}, "
            f"init_state {drawn_state}"
        )
    return problems


def _to_backend(backend: Backend, value: np.ndarray, dtype: str = "float64") -> Array:
    """A host array on ``backend``: floats in ``dtype``, integers in their own dtype."""
    return backend.asarray(value, dtype) if value.dtype.kind == "f" else backend.asarray(value)


def _check_result(
    backend: Backend, value: Any, what: str, shape: tuple[int, ...], problems: list[str]
) -> np.ndarray | None:
    """``value`` on the host as float64, or None after noting why it cannot be compared."""
    if not backend.owns(value):
        problems.append(
            f"{what} must be an array of {backend.describe()}, got {type(value).__module__}."
            f"{type(value).__name__}"
        )
        return None
    host = np.asarray(to_numpy(value), dtype=np.float64)
    if host.shape != shape:
        problems.append(f"{what} must have shape {shape}, got {host.shape}")
        return None
    return host


def _compiled(backend: Backend, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` compiled where the backend compiles, else ``function`` itself.

    On JAX one compilation of the whole computation costs far less than running it
    operation by operation (each new operation and shape compiles on its own). A layer
    that cannot be compiled (Python branches on array values) is run as it is.
    """
    compiled = backend.jit(function)
    if compiled is function:
        return function
    chosen = [compiled]

    def call(*args: Any) -> Any:
        if chosen[0] is compiled:
            try:
                return compiled(*args)
            except Exception:
                chosen[0] = function  # run as it is: a genuine error is raised there
        return function(*args)

    return call


def _passes(layer: Layer, backend: Backend, train: bool) -> Callable[..., Any]:
    """``(params, state, x, dy) -> (y, dx, grads, backward_params' grads, new state, L)``
    with ``L = sum(y * dy)``, compiled where the backend compiles."""
    xp = backend.xp

    def run(params: dict, state: dict, x: Array, dy: Array) -> tuple:
        y, cache, new_state = layer.forward_state(params, state, x, xp=xp, train=train)
        dx, grads = layer.backward(params, cache, dy, xp=xp)
        from_params = layer.backward_params(params, cache, dy, xp=xp)
        return y, dx, grads, from_params, new_state, xp.sum(y * dy)

    return _compiled(backend, run)


def _columns_problems(
    layer: Layer, backend: Backend, params: dict, x: Array, dy: Array, train: bool,
    y_rows: np.ndarray, rows: dict[str, np.ndarray | None], scale: float,
    dtype: str = "float64",
) -> list[str]:  # fmt: skip
    """A layout-free layer must compute, on ``(features, samples)`` data with ``axis=0``,
    the transposes of what it computes on rows (the fit engine may run it that way)."""
    xp, name = backend.xp, type(layer).__name__
    columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    forward: Any = layer.forward  # a layout-free layer's methods take ``axis``
    backward: Any = layer.backward
    try:
        y, cache = forward(params, xp.permute_dims(x, (1, 0)), xp=xp, train=train, axis=0)
        dy_columns = xp.permute_dims(dy, (1, 0))
        dx, grads = backward(params, cache, dy_columns, xp=xp, axis=0)
        from_params = layer.backward_params(params, cache, dy_columns, xp=xp, axis=0)
    except Exception as exc:
        return [f"{name} is layout_free, but its methods fail with axis=0: {exc!r}"]
    columns["y"] = (np.transpose(to_numpy(y)), y_rows)
    columns["dx"] = (np.transpose(to_numpy(dx)), rows.get("dx"))
    for key, value in grads.items():
        columns[f"backward's {key!r}"] = (to_numpy(value), rows.get(key))
    for key, value in from_params.items():
        columns[f"backward_params' {key!r}"] = (to_numpy(value), rows.get(key))
    problems = []
    for what, (got, expected) in columns.items():
        if expected is None:
            continue
        got = np.asarray(got, dtype=np.float64)
        if got.shape != expected.shape:
            problems.append(
                f"{name} with axis=0 gives {what} of shape {got.shape} (transposed back), "
                f"rows give {expected.shape}"
            )
            continue
        errors = relative_errors(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype] * scale)
        if not float(np.max(errors, initial=0.0)) <= RTOL[dtype]:
            problems.append(
                f"{name} is layout_free, but with axis=0 its {what} differs from the rows "
                f"result (max relative difference {float(np.max(errors)):.2e})"
            )
    return problems


def _central_differences(
    place: Callable[[Array], float], backend: Backend, base: np.ndarray, eps: float
) -> np.ndarray:
    """Central differences over every entry of ``base`` (a float64 host array).

    ``place(shifted)`` is the objective with ``shifted`` (``base`` with one entry moved
    by ``eps``, on ``backend``) in ``base``'s place. The step actually taken,
    ``(v + eps) - (v - eps)`` in floating point, divides the difference.
    """
    numeric = np.empty(base.size)
    shifted = base.copy()
    for flat in range(base.size):
        center = base.flat[flat]
        shifted.flat[flat] = up_at = center + eps
        up = place(backend.asarray(shifted, "float64"))
        shifted.flat[flat] = down_at = center - eps
        down = place(backend.asarray(shifted, "float64"))
        shifted.flat[flat] = center
        numeric[flat] = (up - down) / (up_at - down_at)
    return numeric.reshape(base.shape)


def _row(
    name: str,
    analytic: np.ndarray,
    numeric: np.ndarray,
    exact: Mapping[str, np.ndarray],
    rtol: float,
    atol: float,
    oracle_rtol: float,
    oracle_atol: float,
) -> LayerGradientCheck:
    flat = np.arange(analytic.size)
    values = analytic.ravel()
    errors = relative_errors(values, numeric.ravel(), rtol=rtol, atol=atol)
    fd_error, fd_worst = _worst(errors, values, numeric.ravel(), analytic.shape, flat)
    oracle_errors, oracle_worst = {}, {}
    for oracle, truth in exact.items():
        errors = relative_errors(values, truth.ravel(), rtol=oracle_rtol, atol=oracle_atol)
        error, worst = _worst(errors, values, truth.ravel(), analytic.shape, flat)
        oracle_errors[oracle], oracle_worst[oracle] = error, worst
    return LayerGradientCheck(
        name=name,
        shape=tuple(analytic.shape),
        scale=float(np.max(np.abs(analytic), initial=0.0)),
        fd_error=fd_error,
        fd_worst=fd_worst,
        oracle_errors=oracle_errors,
        oracle_worst=oracle_worst,
    )


def _agreement(
    layer: Layer,
    params: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    x: np.ndarray,
    dy: np.ndarray,
    train: bool,
    backends: Sequence[Any],
    checked: Backend,
    checked_passes: Callable[..., Any],
    dtype: str = "float64",
) -> Comparison:
    """``forward_state`` and ``backward`` on each backend against NumPy, in ``dtype``.

    ``checked_passes`` (:func:`_passes` on ``checked``, already compiled there) is reused.
    """
    keys, state_keys = list(params), list(state)
    chosen = [resolve_backend(spec) for spec in backends]
    passes = {id(b.xp): _passes(layer, b, train) for b in [*chosen, get_backend("numpy")]}
    passes[id(checked.xp)] = checked_passes

    def run(xp: Any, x: Array, dy: Array, *values: Array) -> dict[str, Any]:
        own = dict(zip(keys, values[: len(keys)], strict=True))
        own_state = dict(zip(state_keys, values[len(keys) :], strict=True))
        y, dx, grads, _, new_state, _ = passes[id(xp)](own, own_state, x, dy)
        return {"y": y, "dx": dx, "grads": dict(grads), "state": dict(new_state)}

    return compare_backends(
        run,
        x,
        dy,
        *params.values(),
        *state.values(),
        backends=chosen,
        reference="numpy",
        dtype=dtype,
    )


# -------------------------------------------------------------------- check_layer


def check_layer(
    layer: Layer | str,
    n_in: int,
    *,
    backend: str | Backend = "numpy",
    device: Any = None,
    train: bool = False,
    n_samples: int = 8,
    seed: int = 0,
    oracle: str | None = None,
    backends: Sequence[Any] | None = None,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    params: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    dtype: str = "float64",
) -> LayerReport:
    """Check a layer's hand-written backward pass, and that every backend computes it alike.

    From ``numpy.random.default_rng(seed)`` the check draws, in this order, the
    parameters (``layer.init(rng, n_in)``), the state (``layer.init_state(rng, n_in)``),
    an input ``x`` of shape ``(n_samples, n_in)`` and an upstream gradient ``dy`` of
    shape ``(n_samples, n_out)``, all float64 (integer state kept). The objective is
    ``L = sum(y * dy)`` with ``y`` from ``layer.forward_state(params, state, x, xp=xp,
    train=train)``, so that ``layer.backward(params, cache, dy, xp=xp)`` must return
    ``dx = dL/dx`` and ``dL/dparams``. Then:

    1. those gradients, computed on ``backend``/``device``, are compared with central
       finite differences of ``L`` over every entry of ``x`` and of each parameter,
       computed in float64 on the same backend and device;
    2. with ``oracle``, also with that library's autodiff of ``L`` computed through
       ``layer.reference`` (layers without state) or ``layer.forward_state`` (with state)
       in its own namespace;
    3. ``forward_state`` and ``backward`` run on every backend of ``backends`` from the
       same host inputs; ``y``, ``dx``, the gradients and the new state are compared with
       NumPy's at :data:`~anynet.testing.RTOL` / :data:`~anynet.testing.ATOL` of float64;
    4. the layer protocol is checked: the keys of ``init``, ``init_state``, ``backward``
       and ``backward_params`` (which must agree with ``backward``), the shapes of
       ``shapes`` and ``output_width``, and that results are arrays of the backend;
    5. a layer that declares ``layout_free`` must give, with ``axis=0`` on transposed
       ``x`` and ``dy``, the transposes of ``y`` and ``dx`` and the same gradients.

    Parameters
    ----------
    layer : anynet.layers.Layer or str
        Any layer, containers (``Residual``) and your own subclasses included; a
        registered name (``"relu"``) stands for its layer.
    n_in : int
        Input width.
    backend, device : optional
        Where the gradients and finite differences are computed (default NumPy).
        It must compute in ``dtype`` (float64 on JAX needs ``JAX_ENABLE_X64=1``).
    train : bool
        The mode of the forward pass: batch statistics in ``BatchNorm``, a mask in
        ``Dropout`` (a function of the layer's state only, so ``L`` stays deterministic).
    n_samples : int
        Rows of ``x``.
    seed : int
        Seed of everything drawn.
    oracle : {None, "torch", "jax", "all"}
        Autodiff oracle(s); ``"all"`` uses every one of the two installed here.
    backends : sequence, optional
        Backends of the agreement check, as :func:`~anynet.testing.compare_backends`
        takes them. Default: every available backend that can compute in ``dtype`` here,
        plus its stand-in devices (array-api-strict's ``"device1"``); those that cannot
        are listed in :attr:`LayerReport.skipped` with the reason. ``[]`` skips the check.
    eps : float, optional
        Finite-difference step, default :data:`~anynet.testing.DEFAULT_EPS` (1e-5).
    rtol, atol : float, optional
        Tolerances of the gradients (see :func:`~anynet.testing.relative_errors`);
        ``atol`` is multiplied by ``max(1, sum(|y * dy|))``. Defaults:
        :data:`~anynet.testing.GRADIENT_RTOL` / ``GRADIENT_ATOL`` of float64 against
        finite differences, ``RTOL`` / ``ATOL`` against the oracles; when given, they
        apply to both.
    params, state : dict, optional
        Values to check at instead of those ``init`` / ``init_state`` draw (same keys and
        shapes): a point where, say, ``gamma`` is not all ones.
    dtype : {"float64", "float32"}
        The dtype the layer runs in: its hand-written gradients on ``backend`` and the
        agreement across ``backends``, at that dtype's tolerances
        (:data:`~anynet.testing.GRADIENT_RTOL`, :data:`~anynet.testing.RTOL`). The
        finite differences (and oracles) are always computed in float64: on ``backend``
        where it can use float64, else on NumPy.

    Returns
    -------
    LayerReport
        Every gradient's worst relative error per reference, the agreement table;
        ``str(report)`` is readable.

    Raises
    ------
    LayerCheckError
        A subclass of :class:`~anynet.testing.GradientCheckError`: some check failed.
        The message is the report, and names each failing gradient (``dx`` or the
        parameter), its worst entry and both values.
    anynet.BackendError
        ``backend`` cannot use ``dtype`` here, or an oracle asked for by name is not
        installed.
    anynet.InputError
        A bad argument.

    Notes
    -----
    Every entry costs two forward passes: meant for layers of modest width. Finite
    differences are wrong where ``y`` has a kink within ``eps`` of the point (ReLU at
    0): use the oracles, or another seed.

    Examples
    --------
    >>> from anynet.layers import Dense, LayerNorm, Residual
    >>> from anynet.testing import check_layer
    >>> report = check_layer(Residual(LayerNorm(), Dense(4), "tanh", Dense(4)), 4, backends=[])
    >>> report.ok
    True
    """
    layer = as_layer(layer, "layer")
    n_in = check_positive_int(n_in, "n_in")
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = _check_seed(seed)
    if not isinstance(train, bool):
        raise InputError(f"train must be True or False, got {train!r}")
    eps = DEFAULT_EPS if eps is None else _check_tolerance(eps, "eps")
    if eps == 0:
        raise InputError("eps must be a finite number > 0, got 0")
    oracles = _check_oracle(oracle)
    for name in oracles:  # a missing oracle asked for by name fails before any work
        _import_oracle(name)
    if isinstance(backends, (str, Backend)):
        raise InputError(
            f"backends must be a list of backends (names, 'name:device' strings, (name, "
            f"device) pairs or anynet.Backend objects), got {backends!r}"
        )
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    fd_rtol = GRADIENT_RTOL[dtype] if rtol is None else _check_tolerance(rtol, "rtol")
    fd_atol = GRADIENT_ATOL[dtype] if atol is None else _check_tolerance(atol, "atol")
    or_rtol = RTOL[dtype] if rtol is None else fd_rtol
    or_atol = ATOL[dtype] if atol is None else fd_atol
    target = _dtype_backend(backend, device, dtype)
    # finite differences in float64: on the backend where it can, else on NumPy
    fd_target = target if target.float64_problem() is None else get_backend("numpy")

    rng = np.random.default_rng(seed)
    drawn, n_out = layer.init(rng, n_in)
    drawn_state = layer.init_state(rng, n_in)
    host_params, host_state = _as_float64(drawn), _state_on_host(drawn_state)
    problems = _protocol_problems(layer, n_in, host_params, n_out, host_state)
    decay = layer.decayed(n_in) if not problems else ()
    unknown = sorted(set(decay) - set(host_params))
    if unknown:
        problems.append(
            f"{type(layer).__name__}.decay must name parameters {sorted(host_params)}, "
            f"got {unknown}"
        )

    def report(
        rows: Sequence[LayerGradientCheck] = (),
        objective: float = math.nan,
        scale: float = 1.0,
        agreement: Comparison | None = None,
        skipped: dict[str, str] | None = None,
    ) -> LayerReport:
        return LayerReport(
            layer=layer.describe(),
            backend=target.describe(),
            train=train,
            n_in=n_in,
            n_out=int(n_out) if isinstance(n_out, numbers.Integral) else -1,
            n_samples=n_samples,
            objective=objective,
            scale=scale,
            eps=eps,
            rtol=fd_rtol,
            atol=fd_atol,
            oracles=oracles,
            oracle_rtol=or_rtol,
            oracle_atol=or_atol,
            rows=tuple(rows),
            agreement=agreement,
            problems=tuple(problems),
            dtype=dtype,
            skipped=dict(skipped or {}),
            decay=decay,
            decay_declared=layer.decay is not None,
        )

    if problems:
        broken = report()
        raise LayerCheckError(str(broken), broken)
    x = rng.normal(size=(n_samples, n_in))
    dy = rng.normal(size=(n_samples, n_out))
    if params is not None:
        host_params = _override(params, host_params, "params")
    if state is not None:
        host_state = _override(state, host_state, "state")

    # -- the hand-written gradients, on the backend asked for
    moved = {key: _to_backend(target, v, dtype) for key, v in host_params.items()}
    moved_state = {key: _to_backend(target, v, dtype) for key, v in host_state.items()}
    x_dev, dy_dev = target.asarray(x, dtype), target.asarray(dy, dtype)
    passes = _passes(layer, target, train)
    try:
        y, dx, grads, from_params, _, value = passes(moved, moved_state, x_dev, dy_dev)
    except Exception:  # a y of the wrong shape explains more than backward's error
        y = layer.forward_state(moved, moved_state, x_dev, xp=target.xp, train=train)[0]
        if _check_result(target, y, "forward_state's y", (n_samples, n_out), problems) is None:
            broken = report()
            raise LayerCheckError(str(broken), broken) from None
        raise
    y_host = _check_result(target, y, "forward_state's y", (n_samples, n_out), problems)
    if y_host is None:
        broken = report()
        raise LayerCheckError(str(broken), broken)
    objective = float(to_numpy(value))
    scale = max(1.0, float(np.sum(np.abs(y_host * dy))))
    analytic = {"dx": _check_result(target, dx, "backward's dx", x.shape, problems)}
    for method, got in (("backward", grads), ("backward_params", from_params)):
        if not isinstance(got, Mapping) or sorted(got) != sorted(host_params):
            keys = sorted(got) if isinstance(got, Mapping) else type(got).__name__
            problems.append(
                f"{method} must return gradients with the keys of params "
                f"{sorted(host_params)}, got {keys}"
            )
    if isinstance(grads, Mapping):
        for key, value in host_params.items():
            if key in grads:
                what = f"backward's gradient {key!r}"
                analytic[key] = _check_result(target, grads[key], what, value.shape, problems)
    if isinstance(from_params, Mapping) and isinstance(grads, Mapping):
        for key in host_params:
            mine = analytic.get(key)
            if key in from_params and mine is not None:
                other = np.asarray(to_numpy(from_params[key]), dtype=np.float64)
                if other.shape != mine.shape:
                    continue
                errors = relative_errors(other, mine, rtol=RTOL[dtype], atol=ATOL[dtype] * scale)
                if not float(np.max(errors, initial=0.0)) <= RTOL[dtype]:
                    problems.append(
                        f"backward_params' gradient {key!r} differs from backward's (max "
                        f"relative difference {float(np.max(errors)):.2e})"
                    )

    if layer.layout_free:
        problems.extend(
            _columns_problems(
                layer, target, moved, x_dev, dy_dev, train, y_host, analytic, scale, dtype
            )
        )

    # -- finite differences of L in float64, on the same backend where it can
    if fd_target is target and dtype == "float64":
        fd_passes, fd_params, fd_state, fd_x, fd_dy = passes, moved, moved_state, x_dev, dy_dev
    else:
        fd_passes = _passes(layer, fd_target, train)
        fd_params = {key: _to_backend(fd_target, v) for key, v in host_params.items()}
        fd_state = {key: _to_backend(fd_target, v) for key, v in host_state.items()}
        fd_x, fd_dy = fd_target.asarray(x, "float64"), fd_target.asarray(dy, "float64")

    def value_of(params: dict[str, Array], x: Array) -> float:
        return float(to_numpy(fd_passes(params, fd_state, x, fd_dy)[-1]))

    def value_at(key: str) -> Callable[[Array], float]:
        """L as a function of the parameter ``key`` alone."""
        return lambda a: value_of({**fd_params, key: a}, fd_x)

    numeric = {"dx": _central_differences(lambda a: value_of(fd_params, a), fd_target, x, eps)}
    for key, value in host_params.items():
        numeric[key] = _central_differences(value_at(key), fd_target, value, eps)

    # -- autodiff oracles
    exact: dict[str, dict[str, np.ndarray]] = {}
    for name in oracles:
        oracle_value, exact[name] = _layer_oracle_gradients(
            name, layer, host_params, host_state, x, dy, train
        )
        difference = relative_errors(oracle_value, objective, rtol=or_rtol, atol=or_atol * scale)
        if not float(difference) <= or_rtol:
            problems.append(
                f"L through {name} ({'forward_state' if layer.state_names else 'reference'}) "
                f"is {oracle_value:.10g}, through forward_state on {target.name} "
                f"{objective:.10g}: the oracle computes another function"
            )

    rows = [
        _row(
            name,
            values,
            numeric[name],
            {o: exact[o][name] for o in oracles},
            fd_rtol,
            fd_atol * scale,
            or_rtol,
            or_atol * scale,
        )
        for name, values in analytic.items()
        if values is not None
    ]

    # -- every backend against NumPy
    agreement = None
    skipped = _unusable_cases(dtype) if backends is None else {}
    cases = _usable_cases(dtype) if backends is None else list(backends)
    if cases:
        agreement = _agreement(layer, host_params, host_state, x, dy, train, cases, target,
                               passes, dtype)  # fmt: skip

    result = report(rows, objective, scale, agreement, skipped)
    if not result.ok:
        raise LayerCheckError(str(result), result)
    return result
