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
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import model
from ._validation import (
    check_features,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_targets,
)
from .backend import Backend, to_numpy
from .errors import DivergenceError, InputError
from .optimizers import Constant, Optimizer, get_optimizer, get_schedule

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Callback", "EarlyStopping", "History", "fit"]

Array = Any
Params = dict[str, Array]

#: Most epochs per runner call (one read-back of the figures per chunk).
CHUNK = 1000

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

    def on_epoch_end(self, epoch, logs, network):
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

    def on_train_begin(self, network):
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.best_params: Params | None = None
        self.stopped_epoch: int | None = None
        self._wait = 0

    def on_epoch_end(self, epoch, logs, network):
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
            self.best_params = network.params
            self._wait = 0
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, network):
        if self.restore_best and self.best_params is not None:
            network._params = self.best_params


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_checkpoint_path(path: Any) -> None:
    """Fail before training, not at the first checkpoint, when ``path`` cannot be written."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"checkpoint must be a path (str or os.PathLike), got {path!r}")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise InputError(f"checkpoint must be in an existing folder, got {str(path)!r}")


def _as_callbacks(callbacks: Any) -> list[Callback]:
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
    spec: model.Spec,
    optimizer: Optimizer,
    batch_size: int | None,
    drop_last: bool,
    with_validation: bool,
) -> Callable:
    """``run(params, state, lrs, orders, x, t, xv, tv) -> (params, state, figures)``.

    ``lrs`` is ``(E,)``, ``orders`` ``(E, n)`` sample indices or None (full batch, or
    no shuffling); ``figures`` is a tuple of ``(E,)`` arrays: loss, and with validation
    val_loss and val_score. ``x``, ``t`` are ``(features, n)`` for full batch and rows
    ``(n, features)`` for minibatches; ``xv``, ``tv`` are ``(features, n_val)``.
    """
    xp = backend.xp

    def step(params, state, xb, tb, lr):
        return model.train_step(params, state, xb, tb, lr, spec, optimizer, xp)

    def run(params, state, lrs, orders, x, t, xv, tv):
        n = x.shape[1] if batch_size is None else x.shape[0]

        def epoch(carry, inputs):
            params, state = carry
            lr, order = inputs
            if batch_size is None:
                params, state, loss = step(params, state, x, t, lr)
            else:
                xs = x if order is None else xp.take(x, order, axis=0)
                ts = t if order is None else xp.take(t, order, axis=0)
                n_full, rest = divmod(n, batch_size)
                used = n_full * batch_size
                batches = (
                    xp.reshape(xs[:used, ...], (n_full, batch_size, x.shape[1])),
                    xp.reshape(ts[:used, ...], (n_full, batch_size, t.shape[1])),
                )

                def batch(carry, pair):
                    params, state = carry
                    params, state, loss = step(params, state, pair[0].T, pair[1].T, lr)
                    return (params, state), (loss,)

                (params, state), (losses,) = backend.scan(batch, (params, state), batches, n_full)
                total, count = xp.sum(losses) * batch_size, used
                if rest and not drop_last:
                    params, state, loss = step(
                        params, state, xs[used:, ...].T, ts[used:, ...].T, lr
                    )
                    total, count = total + loss * rest, n
                loss = total / count
            figures = (loss,)
            if with_validation:
                figures += model.evaluate(params, xv, tv, spec, xp)
            return (params, state), figures

        (params, state), figures = backend.scan(epoch, (params, state), (lrs, orders), lrs.shape[0])
        return params, state, figures

    return backend.jit(run)


def _runner(backend, spec, optimizer, batch_size, drop_last, with_validation) -> Callable:
    # The learning rate arrives as data, so one compiled runner serves every lr.
    key = (backend, spec, replace(optimizer, lr=1.0), batch_size, drop_last, with_validation)
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _make_runner(backend, spec, key[2], batch_size, drop_last, with_validation)
        _RUNNERS[key] = runner
    return runner


# -- progress ------------------------------------------------------------------------


class _Progress:
    """``verbose=N``: a line every N epochs; ``verbose=True``: a tqdm bar on a terminal."""

    def __init__(self, verbose: Any, epochs: int, stream: Any = None) -> None:
        self.every, self.bar = 0, None
        stream = sys.stderr if stream is None else stream
        if verbose is True:
            if not (hasattr(stream, "isatty") and stream.isatty()):
                return  # not a terminal: stay silent
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
    rates = [schedule(base, epoch) for epoch in range(first, first + count)]
    bad = [v for v in rates if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)]
    if bad:
        raise InputError(f"schedule must return finite learning rates >= 0, got {bad[0]!r}")
    return np.asarray(rates, dtype=np.float64)


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


def _orders(seed: int, first: int, count: int, n: int) -> np.ndarray:
    """Sample orders of epochs ``first .. first+count-1``: one generator per (seed, epoch)."""
    return np.stack(
        [
            np.random.default_rng([seed, epoch]).permutation(n)
            for epoch in range(first, first + count)
        ]
    )


def fit(
    network: Network,
    X: Any,
    y: Any,
    *,
    epochs: int = 1000,
    lr: float | None = None,
    optimizer: str | Optimizer = "sgd",
    batch_size: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int | None = None,
    schedule: Any = None,
    validation_data: tuple[Any, Any] | None = None,
    callbacks: Sequence[Callback | Callable] | None = None,
    verbose: int | bool = 0,
    checkpoint: Any = None,
    checkpoint_every: int | None = None,
    resume: Any = None,
) -> tuple[History, dict[str, Array]]:
    """Train ``network`` in place; see :meth:`anynet.Network.fit` for the arguments.

    Returns the history (of the whole run, when resumed) and the final optimizer state.
    """
    backend, dtype = network.backend, network.dtype
    epochs = check_positive_int(epochs, "epochs")
    opt = get_optimizer(optimizer, None if lr is None else check_positive_float(lr, "lr"))
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
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every", allow_none=True)
    if checkpoint_every is not None and checkpoint is None:
        raise InputError("checkpoint_every needs checkpoint=path, got checkpoint=None")
    if checkpoint is not None:
        _check_checkpoint_path(checkpoint)
    run_config = {
        "optimizer": repr(opt),
        "batch_size": batch_size,
        "shuffle": bool(shuffle),
        "drop_last": bool(drop_last),
        "schedule": repr(lr_schedule),
    }
    resumed = _resume(network, resume, run_config) if resume is not None else None
    if seed is None:
        if resumed is not None:
            seed = resumed["seed"]
        elif network.seed is not None:
            seed = network.seed
        else:
            seed = int(np.random.default_rng().integers(2**32))
    hooks = _as_callbacks(callbacks)
    progress = _Progress(verbose, epochs)

    # Full batch keeps the data in the math's (features, samples) layout, made
    # contiguous on the host; minibatches keep rows, so that a batch is a slice.
    full_batch = batch_size is None
    x = check_features(X, backend, network.sizes[0], dtype, columns=full_batch)
    n = x.shape[1] if full_batch else x.shape[0]
    loss, n_out = network.spec.loss, network.sizes[-1]
    t = check_targets(y, loss, n_out, n, backend, dtype, columns=full_batch)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InputError(
                "validation_data must be a pair (X_val, y_val), "
                f"got {type(validation_data).__name__}"
            )
        xv = check_features(
            validation_data[0], backend, network.sizes[0], dtype, "X_val", columns=True
        )
        tv = check_targets(
            validation_data[1], loss, n_out, xv.shape[1], backend, dtype, "y_val", columns=True
        )
    else:
        xv = tv = None
    if batch_size is not None and batch_size >= n:
        batch_size, x, t = None, x.T, t.T  # one batch holding everything: full batch
    if batch_size is not None and drop_last and n // batch_size == 0:
        raise InputError(f"batch_size must be <= {n} with drop_last=True, got {batch_size}")

    run = _runner(backend, network.spec, opt, batch_size, drop_last, xv is not None)
    params = network._params
    state = opt.init(params, xp=backend.xp)
    history = History(classifier=network.is_classifier)
    initial_epoch = 0
    if resumed is not None:
        state = _restored_state(state, resumed["optimizer_state"], backend)
        for name, values in (resumed["history"] or {}).items():
            if name in ("loss", "val_loss", "val_score", "lr"):
                getattr(history, name).extend(values)
        initial_epoch = resumed["epoch"]
        epochs -= initial_epoch
        if epochs <= 0:
            return history, state
    chunk = 1 if hooks else CHUNK
    save_every = checkpoint_every or (CHUNK if checkpoint is not None else None)
    for hook in hooks:
        hook.on_train_begin(network)

    done = 0
    previous: tuple | None = None  # (params, state, lrs, orders) of the previous chunk
    stop = False
    try:
        while done < epochs and not stop:
            count = min(chunk, epochs - done)
            first = initial_epoch + done
            if save_every:  # end chunks where checkpoints fall
                count = min(count, save_every - first % save_every)
            lrs_host = _learning_rates(lr_schedule, opt.lr, first, count)
            lrs = backend.asarray(lrs_host, dtype)
            orders = None
            if batch_size is not None and shuffle:
                orders = backend.asarray(_orders(seed, first, count, n))
            start = (params, state, lrs, orders)
            with backend.float_errors_silenced():
                params, state, figures = run(params, state, lrs, orders, x, t, xv, tv)
            # one read-back per chunk; float32 figures are kept at their exact value
            values = np.stack([to_numpy(f).astype(np.float64) for f in figures], axis=1)
            losses = values[:, 0]
            if not np.all(np.isfinite(losses)):
                bad = int(np.argmin(np.isfinite(losses)))
                history.loss.extend(losses[:bad].tolist())
                _diverged(
                    network,
                    run,
                    start,
                    previous,
                    bad,
                    done + initial_epoch,
                    losses[bad],
                    x,
                    t,
                    xv,
                    tv,
                    history,
                )
            history.loss.extend(values[:, 0].tolist())
            history.lr.extend(lrs_host.tolist())
            if xv is not None:
                history.val_loss.extend(values[:, 1].tolist())
                history.val_score.extend(values[:, 2].tolist())
            network._params = {key: params[key] for key in network._params}  # JAX sorts keys
            if progress.active or hooks:  # per-epoch dicts only for those who read them
                logs = _logs(values, lrs_host, xv is not None, network.is_classifier)
                progress.update(first, logs)
                for hook in hooks:
                    stop = bool(hook.on_epoch_end(first + count - 1, logs[-1], network)) or stop
            previous = start
            done += count
            if checkpoint is not None and (
                (initial_epoch + done) % save_every == 0 or done == epochs or stop
            ):
                _save_checkpoint(
                    checkpoint, network, state, history, run_config, seed, initial_epoch + done
                )
    finally:
        progress.close()
    for hook in hooks:
        hook.on_train_end(network)
    return history, state


def _save_checkpoint(path, network, state, history, run_config, seed, epoch) -> None:
    from . import io  # io imports Network: import here, not at module level

    extra = {"fit": dict(run_config, seed=seed, epoch=epoch)}
    io.save(network, path, optimizer_state=state, history=history.to_dict(), extra=extra)


def _resume(network: Network, path: Any, run_config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint written by ``fit(checkpoint=...)`` and check it fits this run."""
    from . import io

    saved = io.load_checkpoint(path, backend=network.backend)
    fit_info = saved.extra.get("fit") if isinstance(saved.extra, dict) else None
    if not isinstance(fit_info, dict) or not isinstance(fit_info.get("epoch"), int):
        raise InputError(
            f"resume must be a checkpoint written by fit(checkpoint=...), got {str(path)!r}, "
            "which holds no training position"
        )
    theirs, ours = saved.network, network
    for name in ("sizes", "activations", "loss_name", "dtype"):
        if getattr(theirs, name) != getattr(ours, name):
            raise InputError(
                f"resume checkpoint {str(path)!r} is for a network with {name} "
                f"{getattr(theirs, name)!r}, this one has {getattr(ours, name)!r}"
            )
    for key, value in run_config.items():
        if key == "schedule" and " at 0x" in str(value):
            continue  # a plain function: nothing stable to compare
        if fit_info.get(key) != value:
            raise InputError(
                f"resume checkpoint {str(path)!r} was trained with {key}={fit_info.get(key)!r}, "
                f"this fit asks for {key}={value!r}: resume with the same settings"
            )
    network._params = theirs._params
    return {
        "epoch": fit_info["epoch"],
        "seed": fit_info.get("seed"),
        "optimizer_state": saved.optimizer_state,
        "history": saved.history,
    }


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


def _diverged(network, run, start, previous, bad, first_epoch, value, x, t, xv, tv, history):
    """Rewind to the start of the last epoch with a finite loss, then raise."""
    params, state, lrs, orders = start
    if bad == 0 and previous is not None:
        params, state, lrs, orders = previous
        replay = lrs.shape[0] - 1
    else:
        replay = max(bad - 1, 0)
    if replay:
        with network.backend.float_errors_silenced():
            params, state, _ = run(
                params,
                state,
                lrs[:replay],
                None if orders is None else orders[:replay, ...],
                x,
                t,
                xv,
                tv,
            )
    network._params = params
    last_good = first_epoch + bad - 1
    kept = f"epoch {last_good} (the last with a finite loss)" if last_good >= 0 else "its start"
    error = DivergenceError(
        f"training diverged: the loss became {value} at epoch {first_epoch + bad}; "
        f"the network keeps the parameters it had at the start of {kept}. "
        "Try a smaller learning rate (lr)."
    )
    error.params, error.history = params, history
    raise error
