"""The fit loop: batching, history, callbacks, progress, divergence.

How the work is laid out, and why:

* Data, targets and validation data move to the device once per ``fit``.
* Epochs run in *chunks*. One chunk is one call of a runner that loops over its
  epochs (and over each epoch's minibatches) with :meth:`Backend.scan`; on JAX
  the whole runner is compiled (``jax.jit`` around ``lax.scan``), so a chunk of
  hundreds of epochs is one dispatch. Elsewhere the same code runs as a Python
  loop. Per-epoch figures (loss, validation loss and score) are computed on the
  device and read back once per chunk: never one host sync per step.
* Shuffles are drawn on the host from ``numpy.random.default_rng([seed, epoch])``,
  so the same seed visits the same batches on every backend, and a resumed run
  can regenerate any epoch's order. They travel as one small index array per chunk.
* Parameters are never updated in place, so keeping the parameters of a chunk's
  start costs nothing; a diverging run is replayed from there to its last finite
  epoch, exactly.
* Data parallel (``devices=``, JAX): a :class:`~anynet.backend.Placement` puts the
  parameters, state, optimizer state and data whole on every device, and inside the
  compiled runner constrains each batch to be split by rows over them; XLA adds the
  all-reduce of the gradients. The math is the same code; results come back to the
  backend's own device after each chunk.
* The engine works on ``(model, params, state)`` and never reaches into the
  network: it hands results to its owner (``owner._assign``) and to callbacks;
  checkpointing is a callback (:class:`Checkpointer`).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ._validation import (
    check_non_negative_float,
    check_positive_int,
)
from .backend import SINGLE_DEVICE, Backend, Placement, to_numpy
from .errors import DivergenceError, InputError
from .functional import step as train_step
from .optimizers import Constant, Optimizer, get_schedule

if TYPE_CHECKING:
    from .model import Model
    from .network import Network

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "History", "fit"]

Array = Any
Params = dict[str, Array]

#: Most epochs per runner call (one read-back of the figures per chunk).
CHUNK = 1000
#: Most shuffle indices a chunk holds (or four epochs' worth, if more): 1 MiB of int32.
#: On JAX a chunk's orders are padded to this fixed height and moved each call, so the
#: budget is also what a short ``fit`` pays (W2: 2.6 MB less per call than at 2**22).
ORDER_BUDGET = 2**18

_RUNNERS: dict[tuple, Callable] = {}


@dataclass
class History:
    """What :meth:`Network.fit` recorded, one entry per epoch.

    Attributes
    ----------
    loss : list of float
        Full batch: the cost of the parameters *before* that epoch's update, exactly
        as the tutorial's loop computes it. Minibatches: the mean of the epoch's
        batch losses (each before its own update), weighted by batch size.
    val_loss, val_score : list of float
        With ``validation_data``: loss and score (accuracy for classifiers, R² for
        regressors) of the parameters *after* the epoch's updates.
    lr : list of float
        The learning rate used in each epoch (after the schedule).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    classifier: bool = True

    @property
    def val_accuracy(self) -> list[float]:
        """``val_score`` of a classifier (its validation accuracy)."""
        if not self.classifier:
            raise AttributeError("val_accuracy is for classifiers; this regressor has val_score")
        return self.val_score

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.loss)

    def __len__(self) -> int:
        return len(self.loss)

    def to_dict(self) -> dict[str, list[float]]:
        """The figures as plain lists (JSON-serialisable)."""
        return {
            "loss": list(self.loss),
            "val_loss": list(self.val_loss),
            "val_score": list(self.val_score),
            "lr": list(self.lr),
        }

    def extend(self, other: History) -> None:
        """Append another history's epochs (used when a run is resumed)."""
        for name in ("loss", "val_loss", "val_score", "lr"):
            getattr(self, name).extend(getattr(other, name))

    def __repr__(self) -> str:
        parts = [f"epochs={self.epochs}"]
        if self.loss:
            parts.append(f"loss={self.loss[-1]:.6g}")
        if self.val_loss:
            parts.append(f"val_loss={self.val_loss[-1]:.6g}")
        return f"History({', '.join(parts)})"


class Callback:
    """Base class for ``fit(callbacks=...)``: override the hooks you need.

    Plain functions ``f(epoch, logs)`` are accepted too. ``logs`` holds the epoch's
    figures: ``loss``, ``lr`` and, with validation data, ``val_loss`` and
    ``val_score`` (plus ``val_accuracy`` for classifiers). Returning True from
    :meth:`on_epoch_end` stops training after that epoch.
    """

    def on_train_begin(self, network: Network) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float], network: Network) -> bool | None:
        """Called after each epoch with the network's current parameters."""
        return None

    def on_train_end(self, network: Network) -> None:
        """Called once after the last epoch (also after an early stop)."""


class _FunctionCallback(Callback):
    def __init__(self, function: Callable[[int, dict], Any]) -> None:
        self.function = function

    def on_epoch_end(self, epoch: int, logs: dict[str, float], network: Network) -> bool:
        return bool(self.function(epoch, logs))


class EarlyStopping(Callback):
    """Stop when a monitored figure stops improving; optionally restore the best weights.

    Parameters
    ----------
    monitor : str
        ``"val_loss"`` (default), ``"val_score"``, ``"val_accuracy"`` or ``"loss"``.
        Losses are minimised, scores maximised.
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    restore_best : bool
        Put back the parameters of the best epoch when training ends. For validation
        figures these are the parameters the figure was measured on (after that
        epoch's updates).

    Attributes
    ----------
    best_epoch : int or None
    best_value : float
    stopped_epoch : int or None
        The epoch after which training stopped, None if it ran to the end.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if monitor not in ("val_loss", "val_score", "val_accuracy", "loss"):
            raise InputError(
                "monitor must be one of ['loss', 'val_accuracy', 'val_loss', 'val_score'], "
                f"got {monitor!r}"
            )
        self.monitor = monitor
        self.patience = check_positive_int(patience, "patience")
        self.min_delta = check_non_negative_float(min_delta, "min_delta")
        self.restore_best = bool(restore_best)
        self._sign = 1.0 if monitor.endswith("loss") else -1.0

    def on_train_begin(self, network: Network) -> None:
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.best_params: Params | None = None
        self.stopped_epoch: int | None = None
        self._wait = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float], network: Network) -> bool:
        if self.monitor not in logs:
            raise InputError(
                f"EarlyStopping(monitor={self.monitor!r}) needs that figure, but fit records "
                f"only {sorted(logs)}: pass validation_data=(X_val, y_val) or monitor='loss'"
            )
        value = logs[self.monitor]
        improved = self.best_epoch is None or self._sign * (self.best_value - value) > (
            self.min_delta
        )
        if improved:
            self.best_value, self.best_epoch = logs[self.monitor], epoch
            self.best_params, self.best_state = network.params, network.state
            self._wait = 0
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, network: Network) -> None:
        if self.restore_best and self.best_params is not None:
            network._assign(self.best_params, self.best_state)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class Checkpointer(Callback):
    """Saves the run every ``every`` epochs and at the end (``fit(checkpoint=...)``).

    ``save(path, optimizer_state, history, extra)`` writes the file (the network's own
    saver); the engine ends its chunks where checkpoints fall.
    """

    def __init__(self, path: Any, every: Any, run_config: dict[str, Any], save: Callable) -> None:
        every = check_positive_int(every, "checkpoint_every", allow_none=True)
        if every is not None and path is None:
            raise InputError("checkpoint_every needs checkpoint=path, got checkpoint=None")
        _check_checkpoint_path(path)
        self.every: int = every or CHUNK
        self.path, self.run_config, self.save = path, run_config, save

    def write(
        self, opt_state: Any, history: History, seed: Any, epoch: int, backend: Backend
    ) -> None:
        """Save the run (in the first process only, where several train together)."""
        if not backend.is_primary_process():
            return
        extra = {"fit": dict(self.run_config, seed=seed, epoch=epoch)}
        self.save(self.path, opt_state, history, extra)


def _check_checkpoint_path(path: Any) -> None:
    """Fail before training, not at the first checkpoint, when ``path`` cannot be written."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"checkpoint must be a path (str or os.PathLike), got {path!r}")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise InputError(f"checkpoint must be in an existing folder, got {str(path)!r}")


def as_callbacks(callbacks: Any) -> list[Callback]:
    """``fit(callbacks=...)`` checked: a list of Callback objects."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise InputError(
            f"callbacks must be a list of anynet.Callback objects or functions (epoch, logs), "
            f"got {type(callbacks).__name__}"
        )
    checked = []
    for index, callback in enumerate(callbacks):
        if isinstance(callback, Callback):
            checked.append(callback)
        elif callable(callback):
            checked.append(_FunctionCallback(callback))
        else:
            raise InputError(
                f"callbacks[{index}] must be an anynet.Callback or a function (epoch, logs), "
                f"got {type(callback).__name__}"
            )
    return checked


# -- the runner: one chunk of epochs, written once for every backend ---------------


def _make_runner(
    backend: Backend,
    model: Model,
    optimizer: Optimizer,
    batch_size: int | None,
    drop_last: bool,
    with_validation: bool,
    placement: Placement = SINGLE_DEVICE,
) -> Callable:
    """``run(params, opt_state, state, lrs, orders, count, x, t, xv, tv) -> (params,
    opt_state, state, figures)``.

    Runs the first ``count`` epochs of ``lrs`` (``(E,)``) and ``orders`` (``(E, n)`` int32
    sample indices, or None: full batch, or no shuffling); ``count`` comes from
    :meth:`Backend.loop_count`, so on JAX a chunk of any length up to ``E`` reuses one
    compiled runner. ``figures`` is a tuple of ``(E,)`` arrays (the first ``count`` are
    meaningful): loss, and with validation val_loss and val_score. Rows-are-samples.

    ``placement`` says how every batch is split over devices (data parallel, JAX): the
    arguments arrive replicated on its devices, each batch is constrained to be split by
    rows, the results to be replicated; the math is the same.
    """
    xp = backend.xp
    rows, replicated = placement.constrain_rows, placement.constrain_replicated
    columns = _in_columns(model, batch_size, placement)
    axis = 0 if columns else -1
    layerwise = _layer_by_layer(model)
    in_place = _in_place(model)

    def recorded_step(
        xp: Any, update: Callable | None, params: Params, opt_state: Params, state: Params,
        xb: Array, tb: Array, lr: Array,
    ) -> tuple[Params, Params, Params, Array]:  # fmt: skip
        return train_step(
            model, optimizer, params, opt_state, state, xb, tb, lr, xp=xp, axis=axis,
            apply_update=update,
        )  # fmt: skip

    # Steps of all but the largest models (layer by layer) are recorded once and replayed
    # (the same calls, without the layers' Python between them): see Backend.replayer.
    replayed: Callable | None = None
    if not in_place:
        replayed = backend.replayer(lambda xp, *args: recorded_step(xp, None, *args))
    elif not layerwise:
        replayed = backend.replayer(recorded_step, in_place=True)

    def run(
        params: Params, opt_state: Params, state: Params, lrs: Array, orders: Array,
        count: Array, x: Array, t: Array, xv: Array, tv: Array,
    ) -> Any:  # fmt: skip
        replay = replayed if REPLAY else None
        if replay is not None and not in_place:
            return chunk(replay, params, opt_state, state, lrs, orders, count, x, t, xv, tv)
        # in place where the backend allows, from the second update of each parameter
        update = backend.updater() if in_place else None

        def step(
            params: Params, opt_state: Params, state: Params, xb: Array, tb: Array, lr: Array
        ) -> tuple[Params, Params, Params, Array]:
            return train_step(
                model, optimizer, params, opt_state, state, xb, tb, lr, xp=xp, axis=axis,
                apply_update=update, layerwise=layerwise,
            )  # fmt: skip

        if replay is not None:  # the chunk's first step writes new arrays; replays write into them
            step = _first_then(step, replay)
        return chunk(step, params, opt_state, state, lrs, orders, count, x, t, xv, tv)

    def chunk(
        step: Callable, params: Params, opt_state: Params, state: Params, lrs: Array,
        orders: Array, count: Array, x: Array, t: Array, xv: Array, tv: Array,
    ) -> Any:  # fmt: skip
        n = x.shape[0]
        if columns:  # once per chunk: a view on NumPy and torch, one transpose in XLA
            x = xp.permute_dims(x, (1, 0))
            xv = None if xv is None else xp.permute_dims(xv, (1, 0))

        def epoch(carry: tuple, inputs: tuple) -> tuple[tuple, tuple]:
            params, opt_state, state = carry
            lr, order = inputs
            if batch_size is None:
                params, opt_state, state, loss = step(
                    params, opt_state, state, rows(x), rows(t), lr
                )
            else:
                # data parallel: every device shuffles its whole copy (a gather split by
                # the compiler instead moved batches between devices with all-gathers)
                xs = x if order is None else replicated(xp.take(x, order, axis=0))
                ts = t if order is None else replicated(xp.take(t, order, axis=0))
                n_full, rest = divmod(n, batch_size)
                used = n_full * batch_size
                batches = (
                    placement.constrain_batches(
                        xp.reshape(xs[:used, ...], (n_full, batch_size, x.shape[1]))
                    ),
                    placement.constrain_batches(
                        xp.reshape(ts[:used, ...], (n_full, batch_size, t.shape[1]))
                    ),
                )

                def batch(carry: tuple, pair: tuple) -> tuple[tuple, tuple]:
                    params, opt_state, state = carry
                    params, opt_state, state, loss = step(
                        params, opt_state, state, pair[0], pair[1], lr
                    )
                    return (params, opt_state, state), (loss,)

                (params, opt_state, state), (losses,) = backend.scan(
                    batch, (params, opt_state, state), batches, n_full
                )
                total, count = xp.sum(losses) * batch_size, used
                if rest and not drop_last:
                    params, opt_state, state, loss = step(
                        params, opt_state, state, rows(xs[used:, ...]), rows(ts[used:, ...]), lr
                    )
                    total, count = total + loss * rest, n
                loss = total / count
            figures: tuple = (loss,)
            if with_validation:
                figures += model.evaluate(params, state, rows(xv), rows(tv), xp=xp, axis=axis)
            return (params, opt_state, state), figures

        (params, opt_state, state), figures = backend.loop(
            epoch, (params, opt_state, state), (lrs, orders), count
        )
        return replicated((params, opt_state, state, figures))

    return backend.jit(run)


def _first_then(first: Callable, rest: Callable) -> Callable:
    """A step that is ``first`` on its first call and ``rest`` after."""
    calls = [first]

    def step(*args: Any) -> Any:
        function = calls[-1]
        calls[-1] = rest
        return function(*args)

    return step


def _in_columns(model: Model, batch_size: int | None, placement: Placement) -> bool:
    """Whether the runner keeps the tutorial's ``(features, samples)`` layout inside.

    Measured (benchmarks/README.md): full-batch steps of small layout-free networks run
    faster in columns on NumPy, JAX and torch (W1: the bias broadcast and reductions
    over the contiguous axis); minibatches are gathered by rows, and data-parallel
    batches are split by rows, so both stay in rows.
    """
    return model.layout_free and batch_size is None and placement is SINGLE_DEVICE


#: Parameters (elements) from which the engine updates each layer as soon as backprop has
#: passed it: below, the per-layer calls cost more than the memory they save is worth.
LAYERWISE_PARAMS = 2**20


#: Elements of the largest parameter from which updates are written in place: below, a
#: new array costs less than the bookkeeping (the tutorial's 2-4-1 network).
IN_PLACE_ELEMENTS = 4096

#: Whether eager backends replay recorded steps (:meth:`anynet.Backend.replayer`) of
#: models not updated layer by layer; off, every step runs the layers' Python (the tests
#: compare both).
REPLAY = True


def _layer_by_layer(model: Model) -> bool:
    """Whether the step updates layer by layer (large models: all gradients never coexist)."""
    shapes, _ = model.shapes()
    return sum(math.prod(shape) for shape in shapes.values()) >= LAYERWISE_PARAMS


def _in_place(model: Model) -> bool:
    """Whether the step writes updates in place (where the backend allows)."""
    shapes, _ = model.shapes()
    return max((math.prod(shape) for shape in shapes.values()), default=0) >= IN_PLACE_ELEMENTS


def _runner(
    backend: Backend, model: Model, optimizer: Optimizer, batch_size: int | None,
    drop_last: bool, with_validation: bool, placement: Placement = SINGLE_DEVICE,
) -> Callable:  # fmt: skip
    # The learning rate arrives as data, so one compiled runner serves every lr.
    key = (backend, model, replace(optimizer, lr=1.0), batch_size, drop_last, with_validation,
           placement)  # fmt: skip
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _make_runner(backend, *key[1:])
        _RUNNERS[key] = runner
    return runner


_INFERENCE: dict[tuple, Callable] = {}


def parallel_logits(
    placement: Placement,
    backend: Backend,
    model: Model,
    params: Params,
    state: Params,
    x: Array,
    size: int,
) -> Array:
    """Evaluation-mode logits of ``x (n, f)``, ``size`` rows at a time, each batch split
    by rows over ``placement``'s devices; on the backend's own device.

    Batches are padded (with copies of their last row) to one height, a multiple of the
    number of devices, so one compiled function serves them all; the padding's outputs
    are dropped.
    """
    key = (backend, model, placement)
    run = _INFERENCE.get(key)
    if run is None:

        def logits(params: Params, state: Params, xb: Array) -> Array:
            z = model.forward(params, state, placement.constrain_rows(xb), xp=backend.xp,
                              train=False)[0]  # fmt: skip
            return placement.constrain_replicated(z)

        run = _INFERENCE[key] = backend.jit(logits)
    xp, n = backend.xp, x.shape[0]
    height = -(-min(size, n) // placement.size) * placement.size
    params, state = placement.broadcast((params, state))
    parts = []
    for start in range(0, n, size):
        part = x[start : min(start + size, n), ...]
        rows = part.shape[0]
        if rows < height:
            tail = xp.broadcast_to(part[rows - 1 :, ...], (height - rows, x.shape[1]))
            part = xp.concat([part, tail], axis=0)
        z = placement.local(run(params, state, placement.shard_rows(part)))
        parts.append(z if rows == height else z[:rows, ...])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


# -- progress ------------------------------------------------------------------------


def _shows_progress(stream: Any) -> bool:
    """Whether a progress bar on ``stream`` is seen: a terminal, or a Jupyter kernel's output
    (ipykernel's streams answer ``isatty()`` False; tqdm.auto draws a widget there)."""
    if type(stream).__module__.startswith("ipykernel."):
        return True
    return hasattr(stream, "isatty") and bool(stream.isatty())


class _Progress:
    """``verbose=N``: a line every N epochs; ``verbose=True``: a tqdm.auto bar in a terminal or
    a notebook."""

    def __init__(self, verbose: Any, epochs: int, stream: Any = None) -> None:
        self.every, self.bar = 0, None
        stream = sys.stderr if stream is None else stream
        if verbose is True:
            if not _shows_progress(stream):
                return  # a file or a pipe: stay silent
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.every = max(epochs // 10, 1)
                return
            self.bar = tqdm(total=epochs, unit="epoch", file=stream, dynamic_ncols=True)
        elif verbose:
            self.every = check_positive_int(verbose, "verbose")

    @property
    def active(self) -> bool:
        """Whether anything will be shown."""
        return self.bar is not None or bool(self.every)

    def update(self, first_epoch: int, logs: list[dict[str, float]]) -> None:
        if self.bar is not None:
            self.bar.update(len(logs))
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs[-1].items() if k != "lr"})
        elif self.every:
            for offset, figures in enumerate(logs):
                epoch = first_epoch + offset
                if epoch % self.every == 0:
                    text = ", ".join(f"{k} {v:.6f}" for k, v in figures.items() if k != "lr")
                    print(f"epoch {epoch}: {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- fit -----------------------------------------------------------------------------


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


def _as_rate(value: Any, epoch: int) -> float:
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
        f"got {type(value).__name__} {value!r} at epoch {epoch}"
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


_INITS: dict[tuple, Callable] = {}


def _initial_state(backend: Backend, optimizer: Optimizer, model: Model, params: Params) -> Params:
    """``optimizer.init(params)``, as one compiled call where the backend compiles (JAX:
    one dispatch instead of one per array)."""
    key = (backend, replace(optimizer, lr=1.0), model)
    init = _INITS.get(key)
    if init is None:
        init = _INITS[key] = backend.jit(lambda values: optimizer.init(values, xp=backend.xp))
    return init(params)


def _chunk_rows(n: int, shuffled: bool) -> int:
    """Epochs per chunk: :data:`CHUNK`, fewer when a chunk's shuffle orders would pass
    :data:`ORDER_BUDGET` indices (memory grows with the data, never with epochs)."""
    if not shuffled:
        return CHUNK
    return max(1, min(CHUNK, max(ORDER_BUDGET, 4 * n) // n))


def run_config(
    optimizer: Optimizer, batch_size: Any, shuffle: Any, drop_last: Any, schedule: Any
) -> dict[str, Any]:
    """What a resumed run must share with the checkpointed one."""
    return {
        "optimizer": repr(optimizer),
        "batch_size": batch_size,
        "shuffle": bool(shuffle) if isinstance(shuffle, (bool, np.bool_)) else shuffle,
        "drop_last": bool(drop_last) if isinstance(drop_last, (bool, np.bool_)) else drop_last,
        "schedule": repr(get_schedule(schedule)),
    }


#: What ``fit(resume=..., allow_changes=...)`` may name.
CHANGEABLE = ("data", "seed", "batch_size", "shuffle", "drop_last", "optimizer", "schedule")


def check_allowed_changes(allow_changes: Any) -> frozenset[str]:
    """``allow_changes`` checked: a sequence of names from :data:`CHANGEABLE`."""
    if isinstance(allow_changes, str) or not isinstance(allow_changes, (list, tuple, set)):
        raise InputError(
            f"allow_changes must be a tuple of names from {list(CHANGEABLE)}, got {allow_changes!r}"
        )
    unknown = [name for name in allow_changes if name not in CHANGEABLE]
    if unknown:
        raise InputError(f"allow_changes must name only {list(CHANGEABLE)}, got {unknown[0]!r}")
    return frozenset(allow_changes)


def fingerprint(x: Array, t: Array, backend: Backend, rows: int = 64) -> str:
    """A short hash of training data: shapes, dtypes and a fixed strided sample of rows.

    The sample moves to the host (``rows`` rows, not the data); the same data in the
    same dtype gives the same fingerprint on every backend.
    """
    n = x.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, rows)).astype(np.int64))
    index = backend.asarray(picks)
    digest = hashlib.sha256()
    for array in (x, t):
        sample = np.ascontiguousarray(to_numpy(backend.xp.take(array, index, axis=0)))
        digest.update(repr((tuple(array.shape), str(sample.dtype))).encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Start:
    """Where a resumed run starts: the checkpoint's epoch, seed, optimizer state, history."""

    epoch: int
    seed: int | None
    optimizer_state: Any
    history: Any


@dataclass
class FitResult:
    """What :func:`fit` returns: the history and the final optimizer state."""

    history: History
    optimizer_state: dict[str, Array]


def fit(
    model: Model,
    backend: Backend,
    dtype: str,
    params: Params,
    state: Params,
    x: Array,
    t: Array,
    *,
    owner: Any,
    epochs: int = 1000,
    optimizer: Optimizer,
    batch_size: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int | None = None,
    schedule: Any = None,
    validation: tuple[Array, Array] | None = None,
    callbacks: Sequence[Callback] = (),
    verbose: int | bool = 0,
    start: Start | None = None,
    devices: Any = None,
) -> FitResult:
    """Train ``model`` from ``params``/``state`` on checked data ``x (n, f)``, targets ``t (n, k)``.

    See :meth:`anynet.Network.fit` for the arguments. ``owner._assign(params, state)``
    receives the parameters after each chunk (and the rewound ones on divergence), on
    the backend's own device; ``owner`` is also what callbacks receive. ``devices``
    (JAX): split every batch over these devices (:meth:`Backend.data_parallel`).
    """
    placement = backend.data_parallel(devices)
    epochs = check_positive_int(epochs, "epochs")
    opt = optimizer
    lr_schedule = get_schedule(schedule)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"seed must be a non-negative integer or None, got {seed!r}")
    shuffle, drop_last = _check_flag(shuffle, "shuffle"), _check_flag(drop_last, "drop_last")
    silent = (
        isinstance(verbose, numbers.Integral) and not isinstance(verbose, bool) and verbose == 0
    )
    if verbose is not True and verbose is not False and not silent:
        check_positive_int(verbose, "verbose")
    if opt.lr > float(np.finfo(dtype).max):
        raise InputError(f"lr must be representable in {dtype}, got {opt.lr!r}")
    if seed is None:  # the same in every process of a jax.distributed job
        seed = placement.agree(int(np.random.default_rng().integers(2**32)))
    checkpointer = next((h for h in callbacks if isinstance(h, Checkpointer)), None)
    hooks = [h for h in callbacks if not isinstance(h, Checkpointer)]
    progress = _Progress(verbose, epochs)

    n = x.shape[0]
    xv, tv = validation if validation is not None else (None, None)
    if batch_size is not None and drop_last and batch_size > n:
        raise InputError(
            f"batch_size must be <= {n} (the number of samples) with drop_last=True, "
            f"got {batch_size}: no full batch can be formed"
        )
    if batch_size is not None and batch_size >= n:
        batch_size = None  # one batch holding everything: full batch

    run = _runner(backend, model, opt, batch_size, drop_last, xv is not None, placement)
    opt_state = _initial_state(backend, opt, model, params)
    history = History(classifier=model.head.is_classifier)
    initial_epoch = 0
    if start is not None:
        opt_state = _restored_state(opt_state, start.optimizer_state, backend)
        for name, values in (start.history or {}).items():
            if name in ("loss", "val_loss", "val_score", "lr"):
                getattr(history, name).extend(values)
        initial_epoch = start.epoch
        epochs -= initial_epoch
        if epochs <= 0:
            return FitResult(history, opt_state)
    # data parallel: everything on every device (the first process's parameters and
    # state, each process's own data); one device: nothing moves
    params, state, opt_state = placement.broadcast((params, state, opt_state))
    x, t, xv, tv = placement.replicate((x, t, xv, tv))

    def assign(params: Params, state: Params) -> Params:
        """Hand the owner its parameters and state, on the backend's own device."""
        params, state = placement.local((params, state))
        owner._assign(params, state)
        return params

    shuffled = batch_size is not None and shuffle
    compact = backend.fixed_shapes  # JAX gathers with any integer indices
    rows = _chunk_rows(n, shuffled)  # the runner's fixed chunk shape: never depends on epochs
    chunk = 1 if hooks else rows
    save_every = checkpointer.every if checkpointer is not None else None
    for hook in hooks:
        hook.on_train_begin(owner)

    def inputs(first: int, count: int) -> tuple[np.ndarray, Any, Any, Any]:
        """Learning rates (host and device), orders and count of a chunk, padded to ``rows``."""
        lrs_host = _learning_rates(lr_schedule, opt.lr, first, count)
        padded = np.zeros(rows) if backend.fixed_shapes else np.zeros(count)
        padded[:count] = lrs_host
        orders = None
        if shuffled:
            height = rows if backend.fixed_shapes else count
            orders = backend.asarray(_orders(seed, first, count, n, height, compact))
        lrs, steps = backend.asarray(padded, dtype), backend.loop_count(count)
        return lrs_host, *placement.replicate((lrs, orders, steps))

    def replay(start: tuple, first: int, count: int) -> tuple:
        """Run ``count`` epochs from ``start`` again (orders regenerated, not kept)."""
        _, lrs, orders, steps = inputs(first, count)
        with backend.float_errors_silenced():
            return run(*start, lrs, orders, steps, x, t, xv, tv)[:3]

    done = 0
    previous: tuple | None = None  # the previous chunk's (start, first epoch, count)
    stop = False
    try:
        while done < epochs and not stop:
            count = min(chunk, epochs - done)
            first = initial_epoch + done
            if save_every:  # end chunks where checkpoints fall
                count = min(count, save_every - first % save_every)
            lrs_host, lrs, orders, steps = inputs(first, count)
            chunk_start = (params, opt_state, state)
            with backend.float_errors_silenced():
                params, opt_state, state, figures = run(
                    params, opt_state, state, lrs, orders, steps, x, t, xv, tv
                )
            del lrs, orders  # nothing of a chunk's inputs outlives it
            # one read-back per chunk (a blocking one: processes queueing dozens of
            # compiled calls without one were seen to hang); float32 figures are kept at
            # their exact value
            figures = placement.local(figures)
            values = np.stack([to_numpy(f)[:count].astype(np.float64) for f in figures], axis=1)
            losses = values[:, 0]
            if not np.all(np.isfinite(losses)):
                bad = int(np.argmin(np.isfinite(losses)))
                history.loss.extend(losses[:bad].tolist())
                _diverged(assign, replay, (chunk_start, first), previous, bad,
                          done + initial_epoch, losses[bad], history)  # fmt: skip
            history.loss.extend(values[:, 0].tolist())
            history.lr.extend(lrs_host.tolist())
            if xv is not None:
                history.val_loss.extend(values[:, 1].tolist())
                history.val_score.extend(values[:, 2].tolist())
            assign(params, state)
            if progress.active or hooks:  # per-epoch dicts only for those who read them
                logs = _logs(values, lrs_host, xv is not None, model.head.is_classifier)
                progress.update(first, logs)
                for hook in hooks:
                    stop = bool(hook.on_epoch_end(first + count - 1, logs[-1], owner)) or stop
            previous = (chunk_start, first, count)
            done += count
            if checkpointer is not None and (
                (initial_epoch + done) % checkpointer.every == 0 or done == epochs or stop
            ):
                checkpointer.write(
                    placement.local(opt_state), history, seed, initial_epoch + done, backend
                )
    finally:
        progress.close()
    for hook in hooks:
        hook.on_train_end(owner)
    return FitResult(history, placement.local(opt_state))


def _restored_state(fresh: dict[str, Array], saved: Any, backend: Backend) -> dict[str, Array]:
    """The saved optimizer state on the device, checked against a fresh one's keys and shapes."""
    saved = saved or {}
    if sorted(saved) != sorted(fresh):
        raise InputError(
            f"resume checkpoint holds optimizer state {sorted(saved)}, this optimizer "
            f"needs {sorted(fresh)}"
        )
    restored = {}
    for key, value in fresh.items():
        host = np.asarray(saved[key])
        if host.shape != tuple(value.shape):
            raise InputError(
                f"resume checkpoint's optimizer state {key!r} has shape {host.shape}, "
                f"expected {tuple(value.shape)}"
            )
        restored[key] = backend.xp.astype(backend.asarray(host, copy=True), value.dtype)
    return restored


def _diverged(
    assign: Callable, replay: Callable, start: Any, previous: Any, bad: int, first_epoch: int,
    value: float, history: History,
) -> NoReturn:  # fmt: skip
    """Rewind to the start of the last epoch with a finite loss, then raise."""
    (params, opt_state, state), first = start
    if bad == 0 and previous is not None:
        (params, opt_state, state), first, count = previous
        replayed = count - 1
    else:
        replayed = max(bad - 1, 0)
    if replayed:
        params, opt_state, state = replay((params, opt_state, state), first, replayed)
    params = assign(params, state)
    last_good = first_epoch + bad - 1
    kept = f"epoch {last_good} (the last with a finite loss)" if last_good >= 0 else "its start"
    error = DivergenceError(
        f"training diverged: the loss became {value} at epoch {first_epoch + bad}; "
        f"the network keeps the parameters it had at the start of {kept}. "
        "Try a smaller learning rate (lr)."
    )
    error.params, error.history = params, history
    raise error
