"""Small problems shared by the gradient tests: every hidden activation, every head and loss."""

from __future__ import annotations

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
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(n, n_out)) if n_out > 1 else rng.integers(0, 2, size=n)
    elif loss == "categorical_crossentropy":
        y = rng.integers(0, n_out, size=n)
    else:
        y = rng.normal(size=(n, n_out))
    return X, y
