"""The suite's own guard: a backend session in which no test of that backend passed fails.

Runs pytest on a slice of this suite in a child process, serially and with pytest-xdist
workers (the nox sessions use ``-n``): a slice whose backend tests all skip must fail,
one in which they pass must pass.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Marked to run on JAX only: on NumPy every case skips.
JAX_ONLY = "tests/test_sparse.py::test_data_parallel_training_refuses_a_sparse_matrix"
#: Runs on every backend.
EVERY_BACKEND = "tests/test_sparse.py::test_sparse_full_batch_training_gives_the_dense_numbers"

WORKER_CASES: list[list[str]] = [[]]
if importlib.util.find_spec("xdist") is not None:
    WORKER_CASES.append(["-n", "2"])


def _pytest(*args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backend", "numpy",
         *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.needs("scipy", reason="the slices are tests of sparse inputs")
@pytest.mark.parametrize("workers", WORKER_CASES, ids=lambda w: "xdist" if w else "serial")
def test_a_session_where_every_backend_test_skips_fails(workers):
    skipped = _pytest(*workers, JAX_ONLY)
    assert skipped.returncode == 1, skipped.stdout[-2000:] + skipped.stderr[-2000:]
    assert "no test passed on backend(s) ['numpy']" in skipped.stdout
    ran = _pytest(*workers, EVERY_BACKEND)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "1 passed" in ran.stdout
