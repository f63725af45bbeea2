"""Checkpoints: round trips on every backend, atomic writes, and damaged files refused.

Every damaged, foreign or hostile file must end in :class:`anynet.errors.CheckpointError`
naming the file, never in another exception, a silent success with other numbers, or
code execution. A missing file raises ``CheckpointNotFoundError``, which is both a
CheckpointError and a ``FileNotFoundError``.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import anynet as an
from anynet import Checkpoint, load, load_checkpoint, save
from anynet.errors import CheckpointError, CheckpointNotFoundError
from anynet.io import FORMAT_VERSION

ROOT = pathlib.Path(__file__).resolve().parents[1]
X4 = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])

ARCHITECTURES = {
    "flower": ([2, 4, 1], ["tanh", "sigmoid"], None),
    "softmax": ([2, 5, 3, 3], ["relu", "leaky_relu", "softmax"], None),
    "regressor": ([2, 3, 2], ["sigmoid", "identity"], "mse"),
}


def _bits(array) -> bytes:
    """The exact bytes of an array of any backend (``-0.0`` differs from ``0.0`` here)."""
    host = an.to_numpy(array)
    return host.dtype.str.encode() + repr(host.shape).encode() + host.tobytes()


def assert_same_params(a: an.Network, b: an.Network) -> None:
    assert sorted(a.params) == sorted(b.params)
    for key in a.params:
        left, right = an.to_numpy(a.params[key]), an.to_numpy(b.params[key])
        np.testing.assert_array_equal(left, right, err_msg=key)
        assert left.dtype == right.dtype, key
        assert _bits(left) == _bits(right), f"{key}: not bit-identical"


def make(backend, arch: str = "flower", dtype: str = "float64", seed: int = 3) -> an.Network:
    sizes, activations, loss = ARCHITECTURES[arch]
    return an.Network(sizes, activations, loss, seed=seed, dtype=dtype, backend=backend)


def tricky_params(net: an.Network) -> dict[str, np.ndarray]:
    """Random parameters plus values a careless conversion breaks: -0.0, subnormals, extremes."""
    finfo = np.finfo(net.dtype)
    rng = np.random.default_rng(7)
    special = np.array([-0.0, finfo.smallest_subnormal, -finfo.tiny, finfo.max / 4, 1 / 3])
    params = {}
    for key, value in net.params.items():
        host = rng.standard_normal(value.shape).astype(net.dtype)
        flat = host.reshape(-1)
        n = min(flat.size, special.size)
        flat[:n] = special[:n].astype(net.dtype)
        params[key] = host
    return params


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_round_trip_through_numpy_and_back(backend, tmp_path, arch, dtype):
    net = make(backend, arch, dtype)
    X = np.random.default_rng(0).normal(size=(6, net.sizes[0]))
    path = save(net, tmp_path / "a.npz")
    assert path == tmp_path / "a.npz" and os.listdir(tmp_path) == ["a.npz"]

    on_numpy = load(path, backend="numpy")
    assert on_numpy.backend.name == "numpy"
    assert_same_params(net, on_numpy)
    save(on_numpy, tmp_path / "b.npz")
    back = load(tmp_path / "b.npz", backend=backend)
    assert back.backend is net.backend
    assert_same_params(net, back)
    for attribute in ("sizes", "activations", "loss_name", "dtype", "init", "init_scale", "seed"):
        assert getattr(back, attribute) == getattr(net, attribute), attribute
    np.testing.assert_array_equal(an.to_numpy(back.forward(X)), an.to_numpy(net.forward(X)))
    np.testing.assert_array_equal(an.to_numpy(back.predict(X)), an.to_numpy(net.predict(X)))
    if net.is_classifier:
        np.testing.assert_array_equal(
            an.to_numpy(back.predict_proba(X)), an.to_numpy(net.predict_proba(X))
        )


def test_special_values_survive_bit_for_bit(backend, tmp_path, dtype):
    net = make(backend, "softmax", dtype).set_params(tricky_params(make("numpy", "softmax", dtype)))
    save(net, tmp_path / "t.npz")
    for target in ("numpy", backend):
        assert_same_params(net, load(tmp_path / "t.npz", backend=target))


def test_trained_network_with_optimizer_state_history_and_extra(backend, tmp_path):
    X, y = an.datasets.planar_flower(n=40)
    net = make(backend, "flower", "float32")
    history = net.fit(X, y, epochs=30, lr=1.2)
    state = {
        "step": backend.xp.asarray(30, device=backend.device),  # 0-d, of the backend
        "m.W1": backend.asarray(np.full((4, 2), 0.5), "float32"),
        "host": np.arange(3, dtype=np.int16),
        "flag": np.bool_(True),
        "list": [[1.5, 2.5]],
    }
    extra = {"epoch": 30, "lr": 1.2, "notes": "ok", "tags": ("a", "b"), "nested": {"x": None}}
    save(net, tmp_path / "c.npz", optimizer_state=state, history=history, extra=extra)

    ck = load_checkpoint(tmp_path / "c.npz", backend=backend)
    assert isinstance(ck, Checkpoint) and ck.format_version == FORMAT_VERSION
    assert_same_params(net, ck.network)
    assert ck.history == history.to_dict() and ck.history["loss"] == history.loss
    assert ck.extra == {**extra, "tags": ["a", "b"]}
    assert list(ck.optimizer_state) == list(state)
    for name, value in state.items():
        got = ck.optimizer_state[name]
        assert isinstance(got, np.ndarray), name
        np.testing.assert_array_equal(got, an.to_numpy(value), err_msg=name)
    assert ck.optimizer_state["step"].shape == () and ck.optimizer_state["host"].dtype == np.int16
    assert ck.optimizer_state["flag"].dtype == np.bool_
    # the trained network goes on training identically
    again = ck.network.fit(X, y, epochs=5, lr=1.2)
    np.testing.assert_array_equal(again.loss, net.fit(X, y, epochs=5, lr=1.2).loss)


def test_history_as_a_dict_and_nothing_optional(tmp_path):
    net = make("numpy")
    save(net, tmp_path / "h.npz", history={"loss": [1.0, float("nan"), 0.5], "acc": []})
    ck = load_checkpoint(tmp_path / "h.npz")
    assert ck.history["acc"] == [] and ck.history["loss"][0] == 1.0
    assert np.isnan(ck.history["loss"][1])
    save(net, tmp_path / "n.npz")
    ck = load_checkpoint(tmp_path / "n.npz")
    assert ck.optimizer_state is None and ck.history is None and ck.extra == {}


@pytest.mark.skip_backends("numpy", reason="saving from numpy: covered by every other session")
def test_loads_where_the_saving_backend_is_not_installed(backend, tmp_path):
    """A fresh interpreter in which every backend library but NumPy fails to import."""
    net = make(backend, "softmax", "float32").set_params(
        tricky_params(make("numpy", "softmax", "float32"))
    )
    save(net, tmp_path / "m.npz")
    script = textwrap.dedent(
        """
        import sys
        for name in ("torch", "jax", "jaxlib", "array_api_strict", "cupy"):
            sys.modules[name] = None  # import fails, as on a machine without it
        import numpy as np
        from anynet import load
        net = load(sys.argv[1], backend="numpy")
        np.savez(sys.argv[2], **net.params)
        assert not [m for m in ("torch", "jax", "array_api_strict") if sys.modules[m]]
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "params.npz"
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m.npz"), str(out)],
        check=True,
        env=env,
        timeout=60,
    )
    with np.load(out) as loaded:
        for key, value in net.params.items():
            assert _bits(loaded[key]) == _bits(value), key


def test_load_uses_the_default_backend(backend, tmp_path):
    save(make("numpy"), tmp_path / "d.npz")
    with an.use_backend(backend):
        assert load(tmp_path / "d.npz").backend is backend
    assert load(tmp_path / "d.npz", backend=backend.name).backend.name == backend.name


def test_unknown_backend_is_a_backend_error(tmp_path):
    save(make("numpy"), tmp_path / "e.npz")
    with pytest.raises(an.BackendError, match="backend must be one of"):
        load(tmp_path / "e.npz", backend="tensorflow")
    with pytest.raises(an.BackendError):  # before the file is even opened
        load(tmp_path / "missing.npz", backend="tensorflow")
    with pytest.raises(an.BackendError, match="does not exist"):
        load(tmp_path / "e.npz", backend="numpy", device="gpu:3")


def test_missing_file_is_both_checkpoint_error_and_file_not_found(tmp_path):
    missing = tmp_path / "nothing.npz"
    for kind in (FileNotFoundError, OSError, CheckpointError, an.AnynetError, ValueError):
        with pytest.raises(kind, match="no such file"):
            load(missing)
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(str(missing))
    assert str(missing) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_unopenable_paths_are_checkpoint_errors(tmp_path):
    error = assert_refused(tmp_path, "cannot be opened (IsADirectoryError")
    assert isinstance(error.__cause__, IsADirectoryError)
    (tmp_path / "file").write_bytes(b"x")
    assert_refused(tmp_path / "file" / "below.npz", "cannot be opened (NotADirectoryError")


def test_file_is_plain_npz_without_pickle(tmp_path):
    """Any NumPy can read the file with allow_pickle=False; the metadata is JSON."""
    net = make("numpy")
    save(net, tmp_path / "f.npz", extra={"who": "me"})
    with zipfile.ZipFile(tmp_path / "f.npz") as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    with np.load(tmp_path / "f.npz", allow_pickle=False) as npz:
        metadata = json.loads(npz["__anynet__"].tobytes())
        assert sorted(npz.files) == [
            "__anynet__",
            "params/W1",
            "params/W2",
            "params/b1",
            "params/b2",
        ]
        np.testing.assert_array_equal(npz["params/W1"], net.params["W1"])
    assert metadata["format"] == "anynet-checkpoint"
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["network"] == {
        "sizes": [2, 4, 1],
        "activations": ["tanh", "sigmoid"],
        "loss": "binary_crossentropy",
        "dtype": "float64",
        "init": "xavier",
        "init_scale": None,
        "seed": 3,
    }
    assert metadata["extra"] == {"who": "me"}


# -- bad arguments to save -----------------------------------------------------


def _deep(levels: int) -> dict:
    node: dict = {}
    for _ in range(levels):
        node = {"a": [node]}
    return node


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"net": "model"}, "net must be an anynet.Network, got str"),
        ({"path": None}, "path must be a str or os.PathLike, got NoneType"),
        ({"path": 3}, "path must be a str or os.PathLike, got int"),
        ({"path": ""}, "path must be a non-empty file name"),
        ({"path": "a\x00b"}, "without NUL characters"),
        ({"optimizer_state": [1, 2]}, "optimizer_state must be a dict of str to arrays, got list"),
        ({"optimizer_state": {1: np.zeros(2)}}, "optimizer_state keys must be strings, got 1"),
        ({"optimizer_state": {"m": "abc"}}, "optimizer_state['m'] must hold booleans"),
        ({"optimizer_state": {"m": [[1], [2, 3]]}}, "optimizer_state['m'] must be an array"),
        ({"optimizer_state": {"m": np.array([1j])}}, "got dtype complex128"),
        ({"history": 3.5}, "history must be an anynet.History or a dict"),
        ({"history": {"loss": "abc"}}, "history['loss'] must be a list of numbers, got str"),
        ({"history": {"loss": [[1.0], [2.0]]}}, "history['loss'] must be a flat list"),
        ({"history": {"loss": [None]}}, "history['loss'] must hold booleans, integers or floats"),
        ({"extra": [1]}, "extra must be a dict, got list"),
        ({"extra": {"a": {1, 2}}}, "extra['a'] must hold only JSON values"),
        ({"extra": {"a": [float("nan")]}}, "extra['a'][0] must be finite"),
        ({"extra": {1: 2}}, "extra keys must be strings"),
        ({"extra": {"a": np.zeros(2)}}, "extra['a'] must hold only JSON values"),
        ({"extra": {"a": 10**5000}}, "extra['a'] must be an integer below 2**12000"),
        ({"extra": _deep(100)}, "must be nested at most 64 levels deep"),
    ],
)
def test_bad_save_arguments_are_input_errors(tmp_path, kwargs, fragment):
    arguments = {"net": make("numpy"), "path": tmp_path / "g.npz", **kwargs}
    net, path = arguments.pop("net"), arguments.pop("path")
    with pytest.raises(an.InputError) as info:
        save(net, path, **arguments)
    assert fragment in str(info.value)
    assert os.listdir(tmp_path) == []


def test_numpy_scalars_in_extra_are_stored_as_json_numbers(tmp_path):
    save(make("numpy"), tmp_path / "s.npz", extra={"n": np.int64(4), "x": np.float32(0.5)})
    assert load_checkpoint(tmp_path / "s.npz").extra == {"n": 4, "x": 0.5}


# -- atomic writes -------------------------------------------------------------


def test_save_replaces_atomically_and_keeps_permissions(tmp_path):
    path = tmp_path / "p.npz"
    save(make("numpy", seed=1), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    os.chmod(path, 0o600)
    save(make("numpy", seed=2), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert_same_params(load(path), make("numpy", seed=2))
    assert os.listdir(tmp_path) == ["p.npz"]


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / "q.npz"
    old = make("numpy", seed=1)
    save(old, path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(type(failure)):
        save(make("numpy", seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["q.npz"]
    assert_same_params(load(path), old)


def test_save_into_a_missing_folder_or_over_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot save '.*such.npz'") as info:
        save(make("numpy"), tmp_path / "no" / "such.npz")
    assert info.value.filename == str(tmp_path / "no")
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        save(make("numpy"), tmp_path / "dir")
    assert sorted(os.listdir(tmp_path)) == ["dir"]


KILL_SCRIPT = """
import sys
import anynet as an
from anynet import save
net = an.Network([1000, 4000, 1000], seed=1, dtype="float64", backend="numpy")
print("ready", flush=True)
while True:
    save(net, sys.argv[1])
"""


def _temporaries(folder: pathlib.Path, name: str) -> list[pathlib.Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.suffix == ".tmp"]


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0005)


def _writing(folder: pathlib.Path, name: str) -> bool:
    for temporary in _temporaries(folder, name):
        try:
            if temporary.stat().st_size > 1 << 20:  # well into writing 64 MB
                return True
        except FileNotFoundError:  # renamed in between
            pass
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
@pytest.mark.parametrize("completed_saves", [0, 1], ids=["first-save", "later-save"])
def test_save_killed_mid_write_leaves_a_loadable_checkpoint(tmp_path, completed_saves):
    """SIGKILL a process saving a 64 MB network in a loop while it writes the file."""
    path = tmp_path / "model.npz"
    old = make("numpy", seed=0)
    save(old, path)
    old_inode = os.stat(path).st_ino
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, env=env
    ) as process:
        try:
            assert process.stdout.readline().strip() == b"ready"
            if completed_saves:
                _wait_for(lambda: os.stat(path).st_ino != old_inode, "a completed save")
                for temporary in _temporaries(tmp_path, path.name):  # the next write only
                    _wait_for(lambda t=temporary: not t.exists(), "the previous write to end")
            _wait_for(lambda: _writing(tmp_path, path.name), "the save to start writing")
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    stale = _temporaries(tmp_path, path.name)
    assert stale, "the process was not killed mid-write"  # its partial file stays behind
    ck = load_checkpoint(path)  # ... and is never read
    if ck.network.sizes == old.sizes:
        assert completed_saves == 0, "a completed save was lost"
        assert_same_params(ck.network, old)
    else:
        assert ck.network.sizes == [1000, 4000, 1000] and ck.network.dtype == "float64"
        expected = an.Network([1000, 4000, 1000], seed=1, dtype="float64", backend="numpy")
        assert_same_params(ck.network, expected)
    save(old, path)  # a leftover temporary does not disturb the next save
    assert_same_params(load(path), old)


# -- damaged, foreign and hostile files ----------------------------------------


@pytest.fixture
def saved(tmp_path) -> tuple[pathlib.Path, an.Network, bytes]:
    """A small checkpoint with every optional part, its network and its bytes."""
    net = make("numpy", "softmax", "float64")
    path = save(
        net,
        tmp_path / "good.npz",
        optimizer_state={"step": np.array(3), "m.W1": np.ones((5, 2))},
        history={"loss": [0.5, 0.25]},
        extra={"a": 1},
    )
    return path, net, path.read_bytes()


def assert_refused(path: pathlib.Path, *fragments: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, an.AnynetError) and isinstance(info.value, ValueError)
    return info.value


def rewrite(
    source: pathlib.Path,
    target: pathlib.Path,
    *,
    metadata=None,
    members=None,
    drop=(),
    compressed=False,
    allow_pickle=False,
) -> pathlib.Path:
    """Copy a checkpoint, editing its metadata (a function) and replacing members."""
    with np.load(source) as npz:
        contents = {name: npz[name] for name in npz.files if name not in drop}
    if metadata is not None:
        meta = json.loads(contents["__anynet__"].tobytes())
        metadata(meta)
        contents["__anynet__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    contents.update(members or {})
    writer = np.savez_compressed if compressed else np.savez
    with open(target, "wb") as file:
        writer(file, allow_pickle=allow_pickle, **contents)
    return target


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 10, 30, 100, 0.25, 0.5, 0.9, -22, -1])
def test_truncated_files_are_refused(saved, tmp_path, cut):
    _, _, data = saved
    keep = int(len(data) * cut) if isinstance(cut, float) else cut % len(data) if cut else 0
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:keep])
    assert_refused(bad, "empty" if keep == 0 else "")


def test_every_truncation_is_refused(saved, tmp_path):
    _, _, data = saved
    bad = tmp_path / "cut.npz"
    for keep in range(0, len(data), 13):
        bad.write_bytes(data[:keep])
        assert_refused(bad)


def test_byte_flips_are_refused_or_harmless(saved, tmp_path):
    """A flipped byte is refused, except in zip header fields that readers ignore
    (timestamps, the local copies of sizes): then the content loads unchanged."""
    _, net, data = saved
    parameters = data.find(an.to_numpy(net.params["W1"]).tobytes())
    assert parameters > 0
    rng = np.random.default_rng(0)
    positions = [*rng.integers(0, len(data), 150), *range(parameters, parameters + 40, 3)]
    bad = tmp_path / "flip.npz"
    refused = 0
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(flipped))
        try:
            ck = load_checkpoint(bad)
        except CheckpointError as error:
            assert str(bad) in str(error)
            refused += 1
            continue
        assert not parameters <= position < parameters + 40, "a flipped weight was loaded"
        assert_same_params(ck.network, net)
        assert ck.extra == {"a": 1} and ck.history == {"loss": [0.5, 0.25]}
    assert refused > len(positions) // 2


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "the file is empty"),
        (b"hello, I am a text file\n", "not an .npz (zip) file"),
        (
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (10**12,)}",
            "not an .npz",
        ),
        (b"PK\x03\x04" + bytes(100), "damaged or not an .npz archive"),
        (bytes(range(256)) * 8, "not an .npz"),
    ],
    ids=["empty", "text", "npy-header", "zip-magic-then-zeros", "binary"],
)
def test_foreign_bytes_are_refused(tmp_path, content, fragment):
    bad = tmp_path / "foreign.npz"
    bad.write_bytes(content)
    assert_refused(bad, fragment)


def test_other_npz_and_zip_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    assert_refused(tmp_path / "plain.npz", "not an anynet checkpoint", "'__anynet__'")
    with zipfile.ZipFile(tmp_path / "text.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert_refused(tmp_path / "text.zip", "unexpected member 'readme.txt'")
    np.savez(tmp_path / "json.npz", __anynet__=np.frombuffer(b'{"format": "x"}', np.uint8))
    assert_refused(tmp_path / "json.npz", "not an anynet checkpoint")
    np.savez(tmp_path / "bad.npz", __anynet__=np.frombuffer(b"\xff{", np.uint8))
    assert_refused(tmp_path / "bad.npz", "not valid UTF-8 JSON")
    deep = b"[" * 100_000 + b"]" * 100_000
    np.savez(tmp_path / "deep.npz", __anynet__=np.frombuffer(deep, np.uint8))
    assert_refused(tmp_path / "deep.npz", "not valid UTF-8 JSON")
    digits = b'{"format": "anynet-checkpoint", "format_version": 1' + b"0" * 5000 + b"}"
    np.savez(tmp_path / "digits.npz", __anynet__=np.frombuffer(digits, np.uint8))
    assert_refused(tmp_path / "digits.npz", "not valid UTF-8 JSON")
    np.savez(tmp_path / "f.npz", __anynet__=np.zeros(3))
    assert_refused(tmp_path / "f.npz", "'__anynet__' must have dtype uint8, got float64")


@pytest.mark.parametrize(
    "version, fragment",
    [
        (FORMAT_VERSION + 1, f"newer than the {FORMAT_VERSION} this anynet reads: upgrade anynet"),
        (0, "format_version must be a positive integer, got 0"),
        ("1", "format_version must be a positive integer, got '1'"),
        (None, "format_version must be a positive integer, got None"),
        (True, "got True"),
    ],
)
def test_unknown_format_versions_are_refused(saved, tmp_path, version, fragment):
    def edit(meta):
        meta["format_version"] = version

    assert_refused(rewrite(saved[0], tmp_path / "v.npz", metadata=edit), fragment)


@pytest.mark.parametrize(
    "members, drop, fragment",
    [
        ({"params/W1": np.zeros((2, 5))}, (), "'params/W1' must have shape (5, 2), got (2, 5)"),
        ({"params/b1": np.zeros((5, 1))}, (), "'params/b1' must have shape (5,), got (5, 1)"),
        ({"params/W1": np.zeros((5, 2), np.float32)}, (), "must have dtype float64, got float32"),
        ({"params/W1": np.zeros((5, 2), np.int64)}, (), "must have dtype float64, got int64"),
        ({"params/W1": np.full((5, 2), np.nan)}, (), "params['W1'] must be finite"),
        ({"params/W1": np.zeros((5, 2), complex)}, (), "must hold numbers, got dtype complex128"),
        ({"params/W1": np.array([["ab"] * 2] * 5)}, (), "must hold numbers, got dtype <U2"),
        ({"history/0": np.zeros((2, 2))}, (), "'history/0' must be 1-D, got shape (2, 2)"),
        ({"history/0": np.zeros(2, np.float32)}, (), "'history/0' must have dtype float64"),
        ({"params/W9": np.zeros(1)}, (), "unexpected member(s) ['params/W9']"),
        ({}, ("params/b2",), "member(s) ['params/b2'] are missing"),
        ({}, ("optimizer/1",), "member(s) ['optimizer/1'] are missing"),
    ],
)
def test_inconsistent_members_are_refused(saved, tmp_path, members, drop, fragment):
    assert_refused(rewrite(saved[0], tmp_path / "m.npz", members=members, drop=drop), fragment)


def _set(path: str, value):
    def edit(meta):
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value

    return edit


def _both(first, second):
    def edit(meta):
        first(meta)
        second(meta)

    return edit


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (
            _both(
                _set("network.sizes", [2, 5, 3]), _set("network.activations", ["relu", "softmax"])
            ),
            "unexpected member(s) ['params/W3', 'params/b3']",
        ),
        (
            _both(
                _set("network.sizes", [2, 5, 3, 3, 3]),
                _set("network.activations", ["relu", "relu", "leaky_relu", "softmax"]),
            ),
            "member(s) ['params/W4', 'params/b4'] are",
        ),
        (
            _set("network.sizes", [2, 10**9, 10**9, 3]),
            "'params/W1' must have shape (1000000000, 2)",
        ),
        (_set("network.sizes", "2,5,3,3"), "network.sizes must be a list"),
        (_set("network.sizes", [2, 5.0, 3, 3]), "network.sizes must be a list"),
        (_set("network.sizes", [2, True, 3, 3]), "network.sizes must be a list"),
        (_set("network.activations", ["relu", "leaky_relu", "swish"]), "activations[2] must be"),
        (_set("network.activations", ["relu", "softmax"]), "invalid network: activations must"),
        (_set("network.activations", 3), "network.activations must be a list of names"),
        (_set("network.loss", "hinge"), "invalid network: loss must be one of"),
        (_set("network.loss", KeyError), "network.loss is invalid: '(missing)'"),
        (_set("network.dtype", "float16"), "network.dtype is invalid: 'float16'"),
        (_set("network.init", ["normal"]), "network.init is invalid"),
        (_set("network.init", "glorot"), "invalid network: init must be one of"),
        (_set("network.init_scale", -1), "network.init_scale is invalid: -1"),
        (_set("network.init_scale", 1e300), None),  # loads: the scale is only recorded
        (_set("network.init_scale", "big"), "network.init_scale is invalid"),
        (_set("network.seed", -4), "seed must be a non-negative integer"),
        (_set("network.seed", 1.5), "network.seed is invalid: 1.5"),
        (_set("network", None), "must have a 'network' object"),
        (_set("optimizer_state", {"step": 1}), "'optimizer_state' must be a list of unique"),
        (_set("optimizer_state", [{"name": "a", "member": "params/W1"}]), "must be a list of"),
        (
            _set("optimizer_state", [{"name": "a", "member": "optimizer/0"}] * 2),
            "must be a list of unique",
        ),
        (_set("history", [{"name": "loss", "member": "optimizer/0"}]), "'history' must be a"),
        (_set("extra", [1]), "'extra' must be an object, got [1]"),
        (_set("format", "anynet-checkpoint-v0"), "not an anynet checkpoint"),
    ],
)
def test_inconsistent_metadata_is_refused(saved, tmp_path, edit, fragment):
    path = rewrite(saved[0], tmp_path / "meta.npz", metadata=edit)
    if fragment is None:
        assert_same_params(load(path), saved[1])
    else:
        assert_refused(path, fragment)


def test_compressed_members_are_refused(saved, tmp_path):
    assert_refused(rewrite(saved[0], tmp_path / "z.npz", compressed=True), "is compressed")


def test_a_huge_declared_shape_is_refused_without_allocating(saved, tmp_path):
    """A 100-byte member whose header claims 8 TB: refused before any allocation."""
    bad = tmp_path / "huge.npz"
    with np.load(saved[0]) as npz:
        members = {name: npz[name] for name in npz.files}
    with zipfile.ZipFile(bad, "w") as archive:
        for name, value in members.items():
            with archive.open(name + ".npy", "w") as member:
                if name == "history/0":
                    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
                    np.lib.format.write_array_header_1_0(member, header)
                    member.write(bytes(100))
                else:
                    np.lib.format.write_array(member, value)
    assert_refused(bad, "'history/0' is damaged: shape (1000000000000,) of float64 needs")


class _MakesMarker:
    """Unpickling this object runs ``os.mkdir(path)``: the marker of executed code."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _evil_array(marker: pathlib.Path) -> np.ndarray:
    array = np.empty(1, dtype=object)
    array[0] = _MakesMarker(marker)
    return array


def test_the_pickle_payload_is_live(tmp_path):
    """Control: the crafted member does execute code when pickle is allowed."""
    marker = tmp_path / "control-marker"
    np.savez(tmp_path / "evil.npz", x=_evil_array(marker), allow_pickle=True)
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as npz:
        npz["x"]
    assert marker.exists()


@pytest.mark.parametrize("member", ["params/W1", "__anynet__", "optimizer/0", "history/0"])
def test_pickle_bearing_members_are_refused_without_running_them(saved, tmp_path, member):
    marker = tmp_path / "marker"
    bad = rewrite(
        saved[0],
        tmp_path / "evil.npz",
        members={member: _evil_array(marker)},
        allow_pickle=True,
    )
    assert_refused(bad, "pickle" if member != "__anynet__" else "")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle-file", "npy-file"])
def test_pickle_and_npy_files_are_refused_without_running_them(tmp_path, kind):
    import pickle

    marker = tmp_path / "marker"
    bad = tmp_path / "evil.npz"
    if kind == "pickle-file":
        bad.write_bytes(pickle.dumps(_MakesMarker(marker)))
    else:
        with open(bad, "wb") as file:
            np.save(file, _evil_array(marker), allow_pickle=True)
    assert_refused(bad, "not an .npz (zip) file")
    assert not marker.exists()
