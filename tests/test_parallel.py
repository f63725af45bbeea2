"""Data parallel on JAX (``fit(devices=...)``) and several processes (``jax.distributed``).

JAX fixes its device count when it starts, so every multi-device check runs in a fresh
Python process started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (N
simulated CPU devices); it prints one JSON line, which the test reads. Such a process is
killed (SIGKILL: JAX's preemption notifier catches SIGTERM) when it runs past its time.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import anynet as an
from anynet import callbacks
from anynet.engine import runner as engine_runner
from anynet.layers import BatchNorm, Dense

ROOT = pathlib.Path(__file__).resolve().parent.parent
JAX_ONLY = pytest.mark.backends("jax", reason="data parallelism is JAX's (meshes, shardings)")


def _environment(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flag = f"--xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    env.update(JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    return env


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# -- one process, several simulated devices -----------------------------------------

MULTI_DEVICE = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import anynet as an
    from anynet.engine import fit as engine_fit
    from anynet.engine import runner as engine_runner
    from anynet.layers import BatchNorm, Dense, Dropout

    X, y = an.datasets.planar_flower(n=203)  # 203 rows: divides over no device count
    validation = (X[:41], y[:41])
    d = jax.devices()


    def host(tree):
        return {k: np.asarray(an.to_numpy(v), dtype=np.float64).tolist() for k, v in tree.items()}


    def network():
        return an.Sequential([Dense(8), "tanh", BatchNorm(), Dropout(0.1), Dense(1), "sigmoid"],
                             inputs=2, seed=0, dtype="float64", backend="jax")


    def fit(devices, batch_size):
        net = network()
        history = net.fit(X, y, epochs=3, lr=0.05, optimizer="adam", batch_size=batch_size,
                          seed=1, validation_data=validation, devices=devices)
        return {"params": host(net.params), "state": host(net.state),
                "optimizer_state": host(net.optimizer_state), "history": history.to_dict(),
                "device": str(net.params["W1"].devices())}, net


    def collectives(devices, batch_size):
        # the compiled runner of a data-parallel fit, lowered with its real arguments
        backend, net, opt = an.get_backend("jax"), network(), an.optimizers.SGD()
        placement = backend.data_parallel(devices)
        run = engine_runner.runner(backend, net.model, net.dtype, opt, batch_size, False, False,
                                   placement)
        x, t = net._inputs(X), net._targets(y, X.shape[0])
        params, state, opt_state = placement.broadcast(
            (net.params, net.state, opt.init(net.params, xp=backend.xp)))
        x, t = placement.replicate((x, t))
        orders = backend.asarray(engine_fit._orders(0, 0, 2, X.shape[0], 2))
        lrs = backend.asarray(np.full(2, 0.1), "float64")
        lrs, orders, count = placement.replicate((lrs, orders, backend.loop_count(2)))
        text = run.lower(params, opt_state, state, lrs, orders, count, x, t, None, None)
        text = text.compile().as_text()
        return {op: text.count(f" {op}(") + text.count(f" {op}-start(")
                for op in ("all-reduce", "all-gather")}


    # 2 and 4 devices; a list (not holding the network's device 0) and jax.make_mesh's
    # mesh (Explicit axes, made Auto) as well as counts
    runs = {"full": {"1": None, "2": 2, "4": "all"},
            "batch30": {"1": None, "2": [d[3], d[2]], "4": jax.make_mesh((4,), ("data",))}}
    out = {"devices": len(d), "fits": {}}
    for case, by_count in runs.items():
        for count, devices in by_count.items():
            out["fits"][f"{case}-{count}"], net = fit(devices, None if case == "full" else 30)
    whole = np.asarray(an.to_numpy(net.predict_proba(X)))
    split = net.predict_proba(X, devices=4, batch_size=37)  # 37 rows: padded to 40
    out["predict"] = {
        "error": float(np.max(np.abs(np.asarray(an.to_numpy(split)) - whole))),
        "shape": list(split.shape), "device": str(split.devices()),
        "score": [net.score(X, y), net.score(X, y, devices=2)],
        "loss": [net.loss(X, y), net.loss(X, y, devices=2, batch_size=50)],
        "labels_equal": bool(np.array_equal(an.to_numpy(net.predict(X)),
                                            an.to_numpy(net.predict(X, devices=4)))),
    }
    out["hlo"] = collectives(4, 30)
    print(json.dumps(out))
    """
)

_multi_device_report: list[dict] = []


def multi_device() -> dict:
    """The JSON report of :data:`MULTI_DEVICE`, run once over 4 simulated devices."""
    if not _multi_device_report:
        result = subprocess.run(
            [sys.executable, "-c", MULTI_DEVICE], capture_output=True, text=True, timeout=240,
            env=_environment(4), cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        _multi_device_report.append(_last_json(result.stdout))
    return _multi_device_report[0]


@JAX_ONLY
@pytest.mark.parametrize("case", ["full", "batch30"])
@pytest.mark.parametrize("devices", ["2", "4"])
def test_data_parallel_fit_equals_one_device(backend, case, devices):
    """Full batch (203 rows) and batches of 30 (and a last one of 23): none divides
    evenly over 2 or 4 devices."""
    report = multi_device()
    assert report["devices"] == 4
    reference, run = report["fits"][f"{case}-1"], report["fits"][f"{case}-{devices}"]
    for part in ("params", "state", "optimizer_state"):
        assert sorted(run[part]) == sorted(reference[part])
        for key in reference[part]:
            assert _relative(run[part][key], reference[part][key]) <= 1e-12, (part, key)
    for figure in ("loss", "val_loss", "val_score"):
        assert len(run["history"][figure]) == 3
        assert _relative(run["history"][figure], reference["history"][figure]) <= 1e-12, figure
    assert run["device"] == reference["device"]  # results come back to the network's device


@JAX_ONLY
def test_the_compiled_runner_all_reduces_the_gradients(backend):
    ops = multi_device()["hlo"]
    assert ops["all-reduce"] >= 1, ops
    assert ops["all-gather"] == 0, ops  # the data are never gathered: each device has them


@JAX_ONLY
def test_inference_split_over_devices_equals_one_device(backend):
    report = multi_device()["predict"]
    assert report["error"] <= 1e-14
    assert report["shape"] == [203, 2]
    assert report["device"] == multi_device()["fits"]["full-1"]["device"]
    assert report["labels_equal"]
    assert report["score"][0] == report["score"][1]
    assert report["loss"][1] == pytest.approx(report["loss"][0], rel=1e-13)


# -- one device, in this process ----------------------------------------------------


def _network(backend):
    return an.Sequential([Dense(4), "tanh", Dense(1), "sigmoid"], inputs=2, seed=0,
                         dtype="float64", backend=backend)  # fmt: skip


@pytest.mark.skip_backends("jax", reason="JAX has data parallelism")
def test_devices_on_another_backend_raise(backend):
    X, y = an.datasets.planar_flower(n=40)
    net = _network(backend)
    before = {k: np.array(an.to_numpy(v)) for k, v in net.params.items()}
    message = f"needs backend 'jax'.*backend is '{backend.name}'"
    with pytest.raises(an.BackendError, match=message):
        net.fit(X, y, epochs=2, devices=2)
    with pytest.raises(an.BackendError, match=message):
        net.predict(X, devices=2)
    with pytest.raises(an.BackendError, match=message):
        backend.data_parallel("all")
    assert backend.data_parallel(None) is an.backend.SINGLE_DEVICE
    assert backend.is_primary_process()
    for key, value in net.params.items():  # nothing trained
        np.testing.assert_array_equal(an.to_numpy(value), before[key])


@JAX_ONLY
@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_one_device_mesh_is_bit_identical(backend, batch_size):
    X, y = an.datasets.planar_flower(n=50)
    runs = []
    for devices in (None, 1, "all"):  # one device in this process: "all" is one too
        net = an.Sequential([Dense(4), "tanh", BatchNorm(), Dense(1), "sigmoid"], inputs=2,
                            seed=0, dtype="float64", backend=backend)  # fmt: skip
        history = net.fit(X, y, epochs=4, lr=0.1, optimizer="adam", batch_size=batch_size,
                          seed=0, validation_data=(X[:9], y[:9]), devices=devices)  # fmt: skip
        params = {k: np.asarray(an.to_numpy(v)) for k, v in {**net.params, **net.state}.items()}
        runs.append((params, history.to_dict()))
        # inference on devices is compiled (fused), on one device op by op: rounding differs
        np.testing.assert_allclose(
            an.to_numpy(net.forward(X, devices=1)), an.to_numpy(net.forward(X)), rtol=1e-14
        )
    for params, history in runs[1:]:
        assert history == runs[0][1]
        for key, value in params.items():
            np.testing.assert_array_equal(value, runs[0][0][key])
    assert backend.is_primary_process()


@JAX_ONLY
def test_bad_devices_raise(backend):
    import jax

    count = len(jax.devices())
    X, y = an.datasets.planar_flower(n=20)
    net = _network(backend)
    for devices, message in [
        (0, f"devices must be between 1 and {count}"),
        (count + 1, f"devices must be between 1 and {count}"),
        (True, "devices must be None, a number of devices, 'all'"),
        ("most", "devices must be None, a number of devices, 'all'"),
        ([], "devices must be None, a number of devices, 'all'"),
        (["cpu:0"], r"devices\[0\] must be one of"),
        ([jax.devices()[0], jax.devices()[0]], "must not repeat a device"),
        (jax.make_mesh((count,), ("batch",)), "a mesh with an axis named 'data'"),
    ]:
        with pytest.raises(an.BackendError, match=message):
            net.fit(X, y, epochs=1, devices=devices)
        with pytest.raises(an.BackendError, match=message):
            net.forward(X, devices=devices)


@JAX_ONLY
def test_default_device_is_this_process_own(backend):
    import jax

    assert an.get_backend("jax").device == jax.local_devices()[0]
    assert set(an.backend.jax_devices(jax)) <= set(jax.local_devices())


@JAX_ONLY
def test_data_parallel_runner_is_compiled_once_per_configuration(backend):
    X, y = an.datasets.planar_flower(n=64)
    net = _network(backend)
    placement = backend.data_parallel(1)
    assert placement == backend.data_parallel([backend.device]) and placement.size == 1
    net.fit(X, y, epochs=2, lr=0.5, batch_size=16, devices=1)
    runner = engine_runner.runner(
        backend, net.model, net.dtype, an.optimizers.SGD(), 16, False, False, placement
    )
    compiled = runner._cache_size()
    for epochs in (3, 7, 1):
        net.fit(X, y, epochs=epochs, lr=0.5, batch_size=16, devices=[backend.device])
    assert runner._cache_size() == compiled


# -- several processes ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import jax

    rank, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=rank,
                               initialization_timeout=40)
    import numpy as np
    import anynet as an
    from anynet.layers import BatchNorm, Dense

    X, y = an.datasets.planar_flower(n=203)
    # no seeds: each process draws other initial weights and shuffle seed; fit takes
    # process 0's
    net = an.Sequential([Dense(8), "tanh", BatchNorm(), Dense(1), "sigmoid"], inputs=2,
                        dtype="float64", backend="jax")
    initial = {k: np.asarray(an.to_numpy(v)).tolist() for k, v in net.params.items()}
    history = net.fit(X, y, epochs=4, lr=0.05, optimizer="adam", batch_size=30,
                      devices="all", checkpoint=os.path.join(folder, f"run{rank}.npz"))
    print(json.dumps({
        "rank": jax.process_index(), "local": [str(d) for d in jax.local_devices()],
        "device": str(net.backend.device), "devices": len(jax.devices()),
        "initial": initial, "loss": history.loss,
        "params": {k: np.asarray(an.to_numpy(v)).tolist() for k, v in net.params.items()},
        "state": {k: np.asarray(an.to_numpy(v)).tolist() for k, v in net.state.items()},
        "score": net.score(X, y, devices="all"),
    }))
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_workers(folder: pathlib.Path, timeout: float) -> list[dict]:
    port = _free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), str(port), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(2),
            cwd=ROOT,
        )
        for rank in range(2)
    ]
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=max(deadline - time.monotonic(), 1)))
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()  # SIGKILL: JAX's preemption notifier catches SIGTERM
        for worker in workers:
            worker.communicate()
        pytest.fail(f"the 2 processes did not finish within {timeout} s (killed)")
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    return [_last_json(out) for out, _ in outputs]


@JAX_ONLY
def test_two_processes_get_the_single_process_result(backend, tmp_path):
    started = time.monotonic()
    reports = _run_workers(tmp_path, timeout=55)
    assert time.monotonic() - started < 60
    assert [r["rank"] for r in reports] == [0, 1]
    for report in reports:
        assert report["devices"] == 4 and len(report["local"]) == 2
        assert report["device"] == report["local"][0]  # the default device is a local one
    assert reports[0]["initial"] != reports[1]["initial"]  # no seed: other draws
    # every process ends with the same parameters and history
    assert reports[0]["params"] == reports[1]["params"]
    assert reports[0]["loss"] == reports[1]["loss"]
    assert reports[0]["score"] == reports[1]["score"]
    # checkpoints are written by process 0 only; they record the shuffle seed it drew
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run0.npz"]
    saved = an.load_checkpoint(tmp_path / "run0.npz", backend=backend)
    for key, value in saved.network.params.items():
        assert an.to_numpy(value).tolist() == reports[0]["params"][key]
    seed = saved.extra["fit"]["seed"]
    # ... and those of one process training from process 0's initial weights and seed
    X, y = an.datasets.planar_flower(n=203)
    net = an.Sequential([Dense(8), "tanh", BatchNorm(), Dense(1), "sigmoid"], inputs=2,
                        dtype="float64", backend=backend)  # fmt: skip
    net.set_params(reports[0]["initial"])
    history = net.fit(X, y, epochs=4, lr=0.05, optimizer="adam", batch_size=30, seed=seed)
    assert _relative(reports[0]["loss"], history.loss) <= 1e-12
    for key, value in net.params.items():
        assert _relative(reports[0]["params"][key], an.to_numpy(value)) <= 1e-12, key
    for key, value in net.state.items():
        assert _relative(reports[0]["state"][key], an.to_numpy(value)) <= 1e-12, key
    assert reports[0]["score"] == net.score(X, y)


def test_checkpoints_are_written_by_the_primary_process_only(tmp_path):
    written = []

    class Secondary:
        def is_primary_process(self):
            return False

    class Primary:
        def is_primary_process(self):
            return True

    checkpointer = callbacks.Checkpointer(
        tmp_path / "run.npz", 5, {}, lambda *args: written.append(args[0])
    )
    history = callbacks.History()
    checkpointer.write({}, history, 0, 5, Secondary())
    assert written == []
    checkpointer.write({}, history, 0, 5, Primary())
    assert written == [tmp_path / "run.npz"]
