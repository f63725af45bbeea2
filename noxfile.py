"""One test session per backend, each installing only that backend; plus lint, docs, typecheck.

Run everything with ``nox``; one backend with ``nox -s torch`` (short for
``nox -s "tests(backend='torch')"``). Each backend session runs the whole suite with
``pytest --backend NAME``, which fails if that backend does not load or if no test on
it passed. ``nox -s docs`` builds the documentation into ``site/`` and runs every Python
block of its pages; ``nox -s typecheck`` runs mypy over ``anynet/`` and checks that mypy
sees anynet in an editable install.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
# `nox`: every backend, ONNX, JAX over several devices and processes, lint, the documentation
# (site and examples), types
# (the ONNX checks run in the NumPy session, the multi-device ones in JAX's: one virtual
# environment less each; `nox -s onnx` and `nox -s jax_multidevice` run them alone)
nox.options.sessions = ["tests", "gpu", "lint", "docs", "typecheck"]

# The PyTorch release whose CPU wheel installs quickly here; override with
# ANYNET_TORCH_SPEC (e.g. "torch" for the latest CUDA build).
TORCH_SPEC = os.environ.get("ANYNET_TORCH_SPEC", "torch==2.13.0")

BACKEND_PACKAGES = {
    "numpy": ["dask[array]", "distributed"],  # Dask inference is tested once, on NumPy
    "array_api_strict": ["array-api-strict"],
    "jax": ["jax[cpu]"],
    "torch": [TORCH_SPEC],
    "cupy": ["cupy-cuda12x"],
}

TEST_TOOLS = [
    "pytest",
    "pytest-xdist",
    "hypothesis",
    "matplotlib",
    "scikit-learn",
    "threadpoolctl",
    "tqdm",
]


#: pytest-xdist workers of a backend session (the suite's guard counts their reports;
#: tests/test_suite_guard.py). Two on the 2-core CI machine: JAX's session, mostly
#: compilation, takes 0.55x the time of one process. ANYNET_TEST_WORKERS=0: one process.
WORKERS = os.environ.get("ANYNET_TEST_WORKERS", "2")

#: The extras of anynet a backend session installs besides the backend: NumPy's session
#: also runs the ONNX export checks (tests/test_onnx.py skips without onnxruntime).
BACKEND_EXTRAS = {"numpy": "[onnx]"}


def _run_suite(session: nox.Session, backend: str, *args: str, workers: str = "0") -> None:
    package = "." + BACKEND_EXTRAS.get(backend, "")
    session.install("-e", package, *TEST_TOOLS, *BACKEND_PACKAGES[backend])
    env = {"JAX_ENABLE_X64": "1", "MPLBACKEND": "Agg"}
    parallel = ["-n", workers] if workers != "0" else []
    session.run("pytest", "--backend", backend, *parallel, *args, *session.posargs, env=env)


@nox.session
@nox.parametrize("backend", list(BACKEND_PACKAGES))
def tests(session: nox.Session, backend: str) -> None:
    """The whole suite on one backend: tests(backend='numpy'), ..., tests(backend='cupy').

    CuPy skips where no CUDA device answers (no NVIDIA GPU here).
    """
    if backend == "cupy" and shutil.which("nvidia-smi") is None:
        session.skip("no CUDA device answers here (nvidia-smi not found): CuPy needs an NVIDIA GPU")
    _run_suite(session, backend, workers=WORKERS)


#: The CUDA builds for gpu(backend=...): large downloads, installed only where a GPU answers.
GPU_PACKAGES = {
    "cupy": ["cupy-cuda12x"],
    "jax": ["jax[cuda12]"],
    "torch": [os.environ.get("ANYNET_TORCH_CUDA_SPEC", "torch")],
}


@nox.session
@nox.parametrize("backend", list(GPU_PACKAGES))
def gpu(session: nox.Session, backend: str) -> None:
    """The whole suite on CuPy, JAX or PyTorch with a CUDA GPU as the device.

    Skips, saying why, where no NVIDIA GPU answers (CI). Float32 matmuls are pinned to
    full precision (TF32 off) by tests/conftest.py.
    """
    if shutil.which("nvidia-smi") is None:
        session.skip(f"no CUDA device answers here (nvidia-smi not found): {backend} on a GPU")
    session.install("-e", ".", *TEST_TOOLS, *GPU_PACKAGES[backend])
    env = {"JAX_ENABLE_X64": "1", "MPLBACKEND": "Agg", "NVIDIA_TF32_OVERRIDE": "0"}
    session.run("pytest", "--backend", backend, "--device", "gpu", *session.posargs, env=env)


def _alias(backend: str) -> None:
    """``nox -s numpy`` as a short name for ``nox -s "tests(backend='numpy')"``."""

    def alias(session: nox.Session) -> None:
        session.notify(f"tests(backend='{backend}')")

    alias.__doc__ = f"Short for tests(backend='{backend}')."
    nox.session(name=backend, python=False)(alias)


for _backend in BACKEND_PACKAGES:
    _alias(_backend)


@nox.session
def onnx(session: nox.Session) -> None:
    """The ONNX export (extra anynet[onnx]: ndonnx, onnx, onnxruntime), checked by onnxruntime,
    alone (tests(backend='numpy') runs these checks too)."""
    session.install("-e", ".[onnx]", *TEST_TOOLS)
    env = {"JAX_ENABLE_X64": "1", "MPLBACKEND": "Agg"}
    session.run("pytest", "--backend", "numpy", "tests/test_onnx.py", *session.posargs, env=env)


@nox.session
def jax_multidevice(session: nox.Session) -> None:
    """Data parallel on JAX: 4 simulated CPU devices, 2 jax.distributed processes.

    Runs tests/test_parallel.py alone (tests(backend='jax') runs it too); each multi-device
    check starts its own Python, since JAX fixes its device count at startup.
    """
    _run_suite(session, "jax", "tests/test_parallel.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff==0.17.6")  # pinned: a new release must not turn CI red
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation: ``mkdocs build --strict`` into site/, then every ```python block
    of docs/*.md runs (docs/run_snippets.py; ``nox -s docs -- docs/layers.md`` runs one page)."""
    session.install("-e", ".[docs]", "pytest")
    env = {"MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", env=env)
    session.run("python", "docs/run_snippets.py", *session.posargs, env=env)


#: Type stubs of optional dependencies that ship none themselves.
TYPE_STUBS = ["types-tqdm"]

#: mypy over tests/: the settings of [tool.mypy] with untyped test functions allowed.
TESTS_MYPY = ["--allow-untyped-defs", "--allow-incomplete-defs", "--no-check-untyped-defs"]


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over anynet/ and the typed user scripts of tests/typecheck/ (settings in
    pyproject.toml's [tool.mypy]); then a fresh virtual environment with an editable install,
    in which mypy must see anynet: a user's script passes, ``epochs="10"`` is caught
    (tests/typecheck/check_editable.py; ``nox -s typecheck -- --no-deps`` without an index)."""
    # the optional dependencies that ship their types (or stubs: types-tqdm), so mypy checks
    # anynet's use of them; torch and cupy stay out (large), covered by [tool.mypy]'s
    # ignore_missing_imports
    session.install("-e", ".[plot,progress,strict,jax,sklearn]", *TYPE_STUBS,
                    "mypy==2.4.1")  # pinned: a new release must not turn CI red  # fmt: skip
    options = [arg for arg in session.posargs if arg == "--no-deps"]
    session.run("mypy", *(arg for arg in session.posargs if arg != "--no-deps"))
    # the tests' use of the public API, with a lighter hand: untyped test functions are
    # allowed, and their bodies are not checked (imports, module-level code, typed helpers)
    session.install("pytest", "hypothesis")
    session.run("mypy", *TESTS_MYPY, "tests")
    if options:  # the build then runs without isolation, with this environment's setuptools
        session.install("setuptools>=77")
    session.run("python", "tests/typecheck/check_editable.py", *options)
