"""Sample and class weights: weighted means in every loss, their gradients, fit, score.

References: scikit-learn's MLP loss functions (``sklearn.neural_network._base``, which
take ``sample_weight``) and metrics, repeated rows for integer weights, central finite
differences in float64, and plain NumPy transcriptions.
"""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an
from anynet.layers import Dense
from anynet.losses import Loss

sk_base = pytest.importorskip("sklearn.neural_network._base")
sk_metrics = pytest.importorskip("sklearn.metrics")
sk_class_weight = pytest.importorskip("sklearn.utils.class_weight")

N, F = 24, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, F))
    w = rng.uniform(0.1, 3.0, size=N)
    return X, w, rng


#: name -> (sizes, activations, loss, targets(rng, X), scikit-learn's loss(y, p, w),
#: scikit-learn's loss / anynet's): scikit-learn sums its per-sample means over the K
#: outputs of cross-entropy (and halves the mean of the squares), anynet averages.
CASES = {
    "binary": ([F, 5, 1], ["tanh", "sigmoid"], "binary_crossentropy",
               lambda rng, X: (X[:, 0] > 0).astype(np.int64),
               lambda y, p, w: sk_base.binary_log_loss(y[:, None], p, w), 1.0),
    "multilabel": ([F, 5, 3], ["tanh", "sigmoid"], "binary_crossentropy",
                   lambda rng, X: (rng.uniform(size=(N, 3)) > 0.5).astype(np.int64),
                   lambda y, p, w: sk_base.binary_log_loss(y, p, w), 3.0),
    "multiclass": ([F, 5, 4], ["relu", "softmax"], "categorical_crossentropy",
                   lambda rng, X: rng.integers(0, 4, size=N),
                   lambda y, p, w: sk_base.log_loss(np.eye(4)[y], p, w), 1.0),
    "regression": ([F, 5, 2], ["tanh", "identity"], "mse",
                   lambda rng, X: rng.normal(size=(N, 2)),
                   lambda y, p, w: sk_base.squared_loss(y, p, w), 0.5),
    "poisson": ([F, 5, 1], ["tanh", "exp"], "poisson",
                lambda rng, X: rng.poisson(2.0, size=N).astype(np.float64),
                lambda y, p, w: sk_base.poisson_loss(y[:, None], p, w), 1.0),
}  # fmt: skip


def _net(case, backend, dtype="float64", seed=0):
    sizes, activations, loss, *_ = CASES[case]
    return an.Network(sizes, activations, loss, init="xavier", seed=seed, dtype=dtype,
                      backend=backend.name, device=backend.device)  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_weights_of_one_are_no_weights(backend, case):
    X, _, rng = _data()
    y = CASES[case][3](rng, X)
    net = _net(case, backend)
    ones = np.ones(N)
    assert net.loss(X, y, sample_weight=ones) == pytest.approx(net.loss(X, y), rel=1e-15)
    assert net.score(X, y, sample_weight=ones) == pytest.approx(net.score(X, y), rel=1e-14)
    plain, weighted = net.gradients(X, y), net.gradients(X, y, sample_weight=ones)
    for key in plain:
        np.testing.assert_allclose(an.to_numpy(weighted[key]), an.to_numpy(plain[key]),
                                   rtol=1e-14, atol=1e-17, err_msg=key)  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_the_weighted_loss_is_scikit_learns(backend, case):
    X, w, rng = _data(1)
    y = CASES[case][3](rng, X)
    reference, per_output = CASES[case][4], CASES[case][5]
    net = _net(case, backend)
    want = reference(np.asarray(y), an.to_numpy(net.forward(X)), w)
    assert net.loss(X, y, sample_weight=w) * per_output == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_integer_weights_are_repeated_rows(backend, case):
    X, _, rng = _data(2)
    y = CASES[case][3](rng, X)
    counts = rng.integers(0, 4, size=N)
    counts[0] = 1
    net = _net(case, backend)
    repeated = np.repeat(np.arange(N), counts)
    assert net.loss(X, y, sample_weight=counts) == pytest.approx(
        net.loss(X[repeated], y[repeated]), rel=1e-13
    )
    weighted, copies = (
        net.gradients(X, y, sample_weight=counts),
        net.gradients(X[repeated], y[repeated]),
    )
    for key in weighted:
        np.testing.assert_allclose(an.to_numpy(weighted[key]), an.to_numpy(copies[key]),
                                   rtol=1e-11, atol=1e-14, err_msg=key)  # fmt: skip


def _central_differences(net, X, y, w, eps=1e-6):
    params = {key: an.to_numpy(value).copy() for key, value in net.params.items()}
    grads = {}
    for key, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            moved = {k: v.copy() for k, v in params.items()}
            moved[key][index] = value[index] + eps
            up = net.set_params(moved).loss(X, y, sample_weight=w)
            moved[key][index] = value[index] - eps
            down = net.set_params(moved).loss(X, y, sample_weight=w)
            grad[index] = (up - down) / (2 * eps)
        grads[key] = grad
    net.set_params(params)
    return grads


@pytest.mark.parametrize("case", list(CASES))
def test_weighted_gradients_match_finite_differences(backend, case):
    X, w, rng = _data(3)
    y = CASES[case][3](rng, X)
    w[::5] = 0.0  # zero weights too
    net = _net(case, backend)
    got = net.gradients(X, y, sample_weight=w)
    want = _central_differences(net, X, y, w)
    for key in want:
        np.testing.assert_allclose(an.to_numpy(got[key]), want[key], rtol=1e-6, atol=1e-9,
                                   err_msg=key)  # fmt: skip


def test_the_unfused_weighted_forms_match_finite_differences(backend):
    """A sigmoid/softmax output under mse, and binary cross-entropy on a user's sigmoid:
    the loss's own value and gradient, chained through the activation."""
    X, w, rng = _data(4)
    y = (rng.uniform(size=(N, 2)) > 0.5).astype(np.float64)
    for layers, loss in (([Dense(4), "tanh", Dense(2), "sigmoid"], "mse"),
                         ([Dense(4), "tanh", Dense(2), "softmax"], "mse")):  # fmt: skip
        net = an.Sequential(layers, F, loss, seed=1, dtype="float64", backend=backend.name,
                            device=backend.device)  # fmt: skip
        got = net.gradients(X, y, sample_weight=w)
        want = _central_differences(net, X, y, w)
        for key in want:
            np.testing.assert_allclose(an.to_numpy(got[key]), want[key], rtol=1e-6, atol=1e-9)
    # binary cross-entropy from probabilities (not fused): against the fused form
    head = an.Network([F, 4, 3], ["tanh", "sigmoid"], seed=0, dtype="float64").head
    xp = np
    z = np.random.default_rng(5).normal(size=(N, 3))
    t = (z > 0.3).astype(np.float64)
    fused_value, fused_dz = head.loss.fused(head.activation, z, t, xp=xp, w=w)
    p = head.activation.value(z, xp=xp)
    value = head.loss.value(p, t, xp=xp, w=w)
    dz = head.activation.derivative(head.loss.gradient(p, t, xp=xp, w=w), z, p, xp=xp)
    np.testing.assert_allclose(value, fused_value, rtol=1e-14)
    np.testing.assert_allclose(dz, fused_dz, rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("case", ["binary", "multilabel", "multiclass", "regression"])
def test_the_weighted_score_is_scikit_learns(backend, case):
    X, w, rng = _data(6)
    y = CASES[case][3](rng, X)
    net = _net(case, backend)
    predicted = an.to_numpy(net.predict(X))
    if case == "regression":
        want = sk_metrics.r2_score(y, predicted, sample_weight=w)
    else:
        want = sk_metrics.accuracy_score(y, predicted, sample_weight=w)
    assert net.score(X, y, sample_weight=w) == pytest.approx(want, rel=1e-12, abs=1e-15)


def _reference_fit(net, X, y, w, *, epochs, lr, batch_size, seed):
    """The functional loop with weights: one generator per (seed, epoch), batches
    gathered on the host, weights gathered with the rows."""
    backend = net.backend
    optimizer = an.optimizers.SGD(lr=lr)
    params, opt_state = net.params, optimizer.init(net.params, xp=backend.xp)
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(N)
        for start in range(0, N, batch_size):
            index = order[start : start + batch_size]
            params, opt_state, _ = an.functional.train_step(
                net.model, optimizer, params, opt_state, backend.asarray(X[index], net.dtype),
                backend.asarray(y[index]), lr=lr,
                sample_weight=backend.asarray(w[index], net.dtype),
            )  # fmt: skip
    return params


@pytest.mark.parametrize("case", ["binary", "multiclass", "poisson"])
def test_fit_with_weights_is_the_weighted_functional_loop(backend, case):
    X, w, rng = _data(7)
    y = CASES[case][3](rng, X)
    net = _net(case, backend)
    want = _reference_fit(net, X, y, w, epochs=3, lr=0.05, batch_size=7, seed=4)
    net.fit(X, y, sample_weight=w, epochs=3, lr=0.05, batch_size=7, seed=4, engine="eager")
    for key in want:
        np.testing.assert_allclose(an.to_numpy(net.params[key]), an.to_numpy(want[key]),
                                   rtol=1e-12, atol=1e-14, err_msg=key)  # fmt: skip


def test_validation_weights_weigh_the_validation_figures(backend):
    X, w, rng = _data(8)
    y = CASES["binary"][3](rng, X)
    net = _net("binary", backend)
    history = net.fit(X, y, epochs=1, lr=0.1, validation_data=(X[:10], y[:10], w[:10]))
    assert history.val_loss[0] == pytest.approx(
        net.loss(X[:10], y[:10], sample_weight=w[:10]), rel=1e-12
    )
    assert history.val_score[0] == pytest.approx(
        net.score(X[:10], y[:10], sample_weight=w[:10]), rel=1e-12
    )


@pytest.mark.parametrize("case", ["binary", "multiclass"])
def test_class_weights_are_scikit_learns(backend, case):
    X, w, rng = _data(9)
    y = CASES[case][3](rng, X)
    y[: N // 2] = 0  # unbalanced
    classes = np.unique(y)
    balanced = sk_class_weight.compute_class_weight("balanced", classes=classes, y=y)
    per_sample = balanced[np.searchsorted(classes, y)]
    a, b = _net(case, backend), _net(case, backend)
    a.fit(X, y, class_weight="balanced", sample_weight=w, epochs=2, lr=0.1, engine="eager")
    b.fit(X, y, sample_weight=per_sample * w, epochs=2, lr=0.1, engine="eager")
    for key in a.params:
        np.testing.assert_allclose(an.to_numpy(a.params[key]), an.to_numpy(b.params[key]),
                                   rtol=1e-12, atol=1e-15)  # fmt: skip
    given = {0: 0.5, 1: 2.0}
    a, b = _net(case, backend), _net(case, backend)
    a.fit(X, y, class_weight=given, epochs=2, lr=0.1)
    b.fit(X, y, sample_weight=np.array([given.get(int(c), 1.0) for c in y]), epochs=2, lr=0.1)
    for key in a.params:
        np.testing.assert_allclose(an.to_numpy(a.params[key]), an.to_numpy(b.params[key]),
                                   rtol=1e-12, atol=1e-15)  # fmt: skip


def test_class_weight_needs_one_label_per_sample(backend):
    X, _, rng = _data(10)
    for case, fragment in (("regression", "a regressor"), ("multilabel", "multilabel")):
        net = _net(case, backend)
        with pytest.raises(an.InputError, match=fragment):
            net.fit(X, CASES[case][3](rng, X), class_weight="balanced", epochs=1)
    net = _net("multiclass", backend)
    y = CASES["multiclass"][3](rng, X)
    with pytest.raises(an.InputError, match=r"class_weight keys must be class labels 0 \.\. 3"):
        net.fit(X, y, class_weight={7: 1.0}, epochs=1)
    with pytest.raises(an.InputError, match="class_weight must be 'balanced' or a dict"):
        net.fit(X, y, class_weight="auto", epochs=1)


@pytest.mark.parametrize(
    "weights, fragment",
    [
        (np.ones(N - 1), r"sample_weight must have shape \(24,\)"),
        (-np.ones(N), "sample_weight must be >= 0"),
        (np.zeros(N), "must not be all zero"),
        (np.full(N, np.nan), "sample_weight must be finite"),
        (np.array(["a"] * N), "must hold real numbers"),
    ],
    ids=["shape", "negative", "zero", "nan", "strings"],
)
def test_bad_sample_weights_are_refused(backend, weights, fragment):
    X, _, rng = _data(11)
    y = CASES["binary"][3](rng, X)
    net = _net("binary", backend)
    for call in (lambda: net.fit(X, y, sample_weight=weights, epochs=1),
                 lambda: net.loss(X, y, sample_weight=weights),
                 lambda: net.score(X, y, sample_weight=weights),
                 lambda: net.gradients(X, y, sample_weight=weights)):  # fmt: skip
        with pytest.raises(an.InputError, match=fragment):
            call()


class Halved(Loss):
    """A user's loss without weights: half the mean square."""

    def value(self, p, t, *, xp):
        return xp.sum((p - t) * (p - t)) / (2 * p.shape[0] * p.shape[1])

    def gradient(self, p, t, *, xp):
        return (p - t) / (p.shape[0] * p.shape[1])


def test_a_loss_without_weights_refuses_them(backend):
    X, w, rng = _data(12)
    net = an.Sequential([Dense(3), "tanh", Dense(1)], F, Halved(), seed=0, dtype="float64",
                        backend=backend.name, device=backend.device)  # fmt: skip
    y = rng.normal(size=N)
    net.fit(X, y, epochs=1)  # unweighted: as before
    with pytest.raises(an.InputError, match="'Halved' does not"):
        net.fit(X, y, sample_weight=w, epochs=1)


@pytest.mark.needs("dask")
def test_dask_inputs_take_sample_weights(backend):
    import dask.array as da

    X, w, rng = _data(13)
    y = CASES["binary"][3](rng, X)
    net = _net("binary", backend)
    lazy_X, lazy_w = da.from_array(X, chunks=10), da.from_array(w, chunks=10)
    assert net.loss(lazy_X, y, sample_weight=lazy_w) == pytest.approx(
        net.loss(X, y, sample_weight=w), rel=1e-14
    )
    assert net.score(lazy_X, y, sample_weight=w) == net.score(X, y, sample_weight=w)


def test_a_weighted_run_resumes_exactly_and_only_with_its_weights(backend, tmp_path):
    X, w, rng = _data(14)
    y = CASES["binary"][3](rng, X)
    path = tmp_path / "run.npz"
    whole = _net("binary", backend)
    whole.fit(X, y, sample_weight=w, epochs=4, lr=0.5, batch_size=10, seed=1)
    first = _net("binary", backend)
    first.fit(X, y, sample_weight=w, epochs=2, lr=0.5, batch_size=10, seed=1, checkpoint=path,
              checkpoint_every=2)  # fmt: skip
    resumed = _net("binary", backend)
    resumed.fit(X, y, sample_weight=w, epochs=4, lr=0.5, batch_size=10, seed=1, resume=path)
    for key in whole.params:
        np.testing.assert_array_equal(an.to_numpy(resumed.params[key]),
                                      an.to_numpy(whole.params[key]))  # fmt: skip
    with pytest.raises(an.InputError, match="other data"):
        _net("binary", backend).fit(X, y, epochs=4, lr=0.5, batch_size=10, seed=1, resume=path)
