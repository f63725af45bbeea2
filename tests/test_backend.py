"""Backend selection, devices, conversion, and proof that the backend under test really ran."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

import anynet as an
from anynet import backend as backend_module
from anynet.testing import assert_on_backend


@pytest.fixture(autouse=True)
def clean_selection(monkeypatch):
    monkeypatch.delenv("ANYNET_BACKEND", raising=False)
    monkeypatch.delenv("ANYNET_DEVICE", raising=False)
    an.set_backend(None)
    yield
    an.set_backend(None)


def test_backend_under_test_loaded_and_computes(backend):
    assert backend.name in an.available_backends()
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    X, y = an.datasets.planar_flower(n=20)
    for array in [
        *net.params.values(),
        net.forward(X),
        net.predict(X),
        *net.gradients(X, y).values(),
    ]:
        assert_on_backend(array, backend)
    assert an.backend_of(net.params["W1"]) == backend.name


def test_default_is_numpy():
    assert an.get_backend().name == "numpy"
    assert an.Network([2, 1]).backend.name == "numpy"


def test_selection_order(backend, monkeypatch):
    device = None if backend.name == "numpy" else backend.device
    monkeypatch.setenv("ANYNET_BACKEND", backend.name)
    if backend is not an.get_backend(backend.name):  # not the default device (device1, gpu)
        monkeypatch.setenv("ANYNET_DEVICE", str(backend.device))
    assert an.get_backend() is backend
    an.set_backend("numpy")
    assert an.get_backend().name == "numpy"  # set_backend beats the environment
    with an.use_backend(backend.name, device) as chosen:
        assert chosen is backend
        assert an.get_backend() is backend  # the context beats set_backend
        assert an.Network([2, 1]).backend is backend
        assert an.get_backend("numpy").name == "numpy"  # an explicit argument beats all
    assert an.get_backend().name == "numpy"
    an.set_backend(None)
    assert an.get_backend() is backend


def test_environment_device_is_used(monkeypatch):
    monkeypatch.setenv("ANYNET_BACKEND", "numpy")
    monkeypatch.setenv("ANYNET_DEVICE", "cpu")
    assert an.get_backend().device == "cpu"
    monkeypatch.setenv("ANYNET_DEVICE", "gpu:3")
    with pytest.raises(an.BackendError, match="devices: \\['cpu'\\]"):
        an.get_backend()


def test_use_backend_is_private_to_each_thread(backend):
    inside = threading.Event()
    checked = threading.Event()
    seen = {}

    def worker():
        with an.use_backend(backend.name, backend.device):
            inside.set()
            checked.wait(5)
            seen["worker"] = an.get_backend()

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    seen["main"] = an.get_backend()
    checked.set()
    thread.join(5)
    assert seen["main"].name == "numpy"
    assert seen["worker"] is backend


def test_unknown_backend_name_lists_the_valid_ones():
    with pytest.raises(an.BackendError, match="backend must be one of .*'torch'.*got 'tensorflow'"):
        an.get_backend("tensorflow")
    with pytest.raises(an.BackendError, match="backend must be one of"):
        an.Network([2, 1], backend="tensorflow")


def test_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("ANYNET_BACKEND", "mxnet")
    with pytest.raises(an.BackendError, match="ANYNET_BACKEND must be one of"):
        an.get_backend()


@pytest.mark.parametrize("name", ["jax", "torch", "cupy", "array_api_strict"])
def test_missing_backend_says_how_to_install(monkeypatch, name):
    real_import = importlib.import_module

    def refuse(module, *args, **kwargs):
        if module == name:
            raise ImportError(f"No module named {name!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    monkeypatch.setattr(backend_module.select, "_cache", {})
    with pytest.raises(an.BackendError, match=f"backend '{name}' is not installed.*pip install"):
        an.get_backend(name)
    with pytest.raises(an.BackendError, match="not installed"):
        an.Network([2, 1], backend=name)
    assert name not in an.available_backends()


def test_missing_device_lists_the_devices(backend):
    with pytest.raises(an.BackendError, match="does not exist on backend .*devices"):
        an.get_backend(backend.name, "gpu:7")
    with pytest.raises(an.BackendError, match="does not exist"):
        an.Network([2, 1], backend=backend.name, device="tpu")


def test_numpy_has_only_the_cpu():
    assert an.get_backend("numpy", "cpu").device == "cpu"
    with pytest.raises(an.BackendError, match="device 'gpu' does not exist on backend 'numpy'"):
        an.get_backend("numpy", "gpu")


def test_to_numpy_copies_any_backend_array_to_the_host(backend):
    values = np.arange(6.0).reshape(2, 3)
    array = backend.asarray(values, "float64")
    assert_on_backend(array, backend)
    host = an.to_numpy(array)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, values)
    np.testing.assert_array_equal(an.to_numpy([[1, 2]]), np.array([[1, 2]]))


def test_importing_anynet_loads_no_backend_library():
    code = (
        "import sys, anynet; "
        "print([m for m in ('jax', 'torch', 'cupy', 'array_api_strict') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.needs("jax")
def test_jax_float64_without_x64_explains_how_to_enable_it():
    code = (
        "import anynet\n"
        "try:\n"
        "    anynet.Network([2, 1], dtype='float64', backend='jax')\n"
        "except anynet.BackendError as e:\n"
        "    print('ERROR', e)\n"
        "import jax\n"
        "print('x64', jax.config.read('jax_enable_x64'))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_ENABLE_X64"] = "0"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "ERROR dtype='float64' on backend 'jax' needs JAX's 64-bit mode" in result.stdout
    assert "JAX_ENABLE_X64=1" in result.stdout
    assert "x64 False" in result.stdout  # anynet did not flip it


def test_chunk_writes_new_then_in_place_and_blocks_large_parameters(backend):
    """The engine's writes for one chunk: ``p - lr * d`` exactly; the caller's array never
    written; where the backend updates in place, the second update writes into the array
    the first returned.
    A parameter above one update block (2**18 elements) goes block by block."""
    from anynet import backend as backend_module
    from anynet.engine.runner import _chunk_writes

    rng = np.random.default_rng(0)
    for shape in [(3,), (700, 600)]:  # one block; several blocks of rows
        assert (math.prod(shape) > backend_module.UPDATE_BLOCK) == (len(shape) == 2)
        p_host, d_host = rng.normal(size=shape), rng.normal(size=shape)
        p = backend.asarray(p_host, "float64", copy=True)
        d = backend.asarray(d_host, "float64")
        lr = backend.asarray(np.asarray(0.3), "float64")
        update = _chunk_writes(backend).write
        first = update(p, lr, d)
        np.testing.assert_array_equal(an.to_numpy(p), p_host)  # the caller's: untouched
        np.testing.assert_array_equal(an.to_numpy(first), p_host - 0.3 * d_host)
        second = update(first, lr, d)
        np.testing.assert_array_equal(an.to_numpy(second), (p_host - 0.3 * d_host) - 0.3 * d_host)
        assert (second is first) == backend.updates_in_place


def test_new_update_is_a_new_array_on_every_backend(backend):
    """Backend.new_update: ``p - lr * d`` as a new array, ``p`` untouched, in one block or
    several (2**18 elements a block), eagerly (bit for bit) and inside ``backend.jit``."""
    rng = np.random.default_rng(1)
    for shape in [(3,), (700, 600)]:
        p_host, d_host = rng.normal(size=shape), rng.normal(size=shape)
        p = backend.asarray(p_host, "float64", copy=True)
        d = backend.asarray(d_host, "float64")
        lr = backend.asarray(np.asarray(0.3), "float64")
        new = backend.new_update(p, lr, d)
        assert new is not p
        np.testing.assert_array_equal(an.to_numpy(new), p_host - 0.3 * d_host)
        np.testing.assert_array_equal(an.to_numpy(p), p_host)
        compiled = backend.jit(backend.new_update)(p, lr, d)  # XLA may fuse a multiply-add
        np.testing.assert_allclose(
            an.to_numpy(compiled), p_host - 0.3 * d_host, rtol=1e-14, atol=1e-15
        )
    assert backend.compiles == (backend.name == "jax")  # only JAX's jit really compiles


def test_buffer_of_tells_arrays_that_may_share_memory(backend):
    """Backend.buffer_of: one number per buffer: stable, different for a fresh array, and
    (libraries with views) the same for a view and its base."""
    host = np.arange(12.0).reshape(3, 4)
    a = backend.asarray(host, "float64", copy=True)
    fresh = backend.asarray(host, "float64", copy=True)
    assert backend.buffer_of(a) == backend.buffer_of(a)
    assert backend.buffer_of(fresh) != backend.buffer_of(a)
    if backend.name in ("numpy", "torch", "cupy"):
        view = backend.xp.reshape(a, (4, 3))
        assert view is not a
        assert backend.buffer_of(view) == backend.buffer_of(a)
        assert backend.buffer_of(view[1:, ...]) == backend.buffer_of(a)
