"""The array-api-strict backend: the standard and nothing more, with a stand-in device.

Its devices are simulated (``CPU_DEVICE`` plus ``device1``...), so its arrays never go
through DLPack: they reach other libraries through the host.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..errors import BackendError
from .base import Backend, device_text


class StrictBackend(Backend, name="array_api_strict"):
    """array-api-strict on one of its (simulated) devices."""

    install_hint = "pip install array-api-strict"
    stand_in_devices = ("device1",)

    @classmethod
    def list_devices(cls) -> list[str]:
        strict = cls.library()
        return [device_text(d) for d in strict.__array_namespace_info__().devices()]

    @classmethod
    def resolve_device(cls, device: Any) -> Any:
        strict = cls.library()
        devices = list(strict.__array_namespace_info__().devices())
        if device is None or (isinstance(device, str) and device.strip().lower() == "cpu"):
            return strict.Device("CPU_DEVICE")
        if isinstance(device, str):
            for candidate in devices:
                if device in (str(candidate), repr(candidate).split("'")[1]):
                    return candidate
        elif device in devices:
            return device
        raise BackendError(
            f"device {device!r} does not exist on backend 'array_api_strict'; "
            f"devices: ['cpu'] + {devices}"
        )

    @classmethod
    def is_own_array(cls, array: Any) -> bool:
        return type(array).__module__.startswith("array_api_strict")

    @classmethod
    def to_host(cls, array: Any) -> np.ndarray:
        strict = cls.library()
        on_cpu = strict.asarray(array, device=strict.Device("CPU_DEVICE"))
        return np.asarray(on_cpu)

    def _namespace(self) -> Any:
        return self.library()

    def _from_host(self, host: np.ndarray) -> Any:
        return self.xp.asarray(host, device=self.device)

    def float_errors_silenced(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
