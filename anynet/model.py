"""A model: layers plus a head, as pure functions over flat dicts of arrays.

A :class:`Model` is a network's description without numbers: its input width, its
layers and its :class:`~anynet.heads.Head`. It is frozen and hashable, so compiled
steps are cached per model. It names the parameters: the k-th layer that has
parameters or state (counting depth-first through containers) owns the keys
``f"{name}{k}"`` for each of its names, so a dense stack has the tutorial's
``W1, b1, W2, b2, ...``, and ``[Dense(8), LayerNorm(), ...]`` has ``W1, b1, gamma2,
beta2, ...``.

Everything is rows-are-samples: ``x`` is ``(n_samples, n_features)``, except inside
the fit engine, which may run a model whose layers are all layout-free
(:attr:`Model.layout_free`) in the tutorial's ``(n_features, n_samples)`` layout
(``axis=0``). Nothing is
updated in place, so JAX can compile a whole step and every backend runs the same
lines. The public entry points for research loops are in :mod:`anynet.functional`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .heads import Head
from .layers.base import Layer

__all__ = ["Model"]

#: The parameters of a layer that has none: one shared, never-written dict.
_NONE: dict = {}

Array = Any
Params = dict[str, Array]


@dataclass(frozen=True)
class _Slot:
    """How one top-level layer's own keys map to the network-wide keys."""

    params: tuple[tuple[str, str], ...]  # (layer's key, network key)
    state: tuple[tuple[str, str], ...]


def _leaves(layer: Layer, path: str) -> list[tuple[str, Layer]]:
    children = layer.children()
    if not children:
        return [(path, layer)]
    out = []
    for index, child in enumerate(children):
        out.extend(_leaves(child, f"{path}{index}."))
    return out


@dataclass(frozen=True)
class Model:
    """Input width, layers and head: what a network computes, without its numbers.

    Parameters
    ----------
    inputs : int
        Number of input features.
    layers : tuple of Layer
        Applied in order to rows-are-samples input.
    head : Head
        Output activation and loss; the last layer's width is ``head.n_outputs``.
    """

    inputs: int
    layers: tuple[Layer, ...]
    head: Head
    _slots: tuple[_Slot, ...] = field(init=False, repr=False, compare=False, hash=False)
    _decay: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)
    _plan: tuple = field(init=False, repr=False, compare=False, hash=False)
    layout_free: bool = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        slots, decay, number = [], set(), 0
        for layer in self.layers:
            pairs_p: list[tuple[str, str]] = []
            pairs_s: list[tuple[str, str]] = []
            for path, leaf in _leaves(layer, ""):
                if not (leaf.param_names or leaf.state_names):
                    continue
                number += 1
                for name in leaf.param_names:
                    pairs_p.append((path + name, f"{name}{number}"))
                    if name in leaf.decay:
                        decay.add(f"{name}{number}")
                pairs_s.extend((path + name, f"{name}{number}") for name in leaf.state_names)
            slots.append(_Slot(tuple(pairs_p), tuple(pairs_s)))
        object.__setattr__(self, "_slots", tuple(slots))
        object.__setattr__(self, "_decay", frozenset(decay))
        # the per-step loops read this flat plan: no zips, no empty dicts built per step
        pairs = zip(self.layers, slots, strict=True)
        plan = tuple((layer, slot.params, slot.state) for layer, slot in pairs)
        object.__setattr__(self, "_plan", plan)
        free = all(layer.layout_free and not layer.state_names for layer in self.layers)
        object.__setattr__(self, "layout_free", free)

    # -- description ---------------------------------------------------------------
    @property
    def param_keys(self) -> tuple[str, ...]:
        """Network-wide parameter names, in layer order."""
        return tuple(key for slot in self._slots for _, key in slot.params)

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Network-wide layer-state names, in layer order."""
        return tuple(key for slot in self._slots for _, key in slot.state)

    @property
    def decay_keys(self) -> frozenset[str]:
        """Parameters L2 regularisation applies to (weight matrices, not biases)."""
        return self._decay

    @property
    def has_state(self) -> bool:
        return any(slot.state for slot in self._slots)

    @property
    def n_outputs(self) -> int:
        return self.head.n_outputs

    def widths(self) -> list[int]:
        """Output width of each layer, inputs first."""
        widths = [self.inputs]
        for layer in self.layers:
            widths.append(layer.output_width(widths[-1]))
        return widths

    # -- numbers -------------------------------------------------------------------
    def init(self, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Initial parameters and layer state as host NumPy arrays, network-wide keys.

        Each layer draws its parameters, then its state, in layer order from ``rng``.
        """
        params: dict[str, np.ndarray] = {}
        state: dict[str, np.ndarray] = {}
        width = self.inputs
        for layer, slot in zip(self.layers, self._slots, strict=True):
            own, n_out = layer.init(rng, width)
            own_state = layer.init_state(rng, width)
            _check_keys(layer, "init", own, [k for k, _ in slot.params])
            _check_keys(layer, "init_state", own_state, [k for k, _ in slot.state])
            params.update({key: own[local] for local, key in slot.params})
            state.update({key: own_state[local] for local, key in slot.state})
            width = n_out
        if width != self.head.n_outputs:
            raise InputError(
                f"the last layer's width ({width}) must equal the head's outputs "
                f"({self.head.n_outputs})"
            )
        return params, state

    def shapes(self) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[str, tuple[int, ...]]]]:
        """Parameter shapes and state ``(kind, shape)`` (kind ``"f"`` float, ``"i"`` int),
        network-wide keys, without drawing anything."""
        params: dict[str, tuple[int, ...]] = {}
        state: dict[str, tuple[str, tuple[int, ...]]] = {}
        width = self.inputs
        for layer, slot in zip(self.layers, self._slots, strict=True):
            own, own_state = layer.shapes(width)
            _check_keys(layer, "shapes", own, [k for k, _ in slot.params])
            params.update({key: tuple(own[local]) for local, key in slot.params})
            state.update({key: own_state[local] for local, key in slot.state})
            width = layer.output_width(width)
        return params, state

    # -- the math --------------------------------------------------------------------
    # ``axis`` is the feature axis of ``x`` and of the logits: -1 (rows-are-samples) or,
    # for layout-free models only, 0 (the tutorial's columns). Targets stay rows.
    def forward(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool, axis: int = -1
    ) -> tuple[Array, list, Params]:
        """Logits ``(n, n_outputs)``, per-layer caches and the new layer state."""
        caches, new_state, h = [], {}, x
        for layer, param_pairs, state_pairs in self._plan:
            own = {local: params[key] for local, key in param_pairs} if param_pairs else _NONE
            if state_pairs:
                own_state = {local: state[key] for local, key in state_pairs}
                h, cache, updated = layer.forward_state(own, own_state, h, xp=xp, train=train)
                for local, key in state_pairs:
                    new_state[key] = updated[local]
            elif axis == -1:  # user layers need not take ``axis``
                h, cache = layer.forward(own, h, xp=xp, train=train)
            else:
                h, cache = layer.forward(own, h, xp=xp, train=train, axis=axis)
            caches.append(cache)
        return h, caches, new_state

    def backward(
        self, params: Params, caches: list, dz: Array, *, xp: Any, axis: int = -1,
        on_grads: Any = None,
    ) -> Params:  # fmt: skip
        """Gradients (network-wide keys) from ``dz = dL/dlogits``.

        Consumes ``caches`` (each entry is dropped once its layer is done, so activations
        are freed as backprop goes). With ``on_grads``, each layer's gradients are handed
        to ``on_grads(grads)`` as soon as backprop has passed the layer (last layer
        first) instead of being returned: all gradients never coexist.
        """
        grads: Params = {}
        plan = self._plan
        # only layout-free layers see ``axis=0``; user layers need not take it
        layout = _NONE if axis == -1 else {"axis": axis}
        for index in range(len(plan) - 1, -1, -1):
            layer, param_pairs, _ = plan[index]
            if index == 0 and not param_pairs:
                break
            cache, caches[index] = caches[index], None
            own = {local: params[key] for local, key in param_pairs} if param_pairs else _NONE
            if index:
                dz, own_grads = layer.backward(own, cache, dz, xp=xp, **layout)
            else:  # the first layer's input is the data: no dx
                own_grads = layer.backward_params(own, cache, dz, xp=xp, **layout)
            del cache
            if not param_pairs:
                continue
            if on_grads is None:
                for local, key in param_pairs:
                    grads[key] = own_grads[local]
            else:
                on_grads({key: own_grads[local] for local, key in param_pairs})
                del own_grads
        return grads

    def loss_and_delta(self, z: Array, t: Array, *, xp: Any, axis: int = -1) -> tuple[Array, Array]:
        """Mean loss (0-d) and ``dL/dz`` from logits ``z`` (feature axis ``axis``) and
        rows-are-samples targets ``t``."""
        if axis == -1:
            return self.head.loss_and_delta(z, t, xp=xp)
        value, dz = self.head.loss_and_delta(z.T, t, xp=xp)  # the head sees rows: a view
        return value, dz.T

    def loss_and_gradients(
        self, params: Params, state: Params, x: Array, t: Array, *, xp: Any, train: bool = False,
        axis: int = -1,
    ) -> tuple[Array, Params, Params]:  # fmt: skip
        """Mean loss (0-d), gradients and new layer state for inputs ``x`` and targets ``t``."""
        z, caches, new_state = self.forward(params, state, x, xp=xp, train=train, axis=axis)
        value, dz = self.loss_and_delta(z, t, xp=xp, axis=axis)
        return value, self.backward(params, caches, dz, xp=xp, axis=axis), new_state

    def evaluate(
        self, params: Params, state: Params, x: Array, t: Array, *, xp: Any, axis: int = -1
    ) -> tuple[Array, Array]:
        """Mean loss and score (0-d arrays), in evaluation mode."""
        z, _, _ = self.forward(params, state, x, xp=xp, train=False, axis=axis)
        if axis != -1:
            z = z.T
        return self.head.loss_value(z, t, xp=xp), self.head.score(
            self.head.output(z, xp=xp), t, xp=xp
        )

    def outputs(self, params: Params, state: Params, x: Array, *, xp: Any) -> Array:
        """Output activations ``(n, n_outputs)`` in evaluation mode."""
        z, _, _ = self.forward(params, state, x, xp=xp, train=False)
        return self.head.output(z, xp=xp)

    def __repr__(self) -> str:
        inner = ", ".join(layer.describe() for layer in self.layers)
        return f"Model(inputs={self.inputs}, layers=[{inner}], head={self.head.describe()})"


def _check_keys(layer: Layer, method: str, got: dict, expected: list[str]) -> None:
    if sorted(got) != sorted(expected):
        raise InputError(
            f"{type(layer).__name__}.{method} must return the keys {sorted(expected)} "
            f"(its declared names), got {sorted(got)}"
        )
