"""The fit loop: steps on the device, losses read back in chunks, divergence caught.

Losses stay on the device as 0-d arrays and are read back once per chunk of
epochs (one host sync per chunk, never per step). Parameters are never updated
in place, so keeping the parameters of the start of a chunk costs nothing and
lets a diverging run be rewound to its last finite epoch exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import Backend, to_numpy
from .errors import DivergenceError

__all__ = ["History", "run_steps"]

Array = Any
Params = dict[str, Array]

#: Epochs between two reads of the loss history from the device.
CHUNK = 256


@dataclass
class History:
    """What :meth:`Network.fit` recorded.

    Attributes
    ----------
    loss : list of float
        One value per epoch: the cost of the parameters *before* that epoch's
        update, exactly as the tutorial's loop computes and prints it.
    """

    loss: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Number of epochs run."""
        return len(self.loss)

    def __len__(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:
        last = f", final loss={self.loss[-1]:.6g}" if self.loss else ""
        return f"History(epochs={self.epochs}{last})"


def run_steps(
    step: Callable[[Params], tuple[Params, Array]],
    params: Params,
    epochs: int,
    backend: Backend,
    *,
    verbose: int = 0,
    print_fn: Callable[[str], None] = print,
) -> tuple[Params, History]:
    """Run ``epochs`` calls of ``step`` and collect the per-epoch losses.

    Parameters
    ----------
    step : callable
        ``step(params) -> (new_params, loss)``, ``loss`` a 0-d device array.
    params : dict
        Starting parameters (device arrays; not modified).
    epochs : int
    backend : Backend
        Used to stack and read back the losses.
    verbose : int
        Print ``epoch i: loss`` every ``verbose`` epochs (0 = silent).

    Returns
    -------
    params : dict
        The parameters after the last step.
    history : History

    Raises
    ------
    DivergenceError
        A loss came out NaN or infinite. The exception's ``params`` are those
        of the last epoch whose loss was finite, ``history`` the finite losses.
    """
    xp = backend.xp
    history = History()
    done = 0
    tail_params = params  # the parameters at the start of the latest finished epoch
    while done < epochs:
        chunk = min(CHUNK, epochs - done)
        start_params, previous_tail = params, tail_params
        pending = []
        with backend.float_errors_silenced():
            for _ in range(chunk):
                tail_params = params
                params, loss = step(params)
                pending.append(loss)
        values = to_numpy(xp.stack(pending)).astype(np.float64).tolist()
        finite = [math.isfinite(v) for v in values]
        if not all(finite):
            bad = finite.index(False)
            if bad == 0:
                good_params = previous_tail
            else:
                good_params = start_params
                with backend.float_errors_silenced():
                    for _ in range(bad - 1):  # replay: steps are deterministic and pure
                        good_params, _ = step(good_params)
            history.loss.extend(values[:bad])
            last_good = done + bad - 1
            kept = f"epoch {last_good} (its last finite loss)" if last_good >= 0 else "its start"
            error = DivergenceError(
                f"training diverged: the loss became {values[bad]} at epoch {done + bad}; "
                f"the network keeps the parameters of {kept}. "
                "Try a smaller learning rate (lr)."
            )
            error.params, error.history = good_params, history
            raise error
        if verbose:
            for offset, value in enumerate(values):
                epoch = done + offset
                if epoch % verbose == 0:
                    print_fn(f"epoch {epoch}: loss {value:.6f}")
        history.loss.extend(values)
        done += chunk
    return params, history
