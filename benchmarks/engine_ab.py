"""What each engine optimization buys: the same fits with it on and off, interleaved.

Usage::

    python benchmarks/engine_ab.py [--repeats 7] [--backends numpy,torch]

Rows, per backend, for W1 (the tutorial's 2-4-1 network, 400 flower points, full batch,
float64, 1000 epochs a call) and W2 (64-256-256-10 ReLU/softmax on scikit-learn's digits,
float32, batches of 64, momentum SGD, 2 epochs a call):

* ``auto``: the engine as it ships (recorded steps replayed, in place where it applies);
* ``no replay``: the same with the recorded replay off (``anynet.engine.runner.REPLAY``);
* ``eager``: ``fit(engine="eager")``, every optimization off (the functional loop).

Each repetition runs every row once, in a fresh random order; the table prints medians,
min-max and the ratio to ``auto``. Compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

import anynet as an  # noqa: E402
from anynet.engine import runner as engine_runner  # noqa: E402


def _workloads(backend: str) -> dict:
    X1, y1 = an.datasets.planar_flower()
    from sklearn.datasets import load_digits

    digits = load_digits()
    X2, y2 = digits.data / 16.0, digits.target

    def w1() -> an.Network:
        return an.Network([2, 4, 1], ["tanh", "sigmoid"], init="normal", init_scale=0.01,
                          seed=0, dtype="float64", backend=backend)  # fmt: skip

    def w2() -> an.Network:
        return an.Network([64, 256, 256, 10], ["relu", "relu", "softmax"], init="he", seed=0,
                          dtype="float32", backend=backend)  # fmt: skip

    optimizer = an.optimizers.Momentum(lr=0.01, momentum=0.9)
    return {
        "W1": (w1, X1, y1, dict(epochs=1000, lr=1.2), 1000, "µs/epoch", 1e6),
        "W2": (w2, X2, y2, dict(epochs=2, optimizer=optimizer, batch_size=64, seed=0), 2,
               "ms/epoch", 1e3),
    }  # fmt: skip


MODES = ("auto", "no replay", "eager")


def _call(net: an.Network, X, y, fit: dict, mode: str) -> float:
    engine_runner.REPLAY = mode != "no replay"
    start = time.perf_counter()
    net.fit(X, y, engine="eager" if mode == "eager" else "auto", **fit)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backends", default="numpy,torch")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b in an.available_backends()]
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info() if i.get("user_api") == "blas"
        )  # fmt: skip
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"engine A/B, {time.strftime('%Y-%m-%d %H:%M:%S')}; BLAS: {blas}")
    rng = np.random.default_rng(0)
    for workload in ("W1", "W2"):
        rows = []
        for backend in backends:
            make, X, y, fit, epochs, unit, scale = _workloads(backend)[workload]
            for mode in MODES:
                net = make()
                _call(net, X, y, fit, mode)  # warm-up: recordings, caches
                rows.append((backend, mode, net, X, y, fit, epochs, unit, scale, []))
        for _ in range(args.repeats):
            for index in rng.permutation(len(rows)):
                backend, mode, net, X, y, fit, epochs, unit, scale, times = rows[index]
                times.append(_call(net, X, y, fit, mode) / epochs * scale)
        print(f"\n{workload}  ({rows[0][7]}, median of {args.repeats}, interleaved)")
        print(f"{'backend':<8} {'mode':<10} {'median':>9} {'min-max':>17} {'x auto':>7}")
        autos = {r[0]: statistics.median(r[9]) for r in rows if r[1] == "auto"}
        for backend, mode, *_, times in rows:
            median = statistics.median(times)
            spread = f"{min(times):.3g}-{max(times):.3g}"
            print(f"{backend:<8} {mode:<10} {median:>9.3g} {spread:>17} "
                  f"{median / autos[backend]:>6.2f}x")  # fmt: skip
    engine_runner.REPLAY = True


if __name__ == "__main__":
    main()
