"""Network: a model, its parameters and layer state on a backend, with a scikit-learn-like face.

Public data is rows-are-samples, ``X`` of shape ``(n_samples, n_features)``, and so
is the math (:mod:`anynet.model`). Build a network from a list of layers with
:func:`Sequential`, or with ``Network(sizes, activations)``, the tutorial's shortcut
for a stack of dense layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import io
from ._dask import compute as dask_compute
from ._dask import is_dask_array, map_rows
from ._sparse import SparseRows, densify, is_sparse
from ._validation import (
    check_class_weight,
    check_features,
    check_parameter,
    check_positive_float,
    check_positive_int,
    check_sample_weight,
    check_sizes,
    check_targets,
)
from .backend import Backend, convert, get_backend, to_floats, to_numpy
from .callbacks import Callback, Checkpointer, History, Progress, as_callbacks
from .engine import HostRows, compiled_logits, parallel_logits, train
from .engine import resume as resume_rules
from .errors import BackendError, CheckpointError, DivergenceError, InputError, NumericalError
from .heads import make_head
from .layers.activation import Activation
from .layers.base import Layer, as_layer, layer_from_record, layer_to_record
from .layers.dense import Dense
from .losses import get_loss
from .model import Model
from .optimizers import Optimizer, get_optimizer
from .random import make_rng
from .registry import activations as activation_registry
from .registry import losses as loss_registry

__all__ = ["Checkpoint", "Network", "Sequential", "load", "load_checkpoint"]

Array = Any


def _check_activations(activations: Any, n_layers: int, n_outputs: int) -> list[Activation]:
    """One activation (registered name or object) per layer; output-only ones last."""
    if activations is None:
        names = ["tanh"] * (n_layers - 1) + ["sigmoid" if n_outputs == 1 else "softmax"]
        return [activation_registry.get(name)() for name in names]
    if not isinstance(activations, (list, tuple)):
        raise InputError(
            f"activations must be a list of {n_layers} names (one per layer), "
            f"got {type(activations).__name__} {activations!r}"
        )
    if len(activations) != n_layers:
        raise InputError(
            f"activations must have one entry per layer ({n_layers}), "
            f"got {len(activations)}: {list(activations)!r}"
        )
    checked = []
    for index, item in enumerate(activations):
        argument = f"activations[{index}]"
        if isinstance(item, Activation):
            checked.append(item)
        elif isinstance(item, type) and issubclass(item, Activation):
            checked.append(item())
        else:
            checked.append(activation_registry.get(item, argument)())
    for index, activation in enumerate(checked[:-1]):
        if activation.output_only:
            raise InputError(
                f"activations[{index}] must not be {activation.name!r}: "
                "it is allowed on the output layer only"
            )
    return checked


def _dense_model(
    sizes: list[int], activations: Any, loss: Any, init: Any, init_scale: Any
) -> Model:
    """The model of ``Network(sizes, activations, loss)``: dense layers, one activation each."""
    checked = _check_activations(activations, len(sizes) - 1, sizes[-1])
    layers: list[Layer] = []
    for width, activation in zip(sizes[1:-1], checked[:-1], strict=True):
        layers += [Dense(width, init, init_scale), activation]
    layers.append(Dense(sizes[-1], init, init_scale))
    return Model(sizes[0], tuple(layers), make_head(checked[-1], loss, sizes[-1]))


def _sequential_model(layers: Any, inputs: Any, loss: Any) -> Model:
    """The model of ``Sequential(layers, inputs, loss)``."""
    if isinstance(layers, (str, Layer)) or not isinstance(layers, Sequence):
        raise InputError(f"layers must be a list of layers, got {type(layers).__name__}")
    resolved = [as_layer(item, f"layers[{i}]") for i, item in enumerate(layers)]
    if not resolved:
        raise InputError("layers must hold at least one layer, got an empty list")
    inputs = check_positive_int(inputs, "inputs")
    output = resolved[-1] if isinstance(resolved[-1], Activation) else None
    body = tuple(resolved[:-1] if output is not None else resolved)
    for index, layer in enumerate(body):
        if isinstance(layer, Activation) and layer.output_only:
            raise InputError(
                f"layers[{index}] must not be {layer.name!r}: it is allowed as the output only"
            )
    widths = [inputs]
    for layer in body:
        widths.append(layer.output_width(widths[-1]))
    head = make_head(output, None if loss is None else get_loss(loss), widths[-1])
    return Model(inputs, body, head)


def model_from_architecture(record: dict[str, Any]) -> Model:
    """The model an :meth:`Network.architecture` record describes (nothing drawn)."""
    if "layers" in record:
        layers = [layer_from_record(item) for item in record["layers"]]
        layers.append(layer_from_record(record["output"]))
        return _sequential_model(layers, record["inputs"], record["loss"])
    sizes = check_sizes(record["sizes"])
    return _dense_model(sizes, record["activations"], record["loss"], record["init"], 0.0)


#: Values per layer activation that inference aims at per batch (4 Mi: 16 MiB in float32).
INFERENCE_BUDGET = 2**22


def inference_batch_size(model: Model, batch_size: Any = None) -> int:
    """Rows per inference batch: ``batch_size`` checked, or by default as many as keep the
    widest layer's activations within :data:`INFERENCE_BUDGET` values (at least 1).

    So memory for ``predict`` grows with the model, never with the rows scored at once.
    """
    if batch_size is not None:
        return check_positive_int(batch_size, "batch_size")
    return max(1, INFERENCE_BUDGET // max(model.widths()))


class Network:
    """A network whose math runs unchanged on every array backend.

    ``Network(sizes, activations)`` is the tutorial's shortcut for dense layers with
    one activation each; :func:`Sequential` builds one from any list of layers. Both
    give the whole surface below.

    Parameters
    ----------
    sizes : list of int
        Layer widths, inputs first: ``[2, 4, 1]`` is the tutorial's 2-4-1 network.
    activations : list of str or Activation, optional
        One per layer (``len(sizes) - 1``): ``"tanh"``, ``"sigmoid"``, ``"relu"``,
        ``"leaky_relu"``, ``"identity"``, ``"softmax"`` (output only) or any registered
        activation. Default: tanh hidden layers and a sigmoid (one output) or softmax
        output.
    loss : str or Loss, optional
        ``"binary_crossentropy"`` (sigmoid output), ``"categorical_crossentropy"``
        (softmax output), ``"mse"`` or a registered loss. Default: the one that
        matches the output.
    init : str
        Weight initialiser (``"xavier"``, ``"he"``, ``"normal"`` or registered), drawn
        on the host; biases start at zero. Default ``"xavier"`` (Glorot uniform), as for
        :class:`~anynet.layers.Dense` in :func:`Sequential` and the scikit-learn
        estimators. The tutorial's ``randn * 0.01`` is ``init="normal", init_scale=0.01``.
    init_scale : float, optional
        Multiplier of the initial weights; default per initialiser (1 for ``xavier`` and
        ``he``, 0.01 for ``normal``).
    seed : int, optional
        Same seed, same initial weights, bit for bit, on every backend.
    dtype : {"float32", "float64"}
        Floating dtype of parameters and computation.
    backend : str, optional
        ``"numpy"``, ``"array_api_strict"``, ``"jax"``, ``"torch"``, ``"cupy"``; default
        from :func:`anynet.use_backend`, :func:`anynet.set_backend`, ``ANYNET_BACKEND``, numpy.
    device : str or device object, optional
        ``"cpu"``, ``"gpu"``, ``"gpu:1"`` or the backend's own device object.

    Examples
    --------
    >>> import anynet as an
    >>> X, y = an.datasets.planar_flower()
    >>> net = an.Network([2, 4, 1], ["tanh", "sigmoid"], seed=0, dtype="float64")
    >>> history = net.fit(X, y, epochs=1000, lr=1.2)
    >>> round(net.score(X, y), 2) > 0.8
    True
    """

    #: Layer widths of the ``Network(sizes, ...)`` shortcut; None for :func:`Sequential`.
    sizes: list[int] | None
    #: The shortcut's weight initialiser and scale; None for :func:`Sequential`.
    init: str | None
    init_scale: float | None

    def __init__(
        self,
        sizes: list[int],
        activations: list[str] | None = None,
        loss: str | None = None,
        *,
        init: str = "xavier",
        init_scale: float | None = None,
        seed: int | None = None,
        dtype: str = "float32",
        backend: str | Backend | None = None,
        device: Any = None,
    ) -> None:
        sizes = check_sizes(sizes)
        model = _dense_model(sizes, activations, loss, init, init_scale)
        self._setup(model, seed, dtype, backend, device)
        self.sizes = sizes
        self.init, self.init_scale = init, init_scale

    def _setup(self, model: Model, seed: Any, dtype: str, backend: Any, device: Any) -> None:
        self.model = model
        self.backend = get_backend(backend, device)
        self.backend.dtype(dtype)  # raises early for unknown dtypes or JAX without x64
        self.dtype = dtype
        self.seed = seed
        self.sizes = None
        self.init = self.init_scale = None
        params, state = model.init(make_rng(seed))
        self._params = {key: self.backend.asarray(v, dtype) for key, v in params.items()}
        self._state = {key: self._state_array(v) for key, v in state.items()}
        #: The optimizer state at the end of the last ``fit`` (a dict of arrays), or None.
        self.optimizer_state: dict[str, Array] | None = None
        #: The last ``fit``'s History, up to its last completed epoch (also when an
        #: exception or KeyboardInterrupt stopped it), or None.
        self.history: History | None = None

    def _state_array(self, host: np.ndarray) -> Array:
        """Float state in the network's dtype, integer state (random streams) as is."""
        host = np.asarray(host)
        if host.dtype.kind == "f":
            return self.backend.asarray(host, self.dtype, copy=True)
        return self.backend.asarray(host, copy=True)

    # -- description -----------------------------------------------------------
    @property
    def head(self) -> Any:
        """The output head (activation, loss, predictions, score)."""
        return self.model.head

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers (without the head's output activation)."""
        return self.model.layers

    @property
    def activations(self) -> list[str]:
        """Activation names of the dense stack (``Network(sizes, activations)`` only)."""
        names = [layer.name for layer in self.model.layers if isinstance(layer, Activation)]
        return [*names, self.model.head.activation.name]

    @property
    def loss_name(self) -> str:
        """Name of the training loss."""
        return self.model.head.loss.name

    @property
    def is_classifier(self) -> bool:
        """Whether the output is a sigmoid or softmax classifier (else regression)."""
        return self.model.head.is_classifier

    @property
    def n_inputs(self) -> int:
        return self.model.inputs

    @property
    def n_outputs(self) -> int:
        return self.model.n_outputs

    def __repr__(self) -> str:
        where = (
            f"dtype={self.dtype!r}, backend={self.backend.name!r}, "
            f"device={str(self.backend.device)!r}"
        )
        seed = self.seed if isinstance(self.seed, (int, type(None))) else "Generator"
        if self.sizes is not None:
            init = f"init={self.init!r}"
            if self.init_scale is not None:
                init += f", init_scale={self.init_scale!r}"
            return (
                f"Network({self.sizes}, activations={self.activations}, "
                f"loss={self.loss_name!r}, {init}, seed={seed}, {where})"
            )
        items = [layer.describe() for layer in self.model.layers]
        items.append(self.model.head.activation.describe())
        rest = f"inputs={self.model.inputs}, loss={self.loss_name!r}, seed={seed}, {where})"
        if len(", ".join(items)) <= 72:
            return f"Sequential([{', '.join(items)}], {rest}"
        return "Sequential([\n" + "".join(f"    {item},\n" for item in items) + f"], {rest}"

    def summary(self) -> str:
        """A table of the layers: output shape, parameter count and names of each.

        Nested layers (``Residual``'s) are indented under their container; the output
        activation comes last. Below the table: the total number of parameters (and of
        layer-state values), the backend, device and dtype. A notebook cell ending in
        ``net.summary()`` shows the table (the returned ``str`` displays as itself);
        ``print(net.summary())`` prints it.

        Returns
        -------
        str
            The table, one line per layer, ``(n, width)`` the output shape for ``n`` rows.
        """
        from ._summary import summarize

        return summarize(self)

    def _repr_html_(self) -> str:
        """Jupyter's view of a network: its summary as an HTML table."""
        from ._summary import summarize

        return summarize(self)._repr_html_()

    # -- parameters ------------------------------------------------------------
    @property
    def params(self) -> dict[str, Array]:
        """The parameters (``W1, b1, ...``) as arrays of the network's backend (a new dict)."""
        return dict(self._params)

    @property
    def state(self) -> dict[str, Array]:
        """The layer state (batch norm statistics, dropout streams; a new dict, often empty)."""
        return dict(self._state)

    def set_params(self, params: Mapping[str, Any]) -> Network:
        """Replace the parameters.

        Parameters
        ----------
        params : mapping of str to array_like
            Exactly the keys of :attr:`params`, each of the same shape; arrays of any
            backend, NumPy arrays or nested lists. Values are copied (and cast to the
            network's dtype), so later changes to the inputs do not leak in.

        Returns
        -------
        Network
            ``self``, for chaining.
        """
        self._params = self._checked(params, self._params, "params")
        return self

    def set_state(self, state: Mapping[str, Any]) -> Network:
        """Replace the layer state (same keys and shapes as :attr:`state`); values copied."""
        checked = self._checked(state, self._state, "state")
        self._state = {
            key: checked[key] if self._is_float(self._state[key]) else self._int_copy(state[key])
            for key in self._state
        }
        return self

    def _is_float(self, array: Array) -> bool:
        return self.backend.xp.isdtype(array.dtype, "real floating")

    def _int_copy(self, value: Any) -> Array:
        return self.backend.asarray(np.asarray(to_numpy(value)).astype(np.int32), copy=True)

    def _checked(self, given: Any, current: dict[str, Array], what: str) -> dict[str, Array]:
        if not isinstance(given, Mapping):
            raise InputError(f"{what} must be a dict of arrays, got {type(given).__name__}")
        expected = list(current)
        if set(given) != set(expected) or len(given) != len(expected):
            raise InputError(f"{what} must have exactly the keys {expected}, got {list(given)}")
        return {
            key: check_parameter(
                given[key], f"{what}[{key!r}]", tuple(current[key].shape), self.backend, self.dtype
            )
            for key in expected
        }

    def _assign(self, params: dict[str, Array], state: dict[str, Array] | None = None) -> None:
        """Take arrays computed by the engine (already on the backend), in key order."""
        self._params = {key: params[key] for key in self._params}  # JAX sorts keys
        if state is not None:
            self._state = {key: state[key] for key in self._state}

    # -- computation -----------------------------------------------------------
    def _inputs(self, X: Any, name: str = "X", *, lazy: bool = False) -> Any:
        """``X`` checked, cast and on the device. A SciPy sparse ``X`` is densified whole
        (:func:`anynet._sparse.densify`), or with ``lazy`` kept sparse as
        :class:`~anynet._sparse.SparseRows`, densified one batch of rows at a time."""
        if is_sparse(X):
            if not lazy:
                return self._inputs(densify(X, self.dtype, name), name)
            rows = SparseRows(X, lambda block: self._inputs(block, name), name)
            n, width = rows.shape
            if width != self.model.inputs:
                raise InputError(
                    f"{name} must have {self.model.inputs} feature column(s) "
                    f"({self._width_names[0]}), got shape {rows.shape}"
                )
            if n == 0:
                raise InputError(f"{name} must hold at least one sample, got shape {rows.shape}")
            return rows
        return check_features(
            X, self.backend, self.model.inputs, self.dtype, name, self._width_names[0]
        )

    def _training_inputs(self, X: Any) -> Any:
        """``fit``'s ``X``: as :meth:`_inputs`; a SciPy sparse ``X`` stays on the host as
        :class:`~anynet.engine.HostRows`, each minibatch densified on its own."""
        if not is_sparse(X):
            return self._inputs(X)
        rows = self._inputs(X, lazy=True)
        return HostRows(rows.__getitem__, rows.shape, lambda: self._inputs(X))

    def _weights(self, sample_weight: Any, n_samples: int, name: str = "sample_weight") -> Any:
        """Checked sample weights ``(n,)`` on the device, or None; refused for a loss that
        does not take them."""
        if sample_weight is None:
            return None
        self._takes_weights(name)
        return check_sample_weight(sample_weight, n_samples, self.backend, self.dtype, name)

    def _takes_weights(self, name: str) -> None:
        loss = self.model.head.loss
        if not loss.takes_weights:
            raise InputError(
                f"{name} needs a loss that takes sample weights; {loss.name!r} does not "
                "(its value, gradient and fused methods take no w=)"
            )

    def _targets(self, y: Any, n_samples: int, name: str = "y") -> Array:
        return check_targets(
            y, self.model.head, n_samples, self.backend, self.dtype, name, self._width_names[1]
        )

    @property
    def _width_names(self) -> tuple[str, str]:
        """How messages name the input and output widths: what the user passed."""
        if self.sizes is not None:
            return "sizes[0]", "sizes[-1]"
        return "inputs", "the last layer's width"

    def _finite(self, array: Array, what: str) -> Array:
        """``array`` itself, or a NumericalError if it holds inf or NaN (one device sync)."""
        xp = self.backend.xp
        if not bool(xp.all(xp.isfinite(array))):
            raise NumericalError(
                f"the network's {what} overflowed to inf or NaN although the inputs and "
                f"parameters are finite ({self.dtype}); scale the inputs or the "
                "parameters down, or use dtype='float64'"
            )
        return array

    def _logits(self, x: Array, batch_size: int | None, devices: Any = None) -> Array:
        """Evaluation-mode logits ``(n, n_outputs)``, computed ``batch_size`` rows at a time
        (each batch split over ``devices``, JAX only, when given)."""
        size = inference_batch_size(self.model, batch_size)
        if isinstance(x, SparseRows):  # each batch densified on its own
            parts = [self._logits(block, size, devices) for block in x.blocks(size)]
            return parts[0] if len(parts) == 1 else self.backend.xp.concat(parts, axis=0)
        if devices is not None:
            placement = self.backend.data_parallel(devices)
            return parallel_logits(
                placement, self.backend, self.model, self._params, self._state, x, size
            )
        xp, n = self.backend.xp, x.shape[0]
        compiled = compiled_logits(self.backend, self.model, self._params, self._state, x, size)
        if compiled is not None:  # JAX: one compiled call per batch
            return compiled
        with self.backend.float_errors_silenced():
            if n <= size:  # one batch: the array itself
                return self.model.logits(self._params, self._state, x, xp=xp)
            parts = [  # slices within bounds: the standard leaves others unspecified
                self.model.logits(
                    self._params, self._state, x[start : min(start + size, n), ...], xp=xp
                )
                for start in range(0, n, size)
            ]  # fmt: skip
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)

    def _outputs(self, x: Array, batch_size: int | None = None, devices: Any = None) -> Array:
        out = None
        if devices is None and not isinstance(x, SparseRows):  # JAX: logits and output in one
            size = inference_batch_size(self.model, batch_size)
            out = compiled_logits(self.backend, self.model, self._params, self._state, x, size,
                                  outputs=True)  # fmt: skip
        if out is None:
            out = self.model.head.output(self._logits(x, batch_size, devices), xp=self.backend.xp)
        return self._finite(out, "output")

    def forward(self, X: Any, *, batch_size: int | None = None, devices: Any = None) -> Array:
        """Output activations ``(n_samples, n_outputs)`` for inputs ``X (n_samples, n_features)``.

        An array of the network's backend and device, in the network's dtype; evaluation
        mode (dropout off, batch norm on running statistics). ``batch_size`` rows go
        through the network at a time (default: as many as keep each layer's activations
        near 4 Mi values, see :func:`inference_batch_size`); the results are the same.
        ``devices`` (JAX; as for :meth:`fit`): each batch is split by rows over these
        devices and the result comes back to the network's device; the same for
        :meth:`predict`, :meth:`predict_proba`, :meth:`score` and :meth:`loss`.
        """
        if is_dask_array(X):
            return map_rows(
                X, lambda rows: self.forward(rows, batch_size=batch_size, devices=devices),
                self.model.inputs, self.model.n_outputs, np.dtype(self.dtype),
            )  # fmt: skip
        return self._outputs(self._inputs(X, lazy=True), batch_size, devices)

    def _evaluate(
        self, X: Any, y: Any, batch_size: int | None, devices: Any = None,
        sample_weight: Any = None,
    ) -> tuple[Array, Array]:  # fmt: skip
        if is_dask_array(X) or is_dask_array(y) or is_dask_array(sample_weight):
            return self._evaluate_dask(X, y, batch_size, devices, sample_weight)
        x = self._inputs(X, lazy=True)
        t = self._targets(y, x.shape[0])
        w = self._weights(sample_weight, x.shape[0])
        z = self._logits(x, batch_size, devices)
        xp, head = self.backend.xp, self.model.head
        with self.backend.float_errors_silenced():
            return head.loss_value(z, t, xp=xp, w=w), head.score(
                head.output(z, xp=xp), t, xp=xp, w=w
            )

    def _evaluate_dask(
        self, X: Any, y: Any, batch_size: int | None, devices: Any = None,
        sample_weight: Any = None,
    ) -> tuple[Array, Array]:  # fmt: skip
        """Loss and score of Dask inputs: logits blockwise, then one host computation on the
        ``(n_samples, n_outputs)`` logits and targets (never on the whole of ``X``)."""
        if is_dask_array(X):
            z = map_rows(
                X, lambda rows: self._logits(self._inputs(rows), batch_size, devices),
                self.model.inputs, self.model.n_outputs, np.dtype(self.dtype),
            ).compute()  # fmt: skip
        else:
            z = to_numpy(self._logits(self._inputs(X), batch_size, devices))
        host = get_backend("numpy")
        t = check_targets(
            dask_compute(y), self.model.head, z.shape[0], host, self.dtype, "y",
            self._width_names[1],
        )  # fmt: skip
        w = None
        if sample_weight is not None:
            self._takes_weights("sample_weight")
            w = check_sample_weight(dask_compute(sample_weight), z.shape[0], host, self.dtype,
                                    "sample_weight")  # fmt: skip
        xp, head = host.xp, self.model.head
        with host.float_errors_silenced():
            value = head.loss_value(z, t, xp=xp, w=w)
            score = head.score(head.output(z, xp=xp), t, xp=xp, w=w)
        # two host numbers, as arrays of the network's backend (what loss and score check)
        return self.backend.asarray(np.asarray(value)), self.backend.asarray(np.asarray(score))

    def loss(
        self, X: Any, y: Any, *, sample_weight: Any = None, batch_size: int | None = None,
        devices: Any = None,
    ) -> float:  # fmt: skip
        """Mean loss over the samples (see :mod:`anynet.losses`), in evaluation mode.

        ``sample_weight`` (``(n_samples,)``, >= 0): the weighted mean
        ``sum(w_i * l_i) / sum(w_i)`` of the samples' losses, as in :meth:`fit`.
        ``batch_size`` and ``devices`` as for :meth:`forward`.
        """
        value = self._evaluate(X, y, batch_size, devices, sample_weight)[0]
        return float(to_floats(self._finite(value, "loss")))

    def gradients(self, X: Any, y: Any, *, sample_weight: Any = None) -> dict[str, Array]:
        """Gradients of :meth:`loss` with respect to each parameter (hand-written backprop).

        Evaluation mode, as :meth:`loss` (weighted by ``sample_weight`` when given).
        Returns a dict with the keys and shapes of :attr:`params`.
        """
        x = self._inputs(X)
        t = self._targets(y, x.shape[0])
        w = self._weights(sample_weight, x.shape[0])
        with self.backend.float_errors_silenced():
            _, grads, _ = self.model.loss_and_gradients(
                self._params, self._state, x, t, xp=self.backend.xp, w=w
            )
        return {key: self._finite(grads[key], f"gradient {key}") for key in self._params}

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1000,
        lr: float | None = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        optimizer: str | Optimizer = "sgd",
        batch_size: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int | None = None,
        schedule: Any = None,
        validation_data: tuple[Any, ...] | None = None,
        callbacks: Sequence[Callback | Callable] | None = None,
        verbose: int | bool = 0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: str | os.PathLike | None = None,
        allow_changes: Sequence[str] = (),
        devices: Any = None,
        engine: str = "auto",
    ) -> History:
        """Train the network; by default full-batch gradient descent, as the tutorial does.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            NumPy array, nested list, or an array of the network's backend and device; or
            a SciPy sparse matrix: with ``batch_size`` kept on the host, each batch
            densified on its own and trained by the plain loop (``engine="eager"``'s
            numbers), else densified once (the training guide's "Sparse inputs").
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            0/1 labels (sigmoid output), class labels or one-hot rows (softmax), or
            values (regression).
        epochs : int
            Passes over the data (in all, when resuming).
        lr : float, optional
            Learning rate; default: the optimizer's own (0.01 for SGD, 0.001 for Adam).
        sample_weight : array_like, shape (n_samples,), optional
            Non-negative weights, not all zero: every loss becomes the weighted mean
            ``sum(w_i * l_i) / sum(w_i)`` over the samples of each batch (scikit-learn's
            MLP convention), and the gradients with it. Shuffled with the rows; with all
            weights 1 the numbers are those of no weights (to rounding).
        class_weight : "balanced" or dict, optional
            Classifiers with one label per sample (a sigmoid output, or softmax): each
            sample's weight is multiplied by its class's. ``"balanced"``: ``n_samples /
            (n_classes * count of the class)``, ``n_classes`` the classes present, as
            scikit-learn's ``compute_class_weight``; a dict ``{class: weight}`` (classes
            0, 1, ...; missing ones weigh 1).
        optimizer : str or Optimizer
            ``"sgd"`` (the tutorial's update), ``"momentum"``, ``"nesterov"``, ``"adam"``,
            ``"adamw"``, a registered name, or an :mod:`anynet.optimizers` object. Its
            state starts afresh in each call.
        batch_size : int, optional
            None, or at least the number of samples: full batch. Smaller: minibatches,
            reshuffled every epoch (when ``shuffle``) in an order drawn on the host
            from ``seed``, identical on every backend. The last short batch is kept
            unless ``drop_last``.
        seed : int, optional
            Seed of the shuffles; default the network's ``seed``.
        schedule : str or callable, optional
            ``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"``, an
            :mod:`anynet.optimizers` schedule object, or ``f(lr, epoch) -> lr``. One
            whose ``per`` attribute is ``"step"`` (``Warmup``, ``Cosine(per="step")``)
            is ``f(lr, step)``, asked for every optimizer step of the run.
        validation_data : (X_val, y_val) or (X_val, y_val, w_val), optional
            Adds ``val_loss`` and ``val_score`` (accuracy or R²) to the history;
            weighted by ``w_val`` when given (``class_weight`` does not apply to it).
        callbacks : list, optional
            :class:`anynet.Callback` objects (e.g. :class:`anynet.EarlyStopping`) or
            functions ``f(epoch, logs)``; returning True stops training.
        verbose : int or bool
            N: print the figures every N epochs. True: a progress bar (tqdm) when
            writing to a terminal, silence otherwise. 0/False: silent.
        checkpoint : path, optional
            Save the network, optimizer state, history and position here (atomically,
            see :func:`anynet.save`) every ``checkpoint_every`` epochs (default 1000)
            and at the end.
        resume : path, optional
            Continue the run saved in this checkpoint: its parameters, layer state,
            optimizer state, history and epoch are restored and training runs up to
            ``epochs`` in all, visiting the same batches, so an interrupted-then-resumed
            run ends with the same parameters as an uninterrupted one. The checkpoint
            records what the run depends on (a fingerprint of ``X`` and ``y``: shape,
            dtype and a hash of a fixed strided sample of rows; the seed, ``batch_size``,
            ``shuffle``, ``drop_last``, the optimizer and the schedule); anything
            different, or fewer ``epochs`` than already done, raises InputError.
        allow_changes : sequence of str
            With ``resume``: what may differ on purpose, among ``"data"``, ``"seed"``,
            ``"batch_size"``, ``"shuffle"``, ``"drop_last"``, ``"optimizer"``,
            ``"schedule"`` (the promise of matching an uninterrupted run is then off).
        devices : int, "all", list of JAX devices or jax.sharding.Mesh, optional
            Data parallel (JAX only; other backends raise BackendError): parameters, layer
            state and optimizer state are replicated on these devices and every batch is
            split over them by rows; the compiled runner sums the gradients (one
            all-reduce a step). A number means the first devices of the network's
            platform; ``"all"`` every one, in every process of a ``jax.distributed`` job
            (each process calls ``fit`` with the same data; checkpoints are written by
            process 0). A mesh must have an axis named ``"data"``. Results equal one
            device's to rounding (~1e-15 in float64), bit for bit on one device; the
            parameters come back to the network's own device. It pays for large steps
            only (wide layers, large batches): small networks run slower.
        engine : {"auto", "eager"}
            ``"auto"``: the engine's optimizations (compiled chunks on JAX, recorded steps
            replayed on eager backends, in-place and layer-by-layer updates, the
            tutorial's column layout), each applied only where it gives the numbers of
            the documented functional loop (see the training guide's "engine
            contract"). ``"eager"``: none of them, the plain loop of
            :func:`anynet.functional.train_step` over the same batches, one epoch per
            call, uncompiled: for chasing a numerical doubt.

        Returns
        -------
        History
            ``history.loss[i]``: for full batch, the cost before update ``i``, as in
            the tutorial; for minibatches the epoch's mean batch loss.

        Raises
        ------
        DivergenceError
            The loss became NaN or infinite; the network keeps the parameters of
            the start of the last epoch with a finite loss.

        An exception or ``KeyboardInterrupt`` during training propagates after the
        network has taken the parameters, layer state and :attr:`history` of the last
        completed epoch.
        """
        opt = get_optimizer(optimizer, None if lr is None else check_positive_float(lr, "lr"))
        allowed = resume_rules.check_allowed_changes(allow_changes)
        x = self._training_inputs(X)
        t = self._targets(y, x.shape[0])
        w = self._weights(sample_weight, x.shape[0])
        if class_weight is not None:
            self._takes_weights("class_weight")
            w = check_class_weight(class_weight, self.model.head, t, w, self.backend, self.dtype)
        run_config: dict[str, Any] = {}  # what checkpoints record: only for them
        if resume is not None or checkpoint is not None or checkpoint_every is not None:
            run_config = resume_rules.run_config(opt, batch_size, shuffle, drop_last, schedule)
        if resume is not None or checkpoint is not None:  # a small host read, only then
            run_config["data"] = resume_rules.fingerprint(x, t, self.backend)
            if w is not None:  # weighted data is other data
                column = self.backend.xp.reshape(w, (w.shape[0], 1))
                run_config["data"] += "+w" + resume_rules.fingerprint(column, column, self.backend)
        start = None
        if resume is not None:
            start = self._resume(resume, run_config, seed, epochs, allowed)
        if seed is None:
            if start is not None and start.seed is not None:
                seed = start.seed
            elif self.seed is not None and not isinstance(self.seed, np.random.Generator):
                seed = self.seed
        callbacks = as_callbacks(callbacks)
        checkpointer = None
        if checkpoint is not None or checkpoint_every is not None:
            checkpointer = Checkpointer(checkpoint, checkpoint_every, run_config, self._save_run)
        validation: tuple | None = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise InputError(
                    "validation_data must be a pair (X_val, y_val) or a triple (X_val, y_val, "
                    f"w_val), got {type(validation_data).__name__}"
                    + (f" of length {len(validation_data)}"
                       if isinstance(validation_data, (tuple, list)) else "")
                )  # fmt: skip
            xv = self._inputs(validation_data[0], "X_val")
            validation = (xv, self._targets(validation_data[1], xv.shape[0], "y_val"))
            if len(validation_data) == 3 and validation_data[2] is not None:
                validation += (self._weights(validation_data[2], xv.shape[0], "w_val"),)
        progress = Progress(verbose, epochs if isinstance(epochs, int) else 1)
        loop = train(
            self.model, self.backend, self.dtype, self._params, self._state, x, t,
            epochs=epochs, optimizer=opt, batch_size=batch_size, shuffle=shuffle,
            drop_last=drop_last, seed=seed, schedule=schedule, validation=validation,
            sample_weight=w, per_epoch=bool(callbacks) or progress.active, start=start,
            devices=devices, mode=engine,
            boundary=None if checkpointer is None else checkpointer.every,
        )  # fmt: skip
        return self._drive(loop, callbacks, checkpointer, progress, epochs)

    def _drive(
        self, loop: Any, callbacks: list[Callback], checkpointer: Checkpointer | None,
        progress: Progress, epochs: int,
    ) -> History:  # fmt: skip
        """Run the engine's loop: take each completed chunk's parameters, then hand the
        network to callbacks and checkpoints; continue from whatever they leave."""
        for hook in callbacks:
            hook.on_train_begin(self)
        try:
            for done in loop:
                self._assign(done.params, done.state)
                self.history, self.optimizer_state = done.history, done.opt_state
                if done.interrupted or not done.count:
                    continue  # the exception that interrupted the chunk follows
                if progress.active:
                    progress.update(done.first, done.logs)
                stop = False
                if callbacks:
                    logs = done.logs[-1]
                    for hook in callbacks:
                        stop = bool(hook.on_epoch_end(done.end - 1, logs, self)) or stop
                    # a callback may have replaced them: the next epoch starts from these
                    done.params, done.state = self._params, self._state
                done.stop = stop
                if checkpointer is not None and (
                    done.end % checkpointer.every == 0 or done.end >= epochs or stop
                ):
                    checkpointer.write(done.opt_state, done.history, done.seed, done.end,
                                       self.backend)  # fmt: skip
        except DivergenceError as error:
            self._assign(error.params, getattr(error, "state", None))
            self.history = error.history
            raise
        finally:
            progress.close()
        for hook in callbacks:
            hook.on_train_end(self)
        return self.history if self.history is not None else History()

    def _save_run(self, path: Any, opt_state: Any, history: History, extra: dict) -> None:
        self.save(path, optimizer_state=opt_state, history=history.to_dict(), extra=extra)

    def _resume(
        self, path: Any, run_config: dict[str, Any], seed: Any, epochs: Any, allowed: frozenset
    ) -> resume_rules.Start:
        """Read a checkpoint written by ``fit(checkpoint=...)`` and check it fits this run."""
        saved = load_checkpoint(path, backend=self.backend)
        fit_info = saved.extra.get("fit") if isinstance(saved.extra, dict) else None
        theirs = saved.network
        if isinstance(fit_info, dict) and isinstance(fit_info.get("epoch"), int):
            for name, mine, other in (
                ("sizes", self.sizes, theirs.sizes),
                ("model", self.model, theirs.model),
                ("dtype", self.dtype, theirs.dtype),
            ):
                if mine != other:
                    raise InputError(
                        f"resume checkpoint {str(path)!r} is for a network with {name} "
                        f"{other!r}, this one has {mine!r}"
                    )
        wanted = dict(run_config)
        if seed is not None:
            wanted["seed"] = seed
        start = resume_rules.check_resume(fit_info, wanted, allowed, path, epochs)
        self._params, self._state = theirs._params, theirs._state
        start.optimizer_state, start.history = saved.optimizer_state, saved.history
        return start

    # -- prediction ------------------------------------------------------------
    def predict_proba(self, X: Any, *, batch_size: int | None = None, devices: Any = None) -> Array:
        """Class probabilities.

        Returns
        -------
        array
            ``(n_samples, 2)`` with columns ``P(y=0), P(y=1)`` for a single sigmoid
            output (as scikit-learn), ``(n_samples, n_outputs)`` otherwise.
        """
        if not self.is_classifier:
            return self.model.head.predict_proba(None, xp=self.backend.xp)  # raises
        if is_dask_array(X):
            columns = self.model.head.predict_proba(
                np.zeros((1, self.model.n_outputs), dtype=self.dtype), xp=np
            ).shape[1]
            return map_rows(
                X, lambda rows: self.predict_proba(rows, batch_size=batch_size, devices=devices),
                self.model.inputs, columns, np.dtype(self.dtype),
            )  # fmt: skip
        return self.model.head.predict_proba(
            self.forward(X, batch_size=batch_size, devices=devices), xp=self.backend.xp
        )

    def predict(self, X: Any, *, batch_size: int | None = None, devices: Any = None) -> Array:
        """Predictions: labels for classifiers, values for regressors.

        Returns
        -------
        array
            Sigmoid output: 0/1 labels at threshold 0.5, shape ``(n_samples,)`` (one
            output) or ``(n_samples, n_outputs)``; softmax: the argmax class ``(n_samples,)``;
            otherwise the output values, ``(n_samples,)`` for one output.
            Integer arrays use the backend's default integer dtype.
        """
        if is_dask_array(X):
            sample = self.model.head.predict(
                np.zeros((1, self.model.n_outputs), dtype=self.dtype), xp=np, int_dtype=np.int64
            )
            return map_rows(
                X, lambda rows: self.predict(rows, batch_size=batch_size, devices=devices),
                self.model.inputs, None if sample.ndim == 1 else sample.shape[1], sample.dtype,
            )  # fmt: skip
        return self.model.head.predict(
            self.forward(X, batch_size=batch_size, devices=devices),
            xp=self.backend.xp,
            int_dtype=self.backend.int_dtype,
        )

    def score(
        self, X: Any, y: Any, *, sample_weight: Any = None, batch_size: int | None = None,
        devices: Any = None,
    ) -> float:  # fmt: skip
        """Accuracy (classifiers, in [0, 1]) or the coefficient of determination R² (regressors).

        Several sigmoid outputs (multilabel): the subset accuracy, a sample counting when
        all its labels are right; several regression outputs: R² averaged over them
        (scikit-learn's ``accuracy_score`` and ``r2_score``). ``sample_weight``: the
        weighted accuracy or R², as scikit-learn's. ``batch_size`` and ``devices`` as for
        :meth:`forward`.
        """
        value = self._evaluate(X, y, batch_size, devices, sample_weight)[1]
        return float(to_floats(self._finite(value, "score")))

    # -- saving and moving -----------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """The JSON record that rebuilds this network's model (what checkpoints store)."""
        seed = self.seed
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seed = int(seed)
        else:
            seed = None  # None, or a numpy Generator: the parameters are stored anyway
        record: dict[str, Any] = {"dtype": str(self.dtype), "seed": seed}
        head = self.model.head
        loss = loss_registry.name_of(head.loss)
        if self.sizes is not None:
            record.update(
                sizes=[int(s) for s in self.sizes],
                activations=[
                    activation_registry.name_of(layer)
                    for layer in (*self.model.layers[1::2], head.activation)
                ],
                loss=loss,
                init=self.init if isinstance(self.init, str) else str(self.init),
                init_scale=None if self.init_scale is None else float(self.init_scale),
            )
        else:
            record.update(
                inputs=int(self.model.inputs),
                layers=[layer_to_record(layer) for layer in self.model.layers],
                output=layer_to_record(head.activation),
                loss=loss,
            )
        return record

    @classmethod
    def from_architecture(
        cls, record: dict[str, Any], backend: Any = None, device: Any = None
    ) -> Network:
        """A fresh network (newly drawn parameters) from :meth:`architecture`'s record."""
        net = object.__new__(cls)
        net._setup(model_from_architecture(record), record.get("seed"), record["dtype"],
                   backend, device)  # fmt: skip
        if "layers" not in record:
            net.sizes = list(record["sizes"])
            net.init, net.init_scale = record["init"], record.get("init_scale")
        return net

    def save(self, path: str | os.PathLike, **kwargs: Any) -> Any:
        """Save to ``path`` atomically; see :func:`anynet.save` (same keyword arguments)."""
        return io.save(self, path, **kwargs)

    def to(self, backend: str | Backend, device: Any = None) -> Network:
        """The same network (model, bit-identical parameters and state) on another backend
        or device. Returns a new network; ``self`` is unchanged."""
        target = get_backend(backend, device)
        target.dtype(self.dtype)
        clone = object.__new__(Network)
        clone.__dict__.update(self.__dict__)
        clone.backend = target
        clone._params = {k: convert(v, target) for k, v in self._params.items()}
        clone._state = {k: convert(v, target) for k, v in self._state.items()}
        # arrays of the old backend must not ride along; the optimizer state is moved too
        if self.optimizer_state is not None:
            clone.optimizer_state = {
                key: convert(v, target) for key, v in self.optimizer_state.items()
            }
        return clone

    def astype(self, dtype: str) -> Network:
        """A copy in another floating dtype (same backend), parameters and state cast."""
        clone = self.to(self.backend)
        clone.backend.dtype(dtype)
        clone.dtype = dtype
        xp = clone.backend.xp
        wanted = clone.backend.dtype(dtype)
        clone._params = {k: xp.astype(v, wanted) for k, v in clone._params.items()}
        clone._state = {
            k: xp.astype(v, wanted) if clone._is_float(v) else v for k, v in clone._state.items()
        }
        clone.optimizer_state = None
        return clone


def Sequential(
    layers: Sequence[Layer | str],
    inputs: int,
    loss: str | Any = None,
    *,
    seed: int | None = None,
    dtype: str = "float32",
    backend: str | Backend | None = None,
    device: Any = None,
) -> Network:
    """A :class:`Network` from a list of layers.

    Parameters
    ----------
    layers : list of Layer or str
        Applied in order; a registered name (``"relu"``) stands for its layer. A final
        activation (sigmoid, softmax, identity, ...) is the output activation; without
        one, the loss's (sigmoid for binary cross-entropy, softmax for categorical
        cross-entropy, identity for mse).
    inputs : int
        Number of input features.
    loss : str or Loss, optional
        Default: the one that matches the output activation.
    seed, dtype, backend, device
        As for :class:`Network`.

    Examples
    --------
    >>> import anynet as an
    >>> from anynet.layers import Dense, Dropout, LayerNorm, Residual
    >>> net = an.Sequential(
    ...     [Dense(64), "relu", Residual(LayerNorm(), Dense(64), "relu"), Dropout(0.1),
    ...      Dense(10), "softmax"], inputs=64, seed=0)
    """
    model = _sequential_model(layers, inputs, loss)
    net = object.__new__(Network)
    net._setup(model, seed, dtype, backend, device)
    return net


# -- loading ----------------------------------------------------------------------


class Checkpoint:
    """Everything a checkpoint file holds, as returned by :func:`load_checkpoint`.

    Attributes
    ----------
    network : Network
        The network, on the backend and device asked for, parameters and layer state
        bit-identical to those saved.
    optimizer_state : dict of str to numpy.ndarray, or None
        The optimizer state as saved (NumPy arrays on the host).
    history : dict of str to list of float, or None
    extra : dict
        The JSON-able ``extra`` dict given to :func:`anynet.save` (``{}`` when none).
    format_version : int
    """

    def __init__(
        self,
        network: Network,
        optimizer_state: dict[str, Any] | None = None,
        history: dict[str, list[float]] | None = None,
        extra: dict[str, Any] | None = None,
        format_version: int = io.FORMAT_VERSION,
    ) -> None:
        self.network = network
        self.optimizer_state = optimizer_state
        self.history = history
        self.extra = {} if extra is None else extra
        self.format_version = format_version

    def __repr__(self) -> str:
        return (
            f"Checkpoint(network={self.network!r}, optimizer_state="
            f"{None if self.optimizer_state is None else sorted(self.optimizer_state)}, "
            f"history={None if self.history is None else sorted(self.history)}, "
            f"extra={self.extra!r})"
        )


def _shapes(record: dict[str, Any]) -> dict[str, Any]:
    """Parameter shapes and state ``(dtype, shape)`` of the network a record describes."""
    params, state = model_from_architecture(record).shapes()
    kinds = {"f": record["dtype"], "i": "int32"}
    return {"params": params, "state": {k: (kinds[kind], s) for k, (kind, s) in state.items()}}


def load_checkpoint(
    path: io.PathLike, backend: str | Backend | None = None, device: Any = None
) -> Checkpoint:
    """Read everything saved in ``path``: network, layer state, optimizer state, history, extra.

    Parameters are as for :func:`load`.

    Raises
    ------
    CheckpointError
        The file cannot be opened or read, is empty, truncated, corrupted, not an
        anynet checkpoint, of a newer format version, internally inconsistent, names
        a layer, activation or loss that is not registered here, compressed, or holds
        an object (pickle) array. The message names the file and the problem.
        A missing file raises the subclass ``CheckpointNotFoundError``.
    BackendError, InputError
        As for :func:`load`.
    """
    target = get_backend(backend, device)
    record = io.read(path, _shapes)
    try:
        network = Network.from_architecture(record.architecture, backend=target)
        network.set_params(record.params)
        if record.state:
            network.set_state(record.state)
    except BackendError:
        raise  # the backend asked for cannot hold this network: not the file's fault
    except InputError as exc:
        raise CheckpointError(f"cannot load checkpoint '{record.path}': {exc}") from exc
    return Checkpoint(network, record.optimizer_state, record.history, record.extra,
                      record.format_version)  # fmt: skip


def load(path: io.PathLike, backend: str | Backend | None = None, device: Any = None) -> Network:
    """Read the network saved in ``path`` by :func:`anynet.save`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`anynet.save`.
    backend : str or Backend, optional
        Where to put the network; default as for :class:`~anynet.Network`, whatever
        backend saved it.
    device : str or device object, optional

    Returns
    -------
    Network
        The saved model with bit-identical parameters and state, in the saved dtype.

    Raises
    ------
    CheckpointNotFoundError, CheckpointError, BackendError, InputError
        See :func:`load_checkpoint`.
    """
    return load_checkpoint(path, backend, device).network
