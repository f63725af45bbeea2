"""Gradient checks of whole networks: hand-written backprop against finite differences.

:func:`check_gradients` compares :meth:`anynet.Network.gradients` with central
finite differences of the loss in float64 and, optionally, with the autodiff of
PyTorch or JAX (:mod:`anynet.testing.oracles`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import to_numpy
from ..errors import BackendError, InputError
from ._text import _host, _worst, format_number, text_table
from .oracles import _oracle_gradients
from .tolerances import (
    ATOL,
    DEFAULT_EPS,
    GRADIENT_ATOL,
    GRADIENT_RTOL,
    RTOL,
    _check_tolerance,
    _dtype_key,
    relative_errors,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..network import Network

__all__ = ["GradientCheckError", "GradientReport", "ParameterCheck", "check_gradients"]


class GradientCheckError(AssertionError):
    """Hand-written gradients disagree with finite differences or with an autodiff oracle.

    Attributes
    ----------
    report : GradientReport or LayerReport
        The full comparison (a :class:`~anynet.testing.LayerReport` when raised by
        :func:`~anynet.testing.check_layer`); ``str(report)`` is the table in the message.
    """

    def __init__(self, message: str, report: Any) -> None:
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
            if (
                row.oracle_error is not None
                and row.oracle_worst is not None
                and not row.oracle_error <= self.oracle_rtol
            ):
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
                format_number(row.scale),
                format_number(row.fd_error) if row.checked else "-",
            ]
            if self.oracle is not None:
                cells.append(format_number(row.oracle_error))
            cells.append("ok" if ok else "FAILED")
            body.append(cells)
        text = "\n".join(head) + "\n" + text_table(headers, body)
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


def describe_network(net: Network) -> str:
    """A network in a few words: ``"[2, 4, 1] tanh,sigmoid binary_crossentropy"`` for
    ``Network(sizes, activations)``, its layers and head for any other (``Sequential``)."""
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
        Also compare with that library's autodiff of the same loss in float64, the
        forward pass run through each layer's ``reference`` (``forward_state`` for layers
        with state) in that library's own namespace (:mod:`anynet.testing.oracles`).
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
        network=describe_network(net),
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
