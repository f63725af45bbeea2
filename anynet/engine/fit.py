"""The fit loop: chunks of epochs, shuffles, learning rates, divergence, interrupts.

:func:`train` is a generator: it yields a :class:`Completed` after every chunk of
epochs and continues from the parameters its driver leaves in it (``Network.fit`` runs
callbacks and checkpoints between chunks; a callback's ``set_params`` takes effect from
the next epoch). It never sees the network.

How the work is laid out, and why:

* Data, targets and validation data move to the device once per call.
* Epochs run in *chunks*, each one call of a runner (:mod:`anynet.engine.runner`);
  per-epoch figures stay on the device and are read back once per chunk. A driver
  that needs every epoch (callbacks) asks for chunks of one epoch (``per_epoch``), and
  chunks end where ``boundary`` epochs fall (checkpoints).
* Shuffles are drawn on the host from ``numpy.random.default_rng([seed, epoch])``, so
  the same seed visits the same batches on every backend and a resumed run can
  regenerate any epoch's order.
* A chunk's start is never written (in-place updates write only arrays the chunk
  made), so a diverging run is rerun from there to its last finite epoch, exactly; and
  an exception or ``KeyboardInterrupt`` inside a chunk leaves the parameters, state and
  history of the last completed epoch (eager backends track each epoch; a compiled
  chunk is whole or not at all), yielded as a last ``Completed(interrupted=True)``
  before the exception propagates.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_positive_int
from ..backend import Backend, to_numpy
from ..errors import DivergenceError, InputError
from ..optimizers import Constant, Optimizer, get_schedule, schedule_per
from .cache import Cache
from .history import History
from .host_rows import HostRows
from .resume import Start, restored_state
from .runner import MODES, Tracker, initial_state, runner

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["CHUNK", "ORDER_BUDGET", "Completed", "epoch_plan", "train"]

Array = Any
Params = dict[str, Array]

#: Most epochs per runner call (one read-back of the figures per chunk).
CHUNK = 1000
#: Most shuffle indices a chunk holds (or four epochs' worth, if more): 1 MiB of int32.
#: On JAX a chunk's orders are padded to this fixed height and moved each call, so the
#: budget is also what a short ``fit`` pays (W2: 2.6 MB less per call than at 2**22).
ORDER_BUDGET = 2**18


@dataclass
class Completed:
    """Epochs ``first .. first + count - 1`` are done.

    The driver may replace ``params`` and ``state`` (the loop continues from whatever
    they hold when it resumes) and set ``stop``.

    Attributes
    ----------
    first, count : int
    params, state, opt_state : dict of arrays
        After the chunk's last epoch, on the backend's own device.
    values : ndarray, shape (count, k)
        Per epoch: loss, and with validation val_loss and val_score (float64, host).
    lrs : ndarray, shape (count,)
        The learning rate of each epoch (of its first step, for a per-step schedule).
    history : History
        The whole run so far (the same object every time).
    interrupted : bool
        True for the last one yielded when an exception interrupted the chunk: it holds
        the epochs completed before it; the exception follows.
    """

    first: int
    count: int
    params: Params
    state: Params
    opt_state: Params
    values: np.ndarray
    lrs: np.ndarray
    history: History
    seed: int
    validating: bool = False
    classifier: bool = True
    interrupted: bool = False
    stop: bool = False

    @property
    def logs(self) -> list[dict[str, float]]:
        """One dict of figures per epoch (``loss``, ``lr``, ``val_loss``, ...)."""
        return _logs(self.values, self.lrs, self.validating, self.classifier)

    @property
    def end(self) -> int:
        """The number of epochs the run has completed (``first + count``)."""
        return self.first + self.count


@dataclass
class _Chunk:
    """A chunk's start and inputs, for reruns (divergence) and recovery (interrupts)."""

    start: tuple
    first: int
    count: int
    lrs_host: np.ndarray = field(repr=False)  # (count,), or (count, steps) per step


def train(
    model: Model,
    backend: Backend,
    dtype: str,
    params: Params,
    state: Params,
    x: Array,
    t: Array,
    *,
    epochs: int,
    optimizer: Optimizer,
    batch_size: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int | None = None,
    schedule: Any = None,
    validation: tuple[Array, ...] | None = None,
    sample_weight: Array | None = None,
    per_epoch: bool = False,
    boundary: int | None = None,
    start: Start | None = None,
    devices: Any = None,
    mode: str = "auto",
) -> Iterator[Completed]:
    """Train ``model`` from ``params``/``state`` on checked data ``x (n, f)``, targets
    ``t (n, k)``: checks the arguments now, and returns an iterator over the completed
    chunks, which trains as it is consumed.

    ``x`` may be :class:`~anynet.engine.host_rows.HostRows` (a sparse matrix: each batch
    densified on the host; runs eagerly). ``sample_weight``: checked weights ``(n,)`` on
    the backend (None: unweighted), shuffled with the rows; ``validation``: ``(xv, tv)``
    or ``(xv, tv, wv)``.

    See :meth:`anynet.Network.fit` for the arguments. ``per_epoch``: chunks of one
    epoch. ``boundary``: chunks end at multiples of it. ``start``: continue a run
    (epoch, seed, optimizer state, history). ``mode``: ``"auto"`` or ``"eager"`` (no
    engine optimization, :mod:`anynet.engine.runner`).

    Raises
    ------
    DivergenceError
        With ``params``, ``state`` and ``history`` of the last epoch with a finite loss.
    """
    if mode not in MODES:
        raise InputError(f"engine must be one of {list(MODES)}, got {mode!r}")
    placement = backend.data_parallel(devices)
    epochs = check_positive_int(epochs, "epochs")
    lr_schedule = get_schedule(schedule)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"seed must be a non-negative integer or None, got {seed!r}")
    shuffle, drop_last = _check_flag(shuffle, "shuffle"), _check_flag(drop_last, "drop_last")
    if optimizer.lr > float(np.finfo(dtype).max):
        raise InputError(f"lr must be representable in {dtype}, got {optimizer.lr!r}")
    if seed is None:  # the same in every process of a jax.distributed job
        seed = placement.agree(int(np.random.default_rng().integers(2**32)))
    n = x.shape[0]
    xv, tv, wv = (*validation, None)[:3] if validation is not None else (None, None, None)
    w = sample_weight
    if batch_size is not None and drop_last and batch_size > n:
        raise InputError(
            f"batch_size must be <= {n} (the number of samples) with drop_last=True, "
            f"got {batch_size}: no full batch can be formed"
        )
    if batch_size is not None and batch_size >= n:
        batch_size = None  # one batch holding everything: full batch
    on_host = isinstance(x, HostRows)
    if on_host:
        if devices is not None:
            raise InputError(
                "X must be a dense array with devices= (data parallel copies the whole "
                "data to every device), got a SciPy sparse matrix; pass X.toarray()"
            )
        if batch_size is None:  # the one batch is the whole data
            x, on_host = x.whole(), False
        else:
            mode = "eager"  # the compiled and replayed chunks gather from a device array
    # a per-step schedule: one rate per optimizer step, (epochs, steps per epoch)
    steps_per_epoch = _steps_per_epoch(n, batch_size, drop_last)
    per_step = schedule_per(lr_schedule) == "step"

    run = runner(backend, model, dtype, optimizer, batch_size, drop_last, xv is not None,
                 placement, mode)  # fmt: skip
    opt_state = initial_state(backend, optimizer, model, dtype, params, mode)
    history = History(classifier=model.head.is_classifier)
    initial_epoch = 0
    if start is not None:
        opt_state = restored_state(opt_state, start.optimizer_state, backend)
        for name, values in (start.history or {}).items():
            if name in ("loss", "val_loss", "val_score", "lr"):
                getattr(history, name).extend(values)
        initial_epoch = start.epoch
        epochs -= initial_epoch
        if epochs <= 0:
            return iter([Completed(initial_epoch, 0, params, state, opt_state,
                                   np.zeros((0, 1)), np.zeros(0), history, seed)])  # fmt: skip
    # data parallel: everything on every device (the first process's parameters and
    # state, each process's own data); one device: nothing moves
    params, state, opt_state = placement.broadcast((params, state, opt_state))
    x, t, xv, tv, w, wv = placement.replicate((x, t, xv, tv, w, wv))

    shuffled = batch_size is not None and shuffle
    compact = backend.fixed_shapes  # JAX gathers with any integer indices
    rows = _chunk_rows(n, shuffled)  # the runner's fixed chunk shape: never depends on epochs
    chunk_size = 1 if per_epoch or mode == "eager" else rows
    validating = xv is not None
    classifier = model.head.is_classifier

    def inputs(first: int, count: int) -> tuple[np.ndarray, Any, Any, Any]:
        """Learning rates (host and device), orders and count of a chunk, padded to ``rows``."""
        if per_step:
            lrs_host = _step_rates(lr_schedule, optimizer.lr, first, count, steps_per_epoch)
        else:
            lrs_host = _learning_rates(lr_schedule, optimizer.lr, first, count)
        height = rows if backend.fixed_shapes else count
        padded = np.zeros((height, *lrs_host.shape[1:]))
        padded[:count] = lrs_host
        orders = None
        if shuffled:  # host rows are gathered by the host's order (the runner)
            where = backend if not on_host else None
            orders = _ORDERS.get((where, seed, first, count, n, height, compact),
                                 lambda: _moved(where, _orders(seed, first, count, n, height,
                                                               compact)))  # fmt: skip
        lrs = _MOVED.get((backend, dtype, padded.shape, padded.tobytes()),
                         lambda: _moved(backend, padded, dtype))  # fmt: skip
        steps = count
        if mode != "eager":
            steps = _MOVED.get((backend, "count", count), lambda: backend.loop_count(count))
        return lrs_host, *placement.replicate((lrs, orders, steps))

    def rerun(chunk: _Chunk, count: int) -> tuple:
        """The first ``count`` epochs of ``chunk`` again, from its start (orders regenerated)."""
        if count == 0:
            return chunk.start
        _, lrs, orders, steps = inputs(chunk.first, count)
        with backend.float_errors_silenced():
            return run(*chunk.start, lrs, orders, steps, x, t, xv, tv, w, wv)[:3]

    def completed(first: int, carry: tuple, values: np.ndarray, lrs_host: np.ndarray,
                  interrupted: bool = False) -> Completed:  # fmt: skip
        _record(history, values, lrs_host, validating)
        params, opt_state, state = placement.local(carry)
        return Completed(first, len(lrs_host), params, state, opt_state, values,
                         _epoch_rates(lrs_host), history, seed, validating, classifier,
                         interrupted)  # fmt: skip

    def loop(params: Params, opt_state: Params, state: Params) -> Iterator[Completed]:
        initial = params
        done = 0
        previous: _Chunk | None = None
        # where nothing compiles the chunk, each completed epoch can be kept
        tracking = not backend.compiles or mode == "eager"
        while done < epochs:
            count = min(chunk_size, epochs - done)
            first = initial_epoch + done
            if boundary:  # end chunks where checkpoints fall
                count = min(count, boundary - first % boundary)
            lrs_host, lrs, orders, steps = inputs(first, count)
            chunk = _Chunk((params, opt_state, state), first, count, lrs_host)
            tracker = Tracker() if tracking else None
            try:
                with backend.float_errors_silenced():
                    extra = {} if tracker is None else {"tracker": tracker}
                    params, opt_state, state, figures = run(
                        params, opt_state, state, lrs, orders, steps, x, t, xv, tv, w, wv, **extra
                    )
                del lrs, orders  # nothing of a chunk's inputs outlives it
                # one read-back per chunk (a blocking one: processes queueing dozens of
                # compiled calls without one were seen to hang); float32 figures are kept at
                # their exact value
                figures = placement.local(figures)
                values = _values(figures, count)
            except BaseException:
                yield _recovered(chunk, tracker, rerun, completed, run.in_place)
                raise
            losses = values[:, 0]
            if not np.all(np.isfinite(losses)):
                bad = int(np.argmin(np.isfinite(losses)))
                _diverged(chunk, previous, bad, values, rerun, history, validating, placement,
                          losses[bad])  # fmt: skip
            result = completed(first, (params, opt_state, state), values, lrs_host)
            given = (result.params, result.state)
            yield result
            if result.params is not given[0] or result.state is not given[1]:  # the driver's
                params, state = placement.broadcast((result.params, result.state))
            previous = chunk
            done += count
            if result.stop:
                break
        # the parameters the run started from: the caller's, or garbage once the driver
        # has taken the new ones (a later fit's first updates may reuse those nobody holds)
        backend.offer_spares(list(initial.values()))

    return loop(params, opt_state, state)


def _recovered(chunk: _Chunk, tracker: Tracker | None, rerun: Any, completed: Any,
               in_place: bool) -> Completed:  # fmt: skip
    """The last completed epoch of an interrupted chunk: the tracked one, or, where the
    chunk writes in place (a later step may have written into the tracked arrays),
    recomputed from the chunk's start, which is never written."""
    done = 0 if tracker is None else len(tracker.figures)
    carry = chunk.start
    values = np.zeros((0, 1))
    if done and tracker is not None and tracker.carry is not None:
        figures = tuple(zip(*tracker.figures, strict=True))
        values = np.stack([[float(to_numpy(v)) for v in column] for column in figures], axis=1)
        carry = tracker.carry
        if in_place:
            try:
                carry = rerun(chunk, done)
            except BaseException:  # interrupted again: the chunk's start
                done, carry, values = 0, chunk.start, np.zeros((0, 1))
    return completed(chunk.first, carry, values[:done], chunk.lrs_host[:done], interrupted=True)


def _values(figures: tuple, count: int) -> np.ndarray:
    return np.stack([to_numpy(f)[:count].astype(np.float64) for f in figures], axis=1)


def _epoch_rates(lrs_host: np.ndarray) -> np.ndarray:
    """One rate per epoch: per-step rates give each epoch's first."""
    return lrs_host if lrs_host.ndim == 1 else lrs_host[:, 0]


def _record(history: History, values: np.ndarray, lrs_host: np.ndarray, validating: bool) -> None:
    history.loss.extend(values[:, 0].tolist())
    history.lr.extend(_epoch_rates(lrs_host).tolist())
    if validating and values.shape[1] > 1:
        history.val_loss.extend(values[:, 1].tolist())
        history.val_score.extend(values[:, 2].tolist())


def _diverged(
    chunk: _Chunk, previous: _Chunk | None, bad: int, values: np.ndarray, rerun: Any,
    history: History, validating: bool, placement: Any, value: float,
) -> None:  # fmt: skip
    """Rewind to the start of the last epoch with a finite loss, then raise."""
    _record(history, values[:bad], chunk.lrs_host[:bad], validating)
    if bad == 0 and previous is not None:
        params, _, state = rerun(previous, previous.count - 1)
    else:
        params, _, state = rerun(chunk, max(bad - 1, 0))
    params, state = placement.local((params, state))
    first_epoch = chunk.first + bad
    last_good = first_epoch - 1
    kept = (
        f"the start of epoch {last_good} (the last with a finite loss)"
        if last_good >= 0
        else "the start of training"
    )
    error = DivergenceError(
        f"training diverged: the loss became {value} at epoch {first_epoch}; "
        f"the network keeps the parameters it had at {kept}. "
        "Try a smaller learning rate (lr)."
    )
    error.params, error.history = params, history
    error.state = state  # type: ignore[attr-defined]
    raise error


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _learning_rates(schedule: Any, base: float, first: int, count: int) -> np.ndarray:
    """The schedule's rates for epochs ``first .. first+count-1``, checked, as float64."""
    if isinstance(schedule, Constant):
        return np.full(count, base)
    rates = []
    for epoch in range(first, first + count):
        rate = _as_rate(schedule(base, epoch), epoch)
        if not (math.isfinite(rate) and rate >= 0):
            raise InputError(
                f"schedule must return finite learning rates >= 0, got {rate!r} at epoch {epoch}"
            )
        rates.append(rate)
    return np.asarray(rates, dtype=np.float64)


def epoch_plan(
    schedule: Any, base: float, seed: int, epoch: int, n: int, batch_size: int | None,
    shuffle: bool = True, drop_last: bool = False,
) -> tuple[np.ndarray | None, np.ndarray]:  # fmt: skip
    """What :func:`train` feeds one epoch: its sample order and one rate per step.

    Parameters
    ----------
    schedule : schedule
        As :func:`anynet.optimizers.get_schedule` returns it.
    base : float
        The optimizer's learning rate.
    seed, epoch, n : int
        The run's shuffle seed, the epoch (from 0) and the number of samples.
    batch_size : int or None
        None (or at least ``n``): full batch.
    shuffle, drop_last : bool
        As ``fit`` takes them.

    Returns
    -------
    order : numpy.ndarray of int, shape (n,), or None
        The epoch's sample order (None: the data's own order).
    rates : numpy.ndarray of float64, shape (steps,)
        The learning rate of each optimizer step of the epoch.
    """
    if batch_size is not None and batch_size >= n:
        batch_size = None
    steps = _steps_per_epoch(n, batch_size, drop_last)
    if schedule_per(schedule) == "step":
        rates = _step_rates(schedule, base, epoch, 1, steps)[0]
    else:
        rates = np.repeat(_learning_rates(schedule, base, epoch, 1), steps)
    order = None
    if batch_size is not None and shuffle:
        order = _orders(seed, epoch, 1, n, 1)[0]
    return order, rates


def _steps_per_epoch(n: int, batch_size: int | None, drop_last: bool) -> int:
    """Optimizer steps in an epoch of ``n`` samples (``batch_size`` None: full batch)."""
    if batch_size is None:
        return 1
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not drop_last else 0)


def _step_rates(schedule: Any, base: float, first: int, count: int, steps: int) -> np.ndarray:
    """A per-step schedule's rates for epochs ``first .. first+count-1``: ``(count, steps)``,
    row ``e`` holding steps ``(first + e) * steps .. (first + e + 1) * steps - 1``."""
    rates = np.empty((count, steps), dtype=np.float64)
    for row in range(count):
        for column in range(steps):
            step = (first + row) * steps + column
            rate = _as_rate(schedule(base, step), step, "step")
            if not (math.isfinite(rate) and rate >= 0):
                raise InputError(
                    f"schedule must return finite learning rates >= 0, got {rate!r} at step {step}"
                )
            rates[row, column] = rate
    return rates


def _as_rate(value: Any, epoch: int, unit: str = "epoch") -> float:
    """A schedule's value as a float: Python or NumPy real numbers, 0-d arrays of any backend."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, (str, bytes, bool)) and getattr(value, "shape", None) == ():
        try:
            host = np.asarray(to_numpy(value))
        except (TypeError, ValueError):
            host = None
        if host is not None and host.dtype.kind in "iuf":
            return float(host)
    raise InputError(
        f"schedule must return a real number (a Python or NumPy number, or a 0-d array), "
        f"got {type(value).__name__} {value!r} at {unit} {epoch}"
    )


def _logs(
    values: np.ndarray, rates: np.ndarray, validation: bool, classifier: bool
) -> list[dict[str, float]]:
    """One dict of figures per epoch of a chunk, for callbacks and progress output."""
    logs = []
    for row, rate in zip(values.tolist(), rates.tolist(), strict=True):
        figures = {"loss": row[0], "lr": rate}
        if validation:
            figures["val_loss"], figures["val_score"] = row[1], row[2]
            if classifier:
                figures["val_accuracy"] = row[2]
        logs.append(figures)
    return logs


#: The last chunks' shuffle orders, as the runner takes them (on the device, or on the
#: host for host rows): ``fit(epochs=1, seed=s)`` in a loop visits the same order every
#: call. Two entries, each at most :data:`ORDER_BUDGET` indices (or four epochs' worth).
_ORDERS = Cache(2)
#: Chunks' learning rates and loop counts on the device, by value (a few KiB each).
_MOVED = Cache(16)


def _moved(backend: Backend | None, host: np.ndarray, dtype: str | None = None) -> Any:
    """``host`` on the host (``backend`` None) or moved to ``backend``, made read-only
    where it is a NumPy array: a cached value that nothing may write."""
    moved = host if backend is None else backend.asarray(host, dtype)
    if isinstance(moved, np.ndarray):
        moved.flags.writeable = False
    return moved


def _orders(
    seed: int, first: int, count: int, n: int, rows: int, compact: bool = False
) -> np.ndarray:
    """Sample orders of epochs ``first .. first+count-1``: one generator per (seed, epoch).

    ``(rows, n)``, ``rows >= count`` (the tail is padding, never read); int32 where ``n``
    allows (int16 with ``compact``: half the bytes of a padded chunk to move to a JAX
    device), written in place: no list of permutations, no stacked copy.
    """
    dtype = np.int32 if n < 2**31 else np.int64
    if compact and n < 2**15:
        dtype = np.int16
    orders = np.zeros((rows, n), dtype=dtype)
    for row, epoch in enumerate(range(first, first + count)):
        orders[row] = np.random.default_rng([seed, epoch]).permutation(n)
    return orders


def _chunk_rows(n: int, shuffled: bool) -> int:
    """Epochs per chunk: :data:`CHUNK`, fewer when a chunk's shuffle orders would pass
    :data:`ORDER_BUDGET` indices (memory grows with the data, never with epochs)."""
    if not shuffled:
        return CHUNK
    return max(1, min(CHUNK, max(ORDER_BUDGET, 4 * n) // n))
