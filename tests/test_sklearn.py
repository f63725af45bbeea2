"""anynet.sklearn: scikit-learn's own estimator checks, model selection, accuracy against
scikit-learn's MLP, and array API dispatch on the backend under test."""

from __future__ import annotations

import importlib
import itertools
import math
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import anynet as an
from anynet.testing import assert_on_backend

try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:  # the checks below then skip through their `needs` marker
    parametrize_with_checks = None

needs_sklearn = pytest.mark.needs("sklearn", reason="anynet.sklearn needs scikit-learn")

# Short runs emit scikit-learn's ConvergenceWarning ("Stochastic Optimizer: Maximum
# iterations (N) reached ..."); test_max_iter_warns_as_scikit_learn checks it is raised.
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer. Maximum iterations")


@pytest.fixture(autouse=True)
def _scipy_array_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn refuses array_api_dispatch (and skips its array API checks) unless
    SCIPY_ARRAY_API=1; it reads the variable when dispatch is switched on."""
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


def _estimators():
    from anynet.sklearn import MLPClassifier, MLPRegressor

    return MLPClassifier, MLPRegressor


def _iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def _blobs(n=120, centers=3, seed=0):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, centers=centers, n_features=4, random_state=seed)
    return (X - X.mean(0)) / X.std(0), y


# -- optional dependency -------------------------------------------------------------------


def test_import_anynet_imports_neither_sklearn_nor_matplotlib():
    code = (
        "import sys, anynet; print(sorted({'sklearn', 'matplotlib', 'scipy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_without_sklearn_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(sys.modules, "anynet.sklearn", raising=False)
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    with pytest.raises(ImportError, match=r"pip install anynet\[sklearn\]"):
        importlib.import_module("anynet.sklearn")


# -- scikit-learn's estimator checks -------------------------------------------------------

#: Checks of scikit-learn's suite that cannot apply, with the reason (scikit-learn's
#: documented expected-failure mechanism, ``expected_failed_checks``; strict, so a check
#: that starts passing fails here). None: every check of the installed scikit-learn
#: passes for both estimators, the sample-weight equivalence and array API ones included.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"MLPClassifier": {}, "MLPRegressor": {}}


def _expected_failed_checks(estimator) -> dict[str, str]:
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


def _estimator_checks():
    if parametrize_with_checks is None:
        return pytest.mark.parametrize(
            "estimator, check", [pytest.param(None, None, marks=needs_sklearn)]
        )
    classifier, regressor = _estimators()
    # few epochs keep the ~100 checks of each estimator at a few seconds
    estimators = [classifier(max_iter=50), regressor(max_iter=50)]
    return parametrize_with_checks(
        estimators, expected_failed_checks=_expected_failed_checks, xfail_strict=True
    )


@needs_sklearn
@_estimator_checks()
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# -- model selection -----------------------------------------------------------------------


@needs_sklearn
def test_pipeline_in_grid_search_picks_the_best_cross_validated_candidate():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    MLPClassifier, _ = _estimators()
    X, y = _iris()
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(learning_rate_init=0.01, max_iter=60, random_state=0)),
        ]
    )
    grid = {"mlp__hidden_layer_sizes": [(4,), (16,)], "mlp__alpha": [1e-4, 1.0]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    # the reported score of the winner is what an independent cross-validation gives
    best = clone(pipe).set_params(**search.best_params_)
    assert search.best_score_ == pytest.approx(cross_val_score(best, X, y, cv=cv).mean(), abs=1e-12)
    assert search.best_score_ == pytest.approx(max(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.9
    assert search.score(X, y) > 0.9  # refit on everything
    assert search.best_estimator_.named_steps["mlp"].network_.sizes[1:-1] == list(
        search.best_params_["mlp__hidden_layer_sizes"]
    )


@needs_sklearn
def test_cross_val_score_is_the_accuracy_of_each_fold():
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_score

    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    clf = MLPClassifier((8,), learning_rate_init=0.01, max_iter=40, random_state=1)
    cv = KFold(4, shuffle=True, random_state=0)
    scores = cross_val_score(clf, X, y, cv=cv)
    expected = []
    for train, test in cv.split(X):
        fitted = clone(clf).fit(X[train], y[train])
        expected.append(np.mean(fitted.predict(X[test]) == y[test]))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-15)
    assert scores.mean() > 0.9


# -- accuracy ------------------------------------------------------------------------------


@needs_sklearn
def test_digits_and_iris_accuracy_as_good_as_scikit_learns_mlp():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as Reference
    from sklearn.preprocessing import StandardScaler

    MLPClassifier, _ = _estimators()
    for X, y, hidden, floor in (
        (*load_digits(return_X_y=True), (64,), 0.95),
        (*_iris(), (16,), 0.9),
    ):
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        settings = dict(hidden_layer_sizes=hidden, learning_rate_init=0.01, max_iter=60)
        ours = MLPClassifier(random_state=0, **settings).fit(X_train, y_train)
        theirs = Reference(random_state=0, **settings).fit(X_train, y_train)
        accuracy = ours.score(X_test, y_test)
        assert accuracy == np.mean(ours.predict(X_test) == y_test)
        assert accuracy >= floor
        assert accuracy >= theirs.score(X_test, y_test) - 0.03


@needs_sklearn
@pytest.mark.parametrize("n_classes", [2, 3])
def test_labels_of_any_kind_and_probabilities(n_classes):
    MLPClassifier, _ = _estimators()
    X, codes = _blobs(centers=n_classes)
    names = np.array(["cat", "dog", "emu"])[codes]  # strings, not in sorted order of codes
    clf = MLPClassifier((8,), learning_rate_init=0.02, max_iter=80, random_state=0).fit(X, names)
    assert list(clf.classes_) == sorted(set(names))
    assert clf.out_activation_ == ("logistic" if n_classes == 2 else "softmax")
    assert clf.network_.n_outputs == (1 if n_classes == 2 else n_classes)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), n_classes) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-12)
    # the probabilities are the network's, columns in classes_ order
    raw = an.to_numpy(clf.network_.forward(X))
    expected = np.concatenate([1 - raw, raw], axis=1) if n_classes == 2 else raw
    np.testing.assert_allclose(proba, expected, rtol=1e-14)
    predicted = clf.predict(X)
    assert predicted.dtype == names.dtype
    np.testing.assert_array_equal(predicted, clf.classes_[np.argmax(proba, axis=1)])
    assert clf.score(X, names) == np.mean(predicted == names) > 0.95


@needs_sklearn
def test_one_class_is_refused():
    MLPClassifier, _ = _estimators()
    X, _ = _blobs()
    with pytest.raises(ValueError, match=r"y must hold at least 2 classes, got 1 class"):
        MLPClassifier(max_iter=2).fit(X, np.zeros(len(X)))


@needs_sklearn
def test_linear_regressor_finds_least_squares_and_multi_output():
    _, MLPRegressor = _estimators()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    W = np.array([[1.0, -2.0], [0.5, 0.0], [-1.5, 3.0]])
    Y = X @ W + np.array([0.3, -0.7]) + 0.01 * rng.normal(size=(300, 2))
    reg = MLPRegressor(
        hidden_layer_sizes=(), alpha=0.0, learning_rate_init=0.05, max_iter=400, tol=0.0,
        n_iter_no_change=50, random_state=0,
    ).fit(X, Y)  # fmt: skip
    design = np.concatenate([X, np.ones((300, 1))], axis=1)
    solution = np.linalg.lstsq(design, Y, rcond=None)[0]
    np.testing.assert_allclose(reg.coefs_[0], solution[:3], atol=2e-3)
    np.testing.assert_allclose(reg.intercepts_[0], solution[3], atol=2e-3)
    assert reg.predict(X).shape == (300, 2)
    one = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (300,) and one.n_outputs_ == 1
    from sklearn.metrics import r2_score

    assert reg.score(X, Y) == pytest.approx(r2_score(Y, reg.predict(X)), abs=1e-15)
    assert reg.score(X, Y) > 0.999


# -- training semantics --------------------------------------------------------------------


@needs_sklearn
def test_partial_fit_continues_the_optimizer_like_one_longer_fit():
    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    settings = dict(hidden_layer_sizes=(8,), shuffle=False, random_state=0, batch_size=50)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier(**settings).partial_fit(X, y)
    stepwise = MLPClassifier(**settings)
    for _ in range(3):
        stepwise.partial_fit(X, y, classes=[0, 1, 2])
    at_once = MLPClassifier(max_iter=3, **settings).fit(X, y)  # the fit engine, one call
    # scikit-learn's counts: n_iter_ is that of the last call (one epoch), t_ the total
    assert stepwise.n_iter_ == 1 and at_once.n_iter_ == 3 and stepwise.t_ == 3 * len(X)
    np.testing.assert_allclose(stepwise.loss_curve_, at_once.loss_curve_, rtol=1e-12)
    for key, value in at_once.network_.params.items():
        np.testing.assert_allclose(stepwise.network_.params[key], value, rtol=1e-11, atol=1e-14)
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        stepwise.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        stepwise.set_params(early_stopping=True).partial_fit(X, y)


@needs_sklearn
def test_warm_start_continues_and_cold_start_starts_over():
    from sklearn.exceptions import ConvergenceWarning

    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    clf = MLPClassifier((8,), max_iter=5, random_state=0, tol=0.0, n_iter_no_change=100)
    first = clf.fit(X, y).loss_curve_[:]
    assert clf.fit(X, y).loss_curve_ == first  # cold: the same run again
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(5\) reached"):
        clf.set_params(warm_start=True).fit(X, y)  # warm starts run out of epochs too
    # scikit-learn's counts: n_iter_ of this fit, t_ and loss_curve_ over both
    assert clf.n_iter_ == 5 and clf.t_ == 10 * len(X) and clf.loss_curve_[:5] == first
    assert len(clf.loss_curve_) == 10 and clf.loss_curve_[5] < first[0]
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X, np.where(y == 2, 1, y))


@needs_sklearn
@pytest.mark.parametrize("centers", [2, 3])
def test_early_stopping_keeps_the_best_validation_epoch(centers):
    from sklearn.model_selection import train_test_split

    MLPClassifier, _ = _estimators()
    X, y = _blobs(n=300, centers=centers, seed=3)
    clf = MLPClassifier(
        (8,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=5,
        learning_rate_init=0.01, max_iter=200, random_state=7,
    ).fit(X, y)  # fmt: skip
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_ < 200
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the held-out split, rebuilt independently with scikit-learn 1.9's rule (stratified
    # where y has one output column, two classes): the kept weights score the best there
    stratify = y if centers == 2 else None
    _, val = train_test_split(np.arange(300), test_size=0.2, random_state=7, stratify=stratify)
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_, abs=1e-12)


@needs_sklearn
def test_a_validation_set_too_small_is_refused_as_scikit_learn_does():
    from sklearn.neural_network import MLPClassifier as Reference

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _blobs(n=20, centers=3)  # three classes: not stratified, one held-out sample
    settings = dict(early_stopping=True, validation_fraction=0.05, max_iter=2)
    with pytest.raises(ValueError) as theirs:
        Reference(**settings).fit(X, y)
    for cls in (MLPClassifier, MLPRegressor):
        with pytest.raises(ValueError) as ours:
            cls(**settings).fit(X, y)
        assert str(ours.value) == str(theirs.value)
        assert "The validation set is too small" in str(ours.value)


@needs_sklearn
def test_max_iter_warns_as_scikit_learn():
    from sklearn.exceptions import ConvergenceWarning

    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached") as caught:
        MLPClassifier(max_iter=3).fit(X, y)
    assert caught[0].filename == __file__  # attributed to the caller of fit


#: Values scikit-learn 1.9's ``_parameter_constraints`` refuse, one per parameter.
_BAD = {
    "hidden_layer_sizes": "4",
    "activation": "softplus",
    "solver": "newton",
    "alpha": -1.0,
    "batch_size": 0,
    "learning_rate": "cyclic",
    "learning_rate_init": 0.0,
    "power_t": -0.5,
    "max_iter": 0,
    "shuffle": "yes",
    "random_state": -1,
    "tol": -1e-3,
    "verbose": "loud",
    "warm_start": 1.5,
    "momentum": 1.5,
    "nesterovs_momentum": "no",
    "early_stopping": None,
    "validation_fraction": 1.0,
    "beta_1": 1.0,
    "beta_2": -0.1,
    "epsilon": 0.0,
    "n_iter_no_change": 0,
    "max_fun": 0,
}


@needs_sklearn
@pytest.mark.parametrize("name", sorted(_BAD))
def test_bad_hyperparameters_are_refused_as_scikit_learn_does(name):
    """The same exception type (InvalidParameterError, a ValueError and TypeError) naming
    the parameter; the same message where the allowed values are the same."""
    from sklearn.neural_network import MLPClassifier as Reference
    from sklearn.utils._param_validation import InvalidParameterError

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _blobs(n=30)
    with pytest.raises(InvalidParameterError) as theirs:
        Reference(**{"max_iter": 1, name: _BAD[name]}).fit(X, y)
    for cls in (MLPClassifier, MLPRegressor):
        estimator = cls(**{"max_iter": 1, name: _BAD[name]})  # __init__ only stores
        assert estimator.get_params()[name] == _BAD[name]
        with pytest.raises(InvalidParameterError) as ours:
            estimator.fit(X, y)
        assert isinstance(ours.value, ValueError) and isinstance(ours.value, TypeError)
        expected = str(theirs.value).replace("MLPClassifier", cls.__name__)
        if name in ("activation", "solver", "learning_rate"):  # options: a set's order
            assert str(ours.value).startswith(f"The '{name}' parameter of {cls.__name__} must")
            assert str(ours.value).endswith(f"Got {_BAD[name]!r} instead.")
            options = re.findall(r"'(\w+)'", str(theirs.value).split("among")[1])
            # anynet's own activations and optimizers are allowed too
            assert set(options) <= set(re.findall(r"'(\w+)'", str(ours.value).split("among")[1]))
        else:
            assert str(ours.value) == expected


@needs_sklearn
@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden_layer_sizes": (4, 0)}, None),
        ({"loss": "absolute_error"}, "The 'loss' parameter of MLPRegressor must be a str among"),
        ({"backend": "tensorflow"}, "The 'backend' parameter of MLP.* must be a str among"),
        ({"dtype": "float16"}, "The 'dtype' parameter of MLP.* must be a str among"),
    ],
)
def test_shape_loss_and_anynet_parameters_are_checked_at_fit(params, message):
    from sklearn.neural_network import MLPRegressor as Reference

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _blobs(n=30)
    if message is None:  # scikit-learn's own check after the constraints
        with pytest.raises(ValueError) as theirs:
            Reference(**params).fit(X, y)
        message = re.escape(str(theirs.value))
    for cls in (MLPRegressor,) if "loss" in params else (MLPClassifier, MLPRegressor):
        with pytest.raises(ValueError, match=message):
            cls(max_iter=1, **params).fit(X, y)


@needs_sklearn
def test_every_parameter_of_scikit_learns_estimators_with_its_default():
    import inspect

    from sklearn.neural_network import MLPClassifier as RefC
    from sklearn.neural_network import MLPRegressor as RefR

    for ours, theirs in zip(_estimators(), (RefC, RefR), strict=True):
        mine = inspect.signature(ours).parameters
        reference = inspect.signature(theirs).parameters
        assert list(mine)[: len(reference)] == list(reference)
        assert list(mine)[len(reference) :] == ["backend", "device", "dtype"]
        for name, parameter in reference.items():
            assert mine[name].default == parameter.default, name
            assert mine[name].kind == parameter.kind, name


@needs_sklearn
@pytest.mark.parametrize(
    "solver, state_key", [("sgd", "velocity.W1"), ("adam", "m.W1"), ("nesterov", "velocity.W1"),
                          ("adamw", "m.W1")],
)  # fmt: skip
def test_solvers_are_anynet_optimizers(solver, state_key):
    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    clf = MLPClassifier((8,), solver=solver, learning_rate_init=0.05, max_iter=30, random_state=0)
    assert clf.fit(X, y).score(X, y) > 0.9
    assert state_key in clf.network_.optimizer_state


@needs_sklearn
def test_random_state_is_the_seed_and_alpha_the_l2_penalty_per_batch():
    """One full-batch SGD step from anynet's own network with that seed, worked by hand:
    ``W <- W - lr * (dL/dW + alpha / n * W)``, biases without the penalty."""
    MLPClassifier, _ = _estimators()
    X, y = _blobs(n=60)
    lr, alpha = 0.1, 0.3
    clf = MLPClassifier(
        (5,), activation="tanh", solver="sgd", momentum=0.0, alpha=alpha, learning_rate_init=lr,
        batch_size=60, max_iter=1, shuffle=False, random_state=4,
    ).fit(X, y)  # fmt: skip
    net = an.Network([4, 5, 3], ["tanh", "softmax"], init="xavier", seed=4, dtype="float64")
    grads = net.gradients(X, y)
    # scikit-learn's loss: the data loss plus 0.5 * alpha * sum(W**2) / n_samples
    squares = sum(float(np.sum(net.params[key] ** 2)) for key in net.model.decay_keys)
    assert clf.loss_curve_ == [
        pytest.approx(net.loss(X, y) + 0.5 * alpha * squares / 60, rel=1e-14)
    ]
    for key, value in net.params.items():
        penalty = alpha / 60 * value if key in net.model.decay_keys else 0.0
        np.testing.assert_allclose(
            clf.network_.params[key], value - lr * (grads[key] + penalty), rtol=1e-13, atol=1e-15
        )


# -- backends and array API dispatch ---------------------------------------------------------


def _reference(cls, X, y, **settings):
    """The same estimator fitted on NumPy without dispatch: the values to agree with."""
    return cls(backend="numpy", **settings).fit(X, y)


@needs_sklearn
@pytest.mark.dtypes("float64")
def test_array_api_dispatch_returns_the_inputs_namespace_and_device(backend, dtype):
    import sklearn

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _blobs()
    Y = np.stack([X[:, 0] - X[:, 1], X[:, 2]], axis=1)
    Xb, yb, Yb = backend.asarray(X, dtype), backend.asarray(y), backend.asarray(Y, dtype)
    settings = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=15, random_state=0)
    clf_ref, reg_ref = _reference(MLPClassifier, X, y, **settings), None
    reg_ref = _reference(MLPRegressor, X, Y, **settings)
    with sklearn.config_context(array_api_dispatch=True):
        clf = MLPClassifier(**settings).fit(Xb, yb)
        reg = MLPRegressor(**settings).fit(Xb, Yb)
        assert clf.network_.backend is backend and reg.network_.backend is backend
        results = {
            "predict": (clf.predict(Xb), clf_ref.predict(X)),
            "predict_proba": (clf.predict_proba(Xb), clf_ref.predict_proba(X)),
            "predict_log_proba": (clf.predict_log_proba(Xb), clf_ref.predict_log_proba(X)),
            "regress": (reg.predict(Xb), reg_ref.predict(X)),
            "coefs_": (clf.coefs_[0], clf_ref.coefs_[0]),
        }
        for name, (got, want) in results.items():
            assert_on_backend(got, backend)
            assert tuple(got.shape) == want.shape, name
            np.testing.assert_allclose(an.to_numpy(got), want, rtol=1e-9, atol=1e-12, err_msg=name)
        assert an.to_numpy(results["predict"][0]).dtype == y.dtype
        assert clf.score(Xb, yb) == pytest.approx(clf_ref.score(X, y), abs=1e-12)
        assert isinstance(clf.score(Xb, yb), float)
        np.testing.assert_allclose(clf.loss_curve_, clf_ref.loss_curve_, rtol=1e-9)
        if not backend.on_host:  # NumPy input after a fit on another namespace is refused
            with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same"):
                clf.predict(X)


@needs_sklearn
def test_explicit_backend_takes_and_returns_numpy_without_dispatch(backend):
    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    settings = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=15, random_state=0)
    device = None if backend.device == an.get_backend(backend.name).device else backend.device
    clf = MLPClassifier(backend=backend.name, device=device, dtype="float32", **settings)
    clf.fit(X, y)
    assert clf.network_.backend is backend and clf.network_.dtype == "float32"
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.dtype == np.float32
    reference = _reference(MLPClassifier, X.astype(np.float32), y, **settings)
    np.testing.assert_allclose(proba, reference.predict_proba(X), rtol=2e-4, atol=1e-6)
    with an.use_backend(backend.name, backend.device):  # the default backend is followed
        assert MLPClassifier(**settings).fit(X, y).network_.backend is backend


@needs_sklearn
def test_pickled_estimator_predicts_the_same_on_its_backend(backend):
    MLPClassifier, _ = _estimators()
    X, y = _blobs()
    device = None if backend.device == an.get_backend(backend.name).device else backend.device
    clf = MLPClassifier((8,), max_iter=5, random_state=0, backend=backend.name, device=device)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clone = pickle.loads(pickle.dumps(clf.fit(X, y)))
    assert clone.network_.backend is backend
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    assert clone.loss_curve_ == clf.loss_curve_ and clone.get_params() == clf.get_params()
    clone.partial_fit(X, y)  # the optimizer state travelled too
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))


# -- scikit-learn's algorithms, step for step ------------------------------------------------


def _problem(kind):
    """Small standardised data: ``c2``/``c3`` two or three classes, ``cm`` three labels
    (an indicator matrix), ``r1``/``r2`` one or two regression targets, ``p2`` two counts."""
    X, labels = _blobs(n=60)
    targets = {
        "c2": labels % 2,
        "c3": labels,
        "r1": np.sin(X[:, 0]),
        "r2": np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1),
        "cm": np.stack([labels == 0, X[:, 0] > 0, labels != 1], axis=1).astype(np.int64),
        "p2": np.stack([np.round(np.exp(0.5 * X[:, 0])), np.round(np.exp(0.3 * X[:, 1]))], 1),
    }
    return X, targets[kind]


def _pair(kind, backend, dtype, **params):
    """Our estimator on ``backend`` and scikit-learn's, with the same settings."""
    from sklearn.neural_network import MLPClassifier as RefC
    from sklearn.neural_network import MLPRegressor as RefR

    MLPClassifier, MLPRegressor = _estimators()
    ours, theirs = (MLPClassifier, RefC) if kind.startswith("c") else (MLPRegressor, RefR)
    device = None if backend.device == an.get_backend(backend.name).device else backend.device
    settings = dict(hidden_layer_sizes=(5,), activation="tanh", random_state=0, **params)
    return ours(backend=backend.name, device=device, dtype=dtype, **settings), theirs(**settings)


def _same_start(ours, theirs, X, y):
    """Both fitted for one epoch (which builds them), then given scikit-learn's weights and
    their training records cleared: the next fit with ``warm_start=True`` starts both from
    the same point, with the same counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: ConvergenceWarning
        ours.set_params(max_iter=1).fit(X, y)
        theirs.set_params(max_iter=1).fit(X, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_ = [b.copy() for b in theirs.intercepts_]
    for estimator in (ours, theirs):
        if hasattr(estimator, "loss_curve_"):
            estimator.loss_curve_, estimator.best_loss_ = [], np.inf
            estimator._no_improvement_count = 0
        estimator.t_ = 0
        estimator.set_params(warm_start=True)


#: scikit-learn settings under which anynet takes the same steps: SGD exactly (constant,
#: inverse-scaling and adaptive rates, Nesterov or plain momentum), Adam up to where its
#: epsilon enters (scikit-learn's is added to sqrt(v), anynet's to sqrt(v_hat)).
_STOCHASTIC = {
    "sgd-minibatch": (dict(solver="sgd", learning_rate_init=0.1, batch_size=16, alpha=0.0), 1e-9),
    "sgd-full-l2": (
        dict(solver="sgd", learning_rate_init=0.1, batch_size=60, alpha=0.1,
             nesterovs_momentum=False),
        1e-9,
    ),
    "sgd-invscaling": (
        dict(solver="sgd", learning_rate="invscaling", power_t=0.25, learning_rate_init=0.2,
             batch_size=16, alpha=0.0),
        1e-9,
    ),
    "sgd-adaptive": (
        dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1,
             learning_rate_init=0.1, batch_size=16, alpha=0.0),
        1e-9,
    ),
    "adam-minibatch": (
        dict(solver="adam", learning_rate_init=0.01, batch_size=16, alpha=0.0), 2e-5
    ),
    "adam-full-l2": (dict(solver="adam", learning_rate_init=0.01, batch_size=60, alpha=0.1), 2e-5),
}  # fmt: skip


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("kind", ["c2", "c3", "r1", "r2"])
@pytest.mark.parametrize("setting", sorted(_STOCHASTIC))
def test_stochastic_solvers_follow_scikit_learns_trajectory(backend, dtype, kind, setting):
    params, rtol = _STOCHASTIC[setting]
    X, y = _problem(kind)
    ours, theirs = _pair(kind, backend, dtype, shuffle=False, **params)
    _same_start(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=12).fit(X, y)
        theirs.set_params(max_iter=12).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=rtol)
    if params["solver"] == "sgd":  # the schedule's rate now, as scikit-learn's optimizer has it
        assert ours._learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    method = "predict_proba" if kind.startswith("c") else "predict"
    np.testing.assert_allclose(
        getattr(ours, method)(X), getattr(theirs, method)(X), rtol=10 * rtol, atol=10 * rtol
    )
    for mine, reference in zip(ours.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=10 * rtol, atol=10 * rtol)


@needs_sklearn
def test_minibatches_with_l2_take_scikit_learns_steps():
    """alpha > 0 with equal batches: the same weights as scikit-learn's, epoch after epoch.
    (loss_curve_ then takes each batch's L2 term at the epoch's first weights, so it is
    scikit-learn's only where there is one batch: test_stochastic_solvers_... checks that.)"""
    X, y = _problem("c3")
    ours, theirs = _pair("c3", an.get_backend("numpy"), "float64", shuffle=False, solver="sgd",
                         learning_rate_init=0.1, batch_size=15, alpha=0.5)  # fmt: skip
    _same_start(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=12).fit(X, y)
        theirs.set_params(max_iter=12).fit(X, y)
    for mine, reference in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                               strict=True):  # fmt: skip
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-13)


@needs_sklearn
def test_adaptive_rate_divides_by_five_and_stops_below_1e_6():
    """scikit-learn's rule, from its source: after more than n_iter_no_change epochs
    without improvement by tol, the rate is divided by 5 (and the count restarts); at or
    below 1e-6 training stops."""
    from sklearn.neural_network import MLPRegressor as Reference

    _, MLPRegressor = _estimators()
    X, y = _problem("r1")
    settings = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive", tol=10.0,
                    n_iter_no_change=1, learning_rate_init=0.1, shuffle=False, max_iter=50,
                    random_state=0)  # fmt: skip
    ours, theirs = MLPRegressor(**settings).fit(X, y), Reference(**settings).fit(X, y)
    # tol=10: only the first epoch improves (on inf); the rate is divided after epochs 3,
    # 5, 7, ... until, k divisions later, 0.1 / 5**k <= 1e-6 and the next trigger stops
    k = math.ceil(math.log(0.1 / 1e-6, 5))
    assert ours.n_iter_ == theirs.n_iter_ == 3 + 2 * k
    assert ours._learning_rate == pytest.approx(0.1 / 5**k, rel=1e-12)


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("kind", ["c2", "c3", "r1", "r2"])
def test_lbfgs_reaches_scikit_learns_loss_from_the_same_weights(backend, dtype, kind):
    X, y = _problem(kind)
    ours, theirs = _pair(kind, backend, dtype, solver="lbfgs", alpha=0.1)
    _same_start(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 iterations: lbfgs may not have converged
        ours.set_params(max_iter=20).fit(X, y)
        theirs.set_params(max_iter=20).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    method = "predict_proba" if kind.startswith("c") else "predict"
    np.testing.assert_allclose(getattr(ours, method)(X), getattr(theirs, method)(X), atol=1e-8)
    assert not hasattr(ours, "loss_curve_") and ours.t_ == 0  # as scikit-learn's lbfgs


@needs_sklearn
def test_lbfgs_objective_and_gradient_are_scikit_learns():
    """The loss and gradient handed to scipy, against finite differences of scikit-learn's
    own objective at random weights (``_loss_grad_lbfgs``)."""
    import scipy.optimize

    X, y = _problem("r2")
    ours, theirs = _pair("r2", an.get_backend("numpy"), "float64", solver="lbfgs", alpha=0.3)
    _same_start(ours, theirs, X, y)
    seen = []
    original = scipy.optimize.minimize

    def spy(fun, x0, **kwargs):
        seen.append((fun, x0, kwargs["options"]))
        return original(fun, x0, **kwargs)

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(scipy.optimize, "minimize", spy)
        ours.set_params(max_iter=3, max_fun=77, tol=1e-5).fit(X, y)
    fun, x0, options = seen[0]
    assert options["maxiter"] == 3 and options["maxfun"] == 77 and options["gtol"] == 1e-5
    # our packing is W1, b1, W2, b2 in anynet's (n_out, n_in) layout
    coefs, intercepts = theirs.coefs_, theirs.intercepts_
    ours_x0 = np.concatenate([coefs[0].T.ravel(), intercepts[0], coefs[1].T.ravel(), intercepts[1]])
    np.testing.assert_allclose(x0, ours_x0, rtol=0, atol=0)
    value, grad = fun(x0)
    theirs._random_state = np.random.RandomState(0)
    packed = np.concatenate([c.ravel() for c in coefs] + list(intercepts))
    layer_units = [4, 5, 2]
    args = (X, y, None, [X, None, None], [None, None],
            [np.empty((a, b)) for a, b in itertools.pairwise(layer_units)],
            [np.empty(b) for b in layer_units[1:]])  # fmt: skip
    theirs._coef_indptr = [(0, 20, (4, 5)), (20, 30, (5, 2))]
    theirs._intercept_indptr = [(30, 35), (35, 37)]
    their_value, their_grad = theirs._loss_grad_lbfgs(packed.copy(), *args)
    assert value == pytest.approx(their_value, rel=1e-13)
    # scikit-learn's gradient, reordered to our packing
    W1 = their_grad[0:20].reshape(4, 5).T.ravel()
    W2 = their_grad[20:30].reshape(5, 2).T.ravel()
    np.testing.assert_allclose(grad, np.concatenate([W1, their_grad[30:35], W2, their_grad[35:]]),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


@needs_sklearn
def test_lbfgs_warns_as_scikit_learn_when_it_stops_on_max_iter():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as Reference

    MLPClassifier, _ = _estimators()
    X, y = _problem("c3")
    for cls in (MLPClassifier, Reference):
        with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 3 iter"):
            fitted = cls(solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
        assert fitted.n_iter_ == 3
        with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge"):
            cls(solver="lbfgs", max_fun=4, random_state=0).fit(X, y)


@needs_sklearn
def test_partial_fit_is_not_there_with_lbfgs():
    from sklearn.neural_network import MLPClassifier as Reference

    MLPClassifier, MLPRegressor = _estimators()
    with pytest.raises(AttributeError) as theirs:
        Reference(solver="lbfgs").partial_fit  # noqa: B018
    for cls in (MLPClassifier, MLPRegressor):
        estimator = cls(solver="lbfgs")
        assert not hasattr(estimator, "partial_fit")
        with pytest.raises(AttributeError) as ours:
            estimator.partial_fit  # noqa: B018
        assert str(ours.value) == str(theirs.value).replace("MLPClassifier", cls.__name__)
        assert "not stochastic" in str(ours.value.__cause__)
        assert hasattr(estimator.set_params(solver="sgd"), "partial_fit")


@needs_sklearn
def test_coefs_and_intercepts_are_settable_with_their_shapes_checked():
    from sklearn.exceptions import NotFittedError
    from sklearn.neural_network import MLPClassifier as Reference

    MLPClassifier, _ = _estimators()
    X, y = _problem("c3")
    with pytest.raises(NotFittedError, match="coefs_ can be set on a fitted MLPClassifier"):
        MLPClassifier().coefs_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MLPClassifier(
            (5,), activation="tanh", solver="sgd", momentum=0.0, alpha=0.0, batch_size=60,
            shuffle=False, learning_rate_init=0.1, max_iter=1,
        ).fit(X, y)  # fmt: skip
        theirs = Reference((5,), activation="tanh", max_iter=1, random_state=3).fit(X, y)
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(5, 3\), got \(3, 5\)"):
        ours.coefs_ = [theirs.coefs_[0], theirs.coefs_[1].T]
    with pytest.raises(ValueError, match="intercepts_ must be a list of 2 arrays, got 1"):
        ours.intercepts_ = theirs.intercepts_[:1]
    ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
    # the forward pass is scikit-learn's with those weights
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-13)
    for mine, reference in zip(ours.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_array_equal(mine, reference)
    # and partial_fit continues from them: one full-batch SGD step by hand
    before = {k: an.to_numpy(v) for k, v in ours.network_.params.items()}
    grads = ours.network_.gradients(X, y)
    ours.partial_fit(X, y)
    for key, value in before.items():
        np.testing.assert_allclose(ours.network_.params[key], value - 0.1 * grads[key], rtol=1e-12)


@needs_sklearn
def test_non_finite_weights_raise_scikit_learns_value_error():
    from sklearn.neural_network import MLPRegressor as Reference

    _, MLPRegressor = _estimators()
    X, y = _problem("r1")
    settings = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=1e6, momentum=0.0,
                    max_iter=20, random_state=0)  # fmt: skip
    with pytest.raises(ValueError) as theirs, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Reference(**settings).fit(X * 1e3, y * 1e3)
    with pytest.raises(ValueError) as ours:
        MLPRegressor(**settings).fit(X * 1e3, y * 1e3)
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith("Solver produced non-finite parameter weights")


@needs_sklearn
def test_n_iter_no_change_inf_runs_every_epoch():
    from sklearn.exceptions import ConvergenceWarning

    MLPClassifier, _ = _estimators()
    X, y = _problem("c3")
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(7\)"):
        clf = MLPClassifier((4,), tol=100.0, n_iter_no_change=np.inf, max_iter=7).fit(X, y)
    assert clf.n_iter_ == 7


@needs_sklearn
def test_sample_weights_are_checked_and_multilabel_stays_multilabel():
    MLPClassifier, _ = _estimators()
    X, y = _problem("c3")
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(59,\), expected \(60,\)"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(59))  # scikit-learn's own check
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(60))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        MLPClassifier(solver="lbfgs").fit(X, y, sample_weight=np.zeros(60))
    indicator = _problem("cm")[1]
    clf = MLPClassifier((4,), max_iter=2, warm_start=True).fit(X, indicator)
    with pytest.raises(ValueError, match="multilabel indicator matrix .* as in the previous fit"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="the 3 classes of the previous fit, got a multilabel"):
        clf.fit(X, indicator[:, :2])


@needs_sklearn
def test_equal_sample_weights_and_sparse_inputs_give_the_plain_fit():
    """Weights of 1 are the plain fit; weights of 2.5 too, but for the L2 term, which
    scikit-learn divides by the sum of the weights: the plain fit with alpha / 2.5."""
    import scipy.sparse

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _problem("c3")
    settings = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0, alpha=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = MLPClassifier(**settings).fit(X, y)
        ones = MLPClassifier(**settings).fit(X, y, sample_weight=np.ones(60))
        weighted = MLPClassifier(**settings).fit(X, y, sample_weight=np.full(60, 2.5))
        scaled = MLPClassifier(**{**settings, "alpha": 0.1 / 2.5}).fit(X, y)
        sparse = MLPClassifier(**settings).fit(scipy.sparse.csr_matrix(X), y)
        regressor = MLPRegressor(**settings).fit(scipy.sparse.csc_matrix(X), X[:, 0])
    assert ones.loss_curve_ == plain.loss_curve_ == sparse.loss_curve_
    np.testing.assert_allclose(weighted.loss_curve_, scaled.loss_curve_, rtol=1e-13)
    assert weighted.loss_curve_ != plain.loss_curve_
    np.testing.assert_array_equal(sparse.predict_proba(scipy.sparse.csr_matrix(X)),
                                  plain.predict_proba(X))  # fmt: skip
    assert regressor.predict(scipy.sparse.csr_matrix(X)).shape == (60,)


def _weights(n=60):
    """Integer sample weights with zeros among them, as scikit-learn's equivalence checks."""
    return np.random.default_rng(7).integers(0, 4, size=n).astype(np.float64)


#: Settings under which scikit-learn's weighted steps are anynet's exactly: full batch
#: (the L2 term's divisor is the batch's sum of weights, taken as the mean weight times
#: the batch size), minibatches without L2, and lbfgs.
_WEIGHTED = {
    "sgd-full-l2": dict(solver="sgd", learning_rate_init=0.1, batch_size=60, alpha=0.1),
    "sgd-minibatch": dict(solver="sgd", learning_rate_init=0.1, batch_size=16, alpha=0.0),
    "adam-full-l2": dict(solver="adam", learning_rate_init=0.01, batch_size=60, alpha=0.1),
    "lbfgs": dict(solver="lbfgs", alpha=0.1),
}


def _compare_fits(ours, theirs, X, y, rtol, **fit):
    """Both from the same weights (``_same_start``), 8 more epochs (iterations), compared."""
    _same_start(ours, theirs, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=8).fit(X, y, **fit)
        theirs.set_params(max_iter=8).fit(X, y, **fit)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    method = "predict_proba" if hasattr(theirs, "predict_proba") else "predict"
    np.testing.assert_allclose(
        an.to_numpy(getattr(ours, method)(X)), getattr(theirs, method)(X), rtol=10 * rtol,
        atol=10 * rtol,
    )  # fmt: skip
    if method == "predict_proba":  # the same labels
        np.testing.assert_array_equal(an.to_numpy(ours.predict(X)), theirs.predict(X))


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("kind", ["c2", "c3", "r2"])
@pytest.mark.parametrize("setting", sorted(_WEIGHTED))
def test_weighted_fits_are_scikit_learns(backend, dtype, kind, setting):
    X, y = _problem(kind)
    ours, theirs = _pair(kind, backend, dtype, shuffle=False, **_WEIGHTED[setting])
    rtol = 2e-5 if setting.startswith("adam") else 1e-9
    _compare_fits(ours, theirs, X, y, rtol, sample_weight=_weights())


@needs_sklearn
def test_weighted_partial_fit_and_early_stopping_are_scikit_learns():
    """partial_fit takes the weights of each call; early stopping splits them with the
    rows and weights the validation score, as scikit-learn 1.9 does."""
    X, y = _problem("c3")
    backend, sw = an.get_backend("numpy"), _weights()
    # no momentum: partial_fit continues each one's optimizer state from _same_start's epoch
    ours, theirs = _pair("c3", backend, "float64", solver="sgd", shuffle=False, batch_size=60,
                         learning_rate_init=0.1, alpha=0.1, momentum=0.0)  # fmt: skip
    _same_start(ours, theirs, X, y)
    for _ in range(3):
        ours.partial_fit(X, y, sample_weight=sw)
        theirs.partial_fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    ours, theirs = _pair("c3", backend, "float64", solver="sgd", shuffle=False, batch_size=60,
                         learning_rate_init=0.1, alpha=0.1, early_stopping=True,
                         validation_fraction=0.3, tol=0.0, n_iter_no_change=100)  # fmt: skip
    _same_start(ours, theirs, X, y)
    for estimator in (ours, theirs):
        estimator.validation_scores_, estimator.best_validation_score_ = [], -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=10).fit(X, y, sample_weight=sw)
        theirs.set_params(max_iter=10).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, atol=1e-12)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, abs=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    # the scores are weighted: those of the held-out rows' weighted accuracy
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    _, X_val, _, y_val, _, w_val = train_test_split(X, y, sw, random_state=0, test_size=0.3)
    best = accuracy_score(y_val, ours.predict(X_val), sample_weight=w_val)
    assert ours.best_validation_score_ == pytest.approx(best, abs=1e-12)


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("setting", sorted(_WEIGHTED))
def test_poisson_regressor_is_scikit_learns(backend, dtype, setting):
    X, y = _problem("p2")
    ours, theirs = _pair("p2", backend, dtype, shuffle=False, loss="poisson", **_WEIGHTED[setting])
    rtol = 2e-5 if setting.startswith("adam") else 1e-9
    _compare_fits(ours, theirs, X, y, rtol, sample_weight=_weights())
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert ours.network_.model.head.loss.name == "poisson"
    assert np.all(an.to_numpy(ours.predict(X)) > 0)


@needs_sklearn
@pytest.mark.dtypes("float64")
@pytest.mark.parametrize("setting", sorted(_WEIGHTED))
def test_multilabel_classifier_is_scikit_learns(backend, dtype, setting):
    from sklearn.metrics import accuracy_score

    X, y = _problem("cm")
    ours, theirs = _pair("cm", backend, dtype, shuffle=False, **_WEIGHTED[setting])
    rtol = 2e-5 if setting.startswith("adam") else 1e-9
    _compare_fits(ours, theirs, X, y, rtol)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.n_outputs_ == theirs.n_outputs_ == 3
    predicted, proba = ours.predict(X), ours.predict_proba(X)
    assert predicted.shape == proba.shape == (60, 3)
    assert predicted.dtype == theirs.predict(X).dtype
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(int))
    # the subset accuracy, as scikit-learn's
    assert ours.score(X, y) == accuracy_score(y, predicted) == np.mean(np.all(predicted == y, 1))
    assert ours.score(X, y) == theirs.score(X, y)
    weighted = ours.score(X, y, sample_weight=_weights())
    assert weighted == pytest.approx(theirs.score(X, y, sample_weight=_weights()), abs=1e-15)


@needs_sklearn
@pytest.mark.dtypes("float64")
def test_lbfgs_and_schedules_under_array_api_dispatch(backend, dtype):
    """lbfgs moves only the flat parameter vector through the host: on any namespace and
    device it gives the NumPy fit's numbers, and so does an SGD schedule."""
    import sklearn

    MLPClassifier, MLPRegressor = _estimators()
    X, y = _problem("c3")
    Xb, yb = backend.asarray(X, dtype), backend.asarray(y)
    lbfgs = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15, random_state=0)
    sgd = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling",
               learning_rate_init=0.2, max_iter=5, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf_ref = _reference(MLPClassifier, X, y, **lbfgs)
        reg_ref = _reference(MLPRegressor, X, X[:, 0], **sgd)
        with sklearn.config_context(array_api_dispatch=True):
            clf = MLPClassifier(**lbfgs).fit(Xb, yb)
            reg = MLPRegressor(**sgd).fit(Xb, Xb[:, 0])
            proba, predicted = clf.predict_proba(Xb), reg.predict(Xb)
    assert clf.network_.backend is backend and reg.network_.backend is backend
    assert_on_backend(proba, backend)
    assert_on_backend(predicted, backend)
    assert clf.n_iter_ == clf_ref.n_iter_
    assert clf.loss_ == pytest.approx(clf_ref.loss_, rel=1e-9)
    np.testing.assert_allclose(an.to_numpy(proba), clf_ref.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(reg.loss_curve_, reg_ref.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(an.to_numpy(predicted), reg_ref.predict(X), rtol=1e-9, atol=1e-12)


@needs_sklearn
def test_verbose_prints_scikit_learns_lines(capsys):
    X, y = _problem("c3")
    backend = an.get_backend("numpy")
    ours, theirs = _pair("c3", backend, "float64", solver="sgd", shuffle=False,
                         learning_rate="adaptive", learning_rate_init=0.1, tol=0.05,
                         n_iter_no_change=1, batch_size=16, alpha=0.0)  # fmt: skip
    _same_start(ours, theirs, X, y)
    printed = []
    for estimator in (ours, theirs):
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.set_params(verbose=True, max_iter=8).fit(X, y)
        printed.append(capsys.readouterr().out.splitlines())
    assert printed[0] == printed[1]
    assert any("Setting learning rate to" in line for line in printed[0])
