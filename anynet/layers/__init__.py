"""Layers: the building blocks of a model, each written once against the array API.

Public layers: :class:`Dense`, the activations :class:`Tanh`, :class:`Sigmoid`,
:class:`ReLU`, :class:`LeakyReLU`, :class:`Identity`, :class:`Exp`, :class:`Softmax`, and
:class:`Dropout`, :class:`LayerNorm`, :class:`BatchNorm`, :class:`Residual`.
Write your own by subclassing :class:`Layer` (see its docstring and the README's
"Build your own layer").
"""

from __future__ import annotations

from ..registry import layers as _registry
from ..registry import register_layer
from .activation import Activation, Exp, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, as_layer, layer_from_record, layer_to_record
from .dense import Dense
from .dropout import Dropout
from .norm import BatchNorm, LayerNorm
from .residual import Residual

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Exp",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "as_layer",
    "layer_from_record",
    "layer_to_record",
]

_registry.base = Layer
for _cls in (Dense, Dropout, LayerNorm, BatchNorm, Residual):
    register_layer(_cls.__name__, _cls)
