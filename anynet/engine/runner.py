"""Runners: one chunk of epochs, written once for every backend, and their caches.

A runner loops over a chunk's epochs (and each epoch's minibatches) with
:meth:`Backend.scan`, calling the one step (:func:`anynet.engine.step.step`). How it
executes is an optimization that keeps the step's numbers (the contract of
``docs/training.md``):

* **compiled** (JAX): the whole chunk is one ``jax.jit`` call around ``lax.scan``;
* **recorded** (NumPy, PyTorch, CuPy, array-api-strict): the step of each argument
  structure is recorded twice and then replayed as straight-line code
  (:class:`~anynet.engine.replay.Replayer`: the same calls, the same bits), except for
  models updated layer by layer;
* **in place** (NumPy, PyTorch, CuPy; models whose largest parameter has
  :data:`IN_PLACE_ELEMENTS` elements or more, optimizers whose ``update`` is the base
  class's): the chunk's first update of a parameter writes a new array, later ones
  write into the arrays the chunk made, never into one that optimizer or layer state
  holds;
* **in columns**: full-batch steps of layout-free models run in the tutorial's
  ``(features, samples)`` layout.

``mode="eager"`` (``fit(engine="eager")``) turns all of them off: the plain loop of the
documented functional step, uncompiled, in rows, every update a new array.

Runners are cached by everything that changes their numbers (backend, model, dtype,
optimizer, and its learning rate unless the class declares
:attr:`~anynet.optimizers.Optimizer.lr_free`; batch size, validation, placement, mode),
at most :data:`MAX_RUNNERS` of them, behind a lock; :func:`clear_caches` empties them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..backend import SINGLE_DEVICE, Backend, Placement
from .cache import Cache, clear_caches
from .host_rows import HostRows
from .replay import Replayer
from .step import Writes, applies_directions, step

if TYPE_CHECKING:
    from ..model import Model
    from ..optimizers import Optimizer

__all__ = ["MODES", "Runner", "Tracker", "clear_caches", "initial_state", "runner"]

Array = Any
Params = dict[str, Array]

#: ``fit(engine=...)``: every optimization where it keeps the numbers, or none.
MODES = ("auto", "eager")

#: Parameters (elements) from which the engine updates each layer as soon as backprop has
#: passed it: below, the per-layer calls cost more than the memory they save is worth.
LAYERWISE_PARAMS = 2**20

#: Elements of the largest parameter from which updates are written in place: below, a
#: new array costs less than the bookkeeping (the tutorial's 2-4-1 network).
IN_PLACE_ELEMENTS = 4096

#: Whether eager backends replay recorded steps of models not updated layer by layer;
#: off, every step runs the layers' Python (the tests compare both).
REPLAY = True

#: Most runners (and optimizer-state initialisers) kept; the least recently used go.
MAX_RUNNERS = 64


_RUNNERS = Cache(MAX_RUNNERS)
_INITS = Cache(MAX_RUNNERS)
_KEYS = Cache(MAX_RUNNERS)


def _optimizer_key(optimizer: Optimizer) -> Optimizer:
    """The optimizer as the runner bakes it: its learning rate arrives as data when its
    class declares ``lr_free`` (one runner for every lr); otherwise all of it."""
    if vars(type(optimizer)).get("lr_free", False):  # replace costs ~15 us: once per optimizer
        return _KEYS.get(optimizer, lambda: replace(optimizer, lr=1.0))
    return optimizer


class Runner:
    """A cached runner: ``run(...)`` (see :func:`runner`) and how it applies updates."""

    __slots__ = ("function", "in_place")

    def __init__(self, function: Callable, in_place: bool) -> None:
        self.function, self.in_place = function, in_place

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # the compiled function's own (lower, ...)
        return getattr(self.function, name)


class Tracker:
    """What a chunk has completed so far, epoch by epoch (eager backends only).

    ``carry`` is ``(params, opt_state, state)`` after the last completed epoch and
    ``figures`` one tuple of 0-d arrays per completed epoch: what an interrupted fit
    keeps.
    """

    def __init__(self) -> None:
        self.carry: tuple | None = None
        self.figures: list[tuple] = []

    def done(self, carry: tuple, figures: tuple) -> None:
        self.carry = carry
        self.figures.append(figures)


def runner(
    backend: Backend, model: Model, dtype: str, optimizer: Optimizer, batch_size: int | None,
    drop_last: bool, with_validation: bool, placement: Placement = SINGLE_DEVICE,
    mode: str = "auto",
) -> Runner:  # fmt: skip
    """The cached runner ``run(params, opt_state, state, lrs, orders, count, x, t, xv, tv,
    w=None, wv=None, tracker=None) -> (params, opt_state, state, figures)``.

    Runs the first ``count`` epochs of ``lrs`` (``(E,)``: one rate per epoch, or
    ``(E, S)``: one per step of each epoch, a per-step schedule) and ``orders`` (``(E, n)``
    sample indices, or None: full batch, or no shuffling); ``count`` comes from
    :meth:`Backend.loop_count`, so on JAX a chunk of any length up to ``E`` reuses one
    compiled runner. ``figures`` is a tuple of ``(E,)`` arrays (the first ``count`` are
    meaningful): loss, and with validation val_loss and val_score. ``tracker`` (eager
    backends) records each completed epoch. ``w (n,)`` and ``wv`` are sample weights of
    the data and of the validation data (None: unweighted); ``w`` is shuffled with the
    rows and cut into the same batches.
    """
    key = (backend, model, dtype, _optimizer_key(optimizer), batch_size, drop_last,
           with_validation, placement, mode)  # fmt: skip
    return _RUNNERS.get(key, lambda: _make_runner(backend, *key[1:]))


def _make_runner(
    backend: Backend, model: Model, dtype: str, optimizer: Optimizer, batch_size: int | None,
    drop_last: bool, with_validation: bool, placement: Placement, mode: str,
) -> Runner:  # fmt: skip
    xp = backend.xp
    rows, replicated = placement.constrain_rows, placement.constrain_replicated
    eager = mode == "eager"
    columns = not eager and _in_columns(model, batch_size, placement)
    axis = 0 if columns else -1
    # the engine applies the directions itself (large models, optimizers whose update is
    # the base class's): written in place where the backend allows, layer by layer on the
    # largest models
    applied = not eager and _in_place(model) and applies_directions(optimizer)
    in_place = applied and backend.updates_in_place
    layerwise = applied and _layer_by_layer(model) and not optimizer.clips_globally

    def recorded(xp: Any, write: Callable | None, params: Params, opt_state: Params,
                 state: Params, xb: Array, tb: Array, lr: Array,
                 wb: Array | None = None) -> tuple:  # fmt: skip
        writes = None if write is None else Writes(write, backend.new_update, backend.buffer_of)
        return step(model, optimizer, params, opt_state, state, xb, tb, lr, xp=xp, axis=axis,
                    writes=writes, w=wb)  # fmt: skip

    # Steps of all but the largest models are recorded and replayed (the same calls,
    # without the layers' Python between them) where nothing compiles the step.
    scan, loop = backend.scan, backend.loop
    if eager:  # plain Python loops on every backend (JAX's would trace the step)

        def scan(body: Callable, carry: Any, xs: tuple, length: int) -> tuple[Any, Any]:
            return Backend.scan(backend, body, carry, xs, length)

        def loop(body: Callable, carry: Any, xs: tuple, count: Any) -> tuple[Any, Any]:
            return scan(body, carry, tuple(None if x is None else x[:count, ...] for x in xs),
                        count)  # fmt: skip

    replayed: Replayer | None = None
    # a chunk's first step, replayed too where the later ones write in place: every update
    # a new array (the chunk's start, and the caller's arrays, are never written)
    replayed_first: Replayer | None = None
    if not eager and not backend.compiles and not layerwise:
        if applied:
            write = backend.apply_update if in_place else backend.new_update
            writes = (write, backend.new_update)
            replayed = Replayer(recorded, xp, writes=writes, dicts_fixed=True)
            fresh = (backend.new_update, backend.new_update)
            replayed_first = (
                Replayer(recorded, xp, writes=fresh, dicts_fixed=True) if in_place else replayed
            )
        else:
            replayed = Replayer(lambda xp, *args: recorded(xp, None, *args), xp,
                                dicts_fixed=True)  # fmt: skip

    def run(
        params: Params, opt_state: Params, state: Params, lrs: Array, orders: Array,
        count: Array, x: Array, t: Array, xv: Array, tv: Array, w: Array | None = None,
        wv: Array | None = None, tracker: Tracker | None = None,
    ) -> Any:  # fmt: skip
        replay = replayed if REPLAY else None
        if replay is not None and not applied:
            return chunk(replay, params, opt_state, state, lrs, orders, count, x, t, xv, tv,
                         w, wv, tracker)  # fmt: skip
        writes = _chunk_writes(backend) if applied else None

        def one(params: Params, opt_state: Params, state: Params, xb: Array, tb: Array,
                lr: Array, wb: Array | None = None) -> tuple:  # fmt: skip
            return step(model, optimizer, params, opt_state, state, xb, tb, lr, xp=xp,
                        axis=axis, writes=writes, layerwise=layerwise, w=wb)  # fmt: skip

        # the chunk's first step writes new arrays; the replays write into those
        first = one if replayed_first is None or not REPLAY else replayed_first
        first_then = one if replay is None else _first_then(first, replay)
        return chunk(first_then, params, opt_state, state, lrs, orders, count, x, t, xv, tv,
                     w, wv, tracker)  # fmt: skip

    def chunk(
        step: Callable, params: Params, opt_state: Params, state: Params, lrs: Array,
        orders: Array, count: Array, x: Array, t: Array, xv: Array, tv: Array,
        w: Array | None, wv: Array | None, tracker: Tracker | None,
    ) -> Any:  # fmt: skip
        n = x.shape[0]
        on_host = isinstance(x, HostRows)  # minibatches only, eager only (engine.fit)
        if columns:  # once per chunk: a view on NumPy and torch, one transpose in XLA
            x = xp.permute_dims(x, (1, 0))
            xv = None if xv is None else xp.permute_dims(xv, (1, 0))

        def epoch(carry: tuple, inputs: tuple) -> tuple[tuple, tuple]:
            params, opt_state, state = carry
            lr, order = inputs
            per_step = lr.ndim == 1  # a rate per step (a shape: no branch on values)
            if batch_size is None:
                # sample weights only where given: an unweighted step has its own arguments
                weights = () if w is None else (rows(w),)
                params, opt_state, state, loss = step(
                    params,
                    opt_state,
                    state,
                    rows(x),
                    rows(t),
                    lr[0] if per_step else lr,
                    *weights,
                )
            else:
                # data parallel: every device shuffles its whole copy (a gather split by
                # the compiler instead moved batches between devices with all-gathers)
                n_full, rest = divmod(n, batch_size)
                used = n_full * batch_size
                host_order = order
                if on_host and order is not None:  # the rows gather on the host, t and w here
                    order = backend.asarray(order)
                xs = x if order is None or on_host else replicated(xp.take(x, order, axis=0))
                ts = t if order is None else replicated(xp.take(t, order, axis=0))
                ws = w if order is None or w is None else replicated(xp.take(w, order, axis=0))
                batches: tuple = (
                    x.batches(host_order, batch_size, n_full)
                    if on_host
                    else placement.constrain_batches(
                        xp.reshape(xs[:used, ...], (n_full, batch_size, x.shape[1]))
                    ),
                    placement.constrain_batches(
                        xp.reshape(ts[:used, ...], (n_full, batch_size, t.shape[1]))
                    ),
                    lr[:n_full] if per_step else None,
                )
                if ws is not None:  # cut into the same batches as the rows
                    batches += (
                        placement.constrain_batches(
                            xp.reshape(ws[:used, ...], (n_full, batch_size))
                        ),
                    )

                def batch(carry: tuple, pair: tuple) -> tuple[tuple, tuple]:
                    params, opt_state, state = carry
                    params, opt_state, state, loss = step(
                        params, opt_state, state, pair[0], pair[1],
                        lr if pair[2] is None else pair[2], *pair[3:],
                    )  # fmt: skip
                    return (params, opt_state, state), (loss,)

                (params, opt_state, state), (losses,) = scan(
                    batch, (params, opt_state, state), batches, n_full
                )
                total, count = xp.sum(losses) * batch_size, used
                if rest and not drop_last:
                    weights = () if ws is None else (rows(ws[used:, ...]),)
                    xr = x.rest(host_order, used) if on_host else xs[used:, ...]
                    params, opt_state, state, loss = step(
                        params, opt_state, state, rows(xr), rows(ts[used:, ...]),
                        lr[n_full] if per_step else lr, *weights,
                    )  # fmt: skip
                    total, count = total + loss * rest, n
                loss = total / count
            figures: tuple = (loss,)
            if with_validation:
                figures += model.evaluate(params, state, rows(xv), rows(tv), xp=xp, axis=axis,
                                          w=None if wv is None else rows(wv))  # fmt: skip
            if tracker is not None:  # eager backends only: never inside a traced loop
                tracker.done((params, opt_state, state), figures)
            return (params, opt_state, state), figures

        (params, opt_state, state), figures = loop(
            epoch, (params, opt_state, state), (lrs, orders), count
        )
        return replicated((params, opt_state, state, figures))

    return Runner(run if eager else backend.jit(run), in_place)


def _chunk_writes(backend: Backend) -> Writes:
    """In-place writes for one chunk: a parameter's first update is a new array (the
    caller's arrays, and the chunk's start that a divergence rewinds to, are never
    written); later updates of an array this chunk made write into it, where the backend
    allows (:attr:`Backend.updates_in_place`; elsewhere every update is a new array)."""
    if not backend.updates_in_place:
        return Writes(backend.new_update, backend.new_update, backend.buffer_of)
    produced: set[int] = set()  # ids of arrays this chunk made: alive while it runs

    def write(param: Any, lr: Any, direction: Any) -> Any:
        if id(param) in produced:
            return backend.apply_update(param, lr, direction)
        new = backend.new_update(param, lr, direction)
        produced.add(id(new))
        return new

    return Writes(write, backend.new_update, backend.buffer_of)


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


def _layer_by_layer(model: Model) -> bool:
    """Whether the step updates layer by layer (large models: all gradients never coexist)."""
    shapes, _ = model.shapes()
    return sum(math.prod(shape) for shape in shapes.values()) >= LAYERWISE_PARAMS


def _in_place(model: Model) -> bool:
    """Whether the step writes updates in place (where the backend allows)."""
    shapes, _ = model.shapes()
    return max((math.prod(shape) for shape in shapes.values()), default=0) >= IN_PLACE_ELEMENTS


def initial_state(
    backend: Backend, optimizer: Optimizer, model: Model, dtype: str, params: Params,
    mode: str = "auto",
) -> Params:  # fmt: skip
    """``optimizer.init(params)``, as one compiled call where the backend compiles (JAX:
    one dispatch instead of one per array); plainly with ``mode="eager"``."""
    if mode == "eager":
        return optimizer.init(params, xp=backend.xp)
    key = (backend, _optimizer_key(optimizer), model, dtype)

    def make() -> Callable:
        return backend.jit(lambda values: optimizer.init(values, xp=backend.xp))

    return _INITS.get(key, make)(params)
