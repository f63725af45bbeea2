"""Workload P: what ``fit``, ``predict`` and ``score`` cost per *call* (benchmarks/run.py).

Research code trains with ``fit(epochs=1)`` in a loop and scores per batch of a data
loader, so the host work of one call matters as much as the step. On the digits MLP
(64-256-256-10, batch 64, momentum SGD, float32):

* ``fit(epochs=1)`` and ``fit(epochs=5)`` are timed per call; the per-call host work is
  ``t1 - (t5 - t1) / 4`` (one call minus one epoch's share of the five-epoch call);
* ``predict`` and ``score`` of a 256-row batch are timed against a hand-written forward
  pass on the same backend (NumPy, PyTorch, jitted JAX), data already on the device;
* the hand-written jitted JAX epoch (W2's peer) anchors what one epoch costs in JAX.

The subtraction is the difference of two medians of 15-75 ms calls, so on a shared
2-core machine its noise (a millisecond or more) swamps a 0.2 ms target. The host work
is therefore also measured directly (:func:`direct_host_work`): the wall time of each
``fit(epochs=1)`` minus the time spent inside the engine's runner (the epochs' steps) and
the read-back that waits for them, median over many calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import peers
from harness import Impl

SIZES = [64, 256, 256, 10]
BATCH = 64
LR, BETA = 0.01, 0.9
ROWS = 256  # the predict/score batch

#: What each anynet row does per timed unit: one call.
FIT_CALLS = {"fit(epochs=1)": 1, "fit(epochs=5)": 5}


def _network(backend: str, device: str) -> Any:
    import anynet as an

    return an.Network(SIZES, ["relu", "relu", "softmax"], "categorical_crossentropy",
                      init="he", seed=0, dtype="float32", backend=backend,
                      device=device)  # fmt: skip


def _optimizer() -> Any:
    import anynet as an

    return an.optimizers.Momentum(lr=LR, momentum=BETA)


def anynet_fit(backend: str, device: str, X: np.ndarray, y: np.ndarray, epochs: int) -> Callable:
    """``run(n)``: ``n`` calls of ``fit(epochs=epochs)`` on one warm network, data on the
    network's device."""

    def factory() -> Callable[[int], None]:
        import anynet as an

        net = _network(backend, device)
        be = an.get_backend(backend, device)
        Xd, yd = be.asarray(X, "float32"), be.asarray(y)
        optimizer = _optimizer()

        def run(n: int) -> None:
            for _ in range(n):
                net.fit(Xd, yd, epochs=epochs, optimizer=optimizer, batch_size=BATCH, seed=0)
            be.synchronize(*net.params.values())

        return run

    return factory


class _Timed:
    """A callable that adds the wall time of its calls to ``spent[0]`` (its other
    attributes are the wrapped object's)."""

    def __init__(self, function: Any, spent: list[float]) -> None:
        self.function, self.spent = function, spent

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.spent[0] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.function, name)


def direct_host_work(backend: str, device: str, X: np.ndarray, y: np.ndarray,
                     calls: int = 40) -> float:  # fmt: skip
    """Seconds of host work per ``fit(epochs=1)``, measured directly: each call's wall time
    minus the time inside the engine's runner call and the read-back of its figures
    (where JAX waits for the compiled chunk); the median over ``calls`` warm calls."""
    import anynet as an
    from anynet.engine import fit as engine_fit

    net = _network(backend, device)
    be = an.get_backend(backend, device)
    Xd, yd = be.asarray(X, "float32"), be.asarray(y)
    optimizer = _optimizer()
    spent = [0.0]
    runner, values = engine_fit.runner, engine_fit._values
    engine_fit.runner = lambda *a, **k: _Timed(runner(*a, **k), spent)  # type: ignore[assignment]
    engine_fit._values = _Timed(values, spent)  # type: ignore[assignment]
    try:
        samples = []
        for call in range(calls + 5):  # the first ones record and compile
            spent[0] = 0.0
            start = time.perf_counter()
            net.fit(Xd, yd, epochs=1, optimizer=optimizer, batch_size=BATCH, seed=0)
            be.synchronize(*net.params.values())
            if call >= 5:
                samples.append(time.perf_counter() - start - spent[0])
    finally:
        engine_fit.runner, engine_fit._values = runner, values  # type: ignore[assignment]
    return float(np.median(samples))


def anynet_infer(backend: str, device: str, X: np.ndarray, y: np.ndarray, what: str) -> Callable:
    """``run(n)``: ``n`` calls of ``predict`` or ``score`` on a 256-row batch on the device."""

    def factory() -> Callable[[int], None]:
        import anynet as an

        net = _network(backend, device)
        be = an.get_backend(backend, device)
        Xd, yd = be.asarray(X[:ROWS], "float32"), be.asarray(y[:ROWS])

        def run(n: int) -> None:
            for _ in range(n):
                if what == "predict":
                    out = net.predict(Xd)
                    be.synchronize(out)
                else:
                    float(net.score(Xd, yd))

        return run

    return factory


def hand_forward(library: str, device: str, X: np.ndarray) -> Callable:
    """A hand-written forward pass to class labels on 256 rows (the predict peer)."""

    def factory() -> Callable[[int], None]:
        layers = peers.he_init(SIZES, "float32")
        x = X[:ROWS].astype(np.float32)
        if library == "numpy":

            def forward() -> Any:
                a = x
                for w, b in layers[:-1]:
                    a = np.maximum(a @ w + b, 0)
                w, b = layers[-1]
                return np.argmax(a @ w + b, axis=1)

            sync: Callable[[Any], Any] = lambda out: out  # noqa: E731
        elif library == "torch":
            torch = peers.require("torch")
            dev = peers._torch_device(torch, device)
            tl = [(torch.from_numpy(w).to(dev), torch.from_numpy(b).to(dev)) for w, b in layers]
            tx = torch.from_numpy(x).to(dev)

            def forward() -> Any:
                with torch.no_grad():
                    a = tx
                    for w, b in tl[:-1]:
                        a = torch.relu(a @ w + b)
                    w, b = tl[-1]
                    return torch.argmax(a @ w + b, dim=1)

            def sync(out: Any) -> Any:
                peers._torch_sync(torch, dev)
                return out
        else:  # jax, jitted
            jax = peers.require("jax")
            place = peers._jax_device(jax, device)
            jl = jax.device_put(layers, place)
            jx = jax.device_put(x, place)

            @jax.jit
            def labels(params: Any, a: Any) -> Any:
                for w, b in params[:-1]:
                    a = jax.nn.relu(a @ w + b)
                w, b = params[-1]
                return jax.numpy.argmax(a @ w + b, axis=1)

            def forward() -> Any:
                return labels(jl, jx)

            def sync(out: Any) -> Any:
                return out.block_until_ready()

        def run(n: int) -> None:
            for _ in range(n):
                sync(forward())

        return run

    return factory


def impls_percall(X: np.ndarray, y: np.ndarray, targets: list[tuple[str, str]]) -> list[Impl]:
    """The P rows: per anynet (backend, device) fit(1), fit(5), predict, score; the peers."""
    rows: list[Impl] = []
    for backend, device in targets:
        for label, epochs in FIT_CALLS.items():
            rows.append(Impl(label, "anynet", backend, device, "float32",
                             anynet_fit(backend, device, X, y, epochs)))  # fmt: skip
        for what in ("predict", "score"):
            rows.append(Impl(f"{what} {ROWS} rows", "anynet", backend, device, "float32",
                             anynet_infer(backend, device, X, y, what)))  # fmt: skip
    libraries = dict.fromkeys(b for b, _ in targets if b in ("numpy", "torch", "jax"))
    devices = {b: d for b, d in targets}
    for library in libraries:
        rows.append(Impl(f"hand-written forward {ROWS} rows", "peer", library,
                         devices[library], "float32",
                         hand_forward(library, devices[library], X)))  # fmt: skip
    if "jax" in libraries:
        epoch = peers.jax_mlp_epoch_scan(X, y, SIZES, BATCH, LR, BETA, devices["jax"])
        rows.append(Impl("hand-written jitted epoch", "peer", "jax", devices["jax"], "float32",
                         epoch))  # fmt: skip
    return rows


def _find(rows: list[Impl], label: str, library: str, device: str) -> Impl | None:
    for impl in rows:
        if impl.label == label and impl.library == library and impl.device == device and impl.ok:
            return impl
    return None


def summary(
    rows: list[Impl], targets: list[tuple[str, str]], direct: dict[str, float] | None = None
) -> tuple[list[str], dict]:
    """The per-call table (one line per backend) and its figures, for the targets;
    ``direct``: :func:`direct_host_work` per ``"backend/device"``."""
    direct = direct or {}
    lines = [
        f"    {'backend':<18} {'fit(epochs=1)':>14} {'per epoch':>10} {'host/call':>10} "
        f"{'direct':>9} {'predict':>9} {'hand fwd':>9} {'ratio':>6} {'score':>9}"
    ]
    figures: dict[str, dict[str, float]] = {}
    for backend, device in targets:
        one = _find(rows, "fit(epochs=1)", backend, device)
        five = _find(rows, "fit(epochs=5)", backend, device)
        predict = _find(rows, f"predict {ROWS} rows", backend, device)
        score = _find(rows, f"score {ROWS} rows", backend, device)
        hand = _find(rows, f"hand-written forward {ROWS} rows", backend, device)
        if one is None or five is None:
            lines.append(f"    {backend + '/' + device:<18} (did not run)")
            continue
        t1, t5 = one.median, five.median
        epoch = (t5 - t1) / 4
        host = t1 - epoch
        entry = {"fit1_ms": t1 * 1e3, "epoch_ms": epoch * 1e3, "host_ms": host * 1e3}
        if f"{backend}/{device}" in direct:
            entry["direct_host_ms"] = direct[f"{backend}/{device}"] * 1e3
        ratio = ""
        if predict is not None:
            entry["predict_ms"] = predict.median * 1e3
            if hand is not None:
                entry["hand_ms"] = hand.median * 1e3
                entry["predict_ratio"] = predict.median / hand.median
                ratio = f"{entry['predict_ratio']:.2f}x"
        if score is not None:
            entry["score_ms"] = score.median * 1e3
        figures[f"{backend}/{device}"] = entry

        def ms(key: str, entry: dict[str, float] = entry) -> str:
            return f"{entry[key]:.3f}" if key in entry else "-"

        lines.append(
            f"    {backend + '/' + device:<18} {ms('fit1_ms'):>11} ms {ms('epoch_ms'):>7} ms "
            f"{ms('host_ms'):>7} ms {ms('direct_host_ms'):>6} ms {ms('predict_ms'):>6} ms "
            f"{ms('hand_ms'):>6} ms {ratio:>6} "
            f"{ms('score_ms'):>6} ms"
        )
    epoch = next((impl for impl in rows if impl.label == "hand-written jitted epoch"), None)
    if epoch is not None and epoch.ok:
        lines.append(
            f"    hand-written jitted JAX epoch (loss read back): {epoch.median * 1e3:.3f} ms"
        )
        figures["jax_hand_epoch_ms"] = {"ms": epoch.median * 1e3}
    return lines, figures
