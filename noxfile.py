"""One test session per backend, each installing only that backend; plus lint.

Run everything with ``nox``; one backend with ``nox -s torch``. Each backend
session runs the whole suite with ``pytest --backend NAME``, which fails if that
backend does not load or if no test on it passed.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

# The PyTorch release whose CPU wheel installs quickly here; override with
# ANYNET_TORCH_SPEC (e.g. "torch" for the latest CUDA build).
TORCH_SPEC = os.environ.get("ANYNET_TORCH_SPEC", "torch==2.13.0")

BACKEND_PACKAGES = {
    "numpy": [],
    "array_api_strict": ["array-api-strict"],
    "jax": ["jax[cpu]"],
    "torch": [TORCH_SPEC],
    "cupy": ["cupy-cuda12x"],
}

TEST_TOOLS = [
    "pytest",
    "hypothesis",
    "matplotlib",
    "scikit-learn",
    "threadpoolctl",
    "tqdm",
]


def _run_suite(session: nox.Session, backend: str) -> None:
    session.install("-e", ".", *TEST_TOOLS, *BACKEND_PACKAGES[backend])
    env = {"JAX_ENABLE_X64": "1", "MPLBACKEND": "Agg"}
    session.run("pytest", "--backend", backend, *session.posargs, env=env)


@nox.session
def numpy(session: nox.Session) -> None:
    """The suite on NumPy (CPU)."""
    _run_suite(session, "numpy")


@nox.session
def array_api_strict(session: nox.Session) -> None:
    """The suite on array-api-strict, default device and 'device1' (a stand-in for a GPU)."""
    _run_suite(session, "array_api_strict")


@nox.session
def jax(session: nox.Session) -> None:
    """The suite on JAX (x64 enabled for the float64 comparisons)."""
    _run_suite(session, "jax")


@nox.session
def torch(session: nox.Session) -> None:
    """The suite on PyTorch (the CPU wheel here; see ANYNET_TORCH_SPEC)."""
    _run_suite(session, "torch")


@nox.session
def cupy(session: nox.Session) -> None:
    """The suite on CuPy; skipped where no CUDA device answers."""
    if shutil.which("nvidia-smi") is None:
        session.skip("no CUDA device answers here (nvidia-smi not found): CuPy needs an NVIDIA GPU")
    _run_suite(session, "cupy")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff==0.17.6")  # pinned: a new release must not turn CI red
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
