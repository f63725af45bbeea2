"""Where do the backends part? :func:`trace_divergence` and its report.

:func:`~anynet.testing.compare_backends` says *whether* backends agree after training;
:func:`trace_divergence` says *where* they first part and *why*:

1. Every backend trains a bit-identical copy of the network in lockstep, epoch by epoch,
   with ``fit``'s documented loop (``engine="eager"``: the plain
   :func:`anynet.functional.train_step` over the same host-drawn batches and learning
   rates). After each epoch the parameters are compared with the reference's (the
   *curve*: the worst normwise relative difference, ``max|a - r| / max|r|`` per array).
2. In the first epoch where a backend's parameters part beyond tolerance, that epoch is
   stepped again, batch by batch, from both backends' parameters at its start, to find
   the first *step* that parts them.
3. That step is run once more on both backends from the **reference's** inputs
   (identical parameters, optimizer state, layer state and batch), recording, in the
   order they happen, each layer's forward output (and new state), the loss and its
   delta, each layer's gradients and backward output, each updated parameter and
   optimizer-state entry. The first quantity out of its dtype's tolerance
   (:data:`~anynet.testing.RTOL` / :data:`~anynet.testing.ATOL`, normwise) is the
   divergence, ``kind="operation"``; that operation is then run once more given the
   reference's own input to it (``isolated_error``), which tells an operation that
   computes other numbers from one that magnifies a rounding-level difference of its
   input (a rounding that flips). If no quantity is out of tolerance, the step agrees
   to rounding and what parted the parameters is rounding amplified by the training
   dynamics, ``kind="amplification"``, naming the layer whose parameters' difference
   grew most in that step.

Only the epoch in question is stepped again and only the step in question is recorded:
memory stays that of a few copies of the parameters. Nothing here is a second copy of
the math: it calls the layers' own ``forward``/``backward``
(:meth:`~anynet.model.Model.forward_layer`, :meth:`~anynet.model.Model.backward_layer`),
the head's ``loss_and_delta`` and the optimizer's ``update``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import Backend, available_backends, get_backend, to_numpy
from ..engine.fit import epoch_plan, train
from ..engine.step import step as train_one_step
from ..errors import DivergenceError, InputError
from ..network import Network
from ..optimizers import get_optimizer, get_schedule
from ._text import format_number
from .agreement import _move_input, _network_copy, _unavailable, backend_label, resolve_backend
from .tolerances import ATOL, RTOL, TRAINING_RTOL, _check_tolerance

if TYPE_CHECKING:
    from ..model import Model
    from ..optimizers import Optimizer

__all__ = ["Divergence", "DivergenceReport", "trace_divergence"]

Array = Any
Params = dict[str, Array]

#: The phases of a training step, in the order they happen.
PHASES = ("forward", "loss", "backward", "update")


@dataclass(frozen=True)
class Divergence:
    """Where one backend first parts from the reference.

    Attributes
    ----------
    backend : str
        The backend's label (``"torch"``, ``"array_api_strict:device1"``).
    epoch, step : int
        The epoch (from 0) and the batch within it (from 0; 0 for full batch).
    phase : {"forward", "loss", "backward", "update"}
        The part of the step where the difference arose (``"update"`` for
        ``kind="amplification"``).
    layer : int or None
        Index into ``net.model.layers``; None for the loss and the update. For
        ``kind="amplification"``, the layer whose parameters' difference grew most in
        the step.
    layer_name : str or None
        The layer as ``summary()`` describes it (``"Dense(4)"``).
    quantity : str
        ``"output"``, ``"state K"`` (forward), ``"loss"``, ``"delta"`` (``dL/dlogits``),
        ``"grad K"``, ``"dx"`` (backward), ``"K"`` (an updated parameter) or an optimizer
        state key (``"m.W1"``).
    index : tuple of int
        The entry with the largest difference.
    reference_value, value : float
        That entry on the reference and on the backend.
    rel_error : float
        ``max|a - r| / max(max|r|, atol / rtol)`` over the quantity.
    tolerance : float
        The relative tolerance ``rel_error`` was held against.
    kind : {"operation", "amplification"}
        ``"operation"``: this operation, given identical inputs, gives other numbers on
        the backend. ``"amplification"``: every operation of the step agrees to rounding
        from identical inputs; rounding differences grew through the training dynamics.
    operation_error : float
        The largest ``rel_error`` of any quantity in the rerun from identical inputs
        (for ``"amplification"``: how small the step's own differences are).
    isolated_error : float or None
        For ``"operation"``: the same operation's difference when it is given the
        reference's own input to it. Above ``tolerance``: the operation itself computes
        other numbers. Within it: the operation magnifies a rounding-level difference
        of its input (a discontinuity such as rounding or a threshold, or an
        ill-conditioned operation).
    """

    backend: str
    epoch: int
    step: int
    phase: str
    layer: int | None
    layer_name: str | None
    quantity: str
    index: tuple[int, ...]
    reference_value: float
    value: float
    rel_error: float
    tolerance: float
    kind: str
    operation_error: float = 0.0
    isolated_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite numbers as None, the index as a list)."""
        return {
            "backend": self.backend,
            "epoch": self.epoch,
            "step": self.step,
            "phase": self.phase,
            "layer": self.layer,
            "layer_name": self.layer_name,
            "quantity": self.quantity,
            "index": [int(i) for i in self.index],
            "reference_value": _json_number(self.reference_value),
            "value": _json_number(self.value),
            "rel_error": _json_number(self.rel_error),
            "tolerance": self.tolerance,
            "kind": self.kind,
            "operation_error": _json_number(self.operation_error),
            "isolated_error": None
            if self.isolated_error is None
            else _json_number(self.isolated_error),
        }

    def describe(self) -> str:
        """One paragraph: what parted, where, by how much, and what it means."""
        where = f"epoch {self.epoch}, step {self.step}"
        entry = f"{self.quantity}[{', '.join(str(i) for i in self.index)}]"
        numbers = (
            f"{entry}: {self.value!r} against the reference's {self.reference_value!r} "
            f"(relative difference {format_number(self.rel_error)}, tolerance "
            f"{format_number(self.tolerance)})"
        )
        if self.kind == "operation":
            at = "the loss" if self.phase == "loss" else (
                "the optimizer's update" if self.phase == "update"
                else f"layer {self.layer} ({self.layer_name})"
            )  # fmt: skip
            head = (
                f"{self.backend} parts at {where}, in the {self.phase} pass of {at}: rerun "
                f"from the reference's parameters and batch, {numbers}."
            )
            if self.isolated_error is not None and self.isolated_error <= self.tolerance:
                return (
                    f"{head} Given the reference's own input, this operation agrees "
                    f"({format_number(self.isolated_error)}): it magnifies a rounding-level "
                    "difference of its input (rounding, a threshold or another "
                    "discontinuity, or an ill-conditioned operation)."
                )
            return (
                f"{head} Given the reference's own input it still differs: this operation "
                f"computes other numbers on {self.backend}; look at it first."
            )
        return (
            f"{self.backend} parts at {where}, by amplification: from identical inputs every "
            f"operation of that step agrees (largest difference "
            f"{format_number(self.operation_error)}), so the parameters parted through "
            "rounding differences that training amplified (chaotic or ill-conditioned "
            f"dynamics), not a wrong operation. The difference grew most in layer "
            f"{self.layer} ({self.layer_name}): {numbers}."
        )


@dataclass(frozen=True)
class DivergenceReport:
    """Result of :func:`trace_divergence`.

    Attributes
    ----------
    reference : str
        The reference backend's label.
    backends : tuple of str
        The backends traced against it, in order.
    dtype : str
    epochs : int
    rtol, atol : float
        Tolerance of the parameters after each epoch (normwise, per array).
    first : Divergence or None
        The earliest divergence over all backends (by epoch, then step); None when
        every backend agrees.
    divergences : dict of str to Divergence or None
        Per backend.
    curve : dict of str to numpy.ndarray
        Per backend, ``(epochs,)`` float64: the worst relative parameter difference from
        the reference after each epoch (inf after a backend's loss turned non-finite).
    loss : dict of str to numpy.ndarray
        Per backend, the reference's too: the loss history (``History.loss``).
    skipped : dict of str to str
        Backends that cannot run ``dtype`` here, with the reason.
    """

    reference: str
    backends: tuple[str, ...]
    dtype: str
    epochs: int
    rtol: float
    atol: float
    first: Divergence | None
    divergences: dict[str, Divergence | None]
    curve: dict[str, np.ndarray] = field(repr=False)
    loss: dict[str, np.ndarray] = field(repr=False)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        """Whether every backend's parameters stayed within tolerance of the reference."""
        return self.first is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: every field, arrays as lists, non-finite numbers as None."""
        return {
            "agree": self.agree,
            "reference": self.reference,
            "backends": list(self.backends),
            "dtype": self.dtype,
            "epochs": self.epochs,
            "rtol": self.rtol,
            "atol": self.atol,
            "first": None if self.first is None else self.first.to_dict(),
            "divergences": {
                key: None if value is None else value.to_dict()
                for key, value in self.divergences.items()
            },
            "curve": {key: [_json_number(v) for v in c] for key, c in self.curve.items()},
            "loss": {key: [_json_number(v) for v in c] for key, c in self.loss.items()},
            "skipped": dict(self.skipped),
        }

    def __str__(self) -> str:
        lines = [
            f"trace_divergence: {len(self.backends)} backend(s) against {self.reference} "
            f"({self.dtype}), {self.epochs} epochs; parameters compared after every epoch, "
            f"tolerance {format_number(self.rtol)} (max|a - r| / max|r| per array)"
        ]
        for label in self.backends:
            found = self.divergences.get(label)
            curve = self.curve[label]
            worst = float(np.max(curve, initial=0.0))
            if found is None:
                worst_text = format_number(worst)
                lines.append(f"  {label}: agrees (worst parameter difference {worst_text})")
            else:
                lines.append(f"  {label}: {found.describe()}")
        for label, reason in self.skipped.items():
            lines.append(f"  {label}: skipped ({reason})")
        if self.first is None:
            lines.append("every backend agrees with the reference")
        else:
            lines.append(
                f"first divergence: {self.first.backend}, epoch {self.first.epoch}, step "
                f"{self.first.step}, {self.first.kind}"
            )
        return "\n".join(lines)


# ====================================================================== the trace


@dataclass
class _Run:
    """One backend's lockstep run."""

    label: str
    backend: Backend
    x: Array
    t: Array
    loop: Any
    start: tuple  # (params, opt_state, state) at the start of the current epoch
    curve: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    failed: bool = False


def trace_divergence(
    net: Network,
    X: Any,
    y: Any,
    *,
    backends: Sequence[Any] | None = None,
    reference: Any = "numpy",
    epochs: int = 100,
    lr: float | None = None,
    optimizer: Any = None,
    batch_size: int | None = None,
    schedule: Any = None,
    seed: int | None = None,
    shuffle: bool = True,
    dtype: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> DivergenceReport:
    """Train ``net`` on every backend in lockstep and find where they first part.

    Parameters
    ----------
    net : anynet.Network
        Any network (``Network``, ``Sequential``, registered layers, losses and
        optimizers); it is not changed: every backend trains a bit-identical copy.
    X : array_like, shape (n_samples, n_features)
    y : array_like
        As ``fit`` takes it.
    backends : sequence, optional
        Names, ``"name:device"``, ``(name, device)`` or :class:`~anynet.Backend` objects.
        Default: every available backend that can compute in ``dtype`` here (the others
        are listed in :attr:`DivergenceReport.skipped`, with the reason).
    reference : str or Backend
        The backend the others are compared with.
    epochs, lr, optimizer, batch_size, schedule, seed, shuffle
        ``fit``'s training arguments (``optimizer`` default ``"sgd"``). ``seed``: of the
        shuffles; default the network's seed, else one drawn here, the same for every
        backend.
    dtype : {"float32", "float64"}, optional
        Default: the network's.
    rtol, atol : float, optional
        Tolerance of the parameters after each epoch: a backend parts where
        ``max|a - r| > max(rtol * max|r|, atol)`` for some parameter array. Default
        :data:`~anynet.testing.TRAINING_RTOL` and :data:`~anynet.testing.ATOL` of
        ``dtype``. The operations of the step in question are held against
        :data:`~anynet.testing.RTOL` / :data:`~anynet.testing.ATOL` of ``dtype``.

    Returns
    -------
    DivergenceReport
        ``report.agree``, ``report.first`` (a :class:`Divergence`: backend, epoch, step,
        phase, layer, quantity, entry, values, kind), per-backend curves;
        ``print(report)`` explains it, ``report.to_dict()`` is JSON-safe,
        :func:`anynet.plot.divergence` draws it.

    Raises
    ------
    InputError
        Bad arguments (as ``fit`` raises them).
    BackendError
        A backend asked for by name that does not load.

    Examples
    --------
    >>> import anynet as an
    >>> from anynet.testing import trace_divergence
    >>> X, y = an.datasets.planar_flower()
    >>> net = an.Network([2, 4, 1], ["tanh", "sigmoid"], init="normal", init_scale=0.01,
    ...                  seed=0, dtype="float64")
    >>> report = trace_divergence(net, X, y, backends=["numpy"], epochs=5, lr=1.2)
    >>> report.agree
    True
    """
    if not isinstance(net, Network):
        raise InputError(f"net must be an anynet.Network, got {type(net).__name__}")
    dtype = net.dtype if dtype is None else dtype
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    rtol = TRAINING_RTOL[dtype] if rtol is None else _check_tolerance(rtol, "rtol")
    atol = ATOL[dtype] if atol is None else _check_tolerance(atol, "atol")
    opt = get_optimizer("sgd" if optimizer is None else optimizer, lr)
    if seed is None:
        own = net.seed
        seed = own if isinstance(own, int) else int(np.random.default_rng().integers(2**32))
    base = resolve_backend(reference)
    skipped: dict[str, str] = {}
    if backends is None:
        chosen = []
        for name in available_backends():
            reason = _unavailable(name, None, dtype)
            if reason is None:
                chosen.append(get_backend(name))
            else:
                skipped[name] = reason
    else:
        chosen = [resolve_backend(spec) for spec in backends]
    chosen = [backend for backend in chosen if backend is not base]
    model = net.model
    settings = {"epochs": epochs, "optimizer": opt, "batch_size": batch_size,
                "shuffle": shuffle, "seed": seed, "schedule": schedule}  # fmt: skip

    ref = _start(net, base, dtype, X, y, settings)
    runs = [_start(net, backend, dtype, X, y, settings) for backend in chosen]
    n = ref.x.shape[0]
    if batch_size is not None and batch_size >= n:
        batch_size = None
    trace = _Tracer(model, opt, dtype, seed, batch_size, shuffle, get_schedule(schedule))
    found: dict[str, Divergence | None] = {run.label: None for run in runs}
    for epoch in range(epochs):
        before_ref = ref.start
        if not _advance(ref):
            break  # the reference diverged: nothing more to compare with
        host_ref = _host_params(ref.start[0])
        for run in runs:
            before = run.start
            if run.failed or not _advance(run):
                run.curve.append(math.inf)
                continue
            worst = _worst_difference(_host_params(run.start[0]), host_ref, rtol, atol)
            run.curve.append(worst)
            if found[run.label] is None and worst > rtol:
                found[run.label] = trace.locate(run, ref, before, before_ref, epoch, rtol, atol)
    firsts = [d for d in found.values() if d is not None]
    first = min(firsts, key=lambda d: (d.epoch, d.step)) if firsts else None
    curves = {run.label: np.asarray(run.curve, dtype=np.float64) for run in runs}
    losses = {run.label: np.asarray(run.loss, dtype=np.float64) for run in (ref, *runs)}
    return DivergenceReport(ref.label, tuple(run.label for run in runs), dtype, epochs, rtol,
                            atol, first, found, curves, losses, skipped)  # fmt: skip


def _start(net: Network, backend: Backend, dtype: str, X: Any, y: Any, settings: dict) -> _Run:
    """A bit-identical copy of ``net`` on ``backend``, and its eager fit loop, not started."""
    copy = _network_copy(net, backend, dtype)
    x = copy._inputs(X)
    t = copy._targets(y, x.shape[0])
    opt = settings["optimizer"]
    params, state = copy._params, copy._state
    loop = train(copy.model, backend, dtype, params, state, x, t, per_epoch=True,
                 mode="eager", **settings)  # fmt: skip
    opt_state = opt.init(params, xp=backend.xp)  # what the eager loop starts from
    return _Run(backend_label(backend), backend, x, t, loop, (params, opt_state, state))


def _advance(run: _Run) -> bool:
    """Train ``run`` one epoch; False (and ``run.failed``) once its loss is non-finite."""
    try:
        done = next(run.loop)
    except DivergenceError as error:
        run.failed = True
        run.loss.extend(error.history.loss[len(run.loss) :])
        return False
    run.start = (done.params, done.opt_state, done.state)
    run.loss.extend(done.values[:, 0].tolist())
    return True


def _host_params(params: Params) -> dict[str, np.ndarray]:
    return {key: np.asarray(to_numpy(value), dtype=np.float64) for key, value in params.items()}


def _normwise(value: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> float:
    """``max|a - r| / max(max|r|, atol / rtol)``; inf where a side is not finite."""
    if value.shape != reference.shape:
        return math.inf
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(value - reference)
    if diff.size == 0:
        return 0.0
    same = (value == reference) | (np.isnan(value) & np.isnan(reference))
    diff = np.where(same, 0.0, diff)
    if not np.all(np.isfinite(diff)):
        return math.inf
    scale = max(float(np.max(np.abs(reference))), atol / rtol if rtol > 0 else 0.0)
    biggest = float(np.max(diff))
    return biggest / scale if scale > 0 else (0.0 if biggest == 0 else math.inf)


def _worst_difference(got: dict, want: dict, rtol: float, atol: float) -> float:
    return max((_normwise(got[key], want[key], rtol, atol) for key in want), default=0.0)


def _json_number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class _Tracer:
    """Steps an epoch again and records the step in question (see the module's docstring)."""

    def __init__(self, model: Model, optimizer: Optimizer, dtype: str, seed: int,
                 batch_size: int | None, shuffle: bool, schedule: Any) -> None:  # fmt: skip
        self.model, self.optimizer, self.dtype, self.seed = model, optimizer, dtype, seed
        self.batch_size, self.shuffle, self.schedule = batch_size, shuffle, schedule

    # -- the epoch, batch by batch, as the eager loop runs it -------------------------
    def batches(self, run: _Run, epoch: int) -> list[tuple[Array, Array, Array]]:
        """The epoch's batches of ``run``'s data, each with its learning rate (a 0-d array
        of ``run``'s backend, as the eager loop passes it)."""
        backend, xp, x, t = run.backend, run.backend.xp, run.x, run.t
        size, n = self.batch_size, x.shape[0]
        order, rates = epoch_plan(self.schedule, self.optimizer.lr, self.seed, epoch, n, size,
                                  self.shuffle)  # fmt: skip
        if order is not None:
            on_device = backend.asarray(order)
            x, t = xp.take(x, on_device, axis=0), xp.take(t, on_device, axis=0)
        if size is None:
            pairs = [(x, t)]
        else:
            n_full, rest = divmod(n, size)
            pairs = [(x[i * size : (i + 1) * size, ...], t[i * size : (i + 1) * size, ...])
                     for i in range(n_full)]  # fmt: skip
            if rest:  # fit keeps the last short batch (drop_last=False)
                pairs.append((x[n_full * size :, ...], t[n_full * size :, ...]))
        lrs = backend.asarray(rates, self.dtype)
        return [(xb, tb, lrs[i]) for i, (xb, tb) in enumerate(pairs)]

    def one_step(self, run: _Run, carry: tuple, batch: tuple, lr: Array) -> tuple:
        params, opt_state, state = carry
        params, opt_state, state, _ = train_one_step(
            self.model, self.optimizer, params, opt_state, state, batch[0], batch[1], lr,
            xp=run.backend.xp,
        )  # fmt: skip
        return params, opt_state, state

    def locate(self, run: _Run, ref: _Run, start: tuple, start_ref: tuple, epoch: int,
               rtol: float, atol: float) -> Divergence:  # fmt: skip
        """The first step of ``epoch`` that parts ``run`` from ``ref``, explained."""
        batches = self.batches(run, epoch)
        batches_ref = self.batches(ref, epoch)
        carry, carry_ref = start, start_ref
        for index, (batch, batch_ref) in enumerate(zip(batches, batches_ref, strict=True)):
            lr, lr_ref = batch[2], batch_ref[2]
            after = self.one_step(run, carry, batch, lr)
            after_ref = self.one_step(ref, carry_ref, batch_ref, lr_ref)
            host, host_ref = _host_params(after[0]), _host_params(after_ref[0])
            if _worst_difference(host, host_ref, rtol, atol) > rtol or index == len(batches) - 1:
                return self.explain(run, ref, epoch, index, carry, carry_ref, after, after_ref,
                                    batch_ref[:2], (lr, lr_ref), rtol, atol)  # fmt: skip
            carry, carry_ref = after, after_ref
        raise AssertionError("unreachable: an epoch has at least one batch")  # pragma: no cover

    # -- the step in question, operation by operation ---------------------------------
    def explain(self, run: _Run, ref: _Run, epoch: int, step: int, carry: tuple,
                carry_ref: tuple, after: tuple, after_ref: tuple, batch_ref: tuple,
                rates: tuple, rtol: float, atol: float) -> Divergence:  # fmt: skip
        """The step rerun from the reference's inputs: its first quantity out of tolerance
        (then the same operation again, given the reference's own input to it), or
        amplification."""
        op_rtol, op_atol = RTOL[self.dtype], ATOL[self.dtype]
        worst = 0.0
        for number, (phase, layer, quantity, value, reference) in enumerate(
            self.operations(run, ref, carry_ref, batch_ref, rates, isolated=False)
        ):
            got, want = _host(value), _host(reference)
            error = _normwise(got, want, op_rtol, op_atol)
            worst = max(worst, error)
            if error > op_rtol:
                index, v, r = _worst_entry(got, want)
                alone = self.operations(run, ref, carry_ref, batch_ref, rates, isolated=True)
                *_, value_alone, reference_alone = next(itertools.islice(alone, number, None))
                isolated = _normwise(_host(value_alone), _host(reference_alone), op_rtol, op_atol)
                return Divergence(run.label, epoch, step, phase, layer, self._name(layer),
                                  quantity, index, r, v, error, op_rtol, "operation", worst,
                                  isolated)  # fmt: skip
        return self._amplification(run, epoch, step, carry, carry_ref, after, after_ref, rtol,
                                   atol, worst)  # fmt: skip

    def operations(self, run: _Run, ref: _Run, carry_ref: tuple, batch_ref: tuple,
                   rates: tuple, *, isolated: bool) -> Any:  # fmt: skip
        """``(phase, layer, quantity, backend's value, reference's value)`` for each
        operation of one step, in the order they happen, both backends starting from the
        reference's parameters, state and batch.

        ``isolated=False``: each backend's values flow on through the step, as in
        training. ``isolated=True``: every operation gets the reference's input to it,
        so each difference is that operation's own. ``rates``: the step's learning rate
        as each backend's loop passes it (the same number).
        """
        lr, lr_ref = rates
        model, optimizer = self.model, self.optimizer
        backend, xp, xp_ref = run.backend, run.backend.xp, ref.backend.xp

        def move(value: Any) -> Any:  # the reference's array, bit for bit, on the backend
            # (NumPy's 0-d results are scalars: made arrays again first)
            return _move_input(np.asarray(to_numpy(value)), backend, self.dtype)

        params_ref, opt_ref, state_ref = carry_ref
        params = {key: move(value) for key, value in params_ref.items()}
        opt_state = {key: move(value) for key, value in opt_ref.items()}
        state = {key: move(value) for key, value in state_ref.items()}
        x_ref, t_ref = batch_ref
        t = move(t_ref)
        h, h_ref, caches, caches_ref = move(x_ref), x_ref, [], []
        for slot in model.slots:
            given = move(h_ref) if isolated else h
            h, cache, new_state = model.forward_layer(slot, params, state, given, xp=xp,
                                                      train=True)  # fmt: skip
            h_ref, cache_ref, new_state_ref = model.forward_layer(
                slot, params_ref, state_ref, h_ref, xp=xp_ref, train=True
            )
            yield "forward", slot.index, "output", h, h_ref
            for key in new_state_ref:
                yield "forward", slot.index, f"state {key}", new_state[key], new_state_ref[key]
            caches.append(cache)
            caches_ref.append(cache_ref)
        loss, dy = model.loss_and_delta(move(h_ref) if isolated else h, t, xp=xp)
        loss_ref, dy_ref = model.loss_and_delta(h_ref, t_ref, xp=xp_ref)
        yield "loss", None, "loss", loss, loss_ref
        yield "loss", None, "delta", dy, dy_ref
        grads: Params = {}
        grads_ref: Params = {}
        for slot in reversed(model.slots):
            if slot.index == 0 and not slot.params:
                break
            given = move(dy_ref) if isolated else dy
            dy, layer_grads = model.backward_layer(slot, params, caches[slot.index], given,
                                                   xp=xp)  # fmt: skip
            dy_ref, layer_grads_ref = model.backward_layer(
                slot, params_ref, caches_ref[slot.index], dy_ref, xp=xp_ref
            )
            for key in layer_grads_ref:
                yield "backward", slot.index, f"grad {key}", layer_grads[key], layer_grads_ref[key]
            if dy_ref is not None:
                yield "backward", slot.index, "dx", dy, dy_ref
            grads.update(layer_grads)
            grads_ref.update(layer_grads_ref)
        grads_ref = {key: grads_ref[key] for key in params_ref}
        grads = {key: move(grads_ref[key]) if isolated else grads[key] for key in params_ref}
        decay = model.decay_keys
        new, new_opt = optimizer.update(params, grads, opt_state, lr, xp=xp, decay=decay)
        new_ref, new_opt_ref = optimizer.update(params_ref, grads_ref, opt_ref, lr_ref,
                                                xp=xp_ref, decay=decay)  # fmt: skip
        for key in new_ref:
            yield "update", None, key, new[key], new_ref[key]
        for key in new_opt_ref:
            yield "update", None, key, new_opt[key], new_opt_ref[key]

    def _amplification(self, run: _Run, epoch: int, step: int, carry: tuple, carry_ref: tuple,
                       after: tuple, after_ref: tuple, rtol: float, atol: float,
                       worst: float) -> Divergence:  # fmt: skip
        """No operation parts them: name the layer whose difference grew most in the step."""
        before, before_ref = _host_params(carry[0]), _host_params(carry_ref[0])
        now, now_ref = _host_params(after[0]), _host_params(after_ref[0])
        tiny = float(np.finfo(self.dtype).eps)
        best: tuple[float, str] | None = None
        for key in now_ref:
            grown = _normwise(now[key], now_ref[key], rtol, atol) / max(
                _normwise(before[key], before_ref[key], rtol, atol), tiny
            )
            if best is None or grown > best[0]:
                best = (grown, key)
        assert best is not None  # a network that trains has parameters
        # within the layer that grew most, its parameter furthest from the reference
        layer, _ = self.model.layer_of(best[1])
        keys = [k for k in now_ref if self.model.layer_of(k)[0] == layer]
        key = max(keys, key=lambda k: _normwise(now[k], now_ref[k], rtol, atol))
        index, v, r = _worst_entry(now[key], now_ref[key])
        error = _normwise(now[key], now_ref[key], rtol, atol)
        return Divergence(run.label, epoch, step, "update", layer, self._name(layer), key,
                          index, r, v, error, rtol, "amplification", worst)  # fmt: skip

    def _name(self, layer: int | None) -> str | None:
        return None if layer is None else self.model.layers[layer].describe()


def _host(value: Any) -> np.ndarray:
    return np.asarray(to_numpy(value), dtype=np.float64)


def _worst_entry(got: np.ndarray, want: np.ndarray) -> tuple[tuple[int, ...], float, float]:
    """The index of the largest difference, and both values there."""
    if got.shape != want.shape or got.size == 0:
        return (), math.nan, math.nan
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got - want)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    flat = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, got.shape))
    return index, float(got[index]), float(want[index])
