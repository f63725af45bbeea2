"""What ``fit`` calls between epochs: callbacks, early stopping, checkpoints, progress.

These are the network's side of training: the engine (:mod:`anynet.engine.fit`)
yields each completed chunk of epochs, and :meth:`anynet.Network.fit` hands the
figures to them, with the network holding the parameters of that epoch.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._validation import check_non_negative_float, check_positive_int
from .engine.fit import CHUNK
from .engine.history import History
from .errors import InputError

if TYPE_CHECKING:
    from .backend import Backend
    from .network import Network

__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "History",
    "Progress",
    "as_callbacks",
]

Params = dict[str, Any]


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
            network.set_params(self.best_params)
            if self.best_state:
                network.set_state(self.best_state)


class CSVLogger(Callback):
    """Write the history to a CSV file as it grows: a header, then one row per epoch.

    Columns: ``epoch`` and the epoch's figures (``loss``, ``lr`` and, with validation
    data, ``val_loss``, ``val_score``, ``val_accuracy``), in the order of the first
    epoch's logs. Each row is written whole with one ``write`` call and flushed, so a
    reader (``tail -f``, pandas, another process) never sees half a line; the file is
    closed at the end of training, also when training stops with an exception.

    Parameters
    ----------
    path : str or os.PathLike
        The file, in an existing folder.
    append : bool
        Add to an existing file (a resumed run) instead of replacing it; the header is
        written only when the file is empty.
    separator : str
        The field separator.

    Examples
    --------
    >>> import anynet as an, os, tempfile
    >>> X, y = an.datasets.planar_flower(n=40)
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> _ = an.Network([2, 3, 1], seed=0).fit(X, y, epochs=3, callbacks=[an.CSVLogger(path)])
    >>> open(path).read().splitlines()[0]
    'epoch,loss,lr'
    """

    def __init__(self, path: Any, append: bool = False, separator: str = ",") -> None:
        _check_checkpoint_path(path, "CSVLogger path")
        if not isinstance(append, bool):
            raise InputError(f"append must be True or False, got {append!r}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n.-":
            raise InputError(f"separator must be one character such as ',', got {separator!r}")
        self.path, self.append, self.separator = os.fspath(path), append, separator
        self._file: Any = None
        self._columns: list[str] | None = None

    def on_train_begin(self, network: Network) -> None:
        self._close()
        self._file = open(self.path, "a" if self.append else "w", encoding="utf-8", newline="")
        self._columns = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], network: Network) -> bool:
        if self._file is None:  # used outside fit: open it now
            self.on_train_begin(network)
        if self._columns is None:
            self._columns = list(logs)
            if self._file.tell() == 0:
                self._write(["epoch", *self._columns])
        self._write([str(epoch), *(repr(float(logs.get(k, math.nan))) for k in self._columns)])
        return False

    def on_train_end(self, network: Network) -> None:
        self._close()

    def _write(self, cells: list[str]) -> None:
        self._file.write(self.separator.join(cells) + "\n")  # one call: a whole line
        self._file.flush()

    def _close(self) -> None:
        file = getattr(self, "_file", None)  # None too when __init__ refused its arguments
        if file is not None:
            file.close()
            self._file = None

    def __del__(self) -> None:  # an exception ended fit before on_train_end
        self._close()


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


def _check_checkpoint_path(path: Any, argument: str = "checkpoint") -> None:
    """Fail before training, not at the first checkpoint, when ``path`` cannot be written."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{argument} must be a path (str or os.PathLike), got {path!r}")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise InputError(f"{argument} must be in an existing folder, got {str(path)!r}")


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


def _shows_progress(stream: Any) -> bool:
    """Whether a progress bar on ``stream`` is seen: a terminal, or a Jupyter kernel's output
    (ipykernel's streams answer ``isatty()`` False; tqdm.auto draws a widget there)."""
    if type(stream).__module__.startswith("ipykernel."):
        return True
    try:
        return hasattr(stream, "isatty") and bool(stream.isatty())
    except ValueError:  # a closed stream
        return False


#: The logger that receives fit's progress records (``logging.getLogger("anynet")``).
logger = logging.getLogger("anynet")

#: ``verbose=True`` off a terminal writes at most about this many lines per fit.
LINES_PER_FIT = 100


def _line(epoch: int, epochs: int, figures: dict[str, float]) -> str:
    text = ", ".join(f"{k} {v:.6f}" for k, v in figures.items() if k != "lr")
    return f"epoch {epoch}: {text}"


class Progress:
    """What ``fit(verbose=...)`` shows, epoch by epoch as the engine completes them.

    - ``verbose=N`` (a positive int): a line ``epoch E: loss ..., val_loss ...`` every N
      epochs on standard output, flushed as it is written (a file or a pipe gets each
      line when its epoch completes).
    - ``verbose=True``: in a terminal or a notebook (standard error), a tqdm.auto bar
      updated every epoch; where standard output is a file or a pipe, lines as above,
      one per epoch for runs of up to :data:`LINES_PER_FIT` epochs, else every
      ``epochs // LINES_PER_FIT`` epochs, and always the last. Without tqdm, lines every
      tenth of the run.
    - ``verbose=0`` or False: nothing.

    Every line is also an INFO record of the ``anynet`` logger (``logging.getLogger(
    "anynet")``), with the figures as ``record.epoch`` and ``record.logs``; with the bar
    alone, records follow the off-terminal cadence. When anything is shown, the engine
    reports each epoch as it completes (chunks of one epoch: the same numbers, see the
    engine contract).
    """

    def __init__(self, verbose: Any, epochs: int, stream: Any = None, out: Any = None) -> None:
        silent = (
            isinstance(verbose, numbers.Integral) and not isinstance(verbose, bool) and verbose == 0
        )
        if verbose is not True and verbose is not False and not silent:
            check_positive_int(verbose, "verbose")
        self.every, self.log_every, self.bar = 0, 0, None
        self.last = False  # also the last epoch (verbose=True's cadence)
        self.epochs = epochs
        self.stream = sys.stderr if stream is None else stream
        self.out = sys.stdout if out is None else out
        if verbose is True:
            cadence = max(epochs // LINES_PER_FIT, 1)
            if _shows_progress(self.stream):
                try:
                    from tqdm.auto import tqdm
                except ImportError:
                    self.every = max(epochs // 10, 1)
                else:
                    self.bar = tqdm(total=epochs, unit="epoch", file=self.stream,
                                    dynamic_ncols=True)  # fmt: skip
                    if not _shows_progress(self.out):  # a log file behind a visible bar
                        self.every = cadence
            else:
                self.every = cadence
            self.log_every = self.every or cadence
            self.last = True
        elif verbose:
            self.every = self.log_every = check_positive_int(verbose, "verbose")

    @property
    def active(self) -> bool:
        """Whether anything will be shown (then the engine reports every epoch)."""
        return self.bar is not None or bool(self.every)

    def _due(self, epoch: int, every: int) -> bool:
        return bool(every) and (epoch % every == 0 or (self.last and epoch == self.epochs - 1))

    def update(self, first_epoch: int, logs: list[dict[str, float]]) -> None:
        """Show the figures of epochs ``first_epoch, first_epoch + 1, ...``."""
        for offset, figures in enumerate(logs):
            epoch = first_epoch + offset
            text = None
            if self._due(epoch, self.every):
                text = _line(epoch, self.epochs, figures)
                self.out.write(text + "\n")  # one call per whole line, then flushed
                self.out.flush()
            if self._due(epoch, self.log_every) and logger.isEnabledFor(logging.INFO):
                text = text or _line(epoch, self.epochs, figures)
                logger.info(text, extra={"epoch": epoch, "logs": dict(figures)})
        if self.bar is not None and logs:
            self.bar.update(len(logs))
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs[-1].items() if k != "lr"})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
