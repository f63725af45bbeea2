"""Network: a spec, a params dict and a backend, with a scikit-learn-like surface.

Public data is rows-are-samples, ``X`` of shape ``(n_samples, n_features)``.
The math in :mod:`anynet.model` keeps the tutorial's ``(features, samples)``
layout; the transposes here are views, not copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import model, training
from ._validation import (
    check_activations,
    check_features,
    check_loss,
    check_parameter,
    check_sizes,
    check_targets,
)
from .backend import Backend, get_backend, to_floats, to_numpy
from .errors import InputError, NumericalError
from .optimizers import Optimizer
from .random import init_params
from .training import Callback, History

__all__ = ["Network"]

Array = Any


class Network:
    """A fully connected network whose math runs unchanged on every array backend.

    Parameters
    ----------
    sizes : list of int
        Layer widths, inputs first: ``[2, 4, 1]`` is the tutorial's 2-4-1 network.
    activations : list of str, optional
        One per layer (``len(sizes) - 1``): ``"tanh"``, ``"sigmoid"``, ``"relu"``,
        ``"leaky_relu"``, ``"identity"``, or ``"softmax"`` (output only). Default:
        tanh hidden layers and a sigmoid (one output) or softmax output.
    loss : str, optional
        ``"binary_crossentropy"`` (sigmoid output), ``"categorical_crossentropy"``
        (softmax output) or ``"mse"``. Default: the one that matches the output.
    init : {"normal", "xavier", "he"}
        Weight initialiser, drawn on the host (see :func:`anynet.random.init_params`).
    init_scale : float, optional
        Multiplier of the initial weights; default 0.01 for ``normal`` (the tutorial's).
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

    def __init__(
        self,
        sizes: list[int],
        activations: list[str] | None = None,
        loss: str | None = None,
        *,
        init: str = "normal",
        init_scale: float | None = None,
        seed: int | None = None,
        dtype: str = "float32",
        backend: str | Backend | None = None,
        device: Any = None,
    ) -> None:
        self.sizes = check_sizes(sizes)
        checked = check_activations(activations, len(self.sizes) - 1, self.sizes[-1])
        self.spec = model.Spec(tuple(checked), check_loss(loss, checked[-1], self.sizes[-1]))
        self.backend = get_backend(backend, device)
        self.backend.dtype(dtype)  # raises early for unknown dtypes or JAX without x64
        self.dtype = dtype
        self.init, self.init_scale, self.seed = init, init_scale, seed
        host = init_params(self.sizes, init, init_scale, seed)
        self._params = {key: self.backend.asarray(value, dtype) for key, value in host.items()}
        #: The optimizer state at the end of the last ``fit`` (a dict of arrays), or None.
        self.optimizer_state: dict[str, Array] | None = None

    # -- description -----------------------------------------------------------
    @property
    def activations(self) -> list[str]:
        """Activation names, one per layer."""
        return [activation.name for activation in self.spec.activations]

    @property
    def loss_name(self) -> str:
        """Name of the training loss."""
        return self.spec.loss.name

    @property
    def is_classifier(self) -> bool:
        """Whether the output is a sigmoid or softmax classifier (else regression)."""
        return self.spec.activations[-1].name in ("sigmoid", "softmax")

    def __repr__(self) -> str:
        return (
            f"Network({self.sizes}, activations={self.activations}, loss={self.loss_name!r}, "
            f"dtype={self.dtype!r}, backend={self.backend.name!r}, "
            f"device={str(self.backend.device)!r})"
        )

    # -- parameters ------------------------------------------------------------
    @property
    def params(self) -> dict[str, Array]:
        """The parameters ``W1, b1, ...`` as arrays of the network's backend (a new dict)."""
        return dict(self._params)

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
        if not isinstance(params, Mapping):
            raise InputError(f"params must be a dict of arrays, got {type(params).__name__}")
        expected = list(self._params)
        if set(params) != set(expected) or len(params) != len(expected):
            raise InputError(f"params must have exactly the keys {expected}, got {list(params)}")
        new = {
            key: check_parameter(
                params[key], f"params[{key!r}]", tuple(self._params[key].shape),
                self.backend, self.dtype,
            )
            for key in expected
        }  # fmt: skip
        self._params = new
        return self

    # -- computation -----------------------------------------------------------
    def _inputs(self, X: Any) -> Array:
        """X checked and moved, transposed to the internal (features, samples) layout."""
        return check_features(X, self.backend, self.sizes[0], self.dtype, columns=True)

    def _targets(self, y: Any, n_samples: int) -> Array:
        return check_targets(
            y, self.spec.loss, self.sizes[-1], n_samples, self.backend, self.dtype, columns=True
        )

    def _forward(self, x: Array) -> Array:
        with self.backend.float_errors_silenced():
            out = model.forward(self._params, x, self.spec, self.backend.xp)[0]
        return self._finite(out, "output")

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

    def forward(self, X: Any) -> Array:
        """Output activations ``(n_samples, n_outputs)`` for inputs ``X (n_samples, n_features)``.

        An array of the network's backend and device, in the network's dtype.
        """
        return self._forward(self._inputs(X)).T

    def loss(self, X: Any, y: Any) -> float:
        """Mean loss over the samples (see :mod:`anynet.losses` for the definitions)."""
        x = self._inputs(X)
        with self.backend.float_errors_silenced():
            value, _ = model.evaluate(
                self._params, x, self._targets(y, x.shape[1]), self.spec, self.backend.xp
            )
        return float(to_floats(self._finite(value, "loss")))

    def gradients(self, X: Any, y: Any) -> dict[str, Array]:
        """Gradients of :meth:`loss` with respect to each parameter (hand-written backprop).

        Returns a dict with the keys and shapes of :attr:`params`.
        """
        x = self._inputs(X)
        with self.backend.float_errors_silenced():
            grads = self._loss_and_gradients(x, self._targets(y, x.shape[1]))[1]
        return {key: self._finite(grads[key], f"gradient {key}") for key in self._params}

    def _loss_and_gradients(self, x: Array, t: Array) -> tuple[Array, dict[str, Array]]:
        return model.loss_and_gradients(self._params, x, t, self.spec, self.backend.xp)

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1000,
        lr: float | None = None,
        optimizer: str | Optimizer = "sgd",
        batch_size: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int | None = None,
        schedule: Any = None,
        validation_data: tuple[Any, Any] | None = None,
        callbacks: Sequence[Callback | Callable] | None = None,
        verbose: int | bool = 0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: str | os.PathLike | None = None,
    ) -> History:
        """Train the network; by default full-batch gradient descent, as the tutorial does.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            NumPy array, nested list, or an array of the network's backend and device.
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            0/1 labels (sigmoid output), class labels or one-hot rows (softmax), or
            values (regression).
        epochs : int
            Passes over the data.
        lr : float, optional
            Learning rate; default: the optimizer's own (0.01 for SGD, 0.001 for Adam).
        optimizer : str or Optimizer
            ``"sgd"`` (the tutorial's update), ``"momentum"``, ``"nesterov"``, ``"adam"``,
            ``"adamw"``, or an :mod:`anynet.optimizers` object. Its state starts afresh
            in each call.
        batch_size : int, optional
            None: full batch. An integer: minibatches, reshuffled every epoch (when
            ``shuffle``) in an order drawn on the host from ``seed``, identical on
            every backend. The last short batch is kept unless ``drop_last``.
        seed : int, optional
            Seed of the shuffles; default the network's ``seed``.
        schedule : str or callable, optional
            ``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"``, an
            :mod:`anynet.optimizers` schedule object, or ``f(lr, epoch) -> lr``.
        validation_data : (X_val, y_val), optional
            Adds ``val_loss`` and ``val_score`` (accuracy or R²) to the history.
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
            Continue the run saved in this checkpoint: its parameters, optimizer state,
            history and epoch are restored and training runs up to ``epochs`` in all,
            visiting the same batches, so an interrupted-then-resumed run ends with the
            same parameters as an uninterrupted one. The other arguments must match
            the checkpointed run's.

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
        """
        history, self.optimizer_state = training.fit(
            self, X, y, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size,
            shuffle=shuffle, drop_last=drop_last, seed=seed, schedule=schedule,
            validation_data=validation_data, callbacks=callbacks, verbose=verbose,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
        )  # fmt: skip
        return history

    # -- prediction ------------------------------------------------------------
    def predict_proba(self, X: Any) -> Array:
        """Class probabilities.

        Returns
        -------
        array
            ``(n_samples, 2)`` with columns ``P(y=0), P(y=1)`` for a single sigmoid
            output (as scikit-learn), ``(n_samples, n_outputs)`` otherwise.
        """
        if not self.is_classifier:
            raise InputError(
                f"predict_proba needs a sigmoid or softmax output, this network's output is "
                f"{self.activations[-1]!r} (a regressor): use predict"
            )
        a = self._forward(self._inputs(X))
        if self.spec.activations[-1].name == "sigmoid" and self.sizes[-1] == 1:
            a = self.backend.xp.concat([1 - a, a], axis=0)
        return a.T

    def predict(self, X: Any) -> Array:
        """Predictions: labels for classifiers, values for regressors.

        Returns
        -------
        array
            Sigmoid output: 0/1 labels at threshold 0.5, shape ``(n_samples,)`` (one
            output) or ``(n_samples, n_outputs)``; softmax: the argmax class ``(n_samples,)``;
            otherwise the output values, ``(n_samples,)`` for one output.
            Integer arrays use the backend's default integer dtype.
        """
        return self._predict(self._forward(self._inputs(X)))

    def _predict(self, a: Array) -> Array:
        xp, head = self.backend.xp, self.spec.activations[-1].name
        if head == "softmax":
            return xp.astype(xp.argmax(a, axis=0), self.backend.int_dtype)
        if head == "sigmoid":
            labels = xp.astype(a > 0.5, self.backend.int_dtype)
        else:
            labels = a
        return labels[0, :] if self.sizes[-1] == 1 else labels.T

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (classifiers, in [0, 1]) or the coefficient of determination R² (regressors)."""
        x = self._inputs(X)
        with self.backend.float_errors_silenced():
            _, value = model.evaluate(
                self._params, x, self._targets(y, x.shape[1]), self.spec, self.backend.xp
            )
        return float(to_floats(self._finite(value, "score")))

    # -- saving and moving -----------------------------------------------------
    def save(self, path: str | os.PathLike, **kwargs: Any) -> Any:
        """Save to ``path`` atomically; see :func:`anynet.save` (same keyword arguments)."""
        from .io import save

        return save(self, path, **kwargs)

    def to(self, backend: str | Backend, device: Any = None) -> Network:
        """The same network (spec and bit-identical parameters) on another backend or device.

        Returns a new network; ``self`` is unchanged.
        """
        target = get_backend(backend, device)
        target.dtype(self.dtype)
        clone = object.__new__(Network)
        clone.__dict__.update(self.__dict__)
        clone.backend = target
        clone._params = {
            key: target.asarray(to_numpy(v), copy=True) for key, v in self._params.items()
        }
        # arrays of the old backend must not ride along; the state is moved too
        if self.optimizer_state is not None:
            clone.optimizer_state = {
                key: target.asarray(to_numpy(v), copy=True)
                for key, v in self.optimizer_state.items()
            }
        return clone
