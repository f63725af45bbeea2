"""Validate computations: gradient checks, cross-backend agreement, and test helpers.

This module is public: use it in your own test suites and notebooks.

* :func:`check_gradients` compares a network's hand-written backprop with central
  finite differences in float64 and, optionally, with the autodiff of JAX or PyTorch
  (an independent reimplementation of the same forward pass).
* :func:`compare_backends` / :func:`assert_backends_agree` run one computation (a
  function of ``xp`` or a :class:`~anynet.Network`) on several backends from identical
  inputs and initial weights, and measure how far each result is from a reference.
* :func:`backend_params` / :func:`backend_fixture` parametrize a pytest suite over
  every backend, skipping (with the reason) those that do not load here.
* :func:`assert_close` / :func:`assert_on_backend`: single-array assertions.

Tolerances
----------
Every tolerance depends on the dtype and can be overridden by argument.

=====================  =========  =========  ===========================================
table                  float64    float32    used for
=====================  =========  =========  ===========================================
:data:`RTOL`           1e-10      1e-4       one computation on two backends;
:data:`ATOL`           1e-12      1e-6       analytic vs autodiff gradients
:data:`GRADIENT_RTOL`  1e-6       1e-3       analytic vs finite-difference gradients
:data:`GRADIENT_ATOL`  1e-8       1e-6       (atol scaled by ``max(1, |loss|)``)
:data:`TRAINING_RTOL`  1e-10      1e-3       parameters and loss after training
=====================  =========  =========  ===========================================

Differences are measured as *relative errors with a floor*: for an entry ``a`` of a
result and ``r`` of the reference, ``|a - r| / max(|a|, |r|, atol / rtol)``; a result
passes when every entry's error is at most ``rtol``, that is when
``|a - r| <= max(rtol * max(|a|, |r|), atol)``. Entries far from zero are compared
relatively, entries near zero absolutely.

Nothing here imports pytest, JAX or PyTorch at import time; each is imported when a
function that needs it is called.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import (
    BACKEND_NAMES,
    Backend,
    _device_text,
    available_backends,
    backend_of,
    get_backend,
    install_hint,
    stand_in_devices,
    to_numpy,
)
from .errors import BackendError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

__all__ = [
    "ATOL",
    "DEFAULT_EPS",
    "GRADIENT_ATOL",
    "GRADIENT_RTOL",
    "RTOL",
    "TRAINING_RTOL",
    "BackendMismatch",
    "Comparison",
    "GradientCheckError",
    "GradientReport",
    "OutputDifference",
    "ParameterCheck",
    "assert_backends_agree",
    "assert_close",
    "assert_on_backend",
    "backend_fixture",
    "backend_params",
    "check_gradients",
    "compare_backends",
    "default_atol",
    "default_rtol",
    "relative_errors",
]

Array = Any

#: Default relative tolerance by dtype name, for comparing a backend with a reference.
RTOL: dict[str, float] = {"float64": 1e-10, "float32": 1e-4}
#: Default absolute tolerance by dtype name (for values near zero).
ATOL: dict[str, float] = {"float64": 1e-12, "float32": 1e-6}
#: Relative tolerance of hand-written gradients against float64 central differences,
#: by the dtype of the network checked. With ``eps=1e-5`` float64 central differences
#: are accurate to about 1e-10 (truncation and rounding balance there); a float32
#: network's own gradients carry float32 rounding.
GRADIENT_RTOL: dict[str, float] = {"float64": 1e-6, "float32": 1e-3}
#: Absolute tolerance of the same, multiplied by ``max(1, |loss|)`` (the rounding
#: noise of a finite difference grows with the loss).
GRADIENT_ATOL: dict[str, float] = {"float64": 1e-8, "float32": 1e-6}
#: Normwise relative tolerance of parameters (``max|a - r| / max|r|`` per array) and
#: of the loss after training: float32 rounding accumulates over the epochs.
TRAINING_RTOL: dict[str, float] = {"float64": 1e-10, "float32": 1e-3}

#: Step of the central differences in :func:`check_gradients` (float64).
DEFAULT_EPS = 1e-5


# ==================================================================== basic assertions


def _dtype_key(dtype: Any) -> str:
    """``"float64"`` for any 64-bit dtype or its name, else ``"float32"``."""
    return "float64" if "64" in str(dtype) else "float32"


def default_rtol(dtype: Any) -> float:
    """The default relative tolerance for ``dtype`` (a name or a backend dtype)."""
    return RTOL[_dtype_key(dtype)]


def default_atol(dtype: Any) -> float:
    """The default absolute tolerance for ``dtype`` (a name or a backend dtype)."""
    return ATOL[_dtype_key(dtype)]


def _dtype_name(array: Any) -> str:
    return _dtype_key(array.dtype)


def assert_on_backend(array: Any, backend: str | Backend, device: Any = None) -> None:
    """Fail unless ``array`` is an array of ``backend`` on its device.

    Catches results that have the right values but silently came back as NumPy
    arrays (or lists, or another backend's arrays).
    """
    backend = get_backend(backend, device)
    kind = backend_of(array)
    if kind != backend.name:
        raise AssertionError(
            f"expected an array of backend {backend.name!r}, got {type(array).__module__}."
            f"{type(array).__name__} (backend {kind!r})"
        )
    if not backend.owns(array):
        raise AssertionError(
            f"expected an array on {backend.describe()}, got one on {getattr(array, 'device', '?')}"
        )


def assert_close(
    actual: Any,
    desired: Any,
    *,
    backend: str | Backend | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` is close to ``desired`` (any backend, or NumPy).

    When ``backend`` is given, ``actual`` must also be an array of that backend
    and device. Shapes must match exactly (no broadcasting). ``rtol``/``atol``
    default to :data:`RTOL`/:data:`ATOL` for ``actual``'s dtype.
    """
    if isinstance(actual, dict) or isinstance(desired, dict):
        if sorted(actual) != sorted(desired):
            raise AssertionError(f"keys differ: {sorted(actual)} != {sorted(desired)}")
        for key in desired:
            assert_close(
                actual[key],
                desired[key],
                backend=backend,
                rtol=rtol,
                atol=atol,
                err_msg=f"{err_msg} [{key}]".strip(),
            )
        return
    if backend is not None:
        assert_on_backend(actual, backend)
    dtype = _dtype_name(actual) if hasattr(actual, "dtype") else "float64"
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = ATOL[dtype] if atol is None else atol
    got, want = to_numpy(actual), to_numpy(desired)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape} {err_msg}")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=err_msg)


# ==================================================================== shared helpers


def relative_errors(actual: Any, reference: Any, *, rtol: float, atol: float) -> np.ndarray:
    """Entrywise ``|a - r| / max(|a|, |r|, atol / rtol)``, as float64 NumPy.

    An entry is within tolerance when its error is at most ``rtol``. NaN or
    infinite entries give ``inf`` unless both sides hold the same non-finite value.

    Parameters
    ----------
    actual, reference : array_like
        Same shape; any backend (copied to the host).
    rtol, atol : float
        ``rtol > 0``, ``atol >= 0``.

    Returns
    -------
    numpy.ndarray, float64, the shape of the inputs
    """
    a = np.asarray(to_numpy(actual), dtype=np.float64)
    r = np.asarray(to_numpy(reference), dtype=np.float64)
    floor = atol / rtol if rtol > 0 else 0.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scale = np.maximum(np.maximum(np.abs(a), np.abs(r)), floor)
        errors = np.where(scale > 0, np.abs(a - r) / np.where(scale > 0, scale, 1.0), 0.0)
    same = (a == r) | (np.isnan(a) & np.isnan(r))
    return np.where(same, 0.0, np.where(np.isfinite(errors), errors, np.inf))


def _check_tolerance(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _short_device(device: Any) -> str:
    """``"cpu"``, ``"cuda:0"``, ``"device1"``: a device as a short string."""
    return _device_text(device)


def _label(backend: Backend) -> str:
    """The backend's name, plus ``:device`` when it is not the backend's default device."""
    try:
        default = get_backend(backend.name)
    except Exception:  # pragma: no cover - a backend that loaded once loads again
        default = None
    if default is backend:
        return backend.name
    return f"{backend.name}:{_short_device(backend.device)}"


def _resolve(spec: Any) -> Backend:
    """A backend from ``"name"``, ``"name:device"``, ``(name, device)`` or a Backend."""
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return get_backend(spec[0], spec[1])
    if isinstance(spec, str):
        name, _, device = spec.partition(":")
        return get_backend(name, device or None)
    raise InputError(
        "backends must hold names ('torch', 'jax:gpu'), (name, device) pairs or "
        f"anynet.Backend objects, got {spec!r}"
    )


def _format(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.{digits}e}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _host(value: Any) -> Any:
    """Arrays of any backend to NumPy; other values unchanged."""
    return to_numpy(value) if backend_of(value) not in (None, "numpy") else value


# ==================================================================== gradient checks


class GradientCheckError(AssertionError):
    """Hand-written gradients disagree with finite differences or with an autodiff oracle.

    Attributes
    ----------
    report : GradientReport
        The full comparison; ``str(report)`` is the table in the message.
    """

    def __init__(self, message: str, report: GradientReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ParameterCheck:
    """The gradient check of one parameter array (a row of a :class:`GradientReport`).

    Attributes
    ----------
    name : str
        ``"W1"``, ``"b1"``, ...
    shape : tuple of int
    checked : int
        Entries compared with finite differences (all, or a seeded random sample).
    scale : float
        Largest absolute hand-written gradient entry.
    fd_error : float
        Worst relative error (see :func:`relative_errors`) against the finite differences.
    fd_worst : tuple
        ``(index, analytic, numeric)`` of that worst entry.
    oracle_error : float or None
        Worst relative error against the autodiff oracle over all entries, if one was asked.
    oracle_worst : tuple or None
        ``(index, analytic, oracle)`` of that worst entry.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    scale: float
    fd_error: float
    fd_worst: tuple[tuple[int, ...], float, float]
    oracle_error: float | None = None
    oracle_worst: tuple[tuple[int, ...], float, float] | None = None


@dataclass(frozen=True)
class GradientReport:
    """Result of :func:`check_gradients`: the worst relative error per parameter.

    ``str(report)`` is a readable table; ``report.errors`` maps each parameter name
    to its worst error against the finite differences.
    """

    network: str
    backend: str
    dtype: str
    loss: float
    eps: float
    rtol: float
    atol: float
    oracle: str | None
    oracle_rtol: float
    oracle_atol: float
    rows: tuple[ParameterCheck, ...]

    @property
    def errors(self) -> dict[str, float]:
        """Worst finite-difference relative error per parameter name."""
        return {row.name: row.fd_error for row in self.rows}

    @property
    def oracle_errors(self) -> dict[str, float]:
        """Worst oracle relative error per parameter name (empty without an oracle)."""
        return {row.name: row.oracle_error for row in self.rows if row.oracle_error is not None}

    @property
    def worst(self) -> float:
        """The largest finite-difference error over all parameters."""
        return max(self.errors.values(), default=0.0)

    def failures(self) -> list[str]:
        """One line per tolerance exceeded, naming the parameter and its worst entry."""
        lines = []
        for row in self.rows:
            if not row.fd_error <= self.rtol:
                index, analytic, numeric = row.fd_worst
                lines.append(
                    f"{row.name}{list(index)}: hand-written gradient {analytic:.10g}, "
                    f"finite differences {numeric:.10g} (relative error "
                    f"{row.fd_error:.2e} > rtol {self.rtol:.0e})"
                )
            if row.oracle_error is not None and not row.oracle_error <= self.oracle_rtol:
                index, analytic, exact = row.oracle_worst
                lines.append(
                    f"{row.name}{list(index)}: hand-written gradient {analytic:.10g}, "
                    f"{self.oracle} autodiff {exact:.10g} (relative error "
                    f"{row.oracle_error:.2e} > rtol {self.oracle_rtol:.0e})"
                )
        return lines

    @property
    def ok(self) -> bool:
        """Whether every parameter is within tolerance."""
        return not self.failures()

    def __str__(self) -> str:
        floor = self.atol / self.rtol * max(1.0, abs(self.loss))
        head = [
            f"gradient check of {self.network} on {self.backend} ({self.dtype}), "
            f"loss {self.loss:.6g}",
            f"finite differences: central, float64, eps={self.eps:g}; pass when relative "
            f"error <= {self.rtol:g} (entries below {floor:.0e} compared absolutely)",
        ]
        if self.oracle is not None:
            head.append(
                f"oracle: {self.oracle} autodiff in float64; pass when relative error <= "
                f"{self.oracle_rtol:g}"
            )
        headers = ["param", "shape", "checked", "max|grad|", "FD error"]
        if self.oracle is not None:
            headers.append(f"{self.oracle} error")
        headers.append("status")
        body = []
        for row in self.rows:
            size = math.prod(row.shape)
            ok = row.fd_error <= self.rtol and (
                row.oracle_error is None or row.oracle_error <= self.oracle_rtol
            )
            cells = [
                row.name,
                str(row.shape),
                f"{row.checked}/{size}",
                _format(row.scale),
                _format(row.fd_error) if row.checked else "-",
            ]
            if self.oracle is not None:
                cells.append(_format(row.oracle_error))
            cells.append("ok" if ok else "FAILED")
            body.append(cells)
        text = "\n".join(head) + "\n" + _table(headers, body)
        failures = self.failures()
        if failures:
            text += "\nfailed:\n" + "\n".join(f"  {line}" for line in failures)
        return text


def _float64_twin(net: Network) -> Network:
    """A float64 copy of ``net`` on the same backend and device, with its parameters."""
    try:
        return net.astype("float64")
    except BackendError as exc:
        raise BackendError(
            f"check_gradients computes finite differences in float64 on the network's "
            f"backend ({net.backend.describe()}), which cannot use float64 here: {exc} "
            f"Alternatively check a NumPy copy: check_gradients(net.to('numpy'), X, y)."
        ) from exc


def _describe(net: Network) -> str:
    if net.sizes is not None:
        return f"{net.sizes} {','.join(net.activations)} {net.loss_name}"
    layers = ", ".join(layer.describe() for layer in net.model.layers)
    return f"[{layers}] -> {net.model.head.describe()}"


def _entries(size: int, max_entries: int | None, rng: np.random.Generator) -> np.ndarray:
    """Flat indices to check: all of them, or a sorted random sample of ``max_entries``."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_entries, replace=False))


def _finite_differences(
    twin: Network, X: np.ndarray, y: np.ndarray, eps: float, picks: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Central differences of ``twin.loss`` at the flat indices ``picks[key]`` (float64).

    Each entry costs two loss evaluations. The step actually taken (``(v + eps) - (v - eps)``
    in floating point) divides the difference, not ``2 * eps``.
    """
    base = {key: to_numpy(value).astype(np.float64) for key, value in twin.params.items()}
    numeric = {}
    try:
        for key, flat_indices in picks.items():
            values = np.empty(len(flat_indices))
            for slot, flat in enumerate(flat_indices):
                shifted = base[key].copy()
                center = shifted.flat[flat]
                shifted.flat[flat] = up_at = center + eps
                up = twin.set_params({**base, key: shifted}).loss(X, y)
                shifted.flat[flat] = down_at = center - eps
                down = twin.set_params({**base, key: shifted}).loss(X, y)
                values[slot] = (up - down) / (up_at - down_at)
            numeric[key] = values
    finally:
        twin.set_params(base)
    return numeric


def _worst(
    errors: np.ndarray, analytic: np.ndarray, other: np.ndarray, shape: tuple[int, ...], flat: Any
) -> tuple[float, tuple[tuple[int, ...], float, float]]:
    """The largest error and ``(index, analytic, other)`` of the entry that has it."""
    if errors.size == 0:
        return 0.0, ((), 0.0, 0.0)
    slot = int(np.argmax(errors))
    index = tuple(int(i) for i in np.unravel_index(int(flat[slot]), shape))
    return float(errors[slot]), (index, float(analytic[slot]), float(other[slot]))


def check_gradients(
    net: Network,
    X: Any,
    y: Any,
    eps: float | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    oracle: str | None = None,
    max_entries: int | None = 64,
    seed: int = 0,
) -> GradientReport:
    """Check a network's hand-written gradients against finite differences (and autodiff).

    The gradients under test are ``net.gradients(X, y)``: the network's own backprop,
    on its backend and in its dtype. The reference is the central difference
    ``(L(p + eps) - L(p - eps)) / 2 eps`` of the loss, one parameter entry at a time,
    computed in float64 on a copy of the network on the same backend and device.

    Parameters
    ----------
    net : anynet.Network
        Any backend and dtype; not modified.
    X : array_like, shape (n_samples, n_features)
        Inputs (NumPy, or arrays of the network's backend).
    y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        Targets, as :meth:`Network.loss` takes them.
    eps : float, optional
        Finite-difference step, default :data:`DEFAULT_EPS` (1e-5).
    rtol, atol : float, optional
        Tolerances of the comparison (see :func:`relative_errors`); ``atol`` is
        multiplied by ``max(1, |loss|)``. Defaults: :data:`GRADIENT_RTOL` /
        :data:`GRADIENT_ATOL` for finite differences and :data:`RTOL` / :data:`ATOL`
        for the oracle, by the network's dtype. When given, they apply to both.
    oracle : {"jax", "torch"}, optional
        Also compare with that library's autodiff of the same forward pass and loss,
        written with its own operations from the network's spec, in float64.
    max_entries : int or None
        Entries checked per parameter array by finite differences: all of them when the
        array is no larger, else a seeded random sample of that many. None checks all
        (two loss evaluations per entry); 0 none (oracle only). The oracle always
        compares every entry.
    seed : int
        Seed of that sample.

    Returns
    -------
    GradientReport
        The worst relative error per parameter; ``str(report)`` is a table.

    Raises
    ------
    GradientCheckError
        Some entry exceeds a tolerance; the message is the report's table and names
        each failing parameter, entry and both values.
    anynet.BackendError
        float64 is unusable on the network's backend (JAX without x64), or the oracle
        library is not installed.

    Notes
    -----
    Finite differences are wrong where the loss has a kink within ``eps`` of the point
    (ReLU with a pre-activation within ``eps`` of 0): use small batches, or the oracle.

    Examples
    --------
    >>> import anynet as an
    >>> from anynet.testing import check_gradients
    >>> X, y = an.datasets.planar_flower(n=40)
    >>> net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, dtype="float64")
    >>> report = check_gradients(net, X, y)
    >>> report.worst < 1e-6
    True
    """
    dtype = _dtype_key(net.dtype)
    eps = DEFAULT_EPS if eps is None else _check_tolerance(eps, "eps")
    if eps == 0:
        raise InputError("eps must be a finite number > 0, got 0")
    if oracle not in (None, "jax", "torch"):
        raise InputError(f"oracle must be None, 'jax' or 'torch', got {oracle!r}")
    if max_entries is not None and (
        isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0
    ):
        raise InputError(f"max_entries must be an integer >= 0 or None, got {max_entries!r}")
    if max_entries == 0 and oracle is None:
        raise InputError("max_entries=0 skips the finite differences: it needs an oracle")
    fd_rtol = GRADIENT_RTOL[dtype] if rtol is None else _check_tolerance(rtol, "rtol")
    fd_atol = GRADIENT_ATOL[dtype] if atol is None else _check_tolerance(atol, "atol")
    or_rtol = RTOL[dtype] if rtol is None else fd_rtol
    or_atol = ATOL[dtype] if atol is None else fd_atol

    X_host, y_host = _host(X), _host(y)
    analytic = {key: to_numpy(g).astype(np.float64) for key, g in net.gradients(X, y).items()}
    twin = _float64_twin(net)
    loss = twin.loss(X_host, y_host)
    scale = max(1.0, abs(loss))
    rng = np.random.default_rng(seed)
    picks = {key: _entries(g.size, max_entries, rng) for key, g in analytic.items()}
    numeric = _finite_differences(twin, X_host, y_host, eps, picks)
    exact = None
    if oracle is not None:
        exact = _oracle_gradients(oracle, net, X_host, y_host)

    rows = []
    for key, grad in analytic.items():
        flat = picks[key]
        chosen = grad.ravel()[flat]
        errors = relative_errors(chosen, numeric[key], rtol=fd_rtol, atol=fd_atol * scale)
        fd_error, fd_worst = _worst(errors, chosen, numeric[key], grad.shape, flat)
        oracle_error = oracle_worst = None
        if exact is not None:
            every = np.arange(grad.size)
            truth = exact[key].ravel()
            errors = relative_errors(grad.ravel(), truth, rtol=or_rtol, atol=or_atol * scale)
            oracle_error, oracle_worst = _worst(errors, grad.ravel(), truth, grad.shape, every)
        rows.append(
            ParameterCheck(
                name=key,
                shape=tuple(grad.shape),
                checked=len(flat),
                scale=float(np.max(np.abs(grad), initial=0.0)),
                fd_error=fd_error,
                fd_worst=fd_worst,
                oracle_error=oracle_error,
                oracle_worst=oracle_worst,
            )
        )
    report = GradientReport(
        network=_describe(net),
        backend=net.backend.describe(),
        dtype=str(net.dtype),
        loss=float(loss),
        eps=eps,
        rtol=fd_rtol,
        atol=fd_atol,
        oracle=oracle,
        oracle_rtol=or_rtol,
        oracle_atol=or_atol,
        rows=tuple(rows),
    )
    if not report.ok:
        raise GradientCheckError(str(report), report)
    return report


# -------------------------------------------------------------------- autodiff oracles


def _import_oracle(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendError(
            f"oracle={name!r} needs {name}, which is not installed ({exc}); "
            f"install it ({install_hint(name)}) or pass oracle=None"
        ) from exc


def _jax_x64(jax: Any) -> contextlib.AbstractContextManager:
    """A context in which JAX computes in float64, or an error saying how to get one."""
    if jax.config.read("jax_enable_x64"):
        return contextlib.nullcontext()
    manager = getattr(jax, "enable_x64", None)  # jax >= 0.7: jax.enable_x64(True)
    if manager is not None:
        return manager(True)
    with contextlib.suppress(ImportError):
        experimental = importlib.import_module("jax.experimental")
        if hasattr(experimental, "enable_x64"):
            return experimental.enable_x64()
    raise BackendError(
        "oracle='jax' computes in float64, which needs JAX's 64-bit mode: set the "
        "environment variable JAX_ENABLE_X64=1 before Python starts, or use oracle='torch'"
    )


def _reference_loss(model: Any, params: dict, state: dict, x: Any, y: Any, xp: Any) -> Any:
    """The model's evaluation-mode loss through each layer's :meth:`~Layer.reference`
    (its forward pass unless it gives an independent one), in namespace ``xp``."""
    from .model import Model

    assert isinstance(model, Model)
    h = x
    for layer, slot in zip(model.layers, model._slots, strict=True):
        own = {local: params[key] for local, key in slot.params}
        if slot.state:
            own_state = {local: state[key] for local, key in slot.state}
            h = layer.forward_state(own, own_state, h, xp=xp, train=False)[0]
        else:
            h = layer.reference(own, h, xp=xp, train=False)
    t = model.head.targets(y, h, xp=xp)
    return model.head.loss_value(h, t, xp=xp)


def _oracle_gradients(name: str, net: Network, X: Any, y: Any) -> dict[str, np.ndarray]:
    """Gradients of the network's loss by ``name``'s autodiff (torch or jax), in float64.

    The forward pass runs through every layer's ``reference`` in that library's own
    namespace; only the hand-written backward passes are left out.
    """
    import array_api_compat

    model = net.model
    host = {k: to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    state = {k: to_numpy(v) for k, v in net.state.items()}
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()}
    x = np.asarray(X, dtype=np.float64)
    target = np.asarray(y)
    if name == "torch":
        torch = _import_oracle("torch")
        leaves = {k: torch.tensor(v, requires_grad=True) for k, v in host.items()}
        xp = array_api_compat.array_namespace(torch.zeros(1))
        value = _reference_loss(
            model, leaves, {k: torch.tensor(v) for k, v in state.items()},
            torch.tensor(x), torch.tensor(target), xp,
        )  # fmt: skip
        value.backward()
        return {key: leaf.grad.detach().numpy().copy() for key, leaf in leaves.items()}
    jax = _import_oracle("jax")
    jnp = jax.numpy
    with _jax_x64(jax):
        leaves = {k: jnp.asarray(v) for k, v in host.items()}
        jstate = {k: jnp.asarray(v) for k, v in state.items()}
        grads = jax.grad(
            lambda p: _reference_loss(model, p, jstate, jnp.asarray(x), jnp.asarray(target), jnp)
        )(leaves)
        return {key: np.asarray(value, dtype=np.float64) for key, value in grads.items()}


# ==================================================================== backend agreement


class BackendMismatch(AssertionError):
    """Backends disagree beyond tolerance (or one of them failed to run).

    Attributes
    ----------
    comparison : Comparison
        The full comparison; ``str(comparison)`` is the table in the message.
    """

    def __init__(self, message: str, comparison: Comparison) -> None:
        super().__init__(message)
        self.comparison = comparison


@dataclass(frozen=True)
class OutputDifference:
    """One output of one backend, against the reference (a row of a :class:`Comparison`).

    Attributes
    ----------
    backend : str
        ``"torch"``, or ``"array_api_strict:device1"`` for a non-default device.
    output : str
        ``"output"``, ``"output[0]"``, ``"W1"``, ``"gradients[W1]"``, ...
    shape : tuple of int
    max_abs : float
        ``max |a - r|`` (``inf`` on a shape mismatch or a failed run).
    max_rel : float
        ``max |a - r| / max(|a|, |r|, atol / rtol)``: within tolerance when ``<= rtol``.
    ok : bool
    note : str
        Why a row failed beyond the numbers (shape mismatch, missing output, exception).
    """

    backend: str
    output: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_backends`.

    Attributes
    ----------
    reference : str
        Label of the reference backend.
    dtype : str
    rtol, atol : float
        Tolerances the ``ok`` flags were computed with.
    rows : tuple of OutputDifference
        One per (backend, output), backends in the order asked. A reference that is
        also listed is run a second time and compared with its first run (a check of
        determinism; its time then is that of the second run).
    times : dict of str to float
        Wall seconds of each backend's run (the reference's too), including JAX's
        compilation of the first call: a sanity figure, not a benchmark.
    outputs : dict of str to dict of str to numpy.ndarray
        Every backend's outputs, copied to the host.
    """

    reference: str
    dtype: str
    rtol: float
    atol: float
    rows: tuple[OutputDifference, ...]
    times: dict[str, float]
    outputs: dict[str, dict[str, np.ndarray]] = field(repr=False)

    @property
    def backends(self) -> list[str]:
        """Labels of the backends compared with the reference, in order."""
        return list(dict.fromkeys(row.backend for row in self.rows))

    @property
    def ok(self) -> bool:
        """Whether every output of every backend is within tolerance."""
        return all(row.ok for row in self.rows)

    def failures(self) -> list[OutputDifference]:
        """The rows out of tolerance."""
        return [row for row in self.rows if not row.ok]

    def max_abs(self, backend: str | None = None) -> float:
        """Largest absolute difference, over one backend's outputs or all of them."""
        values = [r.max_abs for r in self.rows if backend is None or r.backend == backend]
        return max(values, default=0.0)

    def max_rel(self, backend: str | None = None) -> float:
        """Largest relative difference, over one backend's outputs or all of them."""
        values = [r.max_rel for r in self.rows if backend is None or r.backend == backend]
        return max(values, default=0.0)

    def check(self) -> Comparison:
        """Raise :class:`BackendMismatch` unless :attr:`ok`; return ``self`` otherwise."""
        if not self.ok:
            raise BackendMismatch(str(self), self)
        return self

    def __str__(self) -> str:
        head = (
            f"backends against {self.reference} ({self.dtype}); pass when "
            f"|a - r| <= max(rtol*max(|a|,|r|), atol), rtol={self.rtol:g}, atol={self.atol:g}"
        )
        body, seen = [], set()
        for row in self.rows:
            first = row.backend not in seen
            seen.add(row.backend)
            seconds = self.times.get(row.backend)
            body.append(
                [
                    row.backend if first else "",
                    row.output,
                    str(row.shape),
                    _format(row.max_abs),
                    _format(row.max_rel),
                    "ok" if row.ok else "FAILED",
                    f"{seconds * 1000:.3g}" if first and seconds is not None else "",
                    row.note,
                ]
            )
        headers = ["backend", "output", "shape", "max|diff|", "max rel", "status", "ms", "note"]
        if not any(row.note for row in self.rows):
            headers, body = headers[:-1], [cells[:-1] for cells in body]
        reference_time = self.times.get(self.reference)
        tail = "" if reference_time is None else f"\nreference: {reference_time * 1000:.3g} ms"
        bad = self.failures()
        if bad:
            tail += f"\nFAILED: {len(bad)} of {len(self.rows)} outputs disagree"
        return head + "\n" + _table(headers, body) + tail


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Outputs (an array, a number, a tuple/list or a dict of them) to ``{name: array}``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}[{key}]" if prefix else str(key), out)
    elif isinstance(value, (tuple, list)) and not _is_number_list(value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix or 'output'}[{index}]", out)
    else:
        out[prefix or "output"] = value


def _is_number_list(value: Sequence[Any]) -> bool:
    return len(value) > 0 and all(isinstance(item, (int, float)) for item in value)


def _to_host_outputs(value: Any) -> dict[str, np.ndarray]:
    flat: dict[str, Any] = {}
    _flatten(value, "", flat)
    return {key: np.asarray(to_numpy(item)) for key, item in flat.items()}


def _move_input(value: Any, backend: Backend, dtype: str) -> Any:
    """NumPy (or any backend's) array to ``backend``: floats cast to ``dtype``, others kept."""
    if isinstance(value, (bool, int, float, complex, str)) or value is None:
        return value
    host = np.asarray(_host(value))
    if host.dtype.kind == "f":
        return backend.asarray(host, dtype)
    return backend.asarray(host)


def _run_function(fn: Callable[..., Any], inputs: Sequence[Any], backend: Backend, dtype: str):
    moved = [_move_input(value, backend, dtype) for value in inputs]
    start = time.perf_counter()
    outputs = _to_host_outputs(fn(backend.xp, *moved))
    return outputs, time.perf_counter() - start


def _network_copy(net: Network, backend: Backend, dtype: str) -> Network:
    """``net`` on ``backend`` with bit-identical parameters, in ``dtype``."""
    if dtype == net.dtype:
        return net.to(backend)
    return net.to("numpy").astype(dtype).to(backend)


def _run_network(
    net: Network, inputs: Sequence[Any], backend: Backend, dtype: str, epochs: int, lr: float
):
    if len(inputs) != 2:
        raise InputError(
            f"compare_backends(net, X, y) needs exactly the inputs X and y for a Network, "
            f"got {len(inputs)} input(s)"
        )
    X, y = (_host(value) for value in inputs)
    copy = _network_copy(net, backend, dtype)
    start = time.perf_counter()
    outputs: dict[str, Any] = {"forward": copy.forward(X), "loss": np.asarray(copy.loss(X, y))}
    for key, grad in copy.gradients(X, y).items():
        outputs[f"gradients[{key}]"] = grad
    history = copy.fit(X, y, epochs=epochs, lr=lr)
    outputs["fit loss"] = np.asarray(history.loss)
    for key, value in copy.params.items():
        outputs[f"fit {key}"] = value
    host = {key: np.asarray(to_numpy(value)) for key, value in outputs.items()}
    return host, time.perf_counter() - start


def _differences(
    label: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray], rtol: float, atol: float
) -> list[OutputDifference]:
    rows = []
    for key, reference in want.items():
        if key not in got:
            note = "missing on this backend"
            rows.append(
                OutputDifference(label, key, reference.shape, math.inf, math.inf, False, note)
            )
            continue
        value = got[key]
        if value.shape != reference.shape:
            note = f"shape {value.shape} != reference {reference.shape}"
            rows.append(OutputDifference(label, key, value.shape, math.inf, math.inf, False, note))
            continue
        errors = relative_errors(value, reference, rtol=rtol, atol=atol)
        with np.errstate(invalid="ignore"):
            diff = np.abs(value.astype(np.float64) - reference.astype(np.float64))
        diff = np.where(errors == 0, 0.0, np.where(np.isfinite(diff), diff, np.inf))
        max_rel = float(np.max(errors, initial=0.0))
        max_abs = float(np.max(diff, initial=0.0))
        rows.append(OutputDifference(label, key, value.shape, max_abs, max_rel, max_rel <= rtol))
    for key in got:
        if key not in want:
            note = "not in the reference's outputs"
            rows.append(
                OutputDifference(label, key, got[key].shape, math.inf, math.inf, False, note)
            )
    return rows


def compare_backends(
    fn_or_net: Callable[..., Any] | Network,
    *inputs: Any,
    backends: Sequence[Any] | None = None,
    reference: Any = "numpy",
    dtype: str | None = None,
    epochs: int = 20,
    lr: float = 0.1,
    rtol: float | None = None,
    atol: float | None = None,
) -> Comparison:
    """Run one computation on several backends from identical inputs; measure the differences.

    Parameters
    ----------
    fn_or_net : callable or anynet.Network
        ``fn(xp, *arrays)`` written against the array API (``xp`` is the backend's
        namespace) returning an array, a number, a tuple/list or a dict of them; or a
        :class:`~anynet.Network`, for which ``forward``, ``loss``, ``gradients`` and,
        after ``fit(X, y, epochs=epochs, lr=lr)``, the loss history and the parameters are
        compared. Every backend starts from the network's own parameters, bit for bit.
    *inputs : array_like
        NumPy arrays (or other backends' arrays, copied to the host first). Floating
        arrays are cast to ``dtype`` on the host and moved to each backend with
        :meth:`Backend.asarray`; integer and boolean arrays keep their dtype; Python
        scalars are passed unchanged. For a network: ``X, y``.
    backends : sequence, optional
        Names (``"torch"``), ``"name:device"`` strings (``"array_api_strict:device1"``),
        ``(name, device)`` pairs or :class:`~anynet.Backend` objects. Default:
        :func:`anynet.available_backends`. Unavailable ones raise :class:`BackendError`.
    reference : str or Backend
        The backend the others are compared with (computed even when not listed).
    dtype : {"float32", "float64"}, optional
        Default: ``"float64"`` for a function, the network's dtype for a network.
    epochs, lr : int, float
        Length and learning rate of the short training run (networks only).
    rtol, atol : float, optional
        Tolerances of the ``ok`` flags; default :data:`RTOL` / :data:`ATOL` by dtype.

    Returns
    -------
    Comparison
        Per backend and output: max absolute and relative difference, pass or fail;
        per backend: wall time. ``str(comparison)`` is a table. A backend whose run
        raises is recorded as a failed row (the reference's exceptions propagate).

    Examples
    --------
    >>> import numpy as np
    >>> from anynet.testing import compare_backends
    >>> x = np.linspace(-2, 2, 5)
    >>> result = compare_backends(lambda xp, x: xp.tanh(x) * 2, x, backends=["numpy"])
    >>> result.ok
    True
    """
    from .network import Network

    is_net = isinstance(fn_or_net, Network)
    if not is_net and not callable(fn_or_net):
        raise InputError(
            f"fn_or_net must be a function fn(xp, *arrays) or an anynet.Network, "
            f"got {type(fn_or_net).__name__}"
        )
    dtype = (fn_or_net.dtype if is_net else "float64") if dtype is None else dtype
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    rtol = RTOL[dtype] if rtol is None else _check_tolerance(rtol, "rtol")
    atol = ATOL[dtype] if atol is None else _check_tolerance(atol, "atol")
    chosen = [_resolve(spec) for spec in (available_backends() if backends is None else backends)]
    base = _resolve(reference)

    def run(backend: Backend) -> tuple[dict[str, np.ndarray], float]:
        if is_net:
            return _run_network(fn_or_net, inputs, backend, dtype, epochs, lr)
        return _run_function(fn_or_net, inputs, backend, dtype)

    base_label = _label(base)
    want, seconds = run(base)
    times, outputs = {base_label: seconds}, {base_label: want}
    rows: list[OutputDifference] = []
    for backend in chosen:
        label = _label(backend)
        try:
            got, seconds = run(backend)
        except Exception as exc:  # recorded, so that the other backends still run
            note = f"raised {type(exc).__name__}: {exc}".replace("\n", " ")
            rows.append(OutputDifference(label, "(run)", (), math.inf, math.inf, False, note))
            continue
        times[label], outputs[label] = seconds, got
        rows += _differences(label, got, want, rtol, atol)
    return Comparison(base_label, dtype, rtol, atol, tuple(rows), times, outputs)


def assert_backends_agree(
    fn_or_net: Callable[..., Any] | Network,
    *inputs: Any,
    backends: Sequence[Any] | None = None,
    reference: Any = "numpy",
    dtype: str | None = None,
    epochs: int = 20,
    lr: float = 0.1,
    rtol: float | None = None,
    atol: float | None = None,
) -> Comparison:
    """:func:`compare_backends`, raising :class:`BackendMismatch` (with the table) on disagreement.

    Same arguments; returns the :class:`Comparison` when every backend agrees.

    Examples
    --------
    >>> import numpy as np
    >>> from anynet.testing import assert_backends_agree
    >>> x = np.linspace(-2, 2, 5)
    >>> _ = assert_backends_agree(lambda xp, x: xp.sum(x * x), x, backends=["numpy"])
    """
    comparison = compare_backends(
        fn_or_net,
        *inputs,
        backends=backends,
        reference=reference,
        dtype=dtype,
        epochs=epochs,
        lr=lr,
        rtol=rtol,
        atol=atol,
    )
    return comparison.check()


# ==================================================================== pytest helpers


def _pytest() -> Any:
    try:
        return importlib.import_module("pytest")
    except ImportError as exc:  # pragma: no cover - only without pytest
        raise ImportError("anynet.testing.backend_params needs pytest: pip install pytest") from exc


def _cases(names: Sequence[str] | None, devices: bool) -> list[tuple[str, str | None]]:
    chosen = list(BACKEND_NAMES) if names is None else list(names)
    unknown = [name for name in chosen if name not in BACKEND_NAMES]
    if unknown:
        raise InputError(f"names must be among {list(BACKEND_NAMES)}, got {unknown}")
    cases: list[tuple[str, str | None]] = []
    for name in chosen:
        cases.append((name, None))
        if devices:
            cases.extend((name, device) for device in stand_in_devices(name))
    return cases


def _unavailable(name: str, device: str | None, dtype: str | None) -> str | None:
    """Why this backend/device (and dtype) cannot run here, or None."""
    try:
        backend = get_backend(name, device)
        if dtype is not None:
            backend.dtype(dtype)
    except Exception as exc:
        return str(exc)
    return None


def backend_params(
    names: Sequence[str] | None = None, *, dtype: str | None = None, devices: bool = True
) -> list[Any]:
    """``pytest.param`` objects for every known backend, unavailable ones skipped with the reason.

    Parameters
    ----------
    names : sequence of str, optional
        Backends to cover; default all of :data:`anynet.BACKEND_NAMES`.
    dtype : {"float32", "float64"}, optional
        Also skip backends that cannot compute in this dtype (JAX float64 without x64).
    devices : bool
        Add array-api-strict's non-default ``"device1"``, which stands in for a GPU:
        implicit device transfers fail there.

    Returns
    -------
    list of pytest.param
        Values ``(name, device)`` (device None for the default), ids ``"numpy"``,
        ``"array_api_strict-device1"``, ...

    Examples
    --------
    In a test module::

        import pytest, anynet
        from anynet.testing import backend_params

        @pytest.mark.parametrize("case", backend_params())
        def test_my_model(case):
            backend = anynet.get_backend(*case)
            ...
    """
    pytest = _pytest()
    params = []
    for name, device in _cases(names, devices):
        reason = _unavailable(name, device, dtype)
        marks = () if reason is None else (pytest.mark.skip(reason=f"{name}: {reason}"),)
        case_id = name if device is None else f"{name}-{device}"
        params.append(pytest.param((name, device), id=case_id, marks=marks))
    return params


def backend_fixture(
    names: Sequence[str] | None = None,
    *,
    dtype: str | None = None,
    devices: bool = True,
    name: str = "backend",
) -> Any:
    """A pytest fixture giving an :class:`anynet.Backend` per backend (see :func:`backend_params`).

    Examples
    --------
    In ``conftest.py``::

        from anynet.testing import backend_fixture

        backend = backend_fixture(dtype="float64")

    then ``def test_x(backend): ...`` runs once per backend and device, unavailable
    ones reported as skipped with the reason.
    """
    pytest = _pytest()

    @pytest.fixture(params=backend_params(names, dtype=dtype, devices=devices), name=name)
    def fixture(request: Any) -> Backend:
        return get_backend(*request.param)

    return fixture
