"""Cross-backend agreement: one computation on several backends, from identical inputs.

:func:`compare_backends` runs a function of ``xp`` (or a :class:`~anynet.Network`:
forward, loss, gradients and a short training run) on each backend asked for, from
the same host inputs and the same initial weights, and measures how far each result
is from a reference backend's with :func:`~anynet.testing.relative_errors`;
:func:`assert_backends_agree` raises :class:`BackendMismatch` with the table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import (
    Backend,
    available_backends,
    device_text,
    get_backend,
    stand_in_devices,
    to_numpy,
)
from ..errors import InputError
from ..network import Network
from ._text import _host, format_number, text_table
from .tolerances import ATOL, RTOL, _check_tolerance, relative_errors

__all__ = [
    "BackendMismatch",
    "Comparison",
    "OutputDifference",
    "assert_backends_agree",
    "compare_backends",
]


def _short_device(device: Any) -> str:
    """``"cpu"``, ``"cuda:0"``, ``"device1"``: a device as a short string."""
    return device_text(device)


def backend_label(backend: Backend) -> str:
    """The backend's name, plus ``:device`` when it is not the backend's default device."""
    try:
        default = get_backend(backend.name)
    except Exception:  # pragma: no cover - a backend that loaded once loads again
        default = None
    if default is backend:
        return backend.name
    return f"{backend.name}:{_short_device(backend.device)}"


def resolve_backend(spec: Any) -> Backend:
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


def _unavailable(name: str, device: str | None, dtype: str | None) -> str | None:
    """Why this backend/device (and dtype) cannot run here, or None."""
    try:
        backend = get_backend(name, device)
        if dtype is not None:
            backend.dtype(dtype)
    except Exception as exc:
        return str(exc)
    return None


def _unusable_cases(dtype: str) -> dict[str, str]:
    """Label and reason of every available backend (and stand-in device) that cannot
    compute in ``dtype`` here: what a default backend list skips, saying why."""
    skipped: dict[str, str] = {}
    for name in available_backends():
        for device in (None, *stand_in_devices(name)):
            reason = _unavailable(name, device, dtype)
            if reason is not None:
                skipped[name if device is None else f"{name}:{device}"] = reason
    return skipped


def _usable_cases(dtype: str) -> list[tuple[str, str | None]]:
    """``(name, device)`` of every available backend that computes in ``dtype`` here, each
    on its default device and on its stand-in devices (array-api-strict's ``device1``)."""
    cases: list[tuple[str, str | None]] = []
    for name in available_backends():
        for device in (None, *stand_in_devices(name)):
            if _unavailable(name, device, dtype) is None:
                cases.append((name, device))
    return cases


def _compiles(backend: Backend) -> bool:
    """Whether the backend compiles functions (JAX): its ``jit`` is not the identity."""

    def probe() -> None:
        return None

    return backend.jit(probe) is not probe


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
    fit_times : dict of str to float
        Networks only: wall seconds of each backend's ``fit`` alone, until its results
        are ready. Where the backend compiles (JAX), a warm-up ``fit`` of the same length
        on a copy runs first, so compilation is left out.
    skipped : dict of str to str
        Backends of the default list that cannot compute in ``dtype`` here, with the
        reason (JAX without ``JAX_ENABLE_X64=1`` in float64): left out, not failed. A
        backend asked for by name that cannot is a failed row instead.
    """

    reference: str
    dtype: str
    rtol: float
    atol: float
    rows: tuple[OutputDifference, ...]
    times: dict[str, float]
    outputs: dict[str, dict[str, np.ndarray]] = field(repr=False)
    fit_times: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

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
                    format_number(row.max_abs),
                    format_number(row.max_rel),
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
        for label, reason in self.skipped.items():
            tail += f"\nskipped: {label} cannot compute in {self.dtype} here ({reason})"
        bad = self.failures()
        if bad:
            tail += f"\nFAILED: {len(bad)} of {len(self.rows)} outputs disagree"
        return head + "\n" + text_table(headers, body) + tail


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


def _run_function(
    fn: Callable[..., Any], inputs: Sequence[Any], backend: Backend, dtype: str
) -> tuple[dict[str, np.ndarray], float, None]:
    moved = [_move_input(value, backend, dtype) for value in inputs]
    start = time.perf_counter()
    outputs = _to_host_outputs(fn(backend.xp, *moved))
    return outputs, time.perf_counter() - start, None


def _network_copy(net: Network, backend: Backend, dtype: str) -> Network:
    """``net`` on ``backend`` with bit-identical parameters, in ``dtype``."""
    if dtype == net.dtype:
        return net.to(backend)
    return net.to("numpy").astype(dtype).to(backend)


def _run_network(
    net: Network, inputs: Sequence[Any], backend: Backend, dtype: str, training: dict
) -> tuple[dict[str, np.ndarray], float, float]:
    """A network's outputs on ``backend`` (host copies), the run's and the fit's seconds.

    Before training: ``forward``, ``loss``, ``gradients[K]``; training ``fit(X, y,
    **training)``: ``fit loss`` (the history), ``fit K`` for every parameter and
    layer-state array after it, ``fit forward`` and ``fit final loss`` (outputs and
    loss of the trained network).
    """
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
    if _compiles(backend):  # compile on a copy, so that the fit timed below only runs
        _network_copy(net, backend, dtype).fit(X, y, **training)
    fit_start = time.perf_counter()
    history = copy.fit(X, y, **training)
    backend.synchronize(*copy.params.values())
    fit_seconds = time.perf_counter() - fit_start
    outputs["fit loss"] = np.asarray(history.loss)
    for key, value in {**copy.params, **copy.state}.items():
        outputs[f"fit {key}"] = value
    outputs["fit forward"] = copy.forward(X)
    outputs["fit final loss"] = np.asarray(copy.loss(X, y))
    host = {key: np.asarray(to_numpy(value)) for key, value in outputs.items()}
    return host, time.perf_counter() - start, fit_seconds


def _training(
    net: Network, epochs: int, lr: float | None, optimizer: Any, batch_size: int | None,
    schedule: Any, seed: int | None, shuffle: bool,
) -> dict[str, Any]:  # fmt: skip
    """``fit``'s keyword arguments for the comparison's training run, the same for every
    backend (one seed, drawn here when neither it nor the network has one)."""
    if optimizer is None:
        optimizer = "sgd"
        lr = 0.1 if lr is None else lr
    if seed is None:
        seed = (
            net.seed if isinstance(net.seed, int) else int(np.random.default_rng().integers(2**32))
        )
    return {"epochs": epochs, "lr": lr, "optimizer": optimizer, "batch_size": batch_size,
            "schedule": schedule, "seed": seed, "shuffle": shuffle}  # fmt: skip


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
    lr: float | None = None,
    optimizer: Any = None,
    batch_size: int | None = None,
    schedule: Any = None,
    seed: int | None = None,
    shuffle: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
) -> Comparison:
    """Run one computation on several backends from identical inputs; measure the differences.

    Parameters
    ----------
    fn_or_net : callable or anynet.Network
        ``fn(xp, *arrays)`` written against the array API (``xp`` is the backend's
        namespace) returning an array, a number, a tuple/list or a dict of them; or a
        :class:`~anynet.Network` (any model: ``Network``, ``Sequential``, registered
        layers, losses and optimizers), for which ``forward``, ``loss``, ``gradients``
        and, after ``fit`` with the training arguments below, the loss history, the
        parameters and
        layer state, and the trained network's ``forward`` and loss are compared (outputs
        ``"forward"``, ``"loss"``, ``"gradients[W1]"``, ..., ``"fit loss"``, ``"fit W1"``,
        ..., ``"fit forward"``, ``"fit final loss"``). Every backend starts from the
        network's own parameters and state, bit for bit.
    *inputs : array_like
        NumPy arrays (or other backends' arrays, copied to the host first). Floating
        arrays are cast to ``dtype`` on the host and moved to each backend with
        :meth:`Backend.asarray`; integer and boolean arrays keep their dtype; Python
        scalars are passed unchanged. For a network: ``X, y``.
    backends : sequence, optional
        Names (``"torch"``), ``"name:device"`` strings (``"array_api_strict:device1"``),
        ``(name, device)`` pairs or :class:`~anynet.Backend` objects. Default:
        :func:`anynet.available_backends`, less those that cannot compute in ``dtype``
        here (listed in :attr:`Comparison.skipped` with the reason). Asked for by name,
        one that does not load raises :class:`BackendError`, one that cannot compute in
        ``dtype`` is a failed row: the rule of every helper and of ``anynet validate``.
    reference : str or Backend
        The backend the others are compared with (computed even when not listed).
    dtype : {"float32", "float64"}, optional
        Default: ``"float64"`` for a function, the network's dtype for a network.
    epochs, lr, optimizer, batch_size, schedule, seed, shuffle
        Networks only: ``fit``'s arguments for the training run, the same on every
        backend. ``lr`` default: 0.1 with the default optimizer (full-batch SGD), else
        the optimizer's own. ``seed`` (of the shuffles) default: the network's seed,
        else one drawn here and used on every backend.
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
    if not isinstance(fn_or_net, Network) and not callable(fn_or_net):
        raise InputError(
            f"fn_or_net must be a function fn(xp, *arrays) or an anynet.Network, "
            f"got {type(fn_or_net).__name__}"
        )
    if dtype is None:
        dtype = fn_or_net.dtype if isinstance(fn_or_net, Network) else "float64"
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    rtol = RTOL[dtype] if rtol is None else _check_tolerance(rtol, "rtol")
    atol = ATOL[dtype] if atol is None else _check_tolerance(atol, "atol")
    skipped: dict[str, str] = {}
    if backends is None:  # the default list leaves out, saying why, what cannot run dtype
        skipped = {name: reason for name in available_backends()
                   if (reason := _unavailable(name, None, dtype)) is not None}  # fmt: skip
        backends = [name for name in available_backends() if name not in skipped]
    chosen = [resolve_backend(spec) for spec in backends]
    base = resolve_backend(reference)

    training: dict[str, Any] = {}
    if isinstance(fn_or_net, Network):
        training = _training(fn_or_net, epochs, lr, optimizer, batch_size, schedule, seed,
                             shuffle)  # fmt: skip

    def run(backend: Backend) -> tuple[dict[str, np.ndarray], float, float | None]:
        if isinstance(fn_or_net, Network):
            return _run_network(fn_or_net, inputs, backend, dtype, training)
        return _run_function(fn_or_net, inputs, backend, dtype)

    base_label = backend_label(base)
    want, seconds, fit_seconds = run(base)
    times, outputs, fit_times = {base_label: seconds}, {base_label: want}, {}
    if fit_seconds is not None:
        fit_times[base_label] = fit_seconds
    rows: list[OutputDifference] = []
    for backend in chosen:
        label = backend_label(backend)
        try:
            got, seconds, fit_seconds = run(backend)
        except Exception as exc:  # recorded, so that the other backends still run
            note = f"raised {type(exc).__name__}: {exc}".replace("\n", " ")
            rows.append(OutputDifference(label, "(run)", (), math.inf, math.inf, False, note))
            continue
        times[label], outputs[label] = seconds, got
        if fit_seconds is not None:
            fit_times[label] = fit_seconds
        rows += _differences(label, got, want, rtol, atol)
    return Comparison(base_label, dtype, rtol, atol, tuple(rows), times, outputs, fit_times,
                      skipped)  # fmt: skip


def assert_backends_agree(
    fn_or_net: Callable[..., Any] | Network,
    *inputs: Any,
    backends: Sequence[Any] | None = None,
    reference: Any = "numpy",
    dtype: str | None = None,
    epochs: int = 20,
    lr: float | None = None,
    optimizer: Any = None,
    batch_size: int | None = None,
    schedule: Any = None,
    seed: int | None = None,
    shuffle: bool = True,
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
        optimizer=optimizer,
        batch_size=batch_size,
        schedule=schedule,
        seed=seed,
        shuffle=shuffle,
        rtol=rtol,
        atol=atol,
    )
    return comparison.check()
