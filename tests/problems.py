"""Small problems shared by the gradient tests: every hidden activation, every head and loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIDDEN = ["tanh", "sigmoid", "relu", "leaky_relu", "identity"]
HEADS = [  # (output activation, loss, outputs)
    ("sigmoid", "binary_crossentropy", 1),
    ("sigmoid", "binary_crossentropy", 2),
    ("softmax", "categorical_crossentropy", 3),
    ("identity", "mse", 2),
    ("tanh", "mse", 1),
    ("sigmoid", "mse", 1),
    ("softmax", "mse", 3),
    ("relu", "mse", 2),
    ("leaky_relu", "mse", 1),
]


def make_problem(loss: str, n_out: int, n_in: int = 3, n: int = 9, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y: np.ndarray
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(n, n_out)) if n_out > 1 else rng.integers(0, 2, size=n)
    elif loss == "categorical_crossentropy":
        y = rng.integers(0, n_out, size=n)
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


def plant_activation(monkeypatch, name="tanh", *, backward_factor=1.0, forward_shift=0.0):
    """Register a subtly wrong ``name`` activation (restored by monkeypatch).

    ``backward_factor`` scales the derivative; ``forward_shift`` is added to the
    forward value on every backend except NumPy (the reference). Networks built by
    name afterwards get the planted class, as a user's registered one would.
    """
    import anynet as an
    from anynet import registry

    original = registry.activations.get(name)
    numpy_xp = an.get_backend("numpy").xp

    @dataclass(frozen=True)
    class Planted(original):
        def value(self, z, *, xp):
            out = super().value(z, xp=xp)
            # by name: on eager backends ``xp`` may be the namespace that records a step
            on_numpy = xp.__name__ == numpy_xp.__name__
            return out if forward_shift == 0 or on_numpy else out + forward_shift

        def derivative(self, dy, z, y, *, xp):
            return super().derivative(dy, z, y, xp=xp) * backward_factor

    for kind in (registry.activations, registry.layers):
        monkeypatch.setitem(kind._classes, name, Planted)
        monkeypatch.setitem(kind._names, Planted, name)
    return Planted
