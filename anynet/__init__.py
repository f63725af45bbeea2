"""anynet: one neural-network math, every array backend.

The network math (forward pass, hand-derived backprop, losses, optimizers) is
written once against the Python array API standard and runs unchanged on
NumPy, array-api-strict, JAX, PyTorch and CuPy.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import (
    activations,
    functional,
    heads,
    io,
    layers,
    losses,
    optimizers,
    random,
)
from ._version import __version__
from .backend import (
    BACKEND_NAMES,
    Backend,
    available_backends,
    backend_of,
    get_backend,
    set_backend,
    to_numpy,
    use_backend,
)
from .callbacks import Callback, CSVLogger, EarlyStopping, History
from .errors import (
    AnynetError,
    BackendError,
    CheckpointError,
    CheckpointNotFoundError,
    DivergenceError,
    InputError,
    NumericalError,
)
from .io import save
from .model import Model
from .network import Checkpoint, Network, Sequential, load, load_checkpoint
from .onnx import export_onnx
from .registry import (
    register_activation,
    register_initializer,
    register_layer,
    register_loss,
    register_optimizer,
)

__all__ = [
    "BACKEND_NAMES",
    "AnynetError",
    "Backend",
    "BackendError",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DivergenceError",
    "EarlyStopping",
    "History",
    "InputError",
    "Model",
    "Network",
    "NumericalError",
    "Sequential",
    "__version__",
    "activations",
    "available_backends",
    "backend_of",
    "datasets",
    "export_onnx",
    "functional",
    "get_backend",
    "heads",
    "io",
    "layers",
    "load",
    "load_checkpoint",
    "losses",
    "optimizers",
    "plot",
    "random",
    "register_activation",
    "register_initializer",
    "register_layer",
    "register_loss",
    "register_optimizer",
    "save",
    "set_backend",
    "testing",
    "to_numpy",
    "use_backend",
]

#: Submodules imported on first use (``an.testing``, ``an.datasets``, ``an.plot``): what
#: most programs never touch stays out of ``import anynet``.
_LAZY = ("datasets", "plot", "testing")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'anynet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
