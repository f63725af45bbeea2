"""The CuPy backend: NVIDIA GPUs, updates in place, DLPack with torch and JAX."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import _DL_CUDA, Backend, _host_view, _memory_owner
from .select import no_device, parse_device_string


class CupyBackend(Backend, name="cupy"):
    """CuPy on one CUDA device."""

    install_hint = "pip install cupy-cuda12x (needs an NVIDIA GPU and CUDA driver)"
    updates_in_place = True
    exchanges_dlpack = True

    @classmethod
    def list_devices(cls) -> list[str]:
        return [f"gpu:{i}" for i in range(cls.library().cuda.runtime.getDeviceCount())]

    @classmethod
    def resolve_device(cls, device: Any) -> Any:
        cupy = cls.library()
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing or broken
            raise BackendError(
                f"backend 'cupy' is installed but no CUDA device answers ({exc}); "
                "use another backend (see anynet.available_backends())"
            ) from exc
        existing = [f"gpu:{i}" for i in range(count)]
        if isinstance(device, cupy.cuda.Device):
            if device.id < count:
                return device
            raise BackendError(no_device("cupy", device, existing))
        parsed: tuple[str, int | None] | None = ("gpu", None) if device is None else None
        if isinstance(device, str):
            parsed = parse_device_string(device)
        if parsed is None or parsed[0] == "cpu":
            raise BackendError(no_device("cupy", device, existing))
        index = 0 if parsed[1] is None else parsed[1]
        if index >= count:
            raise BackendError(no_device("cupy", device, existing))
        return cupy.cuda.Device(index)

    @classmethod
    def is_own_array(cls, array: Any) -> bool:
        return bool(array_api_compat.is_cupy_array(array))

    @classmethod
    def to_host(cls, array: Any) -> np.ndarray:
        view = _host_view(array)
        return array.get() if view is None else view

    def _namespace(self) -> Any:
        return array_api_compat.array_namespace(self.library().empty(0))

    def _from_host(self, host: np.ndarray) -> Any:
        cupy = self.library()
        with self.device:
            return cupy.asarray(host)

    def buffer_of(self, array: Any) -> int:
        return id(_memory_owner(array))

    def dlpack_device(self) -> tuple[int, int] | None:
        return _DL_CUDA, int(self.device.id)

    def device_copy(self, array: Any) -> Any:
        with self.device:
            return array.copy()

    def from_same_library(self, array: Any, copy: bool) -> Any | None:
        if self.owns(array):  # the same device only; another GPU goes through the host
            return self.device_copy(array) if copy else array
        return None

    def synchronize(self, *arrays: Any) -> None:
        self.device.synchronize()
