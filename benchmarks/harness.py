"""Timing, memory and environment helpers for ``benchmarks/run.py``.

An :class:`Impl` is one implementation of one workload (an anynet backend or a peer).
Its ``factory`` builds the model and data and returns ``run(n)``, which performs ``n``
units of work (epochs, or training steps for W3) and returns only when the work is
done (it blocks on asynchronous backends). :func:`measure` warms every implementation
up once, then times them *interleaved*: each repetition runs every implementation
once, in a fresh random order, so that drift (thermal, other processes, allocator
state) and the effect of the row run just before hit all of them alike.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Impl",
    "NotInAnynet",
    "Unavailable",
    "cpu_snapshot",
    "environment",
    "measure",
    "others_share",
    "peak_rss_delta",
    "peak_traced",
]


class Unavailable(Exception):
    """The implementation cannot run here: its library is missing, or there is no GPU."""


class NotInAnynet(Exception):
    """anynet does not implement a feature this row needs (yet)."""


@dataclass
class Impl:
    """One row of a result table.

    Attributes
    ----------
    label : str
        What ran, e.g. ``"anynet"`` or ``"tutorial's code"``.
    kind : {"anynet", "peer", "peak"}
    library : str
        The array library doing the work (``numpy``, ``jax``, ``torch`` ...).
    device : {"cpu", "gpu"}
    dtype : str
    factory : callable
        ``factory() -> run``; may raise :class:`Unavailable` or :class:`NotInAnynet`.
        ``run(n)`` does ``n`` units and blocks until they are done. ``run`` may carry
        ``compile_s`` (seconds of JIT compilation, measured apart) and ``note``.
    scale : float
        Fraction of the workload's units per timed call (slow rows run fewer epochs;
        times are per unit, so only the amortisation of per-call costs changes).
    memory : {"tracemalloc", "rss", None}
        How to measure this row's peak memory, if the workload asks for it.
    """

    label: str
    kind: str
    library: str
    device: str
    dtype: str
    factory: Callable[[], Callable[[int], Any]]
    scale: float = 1.0
    memory: str | None = None
    note: str = ""
    status: str = "ok"
    units: int = 0
    times: list[float] = field(default_factory=list)
    first_s: float | None = None
    compile_s: float | None = None
    peak_mib: float | None = None
    run: Callable[[int], Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (seconds per unit)."""
        out = {
            key: getattr(self, key)
            for key in (
                "label",
                "kind",
                "library",
                "device",
                "dtype",
                "status",
                "note",
                "units",
                "times",
                "first_s",
                "compile_s",
                "peak_mib",
            )
        }
        out["memory_method"] = self.memory
        if self.ok:
            out.update(median=self.median, min=min(self.times), max=max(self.times))
        return out


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, Unavailable):
        return f"skipped: {exc}"
    if isinstance(exc, NotInAnynet):
        return f"n/a (not implemented: {exc})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: {type(exc).__name__}: {text}"[:160]


def measure(impls: list[Impl], units: int, repeats: int, log: Callable[[str], None]) -> None:
    """Warm up every implementation once, then time ``repeats`` interleaved rounds.

    Fills ``impl.times`` (seconds per unit), ``first_s`` (the warm-up call, which includes
    JIT compilation where there is one), ``compile_s``, ``status`` and, for rows with a
    ``memory`` method, ``peak_mib`` (measured after the timings, over one unit). Never
    raises for an implementation's failure: its status says what happened.

    Garbage is collected before each timed call, outside the timing. The objects alive
    after the warm-up (hundreds of thousands once torch and JAX are imported) are frozen
    first, so that each collection costs microseconds, not 0.1 s.
    """
    active: list[Impl] = []
    for impl in impls:
        impl.units = max(1, round(units * impl.scale))
        name = f"{impl.label} [{impl.library}/{impl.device}]"
        setup_start = time.perf_counter()
        try:
            impl.run = impl.factory()
            start = time.perf_counter()
            impl.run(impl.units)
            impl.first_s = time.perf_counter() - start
        except Exception as exc:  # one row failing must not stop the others
            impl.status = _status_of(exc)
            log(f"  {name}: {impl.status}")
            continue
        log(f"  {name}: ready in {time.perf_counter() - setup_start:.2f} s")
        impl.compile_s = getattr(impl.run, "compile_s", None)
        impl.note = impl.note or getattr(impl.run, "note", "")
        active.append(impl)
    gc.collect()
    gc.freeze()
    try:
        _timed_rounds(active, repeats)
        for impl in active:
            if impl.ok and impl.memory:
                probe = peak_traced if impl.memory == "tracemalloc" else peak_rss_delta
                try:
                    impl.peak_mib = probe(impl.run)
                except Exception as exc:
                    impl.note = f"memory: {_status_of(exc)}"
    finally:
        gc.unfreeze()  # let the rows' memory go once the caller drops them


def _timed_rounds(active: list[Impl], repeats: int) -> None:
    # A fresh random order each round (seeded: reruns use the same orders). A rotation
    # would keep every row behind the same neighbour, and a row runs measurably slower
    # right after some others (caches, clocks): up to 20% after a NumPy row for JAX.
    rng = random.Random(0)
    for _ in range(repeats):
        for impl in rng.sample(active, len(active)):
            if impl.status != "ok":
                continue
            gc.collect()
            try:
                start = time.perf_counter()
                impl.run(impl.units)
                elapsed = time.perf_counter() - start
            except Exception as exc:
                impl.status = _status_of(exc)
                continue
            impl.times.append(elapsed / impl.units)


# -- memory ----------------------------------------------------------------------


def peak_traced(run: Callable[[int], Any]) -> float:
    """Peak of memory newly allocated through Python's allocators during ``run(1)``, in MiB.

    NumPy reports its data buffers to :mod:`tracemalloc`, so for NumPy-based code this
    is the step's peak extra memory (temporaries, gradients, new parameters). Torch,
    JAX and CuPy allocate outside it: use :func:`peak_rss_delta` for them.
    """
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / 2**20


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"{field_name} not in /proc/self/status")


def peak_rss_delta(run: Callable[[int], Any]) -> float | None:
    """Peak resident memory above the current one during ``run(1)``, in MiB (Linux only).

    Resets the high-water mark (``echo 5 > /proc/self/clear_refs``) and reads
    ``VmHWM`` after the step. Approximate: memory that the allocator kept from earlier
    steps is reused without showing up. None where /proc does not allow it.
    """
    try:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        base = _status_kib("VmRSS")
        run(1)
        return max(_status_kib("VmHWM") - base, 0) / 1024
    except OSError:
        return None


# -- environment -----------------------------------------------------------------


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        from importlib.metadata import version

        dist = {
            "array_api_compat": "array-api-compat",
            "array_api_strict": "array-api-strict",
            "sklearn": "scikit-learn",
        }
        return version(dist.get(module, module))
    except Exception:
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its
    children, wall time), for :func:`others_share`; None without /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    return (sum(fields[:8]) - idle) / ticks, mine, time.monotonic()


def others_share(start: tuple | None, end: tuple | None) -> float | None:
    """Fraction of the machine's CPU capacity that *other* processes used between two
    :func:`cpu_snapshot` calls: 0 on a quiet machine; on 2 cores, 0.5 means another
    process held a whole core, and the timings of that span are suspect."""
    if start is None or end is None or end[2] <= start[2]:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(others, 0.0) / ((end[2] - start[2]) * (os.cpu_count() or 1))


def _git_revision(root: str) -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev or "?"
    except Exception:
        return "?"


def environment(root: str) -> dict[str, Any]:
    """Machine, library versions and the BLAS/threading libraries actually loaded.

    Call after every library has been imported: threadpoolctl only sees loaded ones.
    """
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "<unset>"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "<unset>"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "<unset>"),
        "JAX_ENABLE_X64": os.environ.get("JAX_ENABLE_X64", "<unset>"),
        "anynet": _git_revision(root),
        "versions": {
            name: _version(name)
            for name in (
                "numpy",
                "array_api_compat",
                "array_api_strict",
                "jax",
                "jaxlib",
                "torch",
                "cupy",
                "sklearn",
                "threadpoolctl",
            )
        },
    }
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {
                key: info.get(key)
                for key in (
                    "internal_api",
                    "prefix",
                    "version",
                    "architecture",
                    "threading_layer",
                    "num_threads",
                )
            }
            | {"package": os.path.basename(os.path.dirname(info.get("filepath", "")))}
            for info in threadpool_info()
        ]
    except ImportError:
        env["threadpools"] = "threadpoolctl not installed"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        config = torch.__config__.show()
        blas = [p.split("=")[1] for p in config.replace(",", " ").split() if "BLAS_INFO=" in p]
        env["torch"] = {
            "num_threads": torch.get_num_threads(),
            "blas": blas[0] if blas else "?",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        }
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        env["jax"] = {
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.read("jax_enable_x64")),
        }
    return env


def format_environment(env: dict[str, Any]) -> list[str]:
    """The header lines printed above the tables."""
    lines = [
        f"python {env['python']} on {env['platform']}",
        f"cpu: {env['cpu']}, {env['cores']} cores; anynet at {env['anynet']}",
        f"other processes used {env.get('others', '?')} of the CPU during this run "
        "(each table gives its own share; above ~5%, its timings are suspect)",
        "OPENBLAS_CORETYPE={OPENBLAS_CORETYPE} OPENBLAS_L2_SIZE={OPENBLAS_L2_SIZE} "
        "OMP_NUM_THREADS={OMP_NUM_THREADS} JAX_ENABLE_X64={JAX_ENABLE_X64}".format(**env),
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v is not None),
    ]
    pools = env.get("threadpools")
    if isinstance(pools, list):
        for pool in pools:
            lines.append(
                "threadpool: {internal_api} {version} ({prefix}, from {package}) "
                "arch={architecture} layer={threading_layer} threads={num_threads}".format(**pool)
            )
    else:
        lines.append(f"threadpool: {pools}")
    if "torch" in env:
        t = env["torch"]
        lines.append(
            f"torch: {t['num_threads']} threads (default, not changed), BLAS {t['blas']} "
            f"(statically linked: threadpoolctl does not list it), CPU {t['cpu_capability']}"
        )
    if "jax" in env:
        lines.append(f"jax: devices {env['jax']['devices']}, x64 {env['jax']['x64']}")
    return lines


def dump_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1, default=str)
    os.replace(tmp, path)
