"""A user's script, fully typed: what mypy must accept in a project that installed anynet.

``check_editable.py`` copies it out of the repository and type-checks it against a fresh
virtual environment with an editable install, so mypy sees anynet only through the
install (nothing on the current directory).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

import anynet as an
from anynet.layers import Dense, LayerNorm, Residual
from anynet.optimizers import SGD, Adam, Cosine
from anynet.testing import check_gradients


def train(epochs: int) -> float:
    X, y = an.datasets.planar_flower(n=80)
    net = an.Network([2, 4, 1], ["tanh", "sigmoid"], init="normal", init_scale=0.01, seed=0,
                     dtype="float64")  # fmt: skip
    history: an.History = net.fit(X, y, epochs=epochs, lr=1.2)
    losses: list[float] = history.loss
    table: dict[str, list[float]] = history.to_dict(copy=False)
    assert len(table["loss"]) == len(losses)
    folder = tempfile.mkdtemp()
    deep = an.Sequential(
        [Dense(8), LayerNorm(), "relu", Residual(Dense(8), "tanh"), Dense(1), "sigmoid"],
        inputs=2,
        seed=0,
    )
    deep.fit(
        X, y, epochs=epochs, optimizer=Adam(lr=1e-2), batch_size=16,
        schedule=Cosine(total=epochs), validation_data=(X, y),
        callbacks=[an.EarlyStopping(patience=3), an.CSVLogger(os.path.join(folder, "run.csv"))],
    )  # fmt: skip
    deep.fit(X, y, epochs=2, optimizer=SGD(lr=0.1, l2=1e-4), verbose=1)
    path = net.save(os.path.join(folder, "net.npz"))
    again = an.load(path)
    proba = an.to_numpy(again.predict_proba(X))
    assert proba.shape == (80, 2)
    report = check_gradients(net, X, y)
    assert max(report.errors.values()) < 1e-6
    return net.score(X, y) + float(np.mean(proba))


if __name__ == "__main__":
    print(train(5))
