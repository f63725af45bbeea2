"""Several sigmoid outputs (multilabel) and several regression outputs.

References: scikit-learn's ``accuracy_score`` (subset accuracy for indicator matrices)
and ``r2_score`` (``"uniform_average"``), a NumPy transcription of binary
cross-entropy, central finite differences in float64 (:func:`anynet.testing.check_gradients`).
"""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet.layers import Dense
from anynet.testing import check_gradients

sk_metrics = pytest.importorskip("sklearn.metrics")

K = 3


def _labels(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(np.int64)
    return X, Y


def _networks(backend):
    on = dict(seed=0, dtype="float64", backend=backend.name, device=backend.device)
    return {
        "Network": an.Network([4, 6, K], ["tanh", "sigmoid"], "binary_crossentropy", **on),
        "Sequential": an.Sequential([Dense(6), "tanh", Dense(K), "sigmoid"], 4, **on),
    }


@pytest.mark.parametrize("kind", ["Network", "Sequential"])
def test_multilabel_predictions_probabilities_and_subset_accuracy(backend, kind):
    X, Y = _labels()
    net = _networks(backend)[kind]
    net.fit(X, Y, epochs=30, lr=1.0)
    assert net.is_classifier and net.head.multilabel
    proba = an.to_numpy(net.predict_proba(X))
    predicted = an.to_numpy(net.predict(X))
    assert proba.shape == (60, K) and predicted.shape == (60, K)
    np.testing.assert_array_equal(proba, an.to_numpy(net.forward(X)))
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(predicted.dtype))
    assert set(np.unique(predicted)) <= {0, 1}
    assert net.score(X, Y) == pytest.approx(sk_metrics.accuracy_score(Y, predicted), abs=1e-15)
    # the loss: binary cross-entropy averaged over every label of every sample
    want = -np.mean(Y * np.log(proba) + (1 - Y) * np.log(1 - proba))
    assert net.loss(X, Y) == pytest.approx(want, rel=1e-12)


def test_subset_accuracy_counts_a_sample_only_when_every_label_is_right(backend):
    X, Y = _labels(n=40, seed=1)
    net = _networks(backend)["Network"]
    predicted = an.to_numpy(net.predict(X))
    elementwise = np.mean(predicted == Y)
    subset = sk_metrics.accuracy_score(Y, predicted)
    assert subset < elementwise  # the two differ for this start
    assert net.score(X, Y) == pytest.approx(subset, abs=1e-15)


def test_multilabel_gradients_match_finite_differences(backend):
    X, Y = _labels(n=20, seed=2)
    for net in _networks(backend).values():
        report = check_gradients(net, X, Y)
        assert report.ok, report


def test_multilabel_targets_must_be_an_indicator_matrix(backend):
    X, Y = _labels(n=20)
    net = _networks(backend)["Network"]
    with pytest.raises(an.InputError, match=r"y must have shape \(20, 3\)"):
        net.fit(X, Y[:, 0], epochs=1)
    bad = Y.copy()
    bad[0, 0] = 2
    with pytest.raises(an.InputError, match="0/1 labels"):
        net.fit(X, bad, epochs=1)


def test_several_regression_outputs_score_the_averaged_r2(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4))
    Y = np.stack([X[:, 0] - X[:, 1], np.sin(X[:, 2]), 0.1 * X[:, 3]], axis=1)
    net = an.Network([4, 8, 3], ["tanh", "identity"], "mse", seed=0, dtype="float64",
                     backend=backend.name, device=backend.device)  # fmt: skip
    net.fit(X, Y, epochs=50, lr=0.1)
    predicted = an.to_numpy(net.predict(X))
    assert predicted.shape == (50, 3)
    assert net.score(X, Y) == pytest.approx(sk_metrics.r2_score(Y, predicted), rel=1e-12)
    assert net.loss(X, Y) == pytest.approx(np.mean((predicted - Y) ** 2), rel=1e-12)
    # a constant column: 1 if fitted exactly, else 0, as scikit-learn's force_finite
    Yc = Y.copy()
    Yc[:, 2] = 4.0
    assert net.score(X, Yc) == pytest.approx(sk_metrics.r2_score(Yc, predicted), rel=1e-12)
    report = check_gradients(net, X[:15], Y[:15])
    assert report.ok, report
