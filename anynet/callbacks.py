"""What ``fit`` calls between epochs: callbacks, early stopping, checkpoints, progress.

These are the network's side of training: the engine (:mod:`anynet.engine.fit`)
yields each completed chunk of epochs, and :meth:`anynet.Network.fit` hands the
figures to them, with the network holding the parameters of that epoch.
"""

from __future__ import annotations

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

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "History", "Progress", "as_callbacks"]

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


def _shows_progress(stream: Any) -> bool:
    """Whether a progress bar on ``stream`` is seen: a terminal, or a Jupyter kernel's output
    (ipykernel's streams answer ``isatty()`` False; tqdm.auto draws a widget there)."""
    if type(stream).__module__.startswith("ipykernel."):
        return True
    return hasattr(stream, "isatty") and bool(stream.isatty())


class Progress:
    """``verbose=N``: a line every N epochs; ``verbose=True``: a tqdm.auto bar in a terminal or
    a notebook."""

    def __init__(self, verbose: Any, epochs: int, stream: Any = None) -> None:
        silent = (
            isinstance(verbose, numbers.Integral) and not isinstance(verbose, bool) and verbose == 0
        )
        if verbose is not True and verbose is not False and not silent:
            check_positive_int(verbose, "verbose")
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
