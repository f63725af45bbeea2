"""The estimators' remaining documented behaviours, against scikit-learn's own: Adam's
``beta_1``, ``beta_2`` and ``epsilon`` from the same weights, and the fitted attributes
``n_layers_``, ``n_outputs_`` and ``out_activation_``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_sklearn import _pair, _problem, _same_start, needs_sklearn

ADAM = dict(
    shuffle=False, solver="adam", alpha=0.0, learning_rate_init=0.01, batch_size=16, epsilon=1e-10
)


def _curves(kind, backend, dtype, **betas):
    """Our and scikit-learn's loss curves over 10 epochs from the same weights."""
    X, y = _problem(kind)
    ours, theirs = _pair(kind, backend, dtype, **ADAM, **betas)
    _same_start(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=10).fit(X, y)
        theirs.set_params(max_iter=10).fit(X, y)
    return np.asarray(ours.loss_curve_), np.asarray(theirs.loss_curve_)


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("kind", ["c3", "r2"])
def test_adam_betas_and_epsilon_take_scikit_learns_steps(backend, dtype, kind):
    # epsilon small: scikit-learn adds it to sqrt(v), anynet to sqrt(v_hat) (a documented
    # difference); the betas are what is compared
    ours, theirs = _curves(kind, backend, dtype, beta_1=0.7, beta_2=0.95)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # the betas matter: with scikit-learn's defaults the curve is another one
    _, default = _curves(kind, backend, dtype)
    assert np.max(np.abs(default - theirs) / np.abs(theirs)) > 1e-4


@needs_sklearn
@pytest.mark.parametrize("kind", ["c2", "c3", "r1", "r2"])
def test_fitted_shape_attributes_are_scikit_learns(backend, kind):
    X, y = _problem(kind)
    ours, theirs = _pair(kind, backend, "float64", max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_layers_ == theirs.n_layers_ == 3
    assert ours.n_outputs_ == theirs.n_outputs_
    assert ours.out_activation_ == theirs.out_activation_
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
