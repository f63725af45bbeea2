"""The layer protocol: small frozen objects with pure methods, written once against the array API.

A layer sees rows-are-samples data, ``x`` of shape ``(n_samples, n_features)``, like
every public entry point of anynet, and never updates anything in place::

    params, n_out = layer.init(rng, n_in)                  # host (NumPy) arrays
    y, cache = layer.forward(params, x, xp=xp, train=train)
    dx, grads = layer.backward(params, cache, dy, xp=xp)   # grads: params' keys

``params`` holds the layer's own parameters under its own short names (``"W"``,
``"b"``); the model gives them their network-wide names (``"W1"``, ``"b1"``).
A layer with state that is not trained by gradients (batch norm's running
statistics, dropout's random stream) declares ``state_names`` and overrides
:meth:`Layer.init_state` and :meth:`Layer.forward_state`, which returns the new
state instead of changing the old one.

Layers are frozen dataclasses, hence hashable: a compiled training step is cached
per model. Subclass :class:`Layer`, decorate with ``@dataclass(frozen=True)`` and
register with :func:`anynet.register_layer`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ..registry import layers as layer_registry

__all__ = ["Array", "HostParams", "Layer", "ParamShapes", "Params", "StateShapes"]

Array = Any
Params = dict[str, Array]
#: Parameters or state as host NumPy arrays (what ``init`` and ``init_state`` return).
HostParams = dict[str, np.ndarray]
#: Shapes of a layer's parameters, and ``(kind, shape)`` of its state (kind ``"f"`` float,
#: ``"i"`` integer): what :meth:`Layer.shapes` returns.
Shape = tuple[int, ...]
ParamShapes = dict[str, Shape]
StateShapes = dict[str, tuple[str, Shape]]


@dataclasses.dataclass(frozen=True)
class Layer:
    """Base class of every layer.

    Attributes
    ----------
    layout_free : bool
        Whether the math methods take ``axis=0`` for ``(n_features, n_samples)`` data.
    param_names : tuple of str
        The keys of the dict :meth:`init` returns (trained by gradients).
    state_names : tuple of str
        The keys of the dict :meth:`init_state` returns (not trained by gradients).
    decay : tuple of str or None
        Parameters that L2 regularisation (``Optimizer(l2=...)``) applies to. ``None``
        (the default) means the layer's weight matrices: every parameter with two or more
        dimensions decays, vectors (biases, scales) do not, as for ``Dense``. Declare a
        tuple (``()`` for none) to choose otherwise; :meth:`decayed` gives the answer.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    decay: ClassVar[tuple[str, ...] | None] = None
    #: True when :meth:`forward`, :meth:`backward` and :meth:`backward_params` also take
    #: ``axis=0``: data in the tutorial's ``(n_features, n_samples)`` layout (the default
    #: ``axis=-1`` is rows-are-samples). The fit engine runs a model whose layers are all
    #: layout-free in that layout where it is measured faster (small full-batch
    #: networks); users never see it. Elementwise layers are layout-free as they are.
    layout_free: ClassVar[bool] = False

    # -- the protocol ------------------------------------------------------------
    def init(self, rng: np.random.Generator, n_in: int) -> tuple[dict[str, np.ndarray], int]:
        """Initial parameters (float64 NumPy arrays, keys :attr:`param_names`) and ``n_out``.

        Drawn from ``rng`` on the host, so a seed gives the same bits on every backend.
        """
        return {}, n_in

    def init_state(self, rng: np.random.Generator, n_in: int) -> dict[str, np.ndarray]:
        """Initial state (NumPy arrays, keys :attr:`state_names`); empty for most layers."""
        return {}

    def forward(self, params: Params, x: Array, *, xp: Any, train: bool) -> tuple[Array, Any]:
        """``y (n_samples, n_out)`` from ``x (n_samples, n_in)``, and what backward needs."""
        raise NotImplementedError

    def backward(self, params: Params, cache: Any, dy: Array, *, xp: Any) -> tuple[Array, Params]:
        """``dx = dL/dx`` (shape of ``x``) and ``dL/dparams`` (keys of ``params``) from ``dy``."""
        raise NotImplementedError

    def forward_state(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool
    ) -> tuple[Array, Any, Params]:
        """:meth:`forward` for layers with state: also returns the new state.

        The default, for stateless layers, calls :meth:`forward` and returns ``state``.
        """
        y, cache = self.forward(params, x, xp=xp, train=train)
        return y, cache, state

    def backward_params(
        self, params: Params, cache: Any, dy: Array, *, xp: Any, axis: int = -1
    ) -> Params:
        """Only the parameter gradients (for the first layer, whose input is the data).

        The default calls :meth:`backward`; override it when ``dx`` costs much.
        ``axis`` only reaches layout-free layers (see :attr:`layout_free`).
        """
        if axis == -1:
            return self.backward(params, cache, dy, xp=xp)[1]
        backward: Any = self.backward  # a layout-free layer's, which takes ``axis``
        return backward(params, cache, dy, xp=xp, axis=axis)[1]

    def reference(self, params: Params, x: Array, *, xp: Any, train: bool) -> Array:
        """An independent forward pass for the autodiff oracles of :mod:`anynet.testing`.

        Written with whatever the oracle's library offers (``xp`` is ``jax.numpy`` or
        ``torch``); the default reuses :meth:`forward`, which still checks
        :meth:`backward` against autodiff.
        """
        return self.forward(params, x, xp=xp, train=train)[0]

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        """Shapes of the parameters and ``(dtype, shape)`` of the state, without drawing.

        What a checkpoint's arrays are checked against before they are read. The
        default calls :meth:`init` and :meth:`init_state`; override it for layers whose
        parameters can be large.
        """
        rng = np.random.default_rng(0)
        params, _ = self.init(rng, n_in)
        state = self.init_state(rng, n_in)
        return (
            {k: tuple(np.shape(v)) for k, v in params.items()},
            {k: (str(np.asarray(v).dtype.kind), tuple(np.shape(v))) for k, v in state.items()},
        )

    def output_width(self, n_in: int) -> int:
        """``n_out`` for input width ``n_in``; override when the layer changes the width.

        The default asks :meth:`init` (a throwaway draw) for layers with parameters.
        """
        if not self.param_names:
            return n_in
        return self.init(np.random.default_rng(0), n_in)[1]

    def decayed(self, n_in: int) -> tuple[str, ...]:
        """The parameters L2 regularisation applies to, for input width ``n_in``.

        :attr:`decay` when the layer declares it; otherwise (``decay = None``) the
        parameters of two or more dimensions (weight matrices), from :meth:`shapes`.
        """
        if self.decay is not None:
            return tuple(self.decay)
        if not self.param_names:
            return ()
        shapes, _ = self.shapes(n_in)
        return tuple(name for name in self.param_names if len(shapes.get(name, ())) >= 2)

    # -- structure ---------------------------------------------------------------
    def children(self) -> tuple[Layer, ...]:
        """Layers nested inside this one (for containers such as Residual)."""
        return ()

    def config(self) -> dict[str, Any]:
        """The constructor arguments, as JSON values (what a checkpoint stores)."""
        return {
            field.name: _json(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.init
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Rebuild a layer from :meth:`config`."""
        return cls(**config)

    def describe(self) -> str:
        """A short text for tables and reprs, e.g. ``Dense(64)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _json(value: Any) -> Any:
    if isinstance(value, Layer):
        return layer_to_record(value)
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if hasattr(value, "config") and callable(value.config):
        return {"type": type(value).__name__, "config": value.config()}
    return value


def layer_to_record(layer: Layer) -> dict[str, Any]:
    """``{"type": registered name, "config": {...}}``; InputError if unregistered."""
    return {"type": layer_registry.name_of(layer), "config": layer.config()}


def layer_from_record(record: Any) -> Layer:
    """The layer a :func:`layer_to_record` dict describes (a registered name)."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        raise InputError(
            f"a layer record must be {{'type': name, 'config': {{...}}}}, got {record!r}"
        )
    name = record["type"]
    if name not in layer_registry:
        raise InputError(
            f"layer {name!r} is not registered here: import the code that defines it and call "
            f"anynet.register_layer({name!r}, TheClass) before loading "
            "(anynet.register_activation for an Activation subclass)"
        )
    cls = layer_registry.get(name)
    config = record.get("config") or {}
    if not isinstance(config, dict):
        raise InputError(f"layer {name!r} has an invalid config {config!r}")
    return cls.from_config(config)


def as_layer(item: Any, argument: str = "layers") -> Layer:
    """A layer from a Layer object or a registered name (``"relu"`` -> ``ReLU()``)."""
    if isinstance(item, Layer):
        return item
    if isinstance(item, str) and item in layer_registry:
        return layer_registry.get(item)()
    if isinstance(item, str):
        raise InputError(
            f"{argument} must be an anynet.layers.Layer or a registered name "
            f"{layer_registry.names()}, got {item!r}; register your own with "
            "anynet.register_layer(name, cls)"
        )
    raise InputError(
        f"{argument} must be an anynet.layers.Layer or a registered name, "
        f"got {type(item).__name__} {item!r}"
    )
