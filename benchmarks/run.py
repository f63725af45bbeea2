"""anynet against hand-written code, side by side, in one process.

Usage::

    python benchmarks/run.py [--quick] [--backends numpy,jax,...] [--workloads W1,W2,W3]
                             [--repeats N] [--json out.json]   (workloads W1, W2, W3, P)

Workloads (see benchmarks/README.md):

* **W1** the tutorial's network: 2-4-1 tanh/sigmoid, binary cross-entropy, the 400
  "flower" points, full batch, lr 1.2. float64 everywhere, except on JAX when its
  64-bit mode is off (JAX's default), where both JAX rows use float32.
* **W2** a 64-256-256-10 ReLU/softmax MLP on scikit-learn's digits (X/16, float32),
  minibatches of 64 reshuffled every epoch, momentum SGD (lr 0.01, beta 0.9).
* **W3** a 1024-4096-4096-10 ReLU/softmax MLP, one SGD step on a batch of 512, float32,
  with GFLOP/s against a float32 matmul peak timed interleaved in the same run.
* **P** per call (``benchmarks/percall.py``): W2's network, ``fit(epochs=1)`` against
  ``fit(epochs=5)`` (the per-call host work), ``predict``/``score`` of 256 rows against
  a hand-written forward pass on the same backend, and the hand-written jitted JAX epoch.

Every implementation is warmed up once, then all are timed interleaved (each repetition
runs every row once, in a fresh random order); the tables print medians and
min-max over the repetitions. Compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

import harness  # noqa: E402
import peers  # noqa: E402
import percall  # noqa: E402
from harness import Impl, NotInAnynet  # noqa: E402

WORKLOADS = ("W1", "W2", "W3", "P")

#: Sizes and repetitions: full run, and --quick (about 20 s, for CI and tests).
SETTINGS = {
    "full": {
        "full_rows": True,
        "w1_epochs": 1000,
        "w1_repeats": 7,
        "w1_fit_epochs": 10_000,
        "w1_fit_repeats": 3,
        "w2_samples": None,
        "w2_epochs": 5,
        "w2_repeats": 7,
        "w3_sizes": [1024, 4096, 4096, 10],
        "w3_batch": 512,
        "w3_steps": 1,
        "w3_repeats": 7,
        "matmul_size": 2048,
        "matmul_calls": 3,
        "import_repeats": 5,
        "p_samples": None,
        "p_calls": 5,
        "p_repeats": 7,
        "p_direct_calls": 60,
    },
    "quick": {
        "full_rows": False,  # skip the slow anchor rows (eager JAX, strict tutorial, ...)
        "w1_epochs": 50,
        "w1_repeats": 2,
        "w1_fit_epochs": 1000,
        "w1_fit_repeats": 1,
        "w2_samples": 640,
        "w2_epochs": 1,
        "w2_repeats": 2,
        "w3_sizes": [256, 512, 512, 10],
        "w3_batch": 256,
        "w3_steps": 2,
        "w3_repeats": 2,
        "matmul_size": 1024,
        "matmul_calls": 2,
        "import_repeats": 2,
        "p_samples": 640,
        "p_calls": 2,
        "p_repeats": 2,
        "p_direct_calls": 5,
    },
}

W1_LR = 1.2
W2_SIZES = [64, 256, 256, 10]
W2_BATCH, W2_LR, W2_BETA = 64, 0.01, 0.9
W3_LR = 1e-3
GPU_MATMUL = 8192

#: Anchor rows left out of --quick: slow to warm up and not needed by any target.
FULL_ONLY = (
    "tutorial's code, xp=array_api_strict",
    "tutorial's code, xp=jax.numpy (eager)",
    "jax.grad, one jitted step per batch",
)


_START = time.perf_counter()


def log(message: str) -> None:
    """Progress goes to stderr (with the seconds since start), tables to stdout."""
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


# =============================================================================== data


def flower() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's 400 flower points, (400, 2) float64 and (400,) int labels."""
    import anynet

    return anynet.datasets.planar_flower()


def digits() -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's digits, X/16 as float32; random data of the same shape without it."""
    try:
        from sklearn.datasets import load_digits

        data = load_digits()
        return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64), "digits"
    except ImportError:
        rng = np.random.default_rng(0)
        X = rng.random((1797, 64), dtype=np.float32)
        return X, rng.integers(0, 10, 1797), "random stand-in (scikit-learn missing)"


def w3_data(sizes: list[int], batch: int) -> tuple[np.ndarray, np.ndarray]:
    """A random float32 batch and random labels."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    return X, rng.integers(0, sizes[-1], batch)


# ========================================================================== backends


def jax_x64() -> bool:
    """Whether JAX's 64-bit mode is on (importing JAX only where it is installed)."""
    if importlib.util.find_spec("jax") is None:
        return False
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def w1_dtype(library: str) -> str:
    """W1's dtype: float64, except float32 on JAX with 64-bit mode off."""
    return "float32" if library == "jax" and not jax_x64() else "float64"


def detect_gpus() -> dict[str, str]:
    """Libraries that see a CUDA device here: {library: what answered}."""
    found: dict[str, str] = {}
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                found["cupy"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        except Exception:
            pass
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                found["torch"] = torch.cuda.get_device_name(0)
        except Exception:
            pass
    if importlib.util.find_spec("jax") is not None:
        try:
            import jax

            gpus = jax.devices("gpu")
            if gpus:
                found["jax"] = str(gpus[0])
        except Exception:
            pass
    return found


def anynet_targets(requested: list[str] | None, gpus: dict[str, str]) -> list[tuple[str, str]]:
    """(backend, device) pairs anynet runs on: the available CPU backends, plus GPUs."""
    import anynet

    available = anynet.available_backends()
    names = [n for n in anynet.BACKEND_NAMES if n in available]
    if requested:
        for name in requested:
            if name not in available:
                log(f"note: backend {name!r} is not available here; its anynet rows are skipped")
        names = [n for n in names if n in requested]
    pairs = [(name, "cpu") for name in names if name != "cupy"]
    pairs += [(name, "gpu") for name in names if name in ("cupy", "jax", "torch") and name in gpus]
    return pairs


# ======================================================================= anynet rows


def _block(net: Any) -> None:
    """Wait for the network's queued work: ``synchronize()``, then its parameters."""
    net.backend.synchronize()
    for value in net.params.values():
        ready = getattr(value, "block_until_ready", None)
        if ready is not None:  # JAX: synchronize() is jax.effects_barrier(), not enough
            ready()


def _fit(net: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    """``net.fit`` that turns "unexpected keyword" into :class:`NotInAnynet`."""
    try:
        return net.fit(X, y, **kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise NotInAnynet(f"fit() {str(exc).split(') ', 1)[-1]}") from exc
        raise


def anynet_w1(backend: str, device: str, X: np.ndarray, y: np.ndarray) -> Callable:
    """anynet on W1: ``fit(epochs=n, lr=1.2)`` on one warm network."""

    def factory() -> Callable[[int], None]:
        import anynet as an

        net = an.Network(
            [2, 4, 1],
            ["tanh", "sigmoid"],
            "binary_crossentropy",
            init="normal",
            seed=0,
            dtype=w1_dtype(backend),
            backend=backend,
            device=device,
        )

        def run(n: int) -> None:
            _fit(net, X, y, epochs=n, lr=W1_LR)
            _block(net)

        return run

    return factory


def _momentum() -> Any:
    import anynet as an

    optimizers = getattr(an, "optimizers", None)
    if optimizers is None or not hasattr(optimizers, "Momentum"):
        return "momentum"
    try:
        return optimizers.Momentum(lr=W2_LR, beta=W2_BETA)
    except TypeError:  # anynet names it after PyTorch's SGD(momentum=...)
        return optimizers.Momentum(lr=W2_LR, momentum=W2_BETA)


def anynet_w2(backend: str, device: str, X: np.ndarray, y: np.ndarray) -> Callable:
    """anynet on W2: ``fit(epochs=n, optimizer=Momentum, batch_size=64, seed=0)``."""

    def factory() -> Callable[[int], None]:
        import anynet as an

        net = an.Network(
            W2_SIZES,
            ["relu", "relu", "softmax"],
            "categorical_crossentropy",
            init="he",
            seed=0,
            dtype="float32",
            backend=backend,
            device=device,
        )
        optimizer = _momentum()

        def run(n: int) -> None:
            _fit(net, X, y, epochs=n, lr=W2_LR, optimizer=optimizer, batch_size=W2_BATCH, seed=0)
            _block(net)

        return run

    return factory


def anynet_w3(
    backend: str, device: str, X: np.ndarray, y: np.ndarray, sizes: list[int]
) -> Callable:
    """anynet on W3: ``run(n)`` is ``n`` calls of ``fit(epochs=1, batch_size=len(X))``.

    Without ``batch_size`` in ``fit`` yet, full-batch ``fit(epochs=1)`` on the same
    512 samples is the very same single step, and is used instead (noted).
    """

    def factory() -> Callable[[int], None]:
        import anynet as an

        net = an.Network(
            sizes,
            ["relu"] * (len(sizes) - 2) + ["softmax"],
            "categorical_crossentropy",
            init="he",
            seed=0,
            dtype="float32",
            backend=backend,
            device=device,
        )
        options = {"epochs": 1, "lr": W3_LR, "batch_size": X.shape[0]}

        def run(n: int) -> None:
            for _ in range(n):
                try:
                    _fit(net, X, y, **options)
                except NotInAnynet:
                    if "batch_size" not in options:
                        raise
                    del options["batch_size"]
                    run.note = "fit() has no batch_size yet: full batch = the same one step"
                    _fit(net, X, y, **options)
            _block(net)

        run.note = ""
        return run

    return factory


# ========================================================================= workloads


def impls_w1(X: np.ndarray, y: np.ndarray, targets: list, gpus: dict) -> list[Impl]:
    """W1 rows: anynet per backend, then the peers."""
    jdt = w1_dtype("jax")
    rows = [
        Impl(
            "tutorial's code", "peer", "numpy", "cpu", "float64", peers.tutorial_numpy(X, y, W1_LR)
        ),
        Impl("hand-written", "peer", "numpy", "cpu", "float64", peers.numpy_w1(X, y, W1_LR)),
    ]
    for backend, device in targets:
        scale = 0.2 if backend == "array_api_strict" else 1.0
        rows.append(
            Impl(
                "anynet",
                "anynet",
                backend,
                device,
                w1_dtype(backend),
                anynet_w1(backend, device, X, y),
                scale=scale,
            )
        )
    rows += [
        Impl(
            "tutorial's code, xp=array_api_compat.numpy",
            "peer",
            "numpy",
            "cpu",
            "float64",
            peers.tutorial_xp("array_api_compat.numpy", X, y, W1_LR, "float64"),
        ),
        Impl(
            "tutorial's code, xp=array_api_strict",
            "peer",
            "array_api_strict",
            "cpu",
            "float64",
            peers.tutorial_xp("array_api_strict", X, y, W1_LR, "float64"),
            scale=0.2,
        ),
        Impl(
            "tutorial's code, xp=jax.numpy (eager)",
            "peer",
            "jax",
            "cpu",
            jdt,
            peers.tutorial_xp("jax.numpy", X, y, W1_LR, jdt),
            scale=0.2,
        ),
        Impl(
            "hand-written grads, eager",
            "peer",
            "torch",
            "cpu",
            "float64",
            peers.torch_w1(X, y, W1_LR, "float64", "cpu", autograd=False),
        ),
        Impl(
            "autograd, eager",
            "peer",
            "torch",
            "cpu",
            "float64",
            peers.torch_w1(X, y, W1_LR, "float64", "cpu", autograd=True),
        ),
        Impl(
            "hand-written, whole loop jitted (fori_loop)",
            "peer",
            "jax",
            "cpu",
            jdt,
            peers.jax_w1_loop(X, y, W1_LR, jdt, "cpu"),
        ),
        Impl(
            "MLPClassifier (sgd, full batch)",
            "peer",
            "sklearn",
            "cpu",
            "float64",
            peers.sklearn_w1(X, y, W1_LR),
            scale=0.5,
        ),
    ]
    if "torch" in gpus:
        for autograd in (False, True):
            rows.append(
                Impl(
                    "autograd, eager" if autograd else "hand-written grads, eager",
                    "peer",
                    "torch",
                    "gpu",
                    "float64",
                    peers.torch_w1(X, y, W1_LR, "float64", "gpu", autograd=autograd),
                    scale=0.5,
                )
            )
    if "jax" in gpus:
        rows.append(
            Impl(
                "hand-written, whole loop jitted (fori_loop)",
                "peer",
                "jax",
                "gpu",
                jdt,
                peers.jax_w1_loop(X, y, W1_LR, jdt, "gpu"),
            )
        )
    if "cupy" in gpus:
        rows.append(
            Impl(
                "tutorial's code, xp=array_api_compat.cupy",
                "peer",
                "cupy",
                "gpu",
                "float64",
                peers.tutorial_xp("array_api_compat.cupy", X, y, W1_LR, "float64", "gpu"),
                scale=0.5,
            )
        )
    return rows


def impls_w2(X: np.ndarray, y: np.ndarray, targets: list, gpus: dict) -> list[Impl]:
    """W2 rows: anynet per backend, then the peers."""
    args = (X, y, W2_SIZES, W2_BATCH, W2_LR, W2_BETA)
    rows = [
        Impl(
            "hand-written (in place)",
            "peer",
            "numpy",
            "cpu",
            "float32",
            peers.array_mlp_epochs("numpy", *args),
        )
    ]
    for backend, device in targets:
        rows.append(
            Impl("anynet", "anynet", backend, device, "float32", anynet_w2(backend, device, X, y))
        )
    rows += [
        Impl(
            "autograd + optim.SGD, eager",
            "peer",
            "torch",
            "cpu",
            "float32",
            peers.torch_mlp(*args, "cpu"),
        ),
        Impl(
            "jax.grad, one jitted step per batch",
            "peer",
            "jax",
            "cpu",
            "float32",
            peers.jax_mlp_step_jit(*args, "cpu"),
        ),
        Impl(
            "jax.grad, whole epoch jitted (lax.scan)",
            "peer",
            "jax",
            "cpu",
            "float32",
            peers.jax_mlp_epoch_scan(*args, "cpu"),
        ),
        Impl(
            "MLPClassifier (sgd, momentum 0.9)",
            "peer",
            "sklearn",
            "cpu",
            "float32",
            peers.sklearn_mlp(*args),
        ),
    ]
    if "torch" in gpus:
        rows.append(
            Impl(
                "autograd + optim.SGD, eager",
                "peer",
                "torch",
                "gpu",
                "float32",
                peers.torch_mlp(*args, "gpu"),
            )
        )
    if "jax" in gpus:
        rows.append(
            Impl(
                "jax.grad, whole epoch jitted (lax.scan)",
                "peer",
                "jax",
                "gpu",
                "float32",
                peers.jax_mlp_epoch_scan(*args, "gpu"),
            )
        )
    if "cupy" in gpus:
        rows.append(
            Impl(
                "hand-written (in place)",
                "peer",
                "cupy",
                "gpu",
                "float32",
                peers.array_mlp_epochs("cupy", *args),
            )
        )
    return rows


def impls_w3(
    X: np.ndarray,
    y: np.ndarray,
    sizes: list[int],
    targets: list,
    gpus: dict,
    matmul_size: int,
    matmul_calls: int,
) -> list[Impl]:
    """W3 rows: anynet per backend, the peers, and the matmul-peak rows."""
    rss = "rss"
    rows = [
        Impl(
            "hand-written (in place)",
            "peer",
            "numpy",
            "cpu",
            "float32",
            peers.array_mlp_steps("numpy", X, y, sizes, W3_LR),
            memory="tracemalloc",
        )
    ]
    for backend, device in targets:
        memory = "tracemalloc" if backend in ("numpy", "array_api_strict") else rss
        rows.append(
            Impl(
                "anynet",
                "anynet",
                backend,
                device,
                "float32",
                anynet_w3(backend, device, X, y, sizes),
                memory=memory if device == "cpu" else None,
            )
        )
    rows += [
        Impl(
            "autograd + optim.SGD",
            "peer",
            "torch",
            "cpu",
            "float32",
            peers.torch_mlp(X, y, sizes, None, W3_LR, 0.0, "cpu"),
            memory=rss,
        ),
        Impl(
            "jax.grad, jitted step",
            "peer",
            "jax",
            "cpu",
            "float32",
            peers.jax_mlp_steps(X, y, sizes, W3_LR, "cpu"),
            memory=rss,
        ),
    ]
    scale = matmul_calls
    for library in ("numpy", "torch", "jax"):
        rows.append(
            Impl(
                f"matmul {matmul_size}² (peak)",
                "peak",
                library,
                "cpu",
                "float32",
                peers.matmul(library, matmul_size, "cpu"),
                scale=scale,
            )
        )
    gpu_peers = {
        "torch": ("autograd + optim.SGD", peers.torch_mlp(X, y, sizes, None, W3_LR, 0.0, "gpu")),
        "jax": ("jax.grad, jitted step", peers.jax_mlp_steps(X, y, sizes, W3_LR, "gpu")),
        "cupy": ("hand-written (in place)", peers.array_mlp_steps("cupy", X, y, sizes, W3_LR)),
    }
    for library, (label, factory) in gpu_peers.items():
        if library in gpus:
            rows.append(Impl(label, "peer", library, "gpu", "float32", factory))
            peak = peers.matmul(library, GPU_MATMUL, "gpu")
            rows.append(
                Impl(f"matmul {GPU_MATMUL}² (peak)", "peak", library, "gpu", "float32", peak)
            )
    for impl in rows:
        if impl.device == "gpu":
            impl.scale *= 10  # a GPU step takes milliseconds: time several per call
    return rows


# ================================================================ subprocess checks


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return env


IMPORT_SNIPPET = """
import sys, time
start = time.perf_counter()
import anynet
elapsed = time.perf_counter() - start
heavy = [m for m in ("jax", "torch", "cupy", "array_api_strict", "sklearn") if m in sys.modules]
print(elapsed, ",".join(heavy))
"""


def import_time(repeats: int) -> dict[str, Any]:
    """``import anynet`` in fresh interpreters: seconds, and any heavy library it pulled in."""
    times, heavy = [], set()
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_SNIPPET],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=120,
            check=True,
        ).stdout.split()
        times.append(float(out[0]))
        heavy.update(filter(None, out[1:2][0].split(",") if len(out) > 1 else []))
    return {"times": times, "median": statistics.median(times), "heavy": sorted(heavy)}


def child_fit(epochs: int) -> None:
    """In a fresh process: a whole W1 fit on JAX (compilation included) vs the tutorial.

    JAX's import and backend start (plus one trivial jit) are timed apart and excluded,
    as NumPy's import is excluded from the tutorial's time. Prints one JSON line.
    """
    X, y = flower()
    result: dict[str, Any] = {"epochs": epochs}
    start = time.perf_counter()
    import jax

    jax.jit(lambda v: v + 1)(np.float32(1.0)).block_until_ready()
    result["jax_start_s"] = time.perf_counter() - start
    import anynet as an

    dtype = w1_dtype("jax")
    start = time.perf_counter()
    net = an.Network(
        [2, 4, 1],
        ["tanh", "sigmoid"],
        "binary_crossentropy",
        init="normal",
        seed=0,
        dtype=dtype,
        backend="jax",
    )
    net.fit(X, y, epochs=epochs, lr=W1_LR)
    _block(net)
    result["anynet_jax_s"] = time.perf_counter() - start
    start = time.perf_counter()
    peers.jax_w1_loop(X, y, W1_LR, dtype, "cpu")()(epochs)
    result["hand_jax_s"] = time.perf_counter() - start
    start = time.perf_counter()
    peers.tutorial_numpy(X, y, W1_LR)()(epochs)
    result["tutorial_s"] = time.perf_counter() - start
    result["dtype"] = dtype
    print(json.dumps(result))


def whole_fit(epochs: int, repeats: int) -> dict[str, Any]:
    """Run :func:`child_fit` ``repeats`` times in fresh interpreters; medians."""
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child-fit", str(epochs)],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=600,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"status": f"error: {tail}"[:200]}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    keys = ("jax_start_s", "anynet_jax_s", "hand_jax_s", "tutorial_s")
    out = {key: statistics.median(r[key] for r in runs) for key in keys}
    out.update(status="ok", epochs=epochs, dtype=runs[0]["dtype"], runs=runs)
    return out


# ========================================================================= reporting


def _time_text(seconds: float, unit: str) -> str:
    scale = {"µs": 1e6, "ms": 1e3, "s": 1.0}[unit]
    value = seconds * scale
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _reference(rows: list[Impl], label: str, library: str = "numpy") -> Impl | None:
    for impl in rows:
        if impl.ok and impl.label == label and impl.library == library and impl.device == "cpu":
            return impl
    return None


def table(
    title: str,
    rows: list[Impl],
    unit: str,
    refs: dict[str, Impl | None],
    flops: int | None = None,
    peaks: dict[str, float] | None = None,
) -> list[str]:
    """One workload's table: median, min-max, ratios (and GFLOP/s, memory for W3)."""
    per = "step" if flops else "epoch"
    head = [
        f"{'implementation':44} {'library':16} {'dev':3} {'dtype':7}",
        f"{'median ' + unit + '/' + per:>16} {'min-max':>15}",
    ]
    head += [f"{'x' + name:>11}" for name in refs]
    if flops:
        head += [f"{'GFLOP/s':>8} {'%peak':>6} {'mem MiB':>16}"]
    head += [f"{'1st call':>9}  notes"]
    lines = [title, " ".join(head), "-" * 150]
    for impl in rows:
        label = f"{impl.label:44.44} {impl.library:16.16} {impl.device:3} {impl.dtype:7}"
        if not impl.ok:
            lines.append(f"{label} {impl.status}")
            continue
        median = impl.median
        cells = [
            label,
            f"{_time_text(median, unit):>16}",
            f"{_time_text(min(impl.times), unit) + '-' + _time_text(max(impl.times), unit):>15}",
        ]
        for ref in refs.values():
            cells.append(f"{median / ref.median:>10.2f}x" if ref is not None else f"{'-':>11}")
        if flops:
            work = flops if impl.kind != "peak" else 2 * _matmul_n(impl) ** 3
            rate = work / median / 1e9
            peak = (peaks or {}).get(impl.device)
            share = f"{100 * rate / peak:.0f}%" if peak else "-"
            memory = "-"
            if impl.peak_mib is not None:
                memory = f"{impl.peak_mib:.0f} ({impl.memory})"
            cells.append(f"{rate:>8.0f} {share:>6} {memory:>16}")
        notes = []
        if impl.compile_s is not None:
            notes.append(f"compile {impl.compile_s * 1e3:.0f} ms (apart)")
        elif impl.kind == "anynet" and impl.library == "jax" and impl.first_s is not None:
            compile_ms = (impl.first_s - median * impl.units) * 1e3
            notes.append(f"1st call incl. compile ≈ {compile_ms:.0f} ms more")
        if impl.note:
            notes.append(impl.note)
        first = f"{impl.first_s * 1e3:.0f}ms" if impl.first_s is not None else "-"
        cells.append(f"{first:>9}  {'; '.join(notes)}")
        lines.append(" ".join(cells))
    return lines


def _others(start: tuple | None) -> str:
    """Share of the CPU that other processes used since ``start`` (a cpu_snapshot)."""
    share = harness.others_share(start, harness.cpu_snapshot())
    return "?" if share is None else f"{share:.0%}"


def _matmul_n(impl: Impl) -> int:
    return int(impl.label.split()[1].rstrip("²"))


def _best_anynet(rows: list[Impl], device: str = "cpu") -> Impl | None:
    found = [r for r in rows if r.ok and r.kind == "anynet" and r.device == device]
    return min(found, key=lambda r: r.median) if found else None


def _find(rows: list[Impl], kind: str, library: str, label: str | None = None) -> Impl | None:
    for impl in rows:
        if (
            impl.ok
            and impl.kind == kind
            and impl.library == library
            and impl.device == "cpu"
            and (label is None or impl.label == label)
        ):
            return impl
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The speed targets (issue 14's where they supersede issue 6's), each with its
    measured ratio and met / not met."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, below: bool, fmt: str, why: str = ""):
        if value is None:
            out.append({"target": name, "status": f"not measured ({why or 'rows missing'})"})
            return
        met = value <= limit if below else value >= limit
        out.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "status": "met" if met else "NOT met",
                "text": fmt.format(value),
            }
        )

    w1 = results.get("W1", {}).get("rows")
    if w1:
        tutorial = _find(w1, "peer", "numpy", "tutorial's code")
        numpy_row = _find(w1, "anynet", "numpy")
        best = _best_anynet(w1)
        ratio = numpy_row.median / tutorial.median if numpy_row and tutorial else None
        add("W1: anynet NumPy ≤ 1.10x the tutorial's code", ratio, 1.10, True, "{:.3f}x")
        ratio = best.median / tutorial.median if best and tutorial else None
        name = "W1: anynet's fastest backend ≤ 0.25x the tutorial's code"
        if best:
            name += f" (fastest: {best.library})"
        add(name, ratio, 0.25, True, "{:.3f}x")
        torch_row = _find(w1, "anynet", "torch")
        hand = _find(w1, "peer", "torch", "hand-written grads, eager")
        ratio = torch_row.median / hand.median if torch_row and hand else None
        add("W1: anynet torch ≤ 1.1x hand-written PyTorch eager", ratio, 1.1, True, "{:.3f}x")
    fit = results.get("W1_fit")
    if fit and fit.get("status") == "ok":
        add(
            f"W1: whole {fit['epochs']}-epoch fit on JAX incl. compilation faster than "
            "the tutorial's code",
            fit["anynet_jax_s"] / fit["tutorial_s"],
            1.0,
            True,
            "{:.3f}x",
        )
    elif fit:
        add("W1: whole fit on JAX faster than the tutorial", None, 1, True, "", fit["status"])
    w2 = results.get("W2", {}).get("rows")
    if w2:
        hand = _find(w2, "peer", "numpy")
        numpy_row = _find(w2, "anynet", "numpy")
        ratio = numpy_row.median / hand.median if numpy_row and hand else None
        why = next((r.status for r in w2 if r.kind == "anynet" and not r.ok), "")
        add("W2: anynet NumPy ≤ 1.0x hand-written NumPy", ratio, 1.0, True, "{:.3f}x", why)
        scan = _find(w2, "peer", "jax", "jax.grad, whole epoch jitted (lax.scan)")
        jax_row = _find(w2, "anynet", "jax")
        ratio = jax_row.median / scan.median if jax_row and scan else None
        add("W2: anynet JAX ≤ 0.90x hand-written JAX (lax.scan)", ratio, 0.9, True, "{:.3f}x", why)
    w3 = results.get("W3")
    if w3:
        rows, peak = w3["rows"], w3["peaks"].get("cpu")
        best = _best_anynet(rows)
        share = w3["flops"] / best.median / 1e9 / peak if best and peak else None
        name = "W3: anynet's best CPU backend ≥ 85% of the matmul peak"
        if best:
            name += f" (best: {best.library})"
        add(name, share, 0.85, False, "{:.0%}")
        torch_row = _find(rows, "anynet", "torch")
        torch_peak = _find(rows, "peak", "torch")
        share = None
        if torch_row and torch_peak:
            own_rate = 2 * _matmul_n(torch_peak) ** 3 / torch_peak.median
            share = w3["flops"] / torch_row.median / own_rate
        add("W3: anynet torch ≥ 0.90 of torch's own matmul rate", share, 0.9, False, "{:.2f}")
        hand = _find(rows, "peer", "numpy")
        numpy_row = _find(rows, "anynet", "numpy")
        ratio = hand.median / numpy_row.median if hand and numpy_row else None
        add(
            "W3: anynet NumPy ≥ 0.97x hand-written NumPy's throughput",
            ratio,
            0.97,
            False,
            "{:.3f}x",
        )
        ratio = None
        if hand and numpy_row and hand.peak_mib and numpy_row.peak_mib is not None:
            ratio = numpy_row.peak_mib / hand.peak_mib
        add("W3: peak memory of fit ≤ 1.2x hand-written NumPy's", ratio, 1.2, True, "{:.3f}x")
    per_call = results.get("P", {}).get("figures", {})
    for key, entry in per_call.items():
        if "host_ms" not in entry:
            continue
        backend = key.split("/")[0]
        limit = 0.25 if backend == "jax" else 0.2
        host = entry["host_ms"] if entry["host_ms"] >= 0 else None  # noise beyond the figure
        negative = f"the subtraction came out negative: {entry['host_ms']:.3f} ms"
        add(f"P: per-call host work of fit(epochs=1) on {key} ≤ {limit} ms", host, limit, True,
            "{:.3f} ms", negative)  # fmt: skip
        if "direct_host_ms" in entry:
            add(f"P: per-call host work of fit(epochs=1) on {key}, measured directly, ≤ {limit} "
                "ms", entry["direct_host_ms"], limit, True, "{:.3f} ms")  # fmt: skip
        if "predict_ratio" in entry:
            add(f"P: predict of {percall.ROWS} rows on {key} ≤ 1.2x a hand-written forward",
                entry["predict_ratio"], 1.2, True, "{:.2f}x")  # fmt: skip
    imp = results.get("import")
    if imp:
        add("import anynet (NumPy only) < 0.2 s", imp["median"], 0.2, True, "{:.3f} s")
    return out


# ============================================================================ profile


def profile(workloads: list[str], backends: list[str] | None, cfg: dict, top: int = 18) -> None:
    """cProfile of anynet's ``fit`` on each workload and backend (default NumPy): where
    the time goes, by function (``tottime``). Warm calls only; profiling inflates the
    cost of every Python call, so read shares, not absolute times."""
    import cProfile
    import pstats

    for name in workloads:
        for backend in backends or ["numpy"]:
            if name == "W1":
                X, y = flower()
                run, units = anynet_w1(backend, "cpu", X, y)(), cfg["w1_epochs"]
            elif name == "W2":
                X, y, _ = digits()
                run, units = anynet_w2(backend, "cpu", X, y)(), cfg["w2_epochs"]
            else:
                X, y = w3_data(cfg["w3_sizes"], cfg["w3_batch"])
                run, units = anynet_w3(backend, "cpu", X, y, cfg["w3_sizes"])(), 1
            run(units)
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.runcall(run, units)
            elapsed = time.perf_counter() - start
            print(f"== {name}, anynet on {backend}: {units} units in {elapsed:.3f} s (profiled)")
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)


# ============================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, ~20 s (CI, tests)")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        help="anynet backends to run (comma or space separated; default: all available)",
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="e.g. W1,W3")
    parser.add_argument("--repeats", type=int, default=None, help="override the repetitions")
    parser.add_argument("--json", default=None, help="also write every number to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the tables, cProfile anynet's fit on the workloads and backends",
    )
    parser.add_argument("--child-fit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backends:
        args.backends = [b.strip() for part in args.backends for b in part.split(",") if b.strip()]
        import anynet

        unknown = [b for b in args.backends if b not in anynet.BACKEND_NAMES]
        if unknown:
            parser.error(f"unknown backend(s) {unknown}; choose from {list(anynet.BACKEND_NAMES)}")
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS]
    if bad:
        parser.error(f"unknown workload(s) {bad}; choose from {list(WORKLOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_fit is not None:
        child_fit(args.child_fit)
        return 0
    run_start = harness.cpu_snapshot()
    mode = "quick" if args.quick else "full"
    cfg = SETTINGS[mode]
    if args.profile:
        profile(args.workloads, args.backends, cfg)
        return 0
    gpus = detect_gpus()
    pairs = anynet_targets(args.backends, gpus)
    log(f"anynet benchmarks ({mode}); anynet rows on {pairs}; GPUs: {gpus or 'none'}")
    results: dict[str, Any] = {"mode": mode, "gpus": gpus}
    tables: list[str] = []

    if "W1" in args.workloads:
        X, y = flower()
        rows = impls_w1(X, y, pairs, gpus)
        if not cfg["full_rows"]:
            rows = [impl for impl in rows if impl.label not in FULL_ONLY]
        reps = args.repeats or cfg["w1_repeats"]
        log(f"W1: {len(rows)} rows, {cfg['w1_epochs']} epochs per call, {reps} repetitions")
        snap = harness.cpu_snapshot()
        harness.measure(rows, cfg["w1_epochs"], reps, log)
        refs = {
            "hand": _reference(rows, "hand-written"),
            "tutorial": _reference(rows, "tutorial's code"),
        }
        jdt = w1_dtype("jax")
        title = (
            f"W1  tutorial 2-4-1 tanh/sigmoid, BCE, 400 flower points, full batch, lr {W1_LR}; "
            f"{cfg['w1_epochs']} epochs per timed call (fewer for slow rows), {reps} "
            f"repetitions; float64 (JAX: {jdt}{'' if jdt == 'float64' else ', x64 off'}); "
            f"other processes: {_others(snap)} of the CPU"
        )
        tables += [*table(title, rows, "µs", refs), ""]
        results["W1"] = {"rows": rows}
        if any(b == "jax" for b, _ in pairs):
            log(f"W1: whole {cfg['w1_fit_epochs']}-epoch fits in fresh processes")
            fit = whole_fit(cfg["w1_fit_epochs"], cfg["w1_fit_repeats"])
            results["W1_fit"] = fit
            if fit["status"] == "ok":
                tables += [
                    f"W1  whole {fit['epochs']}-epoch fit in a fresh process, median of "
                    f"{len(fit['runs'])} ({fit['dtype']} on JAX; JAX import + start "
                    f"{fit['jax_start_s']:.2f} s excluded)",
                    f"    anynet fit on JAX, compilation included   {fit['anynet_jax_s']:8.3f} s"
                    f"   {fit['anynet_jax_s'] / fit['tutorial_s']:.2f}x the tutorial",
                    f"    hand-written JAX fori_loop, compile incl.  {fit['hand_jax_s']:8.3f} s"
                    f"   {fit['hand_jax_s'] / fit['tutorial_s']:.2f}x the tutorial",
                    f"    the tutorial's NumPy code                  {fit['tutorial_s']:8.3f} s",
                    "",
                ]
            else:
                tables += [f"W1  whole fit on JAX: {fit['status']}", ""]

    if "W2" in args.workloads:
        X, y, source = digits()
        if cfg["w2_samples"]:
            X, y = X[: cfg["w2_samples"]], y[: cfg["w2_samples"]]
            source += f" (first {cfg['w2_samples']})"
        rows = impls_w2(X, y, pairs, gpus)
        if not cfg["full_rows"]:
            rows = [impl for impl in rows if impl.label not in FULL_ONLY]
        reps = args.repeats or cfg["w2_repeats"]
        log(f"W2: {len(rows)} rows, {cfg['w2_epochs']} epochs per call, {reps} repetitions")
        snap = harness.cpu_snapshot()
        harness.measure(rows, cfg["w2_epochs"], reps, log)
        title = (
            f"W2  {'-'.join(map(str, W2_SIZES))} ReLU/softmax MLP, {source} "
            f"{X.shape[0]}x{X.shape[1]} float32, batch {W2_BATCH}, momentum SGD "
            f"(lr {W2_LR}, beta {W2_BETA}); {cfg['w2_epochs']} epochs per call, "
            f"{reps} repetitions; other processes: {_others(snap)} of the CPU"
        )
        tables += [*table(title, rows, "ms", {"hand": _reference(rows, "hand-written (in place)")})]
        tables.append("")
        results["W2"] = {"rows": rows}

    if "W3" in args.workloads:
        sizes, batch = cfg["w3_sizes"], cfg["w3_batch"]
        X, y = w3_data(sizes, batch)
        rows = impls_w3(X, y, sizes, pairs, gpus, cfg["matmul_size"], cfg["matmul_calls"])
        reps = args.repeats or cfg["w3_repeats"]
        log(f"W3: {len(rows)} rows, {cfg['w3_steps']} steps per call, {reps} repetitions")
        snap = harness.cpu_snapshot()
        harness.measure(rows, cfg["w3_steps"], reps, log)
        peaks: dict[str, float] = {}
        for impl in rows:
            if impl.ok and impl.kind == "peak":
                rate = 2 * _matmul_n(impl) ** 3 / impl.median / 1e9
                peaks[impl.device] = max(peaks.get(impl.device, 0.0), rate)
        flops = peers.mlp_flops(sizes, batch)
        title = (
            f"W3  {'-'.join(map(str, sizes))} ReLU/softmax MLP, one SGD step on a batch of "
            f"{batch}, float32 ({flops / 1e9:.1f} GFLOP of matmul per step); {reps} repetitions; "
            f"peak = best matmul median: "
            + ", ".join(f"{dev} {rate:.0f} GFLOP/s" for dev, rate in peaks.items())
            + f"; other processes: {_others(snap)} of the CPU"
        )
        tables += [
            *table(
                title,
                rows,
                "ms",
                {"hand": _reference(rows, "hand-written (in place)")},
                flops,
                peaks,
            ),
            "    mem: peak extra memory of one step — tracemalloc (NumPy buffers) or rss "
            "(resident high-water mark above the start, /proc/self; approximate)",
            "",
        ]
        results["W3"] = {"rows": rows, "flops": flops, "peaks": peaks, "sizes": sizes}

    if "P" in args.workloads:
        X, y, source = digits()
        if cfg["p_samples"]:
            X, y = X[: cfg["p_samples"]], y[: cfg["p_samples"]]
            source += f" (first {cfg['p_samples']})"
        rows = percall.impls_percall(X, y, pairs)
        reps = args.repeats or cfg["p_repeats"]
        log(f"P: {len(rows)} rows, {cfg['p_calls']} calls per timing, {reps} repetitions")
        snap = harness.cpu_snapshot()
        harness.measure(rows, cfg["p_calls"], reps, log)
        log("P: host work per fit(epochs=1), measured directly")
        direct = {}
        for backend, device in pairs:
            try:
                direct[f"{backend}/{device}"] = percall.direct_host_work(
                    backend, device, X, y, cfg["p_direct_calls"]
                )
            except Exception as error:  # a backend that failed has no row above either
                log(f"P: direct host work on {backend}/{device} failed: {error!r}")
        lines, figures = percall.summary(rows, pairs, direct)
        tables += [
            f"P   per call: {'-'.join(map(str, percall.SIZES))} ReLU/softmax MLP, {source} "
            f"{X.shape[0]}x{X.shape[1]} float32, batch {percall.BATCH}, momentum SGD, data "
            f"on the device; host/call = fit(epochs=1) - (fit(epochs=5) - fit(epochs=1))/4, "
            f"direct = fit(epochs=1) minus the time inside the engine's runner and read-back "
            f"(median of {cfg['p_direct_calls']} calls); "
            f"predict/score of {percall.ROWS} rows vs a hand-written forward pass; medians of "
            f"{reps}; other processes: {_others(snap)} of the CPU",
            *lines,
            "",
        ]
        results["P"] = {"rows": rows, "figures": figures}

    log("import anynet in fresh interpreters")
    results["import"] = imp = import_time(cfg["import_repeats"])
    tables.append(
        f"import anynet (NumPy only, fresh interpreter): median {imp['median'] * 1e3:.0f} ms "
        f"of {len(imp['times'])} (min {min(imp['times']) * 1e3:.0f} ms); heavy modules "
        f"imported: {imp['heavy'] or 'none'}"
    )
    env = harness.environment(ROOT)
    env["others"] = _others(run_start)
    results["environment"] = env
    results["targets"] = goals = targets(results)

    print(f"anynet benchmarks — {mode} run, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print("\n".join(harness.format_environment(env)))
    print()
    print("\n".join(tables))
    print()
    print("targets (medians of this run):")
    for goal in goals:
        value = f": {goal['text']}" if "text" in goal else ""
        print(f"  [{goal['status']}] {goal['target']}{value}")
    if args.json:
        payload = dict(results)
        for key in WORKLOADS:
            if key in payload:
                payload[key] = dict(payload[key], rows=[r.as_dict() for r in payload[key]["rows"]])
        harness.dump_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
