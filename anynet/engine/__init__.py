"""The training engine: one step, one loop, and the optimizations that keep their numbers.

* :mod:`~anynet.engine.step`: the one training step (loss, gradients, update);
* :mod:`~anynet.engine.runner`: chunks of epochs, compiled (JAX) or recorded and
  replayed (:mod:`~anynet.engine.replay`), their bounded caches (:func:`clear_caches`);
* :mod:`~anynet.engine.fit`: the loop that yields each completed chunk;
* :mod:`~anynet.engine.host_rows`: training data kept on the host (sparse), one batch
  densified at a time;
* :mod:`~anynet.engine.resume`: what a checkpoint records of a run, and what a resumed
  run must share with it;
* :mod:`~anynet.engine.parallel`: data-parallel inference.

The engine never imports :mod:`anynet.network`: ``Network.fit`` drives it. Its contract
(``docs/training.md``): for every layer, loss, optimizer, schedule and callback that
follow the documented rules, ``fit`` gives the numbers of the functional loop over the
same batches; ``fit(engine="eager")`` runs that plain loop.
"""

from __future__ import annotations

from .fit import CHUNK, Completed, train
from .history import History
from .host_rows import HostRows
from .parallel import compiled_logits, parallel_logits
from .runner import MODES, clear_caches
from .step import step

__all__ = [
    "CHUNK",
    "MODES",
    "Completed",
    "History",
    "HostRows",
    "clear_caches",
    "compiled_logits",
    "parallel_logits",
    "step",
    "train",
]
