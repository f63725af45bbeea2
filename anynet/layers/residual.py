"""Residual blocks: ``y = x + f(x)`` for a chain ``f`` of layers (nestable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .base import (
    Array,
    HostParams,
    Layer,
    Params,
    ParamShapes,
    StateShapes,
    as_layer,
    layer_from_record,
    layer_to_record,
)

__all__ = ["Residual"]


def _sub(values: dict[str, Any], index: int) -> dict[str, Any]:
    prefix = f"{index}."
    return {key[len(prefix) :]: v for key, v in values.items() if key.startswith(prefix)}


@dataclass(frozen=True, init=False)
class Residual(Layer):
    """``y = x + f(x)``, ``f`` the layers given, applied in order; ``f`` keeps the width.

    Its parameters and state are its children's, under ``"<index>.<name>"``
    (the model numbers them network-wide like any other layer's).

    Examples
    --------
    >>> from anynet.layers import Dense, LayerNorm, Residual
    >>> block = Residual(LayerNorm(), Dense(64), "relu", Dense(64))
    """

    layers: tuple[Layer, ...]

    def __init__(self, *layers: Layer | str) -> None:
        if not layers:
            raise InputError("Residual needs at least one layer, got none")
        resolved = tuple(as_layer(item, f"Residual layers[{i}]") for i, item in enumerate(layers))
        object.__setattr__(self, "layers", resolved)

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{i}.{n}" for i, child in enumerate(self.layers) for n in child.param_names)

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{i}.{n}" for i, child in enumerate(self.layers) for n in child.state_names)

    def decayed(self, n_in: int) -> tuple[str, ...]:
        names: list[str] = []
        width = n_in
        for index, child in enumerate(self.layers):
            names.extend(f"{index}.{name}" for name in child.decayed(width))
            width = child.output_width(width)
        return tuple(names)

    def children(self) -> tuple[Layer, ...]:
        return self.layers

    def init(self, rng: np.random.Generator, n_in: int) -> tuple[HostParams, int]:
        params, width = {}, n_in
        for index, child in enumerate(self.layers):
            own, width = child.init(rng, width)
            params.update({f"{index}.{k}": v for k, v in own.items()})
        if width != n_in:
            raise InputError(
                f"Residual layers must keep the width ({n_in}) so that x + f(x) is defined, "
                f"got f(x) of width {width}"
            )
        return params, n_in

    def init_state(self, rng: np.random.Generator, n_in: int) -> HostParams:
        state, width = {}, n_in
        for index, child in enumerate(self.layers):
            state.update({f"{index}.{k}": v for k, v in child.init_state(rng, width).items()})
            width = child.output_width(width)
        return state

    def shapes(self, n_in: int) -> tuple[ParamShapes, StateShapes]:
        params, state, width = {}, {}, n_in
        for index, child in enumerate(self.layers):
            own, own_state = child.shapes(width)
            params.update({f"{index}.{k}": v for k, v in own.items()})
            state.update({f"{index}.{k}": v for k, v in own_state.items()})
            width = child.output_width(width)
        return params, state

    def forward(self, params: Params, x: Array, *, xp: Any, train: bool) -> tuple[Array, Any]:
        y, cache, _ = self.forward_state(params, {}, x, xp=xp, train=train)
        return y, cache

    def forward_state(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool
    ) -> tuple[Array, Any, Params]:
        h, caches, new_state = x, [], {}
        for index, child in enumerate(self.layers):
            h, cache, child_state = child.forward_state(
                _sub(params, index), _sub(state, index), h, xp=xp, train=train
            )
            caches.append(cache)
            new_state.update({f"{index}.{k}": v for k, v in child_state.items()})
        return x + h, caches, new_state

    def backward(self, params: Params, cache: Any, dy: Array, *, xp: Any) -> tuple[Array, Params]:
        grads, dh = {}, dy
        for index in reversed(range(len(self.layers))):
            dh, child_grads = self.layers[index].backward(
                _sub(params, index), cache[index], dh, xp=xp
            )
            grads.update({f"{index}.{k}": g for k, g in child_grads.items()})
        return dy + dh, grads

    def reference(self, params: Params, x: Array, *, xp: Any, train: bool) -> Array:
        h = x
        for index, child in enumerate(self.layers):
            h = child.reference(_sub(params, index), h, xp=xp, train=train)
        return x + h

    def config(self) -> dict[str, Any]:
        return {"layers": [layer_to_record(child) for child in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Residual:
        return cls(*[layer_from_record(record) for record in config.get("layers", [])])

    def describe(self) -> str:
        return "Residual(" + ", ".join(child.describe() for child in self.layers) + ")"
