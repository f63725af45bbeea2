"""Output heads: the output activation, the loss, target encoding, predictions and scores.

Three kinds, one object each:

* :class:`BinaryHead` — sigmoid outputs, 0/1 labels (one or several per sample:
  ``K`` sigmoid outputs are a multilabel classifier, targets an indicator matrix
  ``(n, K)``); ``predict`` thresholds at 0.5, ``score`` is the accuracy (for several
  labels the subset accuracy: a sample counts when all its labels are right, as
  scikit-learn's ``accuracy_score``).
* :class:`MulticlassHead` — softmax outputs, integer labels (one-hot encoded here,
  whatever the loss) or one-hot/probability rows; ``predict`` is the argmax.
* :class:`RegressionHead` — any other output activation; ``score`` is R² (averaged
  over the outputs, as scikit-learn's ``r2_score`` default ``"uniform_average"``).

Every method that reduces over samples takes optional sample weights ``w (n,)``: the
loss is then the weighted mean (:mod:`anynet.losses`), the accuracy
``sum(w * hit) / sum(w)`` and R² the weighted one, as scikit-learn's
``sample_weight``.

:func:`make_head` picks the kind from the loss (a loss declares its head) or from
the output activation; this module is the only place that decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from array_api_compat import array_namespace

from .backend import to_numpy
from .errors import InputError
from .layers.activation import Activation, Identity, Sigmoid, Softmax
from .layers.base import as_layer
from .losses import Loss, get_loss

__all__ = ["BinaryHead", "Head", "MulticlassHead", "RegressionHead", "make_head"]

Array = Any


@dataclass(frozen=True)
class Head:
    """Output activation plus loss, with everything that depends on the kind of output.

    All arrays are rows-are-samples: logits and outputs ``(n_samples, n_outputs)``.
    """

    activation: Activation
    loss: Loss
    n_outputs: int

    kind: ClassVar[str] = ""
    is_classifier: ClassVar[bool] = False
    default_loss: ClassVar[str] = "mse"

    # -- the math ------------------------------------------------------------------
    def output(self, z: Array, *, xp: Any) -> Array:
        """Output activations from logits."""
        return self.activation.value(z, xp=xp)

    def _weighted(self, w: Array | None) -> dict[str, Array]:
        """The loss's keyword for sample weights: none without them."""
        return {} if w is None else {"w": w}

    def loss_and_delta(
        self, z: Array, t: Array, *, xp: Any, w: Array | None = None
    ) -> tuple[Array, Array]:
        """Mean loss (0-d) and ``dL/dz`` from logits ``z`` and encoded targets ``t``
        (the weighted mean with sample weights ``w (n,)``)."""
        weights = self._weighted(w)
        fused = self.loss.fused(self.activation, z, t, xp=xp, **weights)
        if fused is not None:
            return fused
        a = self.activation.value(z, xp=xp)
        value = self.loss.value(a, t, xp=xp, **weights)
        da = self.loss.gradient(a, t, xp=xp, **weights)
        return value, self.activation.derivative(da, z, a, xp=xp)

    def loss_value(self, z: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        """Mean loss (0-d) only (the fused value when there is one)."""
        weights = self._weighted(w)
        fused = self.loss.fused(self.activation, z, t, xp=xp, **weights)
        if fused is not None:
            return fused[0]
        return self.loss.value(self.activation.value(z, xp=xp), t, xp=xp, **weights)

    def score(self, a: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        """Accuracy (classifiers) or R² (regressors) of outputs ``a``, 0-d; weighted by
        ``w (n,)`` when given."""
        if w is not None:
            column = xp.reshape(w, (w.shape[0], 1))
            mean = xp.sum(column * t, axis=0, keepdims=True) / _positive(xp.sum(w), xp)
            residual = xp.sum(column * ((t - a) * (t - a)), axis=0)
            centred = t - mean
            total = xp.sum(column * (centred * centred), axis=0)
            return _r2(residual, total, a, xp)
        residual = xp.sum((t - a) * (t - a), axis=0)
        centred = t - xp.mean(t, axis=0, keepdims=True)
        total = xp.sum(centred * centred, axis=0)
        return _r2(residual, total, a, xp)

    def predict(self, a: Array, *, xp: Any, int_dtype: Any) -> Array:
        """Predictions from outputs: values, ``(n,)`` for one output."""
        return a[:, 0] if self.n_outputs == 1 else a

    def predict_proba(self, a: Array, *, xp: Any) -> Array:
        raise InputError(
            f"predict_proba needs a sigmoid or softmax output, this network's output is "
            f"{self.activation.name!r} (a regressor): use predict"
        )

    # -- targets -------------------------------------------------------------------
    def encode(self, y: Array, *, name: str = "y", width_name: str = "outputs") -> Array:
        """Targets ``(n,)`` or ``(n, n_outputs)`` (checked numbers, one backend) as
        ``(n, n_outputs)``, still in their own dtype; the loss checks their values."""
        xp = array_namespace(y)
        n = y.shape[0]
        if y.ndim == 1:
            if self.n_outputs != 1:
                raise InputError(
                    f"{name} must have shape ({n}, {self.n_outputs}) for {self.n_outputs} "
                    f"outputs, got shape {tuple(y.shape)}"
                )
            y = xp.reshape(y, (n, 1))
        elif y.shape[1] != self.n_outputs:
            raise InputError(
                f"{name} must have {self.n_outputs} column(s) ({width_name}), "
                f"got shape {tuple(y.shape)}"
            )
        self.loss.check_targets(y, xp=xp, name=name)
        return y

    def targets(self, y: Array, like: Array, *, xp: Any) -> Array:
        """Traceable encoding of ``y`` (as ``fit`` takes it) for logits ``like (n, k)``:
        no value checks, no host sync; in ``like``'s dtype."""
        if y.ndim == 1:
            y = xp.reshape(y, (y.shape[0], 1))
        return xp.astype(y, like.dtype)

    def describe(self) -> str:
        return f"{self.activation.describe()} + {self.loss.name}"

    # -- classes (class weights) ---------------------------------------------------------
    @property
    def multilabel(self) -> bool:
        """Whether each output is a label of its own (several sigmoid outputs)."""
        return False

    @property
    def n_classes(self) -> int:
        """Classes of a one-label classifier (2 for one sigmoid output)."""
        return self.n_outputs

    def class_labels(self, t: np.ndarray, name: str) -> np.ndarray:
        """Integer class of each sample ``(n,)`` from encoded host targets ``t (n, k)``;
        InputError (naming ``name``) for heads without one class per sample."""
        raise InputError(
            f"{name} needs a classifier with one label per sample (a sigmoid output or a "
            f"softmax), this network's output is {self.activation.name!r} (a regressor)"
        )


@dataclass(frozen=True)
class BinaryHead(Head):
    """Sigmoid outputs: one or several 0/1 labels per sample."""

    kind: ClassVar[str] = "binary"
    is_classifier: ClassVar[bool] = True
    default_loss: ClassVar[str] = "binary_crossentropy"

    @property
    def multilabel(self) -> bool:
        """Several sigmoid outputs: one 0/1 label per output and sample."""
        return self.n_outputs > 1

    def score(self, a: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        """Accuracy; for several labels the subset accuracy (all of a sample's labels right)."""
        right = xp.astype(a > 0.5, a.dtype) == t
        hits = right[:, 0] if self.n_outputs == 1 else xp.all(right, axis=1)
        return _accuracy(hits, a.dtype, w, xp)

    def predict(self, a: Array, *, xp: Any, int_dtype: Any) -> Array:
        labels = xp.astype(a > 0.5, int_dtype)
        return labels[:, 0] if self.n_outputs == 1 else labels

    def predict_proba(self, a: Array, *, xp: Any) -> Array:
        return xp.concat([1 - a, a], axis=1) if self.n_outputs == 1 else a

    @property
    def n_classes(self) -> int:
        return 2

    def class_labels(self, t: np.ndarray, name: str) -> np.ndarray:
        if self.multilabel:
            raise InputError(
                f"{name} needs one label per sample, this network has {self.n_outputs} sigmoid "
                "outputs (multilabel); pass sample_weight instead"
            )
        return t[:, 0].astype(np.int64)


@dataclass(frozen=True)
class MulticlassHead(Head):
    """Softmax outputs: one class per sample."""

    kind: ClassVar[str] = "multiclass"
    is_classifier: ClassVar[bool] = True
    default_loss: ClassVar[str] = "categorical_crossentropy"

    def score(self, a: Array, t: Array, *, xp: Any, w: Array | None = None) -> Array:
        hits = xp.argmax(a, axis=1) == xp.argmax(t, axis=1)
        return _accuracy(hits, a.dtype, w, xp)

    def predict(self, a: Array, *, xp: Any, int_dtype: Any) -> Array:
        return xp.astype(xp.argmax(a, axis=1), int_dtype)

    def predict_proba(self, a: Array, *, xp: Any) -> Array:
        return a

    def class_labels(self, t: np.ndarray, name: str) -> np.ndarray:
        if not np.all((t == 0) | (t == 1)):
            raise InputError(
                f"{name} needs class labels or one-hot rows, y holds probability rows "
                "(soft labels); pass sample_weight instead"
            )
        return np.argmax(t, axis=1).astype(np.int64)

    def targets(self, y: Array, like: Array, *, xp: Any) -> Array:
        if y.ndim == 1:
            ones = xp.ones_like(like[:1, :], dtype=y.dtype)
            classes = xp.cumulative_sum(ones, axis=1) - 1  # (1, k) on like's device
            y = y[:, None] == classes
        return xp.astype(y, like.dtype)

    def encode(self, y: Array, *, name: str = "y", width_name: str = "outputs") -> Array:
        if y.ndim == 1:
            y = _one_hot(y, self.n_outputs, name, width_name)
        return super().encode(y, name=name, width_name=width_name)


@dataclass(frozen=True)
class RegressionHead(Head):
    """Any other output activation (identity by default): values; R² as the score."""

    kind: ClassVar[str] = "regression"


def _positive(total: Array, xp: Any) -> Array:
    """A sum of weights, 1 where it is 0 (whose numerators are 0 too)."""
    return xp.where(total > 0, total, xp.ones_like(total))


def _accuracy(hits: Array, dtype: Any, w: Array | None, xp: Any) -> Array:
    """``mean(hits)``, or ``sum(w * hits) / sum(w)``."""
    if w is None:
        return xp.mean(xp.astype(hits, dtype))
    return xp.sum(w * xp.astype(hits, dtype)) / _positive(xp.sum(w), xp)


def _r2(residual: Array, total: Array, a: Array, xp: Any) -> Array:
    """R² per output, averaged; a constant target column scores 1 if fitted exactly, else 0
    (scikit-learn's ``force_finite``)."""
    varies = total > 0
    ratio = residual / xp.where(varies, total, xp.ones_like(total))
    exact = xp.astype(residual == 0, a.dtype)
    return xp.mean(xp.where(varies, 1 - ratio, exact))


_KINDS: dict[str, type[Head]] = {
    "binary": BinaryHead,
    "multiclass": MulticlassHead,
    "regression": RegressionHead,
}
_DEFAULT_ACTIVATION: dict[str, type[Activation]] = {
    "binary": Sigmoid,
    "multiclass": Softmax,
    "regression": Identity,
}


def _kind_of(activation: Activation) -> str:
    if isinstance(activation, Softmax):
        return "multiclass"
    if isinstance(activation, Sigmoid):
        return "binary"
    return "regression"


def _output_activation(item: Activation | str) -> Activation:
    layer = as_layer(item, "output activation")
    if not isinstance(layer, Activation):
        raise InputError(f"output activation must be an anynet.layers.Activation, got {layer!r}")
    return layer


def make_head(activation: Activation | str | None, loss: Loss | str | None, n_outputs: int) -> Head:
    """The head for an output activation (None: the loss's default) and a loss (None:
    the activation's default), checked against each other and the output width."""
    if activation is not None:
        activation = _output_activation(activation)
    if loss is not None:
        loss = get_loss(loss)
    if activation is None and loss is not None and loss.default_activation is not None:
        activation = _output_activation(loss.default_activation)
    if activation is None:
        kind = loss.head if loss is not None and loss.head is not None else "regression"
        activation = _DEFAULT_ACTIVATION[kind]()
    kind = _kind_of(activation)
    if loss is None:
        loss = get_loss(_KINDS[kind].default_loss)
    if loss.head is not None and loss.head != kind:
        wanted = (
            _DEFAULT_ACTIVATION[loss.head]()
            if loss.default_activation is None
            else _output_activation(loss.default_activation)
        )
        raise InputError(
            f"loss {loss.name!r} needs a {wanted.name!r} output activation, got {activation.name!r}"
        )
    if kind == "multiclass" and n_outputs < 2:
        raise InputError(
            f"a softmax output needs at least 2 units, got sizes[-1] = {n_outputs} "
            "(use a sigmoid output for two classes)"
        )
    return _KINDS[kind](activation, loss, n_outputs)


def _one_hot(labels: Array, n_classes: int, name: str, width_name: str) -> Array:
    xp = array_namespace(labels)
    if xp.isdtype(labels.dtype, "real floating"):
        if not bool(xp.all(labels == xp.round(labels))):
            raise InputError(f"{name} must hold integer class labels, got non-integer values")
    low, high = xp.min(labels), xp.max(labels)
    if not (bool(low >= 0) and bool(high < n_classes)):
        raise InputError(
            f"{name} must hold class labels in [0, {n_classes}) ({width_name} = {n_classes}), "
            f"got values from {to_numpy(low).item()} to {to_numpy(high).item()}"
        )
    classes = xp.arange(n_classes, device=labels.device)
    return xp.astype(labels[:, None] == xp.astype(classes, labels.dtype), xp.int32)
