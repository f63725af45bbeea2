"""The benchmark script runs: ``benchmarks/run.py --quick`` exits 0 and prints its tables.

Only that it runs and reports is checked, never how fast anything was: timings on a
shared CI machine are noise. The anynet rows are restricted to the backends of this
test session (``pytest --backend NAME``; all available ones when none is named).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run.py"

#: Generous: --quick takes about 20 s on 2 cores, more on a loaded machine.
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def quick_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run ``run.py --quick`` once for this module; its backends, output and JSON path."""
    backends = list(request.config.getoption("backend") or [])
    json_path = tmp_path_factory.mktemp("bench") / "quick.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--json", str(json_path)]
    if backends:
        command += ["--backends", ",".join(backends)]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=env
    )
    return {"backends": backends, "proc": proc, "json": json_path}


def test_quick_run_exits_cleanly(quick_run: dict) -> None:
    proc = quick_run["proc"]
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def test_quick_run_prints_the_tables(quick_run: dict) -> None:
    out = quick_run["proc"].stdout
    for header in ("OPENBLAS_CORETYPE=", "threadpool", "W1 ", "W2 ", "W3 ", "targets"):
        assert header in out, f"{header!r} missing from the output:\n{out[-3000:]}"
    assert "implementation" in out and "median" in out
    assert "tutorial's code" in out and "hand-written" in out
    assert "import anynet" in out


def _anynet_rows(out: str, backend: str) -> list[str]:
    """Table lines of anynet on ``backend`` that carry a measurement (not a status)."""
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[0] == "anynet" and fields[1] == backend:
            if not any(word in line for word in ("error:", "skipped:", "n/a (")):
                rows.append(line)
    return rows


def test_quick_run_has_anynet_rows_for_each_backend(quick_run: dict) -> None:
    import anynet

    out = quick_run["proc"].stdout
    # cupy is available only where a CUDA device answers, and then has rows too
    for backend in quick_run["backends"] or anynet.available_backends():
        assert _anynet_rows(out, backend), f"no measured anynet row for {backend}:\n{out[-4000:]}"


def test_quick_run_writes_json(quick_run: dict) -> None:
    import json

    data = json.loads(quick_run["json"].read_text())
    assert {"W1", "W2", "W3", "import", "environment", "targets"} <= set(data)
    assert any(row["kind"] == "anynet" for row in data["W1"]["rows"])
