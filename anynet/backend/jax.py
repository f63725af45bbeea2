"""The JAX backend: compiled steps, fixed shapes, meshes and data-parallel placements.

``jit`` really compiles here (:attr:`JaxBackend.compiles`), a training loop is one
``lax.scan`` / ``lax.fori_loop``, and ``fit(devices=...)`` places a batch over a mesh's
``"data"`` axis (:class:`_JaxPlacement`).
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import _DL_CPU, _DL_CUDA, SINGLE_DEVICE, Backend, Placement, _host_view, _subtract
from .select import no_device, parse_device_string


def _jax() -> Any:
    return JaxBackend.library()


class JaxBackend(Backend, name="jax"):
    """JAX on one of this process's devices."""

    install_hint = "pip install 'jax[cpu]' (or 'jax[cuda12]' for NVIDIA GPUs)"
    float64_switch = "JAX_ENABLE_X64"
    compiles = True
    arrays_immutable = True
    exchanges_dlpack = True

    @property
    def trace_errors(self) -> tuple[type[BaseException], ...]:  # type: ignore[override]
        errors = self.library().errors
        return (
            errors.ConcretizationTypeError,
            errors.TracerArrayConversionError,
            errors.TracerIntegerConversionError,
            errors.NonConcreteBooleanIndexError,
        )

    @classmethod
    def list_devices(cls) -> list[str]:
        return _jax_all_devices(cls.library())

    @classmethod
    def resolve_device(cls, device: Any) -> Any:
        # This process's own devices only: under jax.distributed, jax.devices() lists
        # every process's, and an array on another process's device is never computed.
        jax = cls.library()
        if device is None:
            return jax.local_devices()[0]
        if not isinstance(device, str):
            if isinstance(device, jax.Device) and device in jax_devices(jax):
                return device
            raise BackendError(no_device("jax", device, _jax_all_devices(jax)))
        parsed = parse_device_string(device)
        if parsed is None:
            raise BackendError(no_device("jax", device, _jax_all_devices(jax)))
        kind, index = parsed
        try:
            candidates = jax.local_devices(backend=kind)
        except RuntimeError:
            candidates = []
        if index is None:
            index = 0
        if index >= len(candidates):
            raise BackendError(no_device("jax", device, _jax_all_devices(jax)))
        return candidates[index]

    @classmethod
    def is_own_array(cls, array: Any) -> bool:
        return bool(array_api_compat.is_jax_array(array))

    @classmethod
    def is_tracer(cls, value: Any) -> bool:
        # Looks only if JAX is already imported: a tracer cannot exist otherwise.
        jax = sys.modules.get("jax")
        if jax is None:
            return False
        tracer = getattr(getattr(jax, "core", None), "Tracer", None)
        return tracer is not None and isinstance(value, tracer)

    @classmethod
    def to_host(cls, array: Any) -> np.ndarray:
        view = _host_view(array)  # a read-only view of host memory, where it is there
        return np.asarray(array) if view is None else view

    def _namespace(self) -> Any:
        return self.library().numpy

    def _from_host(self, host: np.ndarray) -> Any:
        return self.library().device_put(host, self.device)

    def dlpack_device(self) -> tuple[int, int] | None:
        device = self.device
        if device.platform == "cpu":
            return _DL_CPU, 0
        hardware = getattr(device, "local_hardware_id", None)
        if device.platform not in ("gpu", "cuda") or hardware is None:
            return None
        return _DL_CUDA, int(hardware)

    def device_copy(self, array: Any) -> Any:
        return self.library().numpy.array(array, copy=True)

    def from_same_library(self, array: Any, copy: bool) -> Any | None:
        moved = self.library().device_put(array, self.device)
        return self.device_copy(moved) if copy else moved

    def float64_problem(self) -> str | None:
        jax = self.library()
        if jax.config.read("jax_enable_x64"):
            return None
        return (
            "dtype='float64' on backend 'jax' needs JAX's 64-bit mode, which is off: "
            "set the environment variable JAX_ENABLE_X64=1 before Python starts, or call "
            "jax.config.update('jax_enable_x64', True) before creating arrays; "
            "or use dtype='float32'. anynet never flips this switch for you."
        )

    def jit(self, function: Callable, **options: Any) -> Callable:
        return self.library().jit(function, **options)

    def new_update(self, param: Any, lr: Any, direction: Any) -> Any:
        # JAX arrays cannot be written, and under jit XLA fuses the update: no temporary
        return _subtract(param, lr, direction)

    def scan(self, body: Callable, carry: Any, xs: tuple, length: int) -> tuple[Any, Any]:
        return self.library().lax.scan(body, carry, xs, length=length)

    fixed_shapes = True

    def loop_count(self, count: int) -> Any:
        return self.library().numpy.asarray(count, dtype="int32")

    def loop(self, body: Callable, carry: Any, xs: tuple, count: Any) -> tuple[Any, Any]:
        jax = self.library()
        lax, jnp = jax.lax, jax.numpy
        length = next(x.shape[0] for x in xs if x is not None)
        first = tuple(None if x is None else x[0] for x in xs)
        shapes = jax.eval_shape(lambda c, x: body(c, x)[1], carry, first)
        outputs = tuple(jnp.zeros((length, *s.shape), s.dtype) for s in shapes)

        def step(index: Any, loop_state: tuple) -> tuple:
            carry, outputs = loop_state
            x = tuple(
                None if a is None else lax.dynamic_index_in_dim(a, index, 0, False) for a in xs
            )
            carry, ys = body(carry, x)
            return carry, tuple(o.at[index].set(y) for o, y in zip(outputs, ys, strict=True))

        return lax.fori_loop(0, count, step, (carry, outputs))

    def synchronize(self, *arrays: Any) -> None:
        # JAX dispatches asynchronously: wait on the arrays themselves
        self.library().block_until_ready(arrays)

    def data_parallel(self, devices: Any) -> Placement:
        if devices is None:
            return SINGLE_DEVICE
        return _JaxPlacement(_jax_mesh(self.library(), devices, self.device), self.device)

    def is_primary_process(self) -> bool:
        return self.library().process_index() == 0


def jax_devices(jax: Any) -> list[Any]:
    """This process's JAX devices (all of them outside ``jax.distributed``)."""
    found = []
    for kind in ("cpu", "gpu"):
        try:
            found += jax.local_devices(backend=kind)
        except RuntimeError:
            pass
    return found


def _jax_all_devices(jax: Any) -> list[str]:
    found = []
    for kind in ("cpu", "gpu"):
        try:
            found += [f"{kind}:{i}" for i, _ in enumerate(jax.local_devices(backend=kind))]
        except RuntimeError:
            pass
    return found


#: The mesh axis a batch is split over.
DATA_AXIS = "data"


def _jax_mesh(jax: Any, devices: Any, device: Any) -> Any:
    """``fit(devices=...)`` as a 1-D mesh over axis ``"data"`` (or the user's own mesh).

    ``devices``: a number (the first devices of ``device``'s platform), ``"all"``
    (every device of that platform, in every process), a sequence of JAX devices, or a
    ``jax.sharding.Mesh`` with a ``"data"`` axis. Axes are made Auto: under Explicit
    axes (``jax.make_mesh``'s default) the batch contraction raises ShardingTypeError,
    and the compiler, not the types, is to place the gradient all-reduce.
    """
    sharding = jax.sharding
    auto = sharding.AxisType.Auto
    if isinstance(devices, sharding.Mesh):
        if DATA_AXIS not in devices.axis_names:
            raise BackendError(
                f"devices must be a mesh with an axis named {DATA_AXIS!r} (a batch is split "
                f"over it), got a mesh with axes {list(devices.axis_names)}"
            )
        axes = (auto,) * len(devices.axis_names)
        if tuple(devices.axis_types) == axes:
            return devices
        return sharding.Mesh(devices.devices, devices.axis_names, axis_types=axes)
    everything = jax.devices(device.platform)
    names = f"the {len(everything)} {device.platform} devices here"
    if isinstance(devices, str) and devices.strip().lower() == "all":
        chosen = list(everything)
    elif isinstance(devices, numbers.Integral) and not isinstance(devices, (bool, np.bool_)):
        if not 1 <= int(devices) <= len(everything):
            raise BackendError(
                f"devices must be between 1 and {len(everything)} ({names}), got {devices}"
            )
        chosen = list(everything[: int(devices)])
    elif isinstance(devices, (list, tuple)) and devices:
        chosen = list(devices)
        for index, item in enumerate(chosen):
            if not isinstance(item, jax.Device) or item not in everything:
                raise BackendError(
                    f"devices[{index}] must be one of {names} ({everything}), got {item!r}"
                )
        if len(set(chosen)) != len(chosen):
            raise BackendError(f"devices must not repeat a device, got {chosen}")
    else:
        raise BackendError(
            "devices must be None, a number of devices, 'all', a list of JAX devices or a "
            f"jax.sharding.Mesh with a {DATA_AXIS!r} axis, got {devices!r}"
        )
    return sharding.Mesh(np.array(chosen, dtype=object), (DATA_AXIS,), axis_types=(auto,))


class _JaxPlacement(Placement):
    """Data parallel over a mesh's ``"data"`` axis: arrays replicated, batches split.

    Parameters, layer state, optimizer state and the data sit whole on every device;
    inside the compiled runner each batch is constrained to be split by rows, so every
    device computes the gradients of its rows and XLA sums them with one all-reduce.
    (A dataset split by rows and gathered with ``take`` instead compiles to an
    all-reduce of the whole dataset every epoch: 2-4 times slower, measured.)
    """

    def __init__(self, mesh: Any, device: Any) -> None:
        jax = _jax()
        named, spec = jax.sharding.NamedSharding, jax.sharding.PartitionSpec
        self.mesh, self.device = mesh, device
        self.size = int(mesh.shape[DATA_AXIS])
        self._replicated = named(mesh, spec())
        self._rows = named(mesh, spec(DATA_AXIS))
        self._batches = named(mesh, spec(None, DATA_AXIS))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _JaxPlacement)
            and self.mesh == other.mesh
            and self.device == other.device
        )

    def __hash__(self) -> int:
        return hash((self.mesh, self.device))

    def __repr__(self) -> str:
        return f"Placement(mesh={dict(self.mesh.shape)}, devices={list(self.mesh.devices.flat)})"

    def _put(self, array: Any, sharding: Any) -> Any:
        jax = _jax()
        if sharding.is_fully_addressable:
            return jax.device_put(array, sharding)
        # other processes' devices: each process supplies its own devices' parts
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    def replicate(self, tree: Any) -> Any:
        return _jax().tree.map(lambda a: self._put(a, self._replicated), tree)

    def broadcast(self, tree: Any) -> Any:
        jax = _jax()
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            tree = multihost_utils.broadcast_one_to_all(tree)  # host copies, process 0's
        return self.replicate(tree)

    def agree(self, value: int) -> int:
        jax = _jax()
        if jax.process_count() == 1:
            return value
        from jax.experimental import multihost_utils

        return int(multihost_utils.broadcast_one_to_all(np.asarray(value, dtype=np.uint32)))

    def shard_rows(self, array: Any) -> Any:
        return self._put(array, self._rows)

    def local(self, tree: Any) -> Any:
        jax = _jax()

        def one(array: Any) -> Any:
            if array.is_fully_replicated:  # this process's copy, on our device if it has one
                shards = array.addressable_shards
                array = next((s.data for s in shards if s.device == self.device), shards[0].data)
            return jax.device_put(array, self.device)  # no copy where it already is

        return jax.tree.map(one, tree)

    def _constrain(self, tree: Any, sharding: Any) -> Any:
        return _jax().lax.with_sharding_constraint(tree, sharding)

    def constrain_batches(self, array: Any) -> Any:
        return self._constrain(array, self._batches)

    def constrain_rows(self, array: Any) -> Any:
        return self._constrain(array, self._rows)

    def constrain_replicated(self, tree: Any) -> Any:
        return self._constrain(tree, self._replicated)
