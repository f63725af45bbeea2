"""Zero-copy exchange: ``to_numpy`` and ``convert`` (what ``Network.to`` moves arrays with).

On the backend under test: which conversions share memory (a CPU torch tensor and its
NumPy view, torch and JAX on one device through DLPack), that every conversion gives the
same bits, and that sharing never lets a later update of one side reach the other.
Conversions to libraries that are not the one under test run where that library is
installed too (torch and JAX in one environment), and skip otherwise.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import anynet as an
from anynet.backend import convert, to_numpy

DTYPES = ("float32", "float64", "int32", "int64", "bool")


def pointer(array) -> int | None:
    """The address of the first element of ``array``'s buffer, where the library says it."""
    kind = an.backend_of(array)
    if kind == "numpy":
        return array.__array_interface__["data"][0]
    if kind == "torch":
        return array.data_ptr()
    if kind == "jax":
        return array.unsafe_buffer_pointer()
    if kind == "cupy":
        return array.data.ptr
    return None


def values(dtype: str, shape=(3, 4), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype.startswith("int"):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    # values that differ in their last bits: an accidental round trip through float32 shows
    return (rng.normal(size=shape) * np.pi).astype(dtype)


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bytes of ``array`` in C order: equality here is equality bit for bit."""
    return np.ascontiguousarray(array).view(np.uint8)


def on(backend: an.Backend, host: np.ndarray):
    """``host`` as an array of ``backend`` (dtype kept); skips where the dtype is unusable."""
    if host.dtype == np.float64 and backend.float64_problem():
        pytest.skip(str(backend.float64_problem()))
    if host.dtype == np.int64 and backend.float64_problem():
        pytest.skip("64-bit integers need JAX's 64-bit mode")
    return backend.asarray(host)


def aligned(backend: an.Backend, host: np.ndarray):
    """``host`` in a buffer the library allocated itself (torch: 64-byte aligned).

    JAX imports a CPU buffer without a copy only when it is 64-byte aligned; NumPy's
    allocations (which ``Backend.asarray`` hands to torch) often are not, and JAX then
    copies (correctly, but not zero-copy).
    """
    array = on(backend, host)
    return backend.xp.asarray(array, copy=True) if backend.name == "torch" else array


def targets(backend: an.Backend) -> list[an.Backend]:
    """Every backend installed here on its default (CPU) device, plus the one under test."""
    found = [backend]
    for name in ("numpy", "torch", "jax", "array_api_strict"):
        if importlib.util.find_spec(name) is not None and name != backend.name:
            found.append(an.get_backend(name))
    return found


def is_cpu(backend: an.Backend) -> bool:
    """Whether ``backend``'s arrays live in host memory (array-api-strict: its CPU device)."""
    if backend.name == "array_api_strict":
        return "CPU" in str(backend.device)
    return backend.dlpack_device() == (1, 0)


#: (source, target) libraries that convert(copy=False) promises to share a buffer between,
#: when both are on one device.
ZERO_COPY = {
    ("numpy", "numpy"), ("numpy", "torch"), ("torch", "numpy"), ("jax", "numpy"),
    ("torch", "torch"), ("jax", "jax"), ("cupy", "cupy"),
    ("torch", "jax"), ("jax", "torch"), ("torch", "cupy"), ("cupy", "torch"),
    ("jax", "cupy"), ("cupy", "jax"),
}  # fmt: skip


def same_device(a: an.Backend, b: an.Backend) -> bool:
    if a.name == b.name:
        return a.device == b.device
    return a.dlpack_device() == b.dlpack_device()


# -- to_numpy ---------------------------------------------------------------------------


def test_to_numpy_shares_host_memory_and_copies_device_memory(backend):
    source = on(backend, values("float64"))
    host = to_numpy(source)
    assert isinstance(host, np.ndarray) and host.dtype == np.float64
    np.testing.assert_array_equal(bits(host), bits(values("float64")))
    shared = pointer(host) == pointer(source)
    if backend.name in ("numpy", "torch", "jax") and is_cpu(backend):
        assert shared, "a CPU array must reach NumPy without a copy"
    else:  # GPU memory, or array-api-strict's simulated devices
        assert not shared


@pytest.mark.backends("torch", reason="torch's CPU tensors and NumPy share buffers")
def test_a_cpu_torch_tensor_and_its_numpy_view_are_one_buffer(backend):
    if not is_cpu(backend):
        pytest.skip("the tensor is on a GPU: to_numpy copies it to the host")
    tensor = on(backend, values("float64"))
    view = to_numpy(tensor)
    assert np.shares_memory(view, tensor.numpy())
    assert view.ctypes.data == tensor.data_ptr()
    tensor.add_(1.0)  # a write by the user into their tensor is seen through the view
    np.testing.assert_array_equal(view, values("float64") + 1.0)
    # and the way back: host data to a CPU tensor without a copy when asked
    host = values("float32")
    back = convert(host, backend, copy=False)
    assert back.data_ptr() == host.ctypes.data
    copied = convert(host, backend)
    assert copied.data_ptr() != host.ctypes.data


@pytest.mark.backends("torch", reason="negative and conjugate views are torch's")
def test_torch_views_that_dlpack_cannot_describe_keep_their_values(backend):
    torch = pytest.importorskip("torch")
    tensor = on(backend, values("float64"))
    negative = torch._neg_view(tensor)  # a view whose sign lives in a flag, not in memory
    expected = -values("float64")
    np.testing.assert_array_equal(to_numpy(negative), expected)
    for target in targets(backend):
        np.testing.assert_array_equal(to_numpy(convert(negative, target)), expected)
    grad = on(backend, values("float32")).requires_grad_(True)  # DLPack refuses these
    for target in targets(backend):
        np.testing.assert_array_equal(to_numpy(convert(grad, target)), values("float32"))


# -- convert: bits, dtypes, devices ----------------------------------------------------------


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 5), (7,)])
def test_conversion_gives_the_same_bits_on_every_target(backend, dtype_name, shape):
    host = values(dtype_name, shape)
    source = on(backend, host)
    for target in targets(backend):
        if dtype_name in ("float64", "int64") and target.float64_problem():
            continue
        for copy in (True, False):
            result = convert(source, target, copy=copy)
            assert an.backend_of(result) == target.name and target.owns(result), target
            back = to_numpy(result)
            assert back.dtype == host.dtype and back.shape == host.shape, (target, copy)
            np.testing.assert_array_equal(bits(back), bits(host), err_msg=f"{target} {copy}")


def test_a_transposed_array_converts_to_its_values(backend):
    host = values("float64", (4, 6))
    source = on(backend, host).T
    for target in targets(backend):
        if target.float64_problem():
            continue
        np.testing.assert_array_equal(to_numpy(convert(source, target)), host.T)


def test_a_copy_never_shares_memory_with_its_source(backend):
    source = aligned(backend, values("float32"))  # a buffer every library could take
    for target in targets(backend):
        result = convert(source, target)
        if pointer(result) is not None:
            assert pointer(result) != pointer(source), target


def test_without_copy_one_device_shares_the_buffer(backend):
    """copy=False: zero-copy between the libraries that allow it, on one device."""
    source = aligned(backend, values("float32"))
    checked = []
    for target in targets(backend):
        result = convert(source, target, copy=False)
        if (backend.name, target.name) in ZERO_COPY and same_device(backend, target):
            assert pointer(result) == pointer(source), target
            checked.append(target.name)
    if backend.name in ("numpy", "torch", "jax", "cupy"):
        assert backend.name in checked  # at least the library itself


@pytest.mark.parametrize("other", ["torch", "jax", "cupy"])
def test_torch_jax_cupy_on_one_device_never_go_through_the_host(backend, other, monkeypatch):
    """Between two DLPack libraries on one device, convert must not call to_numpy."""
    if backend.name not in ("torch", "jax", "cupy") or other == backend.name:
        pytest.skip(f"a conversion between two DLPack libraries, not {backend.name} -> {other}")
    pytest.importorskip(other, reason=f"needs {other} next to {backend.name}")
    try:
        target = an.get_backend(other, backend.device if other == "cupy" else None)
    except an.BackendError as exc:
        pytest.skip(str(exc))
    if target.dlpack_device() != backend.dlpack_device():
        pytest.skip(f"{target.describe()} and {backend.describe()} are different devices")
    source = aligned(backend, values("float32"))

    def forbidden(array):
        raise AssertionError("convert staged the array through the host")

    # the module convert() lives in (the package attribute of that name is the function)
    monkeypatch.setattr(importlib.import_module("anynet.backend.convert"), "to_numpy", forbidden)
    shared = convert(source, target, copy=False)
    copied = convert(source, target)
    monkeypatch.undo()
    assert pointer(shared) == pointer(source)  # one buffer, two libraries
    assert pointer(copied) != pointer(source)  # a copy made on the device
    for result in (shared, copied):
        assert target.owns(result)
        np.testing.assert_array_equal(bits(to_numpy(result)), bits(values("float32")))


def test_convert_takes_a_name_and_checks_copy(backend):
    result = convert(on(backend, values("float32")), "numpy")
    np.testing.assert_array_equal(result, values("float32"))
    with pytest.raises(an.InputError, match=r"copy must be True or False, got 'yes'"):
        convert(values("float32"), backend, copy="yes")
    np.testing.assert_array_equal(to_numpy(convert([[1.5, 2.5]], backend)), [[1.5, 2.5]])


# -- networks -----------------------------------------------------------------------------------


def test_net_to_gives_a_network_that_shares_no_array(backend):
    X, y = an.datasets.planar_flower(n=40)
    dtype = "float32" if backend.float64_problem() else "float64"
    net = an.Sequential([an.layers.Dense(4), an.layers.BatchNorm(), "tanh", an.layers.Dense(1)],
                        inputs=2, loss="binary_crossentropy", seed=0, dtype=dtype,
                        backend=backend)  # fmt: skip
    net.fit(X, y, epochs=3, optimizer="adam", lr=0.01)
    for target in targets(backend):
        if dtype == "float64" and target.float64_problem():
            continue
        moved = net.to(target.name, target.device)
        pairs = [(net.params, moved.params), (net.state, moved.state)]
        pairs.append((net.optimizer_state or {}, moved.optimizer_state or {}))
        for mine, theirs in pairs:
            assert list(mine) == list(theirs)
            for key in mine:
                if an.backend_of(mine[key]) is None:
                    continue
                assert target.owns(theirs[key]), (target, key)
                np.testing.assert_array_equal(
                    bits(to_numpy(theirs[key])), bits(to_numpy(mine[key])), err_msg=key
                )
                if pointer(theirs[key]) is not None:
                    assert pointer(theirs[key]) != pointer(mine[key]), (target, key)
        np.testing.assert_array_equal(to_numpy(moved.predict(X)), to_numpy(net.predict(X)))


def test_training_never_writes_into_an_array_the_user_took(backend):
    """anynet replaces parameter arrays, never writes into them: a zero-copy view stays put."""
    X, y = an.datasets.planar_flower(n=60)
    dtype = "float32" if backend.float64_problem() else "float64"
    net = an.Network([2, 5, 1], seed=0, dtype=dtype, backend=backend)
    taken = {key: to_numpy(value) for key, value in net.params.items()}
    before = {key: np.array(value, copy=True) for key, value in taken.items()}
    if backend.name in ("numpy", "torch", "jax") and is_cpu(backend):
        assert pointer(taken["W1"]) == pointer(net.params["W1"])  # a view, not a copy
    for optimizer in ("sgd", "momentum", "adam"):
        net.fit(X, y, epochs=5, lr=0.1, optimizer=optimizer, batch_size=20)
        net.set_params({k: to_numpy(v) * 0.5 for k, v in net.params.items()})
    for key, value in taken.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert not np.array_equal(to_numpy(net.params["W1"]), before["W1"])  # it did train
