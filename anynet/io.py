"""Save and load networks: one ``.npz`` file, no pickle, atomic writes.

A checkpoint holds a network's architecture (for ``Network(sizes, activations)``:
sizes, activations, loss, dtype, init, init_scale, seed; for ``Sequential``: inputs,
the layers as ``{"type": registered name, "config": {...}}`` records, the output
activation, loss, dtype, seed), its parameters in the network's dtype, its layer
state, and optionally an optimizer state, a training history and a JSON-able
``extra`` dict. A model saved from any backend loads on any other with
bit-identical parameters, on a machine where the saving backend is not even
installed. This module reads and writes these plain records; it never builds a
network (:func:`anynet.load` does, from :func:`read`'s :class:`Record`).

File format (``format_version`` 2; version 1 files, without layer state, still load)
------------------------------------------------------------------------------------
A zip archive written by :func:`numpy.savez` (members stored uncompressed), read
back with ``np.load(..., allow_pickle=False)``. Its members are ``.npy`` arrays:

``__anynet__``
    UTF-8 JSON metadata as a 1-D ``uint8`` array: ``format`` (``"anynet-checkpoint"``),
    ``format_version``, ``anynet_version``, ``saved_from`` (backend and device, for
    information only), ``network`` (the constructor arguments), ``optimizer_state``
    and ``history`` (lists of ``{"name", "member"}`` or null) and ``extra``.
``params/W1``, ``params/b1``, ...
    The parameters, shaped as in :attr:`anynet.Network.params`, in the network's dtype.
``state/mean2``, ``state/rng3``, ...
    The layer state (:attr:`anynet.Network.state`): floats in the network's dtype,
    random streams as int32.
``optimizer/0``, ``optimizer/1``, ...
    Optimizer state arrays (any boolean, integer or float dtype and shape); their
    names (``"step"``, ``"m.W1"``, ...) are in the metadata.
``history/0``, ...
    One 1-D ``float64`` array per history series (``"loss"``, ...).

Safety
------
Writes are atomic: the file is written to a temporary file in the same folder
(``.<name>.<random>.tmp``), flushed and ``fsync``-ed, renamed over the target with
:func:`os.replace`, and the folder is ``fsync``-ed where the platform allows. A
save that fails or is killed at any point leaves the previous file intact (a
killed process can leave its temporary file behind; it is never read).

Loading never unpickles and never trusts a size it has not checked: every member's
``.npy`` header (dtype, shape) is checked against the metadata before any data is
read, object arrays are refused, and members must be stored uncompressed, so a
file cannot make :func:`load` allocate more memory than its own size on disk.
Every problem with the file raises :class:`~anynet.errors.CheckpointError` naming the
file: a missing file raises its subclass
:class:`~anynet.errors.CheckpointNotFoundError`, which is also a ``FileNotFoundError``;
a path that cannot be opened (a folder, no permission) or read (an I/O error) raises
CheckpointError with the operating system's error as its ``__cause__``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
import os
import pathlib
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from ._version import __version__
from .backend import to_numpy
from .errors import BackendError, CheckpointError, CheckpointNotFoundError, InputError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Record", "read", "save"]

#: Value of the metadata's ``format`` field: what marks a file as an anynet checkpoint.
FORMAT_NAME = "anynet-checkpoint"
#: The format version this anynet writes, and the newest it reads (2 added layer state
#: and models built from layers; version 1 files load unchanged).
FORMAT_VERSION = 2

PathLike = str | os.PathLike

_META = "__anynet__"
_ZIP_MAGIC = b"PK\x03\x04"
_FLOAT_DTYPES = ("float32", "float64")
#: Array kinds allowed in a checkpoint: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"
#: Largest ``.npy`` header read (the default of :func:`numpy.load`).
_MAX_HEADER = 10_000

#: What reading a damaged file can raise, inside zipfile, zlib, numpy and json: each
#: becomes a CheckpointError naming the file. (RecursionError, from deeply nested
#: JSON, is a RuntimeError; json.JSONDecodeError and UnicodeError are ValueErrors.)
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    MemoryError,
    RuntimeError,
    NotImplementedError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
)


@dataclass
class Record:
    """A checkpoint file's contents, checked, as plain values (what :func:`read` returns).

    The network itself is built from it by :func:`anynet.load_checkpoint`.
    """

    path: pathlib.Path
    architecture: dict[str, Any]
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] | None = None
    history: dict[str, list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


# -- saving --------------------------------------------------------------------


def save(
    net: Any,
    path: PathLike,
    *,
    optimizer_state: Mapping[str, Any] | None = None,
    history: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Write ``net`` (and optionally its training state) to ``path``, atomically.

    Parameters
    ----------
    net : Network
        The network to save: its architecture, its parameters (in its dtype) and its
        layer state.
    path : str or os.PathLike
        The file to write, used as given (no suffix is added; ``.npz`` is customary).
        Its folder must exist. An existing file is replaced only once the new one
        is completely written and synced to disk.
    optimizer_state : mapping of str to array_like, optional
        A flat dict such as ``{"step": 0-d int, "m.W1": (4, 2) float, ...}``; arrays of
        any backend, NumPy arrays, scalars or nested lists of booleans, integers or
        floats. Stored with their own dtype and shape.
    history : anynet.History or mapping of str to sequence of float, optional
        The training history: a :class:`~anynet.History` (its ``to_dict()``: ``loss``,
        ``val_loss``, ...) or a dict such as ``{"loss": [0.69, 0.68, ...]}``.
        Stored as ``float64``, NaN and infinities included.
    extra : mapping, optional
        Anything JSON can hold (str keys; dicts, lists, tuples, str, finite numbers,
        bools, None), e.g. ``{"epoch": 12, "notes": "..."}``. Tuples come back as lists.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        An argument cannot be stored; the message names it.
    OSError
        The file cannot be written (missing folder, no permission, disk full); the
        previous file, if any, is left intact and no temporary file remains.

    Examples
    --------
    >>> import anynet as an, anynet.io, tempfile, os
    >>> net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "flower.npz")
    >>> _ = an.save(net, path)
    >>> an.load(path).sizes
    [2, 4, 1]
    """
    if not all(hasattr(net, name) for name in ("architecture", "params", "state", "backend")):
        raise InputError(f"net must be an anynet.Network, got {type(net).__name__}")
    target = _check_path(path)
    members = _encode(net, optimizer_state, history, extra)
    _atomic_write(target, lambda file: np.savez(file, allow_pickle=False, **members))
    return target


def _check_path(path: Any) -> pathlib.Path:
    """``path`` as a :class:`pathlib.Path`, or an InputError naming what arrived."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    try:
        text = os.fspath(path)
    except TypeError as exc:
        raise InputError(f"path must be a str or os.PathLike, got {path!r}") from exc
    if not isinstance(text, str):
        raise InputError(f"path must be a str or os.PathLike of str, got {text!r}")
    if not text or "\x00" in text:
        raise InputError(f"path must be a non-empty file name without NUL characters, got {text!r}")
    return pathlib.Path(text)


def _encode(net: Any, optimizer_state: Any, history: Any, extra: Any) -> dict[str, np.ndarray]:
    """Every member of the file, metadata included, as host NumPy arrays."""
    members: dict[str, np.ndarray] = {}
    for key, value in net.params.items():
        host = np.asarray(to_numpy(value), order="C")
        if host.dtype != np.dtype(net.dtype):
            raise InputError(
                f"net.params[{key!r}] must have the network's dtype {net.dtype}, got {host.dtype}"
            )
        members[f"params/{key}"] = host
    for key, value in net.state.items():
        members[f"state/{key}"] = np.asarray(to_numpy(value), order="C")
    optimizer_entries = _encode_optimizer_state(optimizer_state, members)
    history_entries = _encode_history(history, members)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "anynet_version": _anynet_version(),
        "saved_from": {"backend": net.backend.name, "device": str(net.backend.device)},
        "network": net.architecture(),
        "optimizer_state": optimizer_entries,
        "history": history_entries,
        "extra": _json_value({} if extra is None else extra, "extra", top=True),
    }
    text = json.dumps(metadata, allow_nan=False, sort_keys=True, indent=1)
    members[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return members


def _anynet_version() -> str:
    return __version__


def _json_number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


def _host_array(value: Any, name: str) -> np.ndarray:
    """``value`` (any backend's array, scalar or nested list) as a numeric NumPy array."""
    try:
        host = np.asarray(to_numpy(value), order="C")
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} must be an array of numbers, got {type(value).__name__} ({exc})"
        ) from exc
    if host.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(
            f"{name} must hold booleans, integers or floats, got dtype {host.dtype} "
            f"from {type(value).__name__}"
        )
    return host


def _encode_optimizer_state(
    state: Any, members: dict[str, np.ndarray]
) -> list[dict[str, str]] | None:
    if state is None:
        return None
    if not isinstance(state, Mapping):
        raise InputError(
            f"optimizer_state must be a dict of str to arrays, got {type(state).__name__}"
        )
    entries = []
    for index, (name, value) in enumerate(state.items()):
        if not isinstance(name, str):
            raise InputError(f"optimizer_state keys must be strings, got {name!r}")
        member = f"optimizer/{index}"
        members[member] = _host_array(value, f"optimizer_state[{name!r}]")
        entries.append({"name": name, "member": member})
    return entries


def _history_series(history: Any) -> dict[Any, Any]:
    if isinstance(history, Mapping):
        return dict(history)
    if callable(getattr(history, "to_dict", None)):  # anynet.History
        return _history_series(history.to_dict())
    if dataclasses.is_dataclass(history) and not isinstance(history, type):
        found = {f.name: getattr(history, f.name) for f in dataclasses.fields(history)}
        return {name: value for name, value in found.items() if isinstance(value, (list, tuple))}
    raise InputError(
        f"history must be an anynet.History or a dict of str to lists of floats, "
        f"got {type(history).__name__}"
    )


def _encode_history(history: Any, members: dict[str, np.ndarray]) -> list[dict[str, str]] | None:
    if history is None:
        return None
    entries = []
    for index, (name, values) in enumerate(_history_series(history).items()):
        if not isinstance(name, str):
            raise InputError(f"history keys must be strings, got {name!r}")
        label = f"history[{name!r}]"
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise InputError(f"{label} must be a list of numbers, got {type(values).__name__}")
        host = _host_array(list(values) if not hasattr(values, "shape") else values, label)
        if host.ndim != 1:
            raise InputError(f"{label} must be a flat list of numbers, got shape {host.shape}")
        member = f"history/{index}"
        members[member] = host.astype(np.float64)
        entries.append({"name": name, "member": member})
    return entries


#: Deepest nesting of ``extra`` accepted (JSON parsers recurse once per level).
_MAX_DEPTH = 64
#: Integers in ``extra`` stay below 2**_MAX_BITS (about 3600 digits): Python refuses to
#: convert integers of more than 4300 digits to text by default.
_MAX_BITS = 12_000


def _json_value(value: Any, name: str, *, top: bool = False, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value``, or an InputError naming the offending entry."""
    if top and not isinstance(value, Mapping):
        raise InputError(f"{name} must be a dict, got {type(value).__name__}")
    if depth > _MAX_DEPTH:
        raise InputError(f"{name} must be nested at most {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        value = int(value)
        if value.bit_length() > _MAX_BITS:
            raise InputError(f"{name} must be an integer below 2**{_MAX_BITS} (about 3600 digits)")
        return value
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise InputError(f"{name} must be finite to be stored as JSON, got {value!r}")
        return float(value)
    if isinstance(value, Mapping):
        copy = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{name} keys must be strings (JSON objects), got {key!r}")
            copy[key] = _json_value(item, f"{name}[{key!r}]", depth=depth + 1)
        return copy
    if isinstance(value, (list, tuple)):
        return [
            _json_value(item, f"{name}[{index}]", depth=depth + 1)
            for index, item in enumerate(value)
        ]
    raise InputError(
        f"{name} must hold only JSON values (dict, list, tuple, str, number, bool, None), "
        f"got {type(value).__name__}"
    )


def _atomic_write(path: pathlib.Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a synced temporary file in its folder and ``os.replace``."""
    directory = path.parent
    mode = _new_file_mode(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:  # say which file was being saved, not the temporary's name
        raise type(exc)(
            exc.errno, f"cannot save '{path}' ({exc.strerror})", str(directory)
        ) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _new_file_mode(path: pathlib.Path) -> int:
    """Permissions for the new file: the old file's, else what ``open`` would give.

    (``mkstemp`` creates files readable by their owner only.)
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)  # elsewhere: set and restore, the only portable way to read it
    os.umask(umask)
    return umask


def _fsync_directory(directory: pathlib.Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the data itself is synced
    finally:
        os.close(fd)


# -- loading -------------------------------------------------------------------


def read(path: PathLike, shapes: Callable[[dict[str, Any]], dict[str, Any]]) -> Record:
    """Read and check a checkpoint file: architecture, parameters, state, the rest.

    Parameters
    ----------
    path : str or os.PathLike
    shapes : callable
        ``shapes(architecture) -> {"params": {key: shape}, "state": {key: (dtype, shape)}}``
        for the network the file's architecture record describes; raises InputError
        when the record is invalid (or names something unregistered). Every member's
        header is checked against it before any data is read.

    Raises
    ------
    CheckpointError
        The file cannot be opened or read, is empty, truncated, corrupted (zip CRC
        mismatch), not an ``.npz`` file, not an anynet checkpoint, of a newer format
        version, internally inconsistent, compressed, or holds an object (pickle)
        array. A missing file raises the subclass ``CheckpointNotFoundError``.
    InputError
        ``path`` is not a str or os.PathLike.
    """
    path = _check_path(path)
    with _open(path) as file, _wrapping_read_errors(path):
        metadata, arrays, layout = _read(file, path, shapes)
    return _build(metadata, arrays, layout, path)


def _open(path: pathlib.Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError(f"cannot load checkpoint '{path}': no such file") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise _problem(path, f"the file cannot be opened ({type(exc).__name__}: {reason})") from exc


def _problem(path: pathlib.Path, text: str) -> CheckpointError:
    return CheckpointError(f"cannot load checkpoint '{path}': {text}")


@contextlib.contextmanager
def _wrapping_read_errors(path: pathlib.Path) -> Iterator[None]:
    try:
        yield
    except CheckpointError:
        raise
    except _READ_ERRORS as exc:
        detail = str(exc) or repr(exc)
        raise _problem(
            path, f"the file is damaged or not an .npz archive ({type(exc).__name__}: {detail})"
        ) from exc


def _read(
    file: BinaryIO, path: pathlib.Path, shapes: Callable[[dict[str, Any]], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Metadata and every array member, each checked before its data is read."""
    head = file.read(len(_ZIP_MAGIC))
    if not head:
        raise _problem(path, "the file is empty")
    if head != _ZIP_MAGIC:
        raise _problem(
            path, f"not an anynet checkpoint: not an .npz (zip) file (it starts with {head!r})"
        )
    size_on_disk = os.fstat(file.fileno()).st_size
    file.seek(0)
    with np.load(file, allow_pickle=False, max_header_size=_MAX_HEADER) as npz:
        infos = _member_infos(npz.zip, size_on_disk, path)
        if _META not in infos:
            raise _problem(
                path,
                f"not an anynet checkpoint: it has no {_META!r} member "
                f"(members: {sorted(infos)[:10]})",
            )
        raw = _read_member(npz, infos[_META], _META, path, np.dtype(np.uint8), _FLAT)
        metadata = _parse_metadata(raw, path)
        expected, layout = _expected_members(metadata, path, shapes)
        _check_member_names(set(infos), set(expected), path)
        arrays = {
            name: _read_member(npz, infos[name], name, path, dtype, shape)
            for name, (dtype, shape) in expected.items()
        }
    return metadata, arrays, layout


def _member_infos(
    archive: zipfile.ZipFile, size_on_disk: int, path: pathlib.Path
) -> dict[str, zipfile.ZipInfo]:
    """The archive's ``.npy`` members by name, checked to be stored, unique and on disk."""
    infos: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise _problem(path, f"unexpected member {name!r}: not a .npy array")
        name = name[: -len(".npy")]
        if name in infos:
            raise _problem(path, f"member {name!r} appears twice")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise _problem(
                path,
                f"member {name!r} is compressed (zip method {info.compress_type}); anynet "
                "checkpoints are stored uncompressed, so a file never expands beyond its size",
            )
        total += info.compress_size
        infos[name] = info
    if total > size_on_disk:
        raise _problem(
            path,
            f"the file is truncated: its members declare {total} bytes, "
            f"the file holds {size_on_disk}",
        )
    return infos


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[np.dtype, tuple, int]:
    """A member's ``.npy`` dtype, shape and header length, without reading its data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(
                member, max_header_size=_MAX_HEADER
            )
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(
                member, max_header_size=_MAX_HEADER
            )
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        return dtype, tuple(shape), member.tell()


#: Shape requirements of :func:`_read_member` besides an exact tuple.
_ANY_SHAPE, _FLAT = "any shape", "1-D"
Shape = tuple[int, ...] | str


def _read_member(
    npz: Any,
    info: zipfile.ZipInfo,
    name: str,
    path: pathlib.Path,
    dtype: np.dtype | None,
    shape: Shape,
) -> np.ndarray:
    """Member ``name`` as an array, after checking its header: dtype, shape, size.

    ``dtype`` None accepts any boolean, integer or float dtype; ``shape`` is an exact
    tuple, :data:`_FLAT` (any 1-D shape) or :data:`_ANY_SHAPE`.
    """
    found_dtype, found_shape, header_length = _read_header(npz.zip, info)
    if found_dtype.hasobject:
        raise _problem(
            path,
            f"member {name!r} holds Python objects (dtype {found_dtype}): loading it needs "
            "pickle, which anynet never runs",
        )
    if found_dtype.kind not in _NUMERIC_KINDS or found_dtype.fields is not None:
        raise _problem(path, f"member {name!r} must hold numbers, got dtype {found_dtype}")
    if dtype is not None and found_dtype != dtype:
        raise _problem(path, f"member {name!r} must have dtype {dtype}, got {found_dtype}")
    if shape == _FLAT and len(found_shape) != 1:
        raise _problem(path, f"member {name!r} must be 1-D, got shape {found_shape}")
    if isinstance(shape, tuple) and found_shape != shape:
        raise _problem(path, f"member {name!r} must have shape {shape}, got {found_shape}")
    n_bytes = math.prod(found_shape) * found_dtype.itemsize
    if header_length + n_bytes != info.file_size:
        raise _problem(
            path,
            f"member {name!r} is damaged: shape {found_shape} of {found_dtype} needs "
            f"{header_length + n_bytes} bytes, the member has {info.file_size}",
        )
    array = npz[name]
    if not isinstance(array, np.ndarray):  # pragma: no cover - excluded by the checks above
        raise _problem(path, f"member {name!r} is not a .npy array")
    return array


def _parse_metadata(raw: np.ndarray, path: pathlib.Path) -> dict[str, Any]:
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, too many digits
        raise _problem(path, f"its {_META!r} metadata is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise _problem(
            path, f"not an anynet checkpoint: its metadata has no format {FORMAT_NAME!r}"
        )
    version = metadata.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _problem(path, f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise _problem(
            path,
            f"it has format version {version}, newer than the {FORMAT_VERSION} this anynet "
            "reads: upgrade anynet to load it",
        )
    return metadata


def _architecture_from(
    metadata: dict[str, Any], path: pathlib.Path, shapes: Callable[[dict[str, Any]], Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``network`` record, type-checked, and the shapes of what it holds."""
    spec = metadata.get("network")
    if not isinstance(spec, dict):
        raise _problem(path, f"its metadata must have a 'network' object, got {spec!r}")
    if "layers" not in spec:  # Network(sizes, activations): the tutorial's shortcut
        sizes, activations = spec.get("sizes"), spec.get("activations")
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
        ):
            raise _problem(
                path, f"network.sizes must be a list of >= 2 positive ints, got {sizes!r}"
            )
        if not isinstance(activations, list) or not all(isinstance(a, str) for a in activations):
            raise _problem(
                path, f"network.activations must be a list of names, got {activations!r}"
            )
    checks = {
        "loss": lambda v: isinstance(v, str),
        "dtype": lambda v: v in _FLOAT_DTYPES,
        "seed": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    }
    if "layers" not in spec:
        checks["init"] = lambda v: isinstance(v, str)
        checks["init_scale"] = lambda v: (
            v is None
            or (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and v >= 0
            )
        )
    for key, ok in checks.items():
        if key not in spec or not ok(spec[key]):
            raise _problem(path, f"network.{key} is invalid: {spec.get(key, '(missing)')!r}")
    try:
        layout = shapes(spec)
    except BackendError:
        raise
    except (InputError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _problem(path, f"its metadata describes an invalid network: {exc}") from exc
    return spec, layout


def _entries(metadata: dict[str, Any], key: str, path: pathlib.Path) -> list[dict[str, str]]:
    """The ``optimizer_state`` / ``history`` list of ``{"name", "member"}`` (or [])."""
    entries = metadata.get(key)
    if entries is None:
        return []
    prefix = {"optimizer_state": "optimizer/", "history": "history/"}[key]
    names: set[str] = set()
    ok = isinstance(entries, list)
    for entry in entries if ok else []:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("member"), str)
            and entry["member"].startswith(prefix)
            and entry["name"] not in names
        )
        if not ok:
            break
        names.add(entry["name"])
    if not ok:
        raise _problem(
            path, f"its metadata's {key!r} must be a list of unique {{name, member}} entries"
        )
    return entries


def _expected_members(
    metadata: dict[str, Any], path: pathlib.Path, shapes: Callable[[dict[str, Any]], Any]
) -> tuple[dict[str, tuple[np.dtype | None, Shape]], dict[str, Any]]:
    """Every array member the metadata announces, with its required dtype and shape."""
    spec, layout = _architecture_from(metadata, path, shapes)
    dtype = np.dtype(spec["dtype"])
    expected: dict[str, tuple[np.dtype | None, Shape]] = {
        f"params/{key}": (dtype, shape) for key, shape in layout["params"].items()
    }
    expected.update(
        {f"state/{key}": (np.dtype(kind), shape) for key, (kind, shape) in layout["state"].items()}
    )
    optimizer = _entries(metadata, "optimizer_state", path)
    history = _entries(metadata, "history", path)
    expected.update({entry["member"]: (None, _ANY_SHAPE) for entry in optimizer})
    expected.update({entry["member"]: (np.dtype(np.float64), _FLAT) for entry in history})
    named = len(layout["params"]) + len(layout["state"]) + len(optimizer) + len(history)
    if len(expected) != named:
        raise _problem(path, "its metadata names one member twice")
    if not isinstance(metadata.get("extra", {}), dict):
        raise _problem(path, f"its metadata's 'extra' must be an object, got {metadata['extra']!r}")
    return expected, layout


def _check_member_names(found: set[str], expected: set[str], path: pathlib.Path) -> None:
    missing = sorted(expected - found)
    unexpected = sorted(found - expected - {_META})
    if missing:
        raise _problem(path, f"member(s) {missing[:10]} are missing")
    if unexpected:
        raise _problem(path, f"unexpected member(s) {unexpected[:10]}")


def _build(
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    layout: dict[str, Any],
    path: pathlib.Path,
) -> Record:
    """The checked contents as a :class:`Record`."""
    optimizer = _entries(metadata, "optimizer_state", path)
    history = _entries(metadata, "history", path)
    return Record(
        path=path,
        architecture=metadata["network"],
        params={key: arrays[f"params/{key}"] for key in layout["params"]},
        state={key: arrays[f"state/{key}"] for key in layout["state"]},
        optimizer_state=(
            {e["name"]: arrays[e["member"]] for e in optimizer}
            if metadata.get("optimizer_state") is not None
            else None
        ),
        history=(
            {e["name"]: arrays[e["member"]].tolist() for e in history}
            if metadata.get("history") is not None
            else None
        ),
        extra=metadata.get("extra", {}),
        format_version=metadata["format_version"],
    )
