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
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .heads import Head
from .layers.base import Layer

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["LayerSlot", "Model"]

#: The parameters of a layer that has none: one shared, never-written dict.
_NONE: dict = {}

Array = Any
Params = dict[str, Array]


@dataclass(frozen=True)
class LayerSlot:
    """One top-level layer's place in a :class:`Model`: its index and the keys it owns.

    A layer sees its parameters and state under its own (local) names, ``W`` and
    ``b`` for a :class:`~anynet.layers.Dense`, ``"0.W"`` for the first child of a
    container; the network stores them under network-wide keys (``W1``, ``b1``).
    A slot holds that mapping, and translates dicts both ways. Arrays keep their
    shapes: ``W`` is ``(n_out, n_in)`` under either name.

    Parameters
    ----------
    index : int
        Position of the layer in :attr:`Model.layers`, from 0.
    layer : Layer
        The layer itself.
    params : tuple of (str, str)
        ``(local key, network key)`` for each parameter, in declared order (depth-first
        through a container's children).
    state : tuple of (str, str)
        The same for the layer's state (running statistics and the like).
    """

    index: int
    layer: Layer
    params: tuple[tuple[str, str], ...]
    state: tuple[tuple[str, str], ...]

    @property
    def param_keys(self) -> tuple[str, ...]:
        """Network-wide keys of the layer's parameters."""
        return tuple(key for _, key in self.params)

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Network-wide keys of the layer's state."""
        return tuple(key for _, key in self.state)

    # These run per layer per training step: one comprehension each, and for a layer
    # without parameters (an activation) no dict at all, only the shared ``_NONE``.
    def own_params(self, params: Params) -> Params:
        """The layer's parameters under its local keys, from a network-wide dict.

        Parameters
        ----------
        params : dict of str to array
            Network-wide parameters (more keys than the layer's are fine).

        Returns
        -------
        dict of str to array
            The same arrays (no copies), keyed as the layer names them. For a layer
            without parameters, a shared empty dict that must not be written to.
        """
        return {local: params[key] for local, key in self.params} if self.params else _NONE

    def own_state(self, state: Params) -> Params:
        """The layer's state under its local keys (see :meth:`own_params`)."""
        return {local: state[key] for local, key in self.state} if self.state else _NONE

    def network_params(self, own: Params) -> Params:
        """A dict keyed as the layer's parameters (its gradients, say) under network keys.

        Parameters
        ----------
        own : dict of str to array
            At least the layer's local parameter keys.

        Returns
        -------
        dict of str to array
            The same arrays, keyed ``W1``, ``b1``, ..., in the layer's declared order.
        """
        return {key: own[local] for local, key in self.params}

    def network_state(self, own: Params) -> Params:
        """A dict keyed as the layer's state under network keys (see :meth:`network_params`)."""
        return {key: own[local] for local, key in self.state}


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
    #: One :class:`LayerSlot` per layer, in order: the walk every pass over the layers
    #: follows (forward, backward, init, ONNX export, oracles, summary).
    slots: tuple[LayerSlot, ...] = field(init=False, repr=False, compare=False, hash=False)
    layout_free: bool = field(init=False, repr=False, compare=False, hash=False)
    _decay: frozenset[str] | None = field(init=False, repr=False, compare=False, hash=False)
    _owners: dict[str, LayerSlot] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        slots, number = [], 0
        for index, layer in enumerate(self.layers):
            pairs_p: list[tuple[str, str]] = []
            pairs_s: list[tuple[str, str]] = []
            for path, leaf in _leaves(layer, ""):
                if not (leaf.param_names or leaf.state_names):
                    continue
                number += 1
                for name in leaf.param_names:
                    pairs_p.append((path + name, f"{name}{number}"))
                pairs_s.extend((path + name, f"{name}{number}") for name in leaf.state_names)
            slots.append(LayerSlot(index, layer, tuple(pairs_p), tuple(pairs_s)))
        # built once: the per-step loops only read these tuples
        object.__setattr__(self, "slots", tuple(slots))
        object.__setattr__(self, "_decay", None)  # computed when first asked for
        owners = {key: slot for slot in slots for _, key in (*slot.params, *slot.state)}
        object.__setattr__(self, "_owners", owners)
        free = all(layer.layout_free and not layer.state_names for layer in self.layers)
        object.__setattr__(self, "layout_free", free)

    # -- description ---------------------------------------------------------------
    @property
    def param_keys(self) -> tuple[str, ...]:
        """Network-wide parameter names, in layer order."""
        return tuple(key for slot in self.slots for _, key in slot.params)

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Network-wide layer-state names, in layer order."""
        return tuple(key for slot in self.slots for _, key in slot.state)

    @property
    def decay_keys(self) -> frozenset[str]:
        """Parameters L2 regularisation applies to: each layer's :meth:`Layer.decayed`.

        A layer that declares ``decay`` decays those parameters; one that does not
        (``decay = None``, the default) decays its weight matrices (ndim >= 2), not its
        vectors (biases, scales).
        """
        if self._decay is not None:
            return self._decay
        keys: set[str] = set()
        width = self.inputs
        for slot in self.slots:
            if slot.params:
                local = set(slot.layer.decayed(width))
                keys.update(key for name, key in slot.params if name in local)
            width = slot.layer.output_width(width)
        decay = frozenset(keys)
        object.__setattr__(self, "_decay", decay)
        return decay

    @property
    def has_state(self) -> bool:
        return any(slot.state for slot in self.slots)

    @property
    def n_outputs(self) -> int:
        return self.head.n_outputs

    def widths(self) -> list[int]:
        """Output width of each layer, inputs first."""
        widths = [self.inputs]
        for layer in self.layers:
            widths.append(layer.output_width(widths[-1]))
        return widths

    def layer_of(self, key: str) -> tuple[int, Layer]:
        """The top-level layer that owns a network-wide parameter or state key.

        Parameters
        ----------
        key : str
            A key of :attr:`param_keys` or :attr:`state_keys` (``"W2"``).

        Returns
        -------
        (int, Layer)
            The layer's index in :attr:`layers` and the layer; for a key inside a
            container (``Residual``), the container.

        Raises
        ------
        KeyError
            If no layer of the model owns ``key``.
        """
        slot = self._owners.get(key)
        if slot is None:
            raise KeyError(
                f"no layer of this model owns the key {key!r}; its keys are "
                f"{[*self.param_keys, *self.state_keys]}"
            )
        return slot.index, slot.layer

    def walk(self, params: Params, state: Params) -> Iterator[tuple[LayerSlot, Params, Params]]:
        """The layers in order, each with its own parameters and state under local keys.

        The one order in which the model's layers run: :meth:`forward` follows it (and
        :meth:`backward` runs it in reverse), as do ONNX export and the autodiff oracles.

        Parameters
        ----------
        params, state : dict of str to array
            Network-wide parameters and layer state (``state`` may be empty when the
            model has none).

        Yields
        ------
        slot : LayerSlot
            The layer's place (``slot.index``, ``slot.layer``, its keys).
        own_params, own_state : dict of str to array
            Its arrays, unchanged in shape, under its local keys (a shared empty dict,
            not to be written to, where it has none).
        """
        for slot in self.slots:
            yield slot, slot.own_params(params), slot.own_state(state)

    # -- numbers -------------------------------------------------------------------
    def init(self, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Initial parameters and layer state as host NumPy arrays, network-wide keys.

        Each layer draws its parameters, then its state, in layer order from ``rng``.
        """
        params: dict[str, np.ndarray] = {}
        state: dict[str, np.ndarray] = {}
        width = self.inputs
        for slot in self.slots:
            layer = slot.layer
            own, n_out = layer.init(rng, width)
            own_state = layer.init_state(rng, width)
            _check_keys(layer, "init", own, [k for k, _ in slot.params])
            _check_keys(layer, "init_state", own_state, [k for k, _ in slot.state])
            params.update(slot.network_params(own))
            state.update(slot.network_state(own_state))
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
        for slot in self.slots:
            layer = slot.layer
            own, own_state = layer.shapes(width)
            _check_keys(layer, "shapes", own, [k for k, _ in slot.params])
            params.update({key: tuple(own[local]) for local, key in slot.params})
            state.update(slot.network_state(own_state))
            width = layer.output_width(width)
        return params, state

    # -- the math --------------------------------------------------------------------
    # ``axis`` is the feature axis of ``x`` and of the logits: -1 (rows-are-samples) or,
    # for layout-free models only, 0 (the tutorial's columns). Targets stay rows.
    def forward(
        self, params: Params, state: Params, x: Array, *, xp: Any, train: bool, axis: int = -1
    ) -> tuple[Array, list, Params]:
        """Logits, per-layer caches and the new layer state.

        Parameters
        ----------
        params, state : dict of str to array
            Network-wide parameters and layer state.
        x : array
            Inputs ``(n, inputs)`` (``(inputs, n)`` with ``axis=0``).
        xp : namespace
            The array namespace of ``x`` and ``params``.
        train : bool
            Training mode (dropout on, batch statistics used and updated).
        axis : int
            Feature axis of ``x`` and of the logits: -1, or 0 for layout-free models.

        Returns
        -------
        logits : array
            ``(n, n_outputs)`` (``(n_outputs, n)`` with ``axis=0``).
        caches : list
            One entry per layer, for :meth:`backward`.
        new_state : dict of str to array
            Updated layer state, network-wide keys, shapes as in ``state``.
        """
        caches, new_state, h = [], {}, x
        for slot in self.slots:
            h, cache, updated = self.forward_layer(slot, params, state, h, xp=xp, train=train,
                                                   axis=axis)  # fmt: skip
            if updated:
                new_state.update(updated)
            caches.append(cache)
        return h, caches, new_state

    def backward(
        self, params: Params, caches: list, dz: Array, *, xp: Any, axis: int = -1,
        on_grads: Any = None,
    ) -> Params:  # fmt: skip
        """Gradients (network-wide keys) from ``dz = dL/dlogits``.

        Runs :meth:`walk`'s order in reverse. Consumes ``caches`` (each entry is dropped
        once its layer is done, so activations are freed as backprop goes).

        Parameters
        ----------
        params : dict of str to array
            Network-wide parameters, as given to :meth:`forward`.
        caches : list
            :meth:`forward`'s caches; emptied (entries set to None) as backprop goes.
        dz : array
            ``dL/dlogits``, the shape of the logits: ``(n, n_outputs)``
            (``(n_outputs, n)`` with ``axis=0``).
        xp : namespace
            The array namespace of ``dz``.
        axis : int
            Feature axis, as given to :meth:`forward`.
        on_grads : callable, optional
            If given, each layer's gradients (a dict, network-wide keys) are handed to
            ``on_grads(grads)`` as soon as backprop has passed the layer (last layer
            first) instead of being returned: all gradients never coexist.

        Returns
        -------
        dict of str to array
            Gradients with the parameters' keys and shapes (empty with ``on_grads``).
        """
        grads: Params = {}
        for slot in reversed(self.slots):
            index, param_pairs = slot.index, slot.params
            if index == 0 and not param_pairs:
                break
            cache, caches[index] = caches[index], None
            dz, own_grads = self.backward_layer(slot, params, cache, dz, xp=xp, axis=axis)
            del cache
            if not param_pairs:
                continue
            if on_grads is None:
                grads.update(own_grads)
            else:
                on_grads(own_grads)
                del own_grads
        return grads

    def forward_layer(
        self, slot: LayerSlot, params: Params, state: Params, h: Array, *, xp: Any,
        train: bool, axis: int = -1,
    ) -> tuple[Array, Any, Params]:  # fmt: skip
        """One layer of :meth:`forward`: its output, its cache and its new state.

        Parameters
        ----------
        slot : LayerSlot
            The layer's place (one of :attr:`slots`).
        params, state : dict of str to array
            Network-wide parameters and layer state (more keys than the layer's are fine).
        h : array
            The layer's input, ``(n, width)`` (``(width, n)`` with ``axis=0``).
        xp, train, axis
            As for :meth:`forward`.

        Returns
        -------
        (output, cache, new_state)
            ``new_state`` holds the layer's updated state under network-wide keys (a
            shared empty dict, not to be written to, for a layer without state).
        """
        layer, own = slot.layer, slot.own_params(params)
        if slot.state:
            h, cache, updated = layer.forward_state(
                own, slot.own_state(state), h, xp=xp, train=train
            )
            return h, cache, {key: updated[local] for local, key in slot.state}
        if axis == -1:  # user layers need not take ``axis``
            h, cache = layer.forward(own, h, xp=xp, train=train)
        else:  # layout-free layers take ``axis``; the base signature does not declare it
            h, cache = layer.forward(own, h, xp=xp, train=train, axis=axis)  # type: ignore[call-arg]
        return h, cache, _NONE

    def backward_layer(
        self, slot: LayerSlot, params: Params, cache: Any, dy: Array, *, xp: Any, axis: int = -1
    ) -> tuple[Array | None, Params]:
        """One layer of :meth:`backward`: ``dL/dinput`` and the layer's gradients.

        Parameters
        ----------
        slot : LayerSlot
            The layer's place (one of :attr:`slots`).
        params : dict of str to array
            Network-wide parameters.
        cache : object
            What :meth:`forward_layer` returned for this layer.
        dy : array
            ``dL/doutput`` of the layer, the shape of its output.

        Returns
        -------
        (dx, grads)
            ``dx`` is None for the first layer (its input is the data); ``grads`` holds
            the layer's gradients under network-wide keys, in its declared order.
        """
        # only layout-free layers see ``axis=0``; user layers need not take it
        layout = _NONE if axis == -1 else {"axis": axis}
        own = slot.own_params(params)
        if slot.index:
            dx, own_grads = slot.layer.backward(own, cache, dy, xp=xp, **layout)
        else:  # the first layer's input is the data: no dx
            dx, own_grads = None, slot.layer.backward_params(own, cache, dy, xp=xp, **layout)
        return dx, (slot.network_params(own_grads) if slot.params else _NONE)

    def loss_and_delta(
        self, z: Array, t: Array, *, xp: Any, axis: int = -1, w: Array | None = None
    ) -> tuple[Array, Array]:
        """Mean loss (0-d) and ``dL/dz`` from logits ``z`` (feature axis ``axis``) and
        rows-are-samples targets ``t``; the weighted mean with sample weights ``w (n,)``."""
        if axis == -1:
            return self.head.loss_and_delta(z, t, xp=xp, w=w)
        value, dz = self.head.loss_and_delta(z.T, t, xp=xp, w=w)  # the head sees rows: a view
        return value, dz.T

    def loss_and_gradients(
        self, params: Params, state: Params, x: Array, t: Array, *, xp: Any, train: bool = False,
        axis: int = -1, w: Array | None = None,
    ) -> tuple[Array, Params, Params]:  # fmt: skip
        """Mean loss (0-d), gradients and new layer state for inputs ``x`` and targets ``t``
        (sample weights ``w (n,)`` or None)."""
        z, caches, new_state = self.forward(params, state, x, xp=xp, train=train, axis=axis)
        value, dz = self.loss_and_delta(z, t, xp=xp, axis=axis, w=w)
        return value, self.backward(params, caches, dz, xp=xp, axis=axis), new_state

    def logits(self, params: Params, state: Params, x: Array, *, xp: Any, axis: int = -1) -> Array:
        """Evaluation-mode logits, as :meth:`forward` with ``train=False`` gives them,
        keeping no per-layer caches: each layer's input is freed once the next layer has
        it (inference holds one activation at a time, not every layer's)."""
        h = x
        for slot in self.slots:
            h = self.forward_layer(slot, params, state, h, xp=xp, train=False, axis=axis)[0]
        return h

    def evaluate(
        self, params: Params, state: Params, x: Array, t: Array, *, xp: Any, axis: int = -1,
        w: Array | None = None,
    ) -> tuple[Array, Array]:  # fmt: skip
        """Mean loss and score (0-d arrays), in evaluation mode (weighted by ``w (n,)``)."""
        z = self.logits(params, state, x, xp=xp, axis=axis)
        if axis != -1:
            z = z.T
        return self.head.loss_value(z, t, xp=xp, w=w), self.head.score(
            self.head.output(z, xp=xp), t, xp=xp, w=w
        )

    def outputs(self, params: Params, state: Params, x: Array, *, xp: Any) -> Array:
        """Output activations ``(n, n_outputs)`` in evaluation mode."""
        z = self.logits(params, state, x, xp=xp)
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
