"""scikit-learn estimators backed by anynet: :class:`MLPClassifier` and :class:`MLPRegressor`.

They follow scikit-learn's conventions and its ``MLPClassifier``/``MLPRegressor``
parameter names (``hidden_layer_sizes``, ``solver``, ``alpha``, ``max_iter``, ...), pass
``sklearn.utils.estimator_checks.check_estimator``, and work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``. Underneath, an :class:`anynet.Network` trains
on any anynet backend (``backend=``, ``device=``)::

    from anynet.sklearn import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0)
    clf.fit(X_train, y_train).score(X_test, y_test)

With ``sklearn.set_config(array_api_dispatch=True)`` they take arrays of any anynet
backend (torch tensors, JAX or CuPy arrays, array-api-strict arrays) and return arrays
of the same namespace and device; without it, inputs become NumPy arrays and so do the
results, as everywhere in scikit-learn.

scikit-learn is an optional dependency: ``pip install anynet[sklearn]``. ``import anynet``
never imports it; ``import anynet.sklearn`` does.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import array_namespace

try:
    import scipy.optimize
    import scipy.sparse
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        check_classification_targets,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d
except ImportError as exc:  # tested by hiding sklearn from sys.modules
    raise ImportError(
        "anynet.sklearn needs scikit-learn, which is not installed here: "
        "pip install anynet[sklearn]  (or: pip install scikit-learn)"
    ) from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.5

    def _validate_data(estimator: Any, X: Any, y: Any = "no_validation", **kwargs: Any) -> Any:
        return estimator._validate_data(X, y, **kwargs)


try:  # scikit-learn >= 1.6: scipy's iprint, or its replacement where scipy dropped it
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict as _lbfgs_options
except ImportError:  # pragma: no cover - scikit-learn 1.5

    def _lbfgs_options(key: str, value: Any) -> dict[str, Any]:
        return {key: value}


from .backend import BACKEND_NAMES, Backend, backend_of, get_backend, to_numpy
from .callbacks import Progress
from .engine import train
from .engine.fit import epoch_plan
from .engine.resume import Start
from .errors import DivergenceError, InputError
from .functional import value_and_grad
from .network import Network
from .optimizers import SGD, Adam, Optimizer, get_schedule
from .registry import activations as activation_registry
from .registry import optimizers as optimizer_registry

__all__ = ["MLPClassifier", "MLPRegressor"]

Array = Any

#: scikit-learn's activation names, as anynet's; other names are looked up in anynet's registry.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


# -- helpers ---------------------------------------------------------------------------


def _host(value: Any) -> Any:
    """Arrays of a non-NumPy backend copied to NumPy; anything else (lists, pandas) unchanged."""
    kind = backend_of(value)
    if kind is None or isinstance(value, np.ndarray):
        return value
    return to_numpy(value)


def _dispatching() -> bool:
    """Whether scikit-learn's array API dispatch is on."""
    return bool(sklearn.get_config().get("array_api_dispatch", False))


def _backend_of_array(array: Any) -> Backend:
    """The anynet backend (and device) an array lives on."""
    kind = backend_of(array)
    if kind is None or isinstance(array, np.ndarray):
        return get_backend("numpy")
    return get_backend(kind, array.device)


def _move(array: Any, backend: Backend, dtype: str | None = None) -> Array:
    """``array`` on ``backend`` (cast to ``dtype``): as is when it lives there, else via host."""
    if backend.owns(array):
        array = backend.detached(array)
        if dtype is not None and array.dtype != backend.dtype(dtype):
            array = backend.xp.astype(array, backend.dtype(dtype))
        return array
    return backend.asarray(np.asarray(to_numpy(array)), dtype)


def _float_dtypes(X: Any) -> Any:
    """The float dtypes scikit-learn's validation may keep: those of ``X``'s namespace under
    dispatch (a torch tensor stays a torch tensor), NumPy's otherwise."""
    if _dispatching() and backend_of(X) is not None and not isinstance(X, np.ndarray):
        xp = array_namespace(X)
        return [xp.float64, xp.float32]
    return (np.float64, np.float32)


def _dense(X: Any) -> Any:
    """A scipy sparse matrix as a dense array (anynet's layers take dense inputs)."""
    return X.toarray() if scipy.sparse.issparse(X) else X


#: scikit-learn's message when training ends with non-finite weights (or, in anynet, a
#: non-finite loss, which the engine stops at).
_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large "
    "values and need to be preprocessed."
)


def _hidden_activations() -> set[str]:
    """scikit-learn's names and anynet's activations allowed on hidden layers."""
    names = {name for name in activation_registry.names()
             if not activation_registry.get(name)().output_only}  # fmt: skip
    return {*_ACTIVATIONS, *names}


def _constraints() -> dict[str, Any]:
    """scikit-learn 1.9's ``BaseMultilayerPerceptron._parameter_constraints``, with anynet's
    activations and optimizers among the options, and anynet's three parameters."""
    return {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(_hidden_activations())],
        "solver": [StrOptions({"lbfgs", *optimizer_registry.names()})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Options(numbers.Real, {np.inf}),
        ],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "backend": [StrOptions(set(BACKEND_NAMES)), Backend, None],
        "device": "no_validation",
        "dtype": [StrOptions({"float32", "float64"}), None],
    }


def _same_place(a: Backend, b: Backend) -> bool:
    return a.name == b.name and str(a.device) == str(b.device)


def _float_name(X: Array) -> str:
    """``"float32"`` for float32 data, ``"float64"`` otherwise."""
    if scipy.sparse.issparse(X):
        return "float32" if X.dtype == np.float32 else "float64"
    xp = array_namespace(X)
    return "float32" if X.dtype == xp.float32 else "float64"


# -- the estimators --------------------------------------------------------------------


class _BaseMLP(BaseEstimator):
    """What :class:`MLPClassifier` and :class:`MLPRegressor` share."""

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: str | Backend | None = None,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # -- subclass hooks ------------------------------------------------------------------
    _is_classifier = False

    def _validate_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> Any:
        raise NotImplementedError

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        raise NotImplementedError

    def _check_loss(self) -> None:
        """Refuse a loss the estimator validates but anynet cannot train yet."""

    def _loss_name(self) -> str | None:
        """anynet's loss of the network (None: the output activation's default)."""
        return None

    def _loss_scales(self, n_outputs: int) -> tuple[float, float]:
        """``(value, gradient)`` factors from anynet's loss to scikit-learn's."""
        return 1.0, 1.0

    def _score_host(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        raise NotImplementedError

    # -- checks --------------------------------------------------------------------------
    @property
    def _parameter_constraints(self) -> dict[str, Any]:
        """scikit-learn's constraints, widened to anynet's own activations and optimizers
        (read at each fit, so registered ones count), plus ``backend``, ``device``, ``dtype``."""
        return _constraints()

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        for index, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral):
                raise ValueError(
                    f"hidden_layer_sizes must hold positive integers, got {sizes} "
                    f"(hidden_layer_sizes[{index}] is {size!r})"
                )
        return [int(size) for size in sizes]

    def _hidden_activation(self) -> str:
        return _ACTIVATIONS.get(self.activation, self.activation)

    def _check_params(self) -> None:
        """Check every hyperparameter (scikit-learn checks in fit, never in __init__)."""
        self._validate_params()
        self._hidden_sizes()
        self._check_loss()

    def _seed(self) -> int:
        """anynet's seed: ``random_state`` itself when it is an int, else one drawn from it."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _batch_size(self, n_samples: int) -> int:
        if isinstance(self.batch_size, str):
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to "
                "be clipped",
                stacklevel=5,
            )
        return min(int(self.batch_size), n_samples)

    def _optimizer(
        self, batch_size: float, lr: float, n_outputs: int, weight: float = 1.0
    ) -> Optimizer:
        """The solver as an anynet optimizer taking scikit-learn's steps.

        scikit-learn's batch gradient is ``g_sk = s * g + alpha / S * W``, where ``g`` is
        the gradient of anynet's (weighted mean) loss, ``S`` the batch's sum of sample
        weights (its size without weights) and ``s`` the gradient factor of
        :meth:`_loss_scales` (1 for one-label classifiers, ``n_outputs`` for multilabel
        and Poisson, ``n_outputs / 2`` for the squared error). SGD takes ``lr * g_sk`` as
        ``(s * lr) * (g + l2 * W)`` with ``l2 = alpha / (S * s)``; Adam, invariant to the
        gradient's scale but for ``epsilon``, takes ``g + l2 * W`` with ``epsilon / s``.
        ``S`` is taken as ``batch_size * weight`` (``weight``: the mean sample weight):
        exact for one batch, and for batches of equal weight sums.
        """
        _, s = self._loss_scales(n_outputs)
        l2 = float(self.alpha) / (batch_size * weight * s)
        cls = optimizer_registry.get(self.solver, "solver")
        if cls is SGD:
            momentum = float(self.momentum)
            return SGD(lr=s * lr, l2=l2, momentum=momentum,
                       nesterov=bool(self.nesterovs_momentum) and momentum > 0)  # fmt: skip
        if cls is Adam:
            return Adam(lr=lr, l2=l2, betas=(float(self.beta_1), float(self.beta_2)),
                        eps=float(self.epsilon) / s)  # fmt: skip
        return cls(lr=s * lr, l2=l2)

    # -- where the data lives and where the network computes -------------------------------
    def _io_backend(self, X: Array) -> Backend:
        """Where results go: the namespace and device of ``X`` under array API dispatch,
        NumPy otherwise (``X`` was converted by scikit-learn's validation)."""
        return _backend_of_array(X) if _dispatching() else get_backend("numpy")

    def _compute_backend(self, io: Backend) -> Backend:
        if self.backend is not None or self.device is not None:
            return get_backend(self.backend, self.device)
        return io if _dispatching() else get_backend()

    def _check_namespace(self, X: Array, method: str) -> Backend:
        """The backend of ``X``'s results; under dispatch it must be that of fit's inputs."""
        io = self._io_backend(X)
        fit_io = self._fit_io
        if _dispatching() and not _same_place(io, fit_io):
            raise ValueError(
                f"Inputs passed to {type(self).__name__}.{method}() must use the same "
                f"namespace and the same device as those passed to fit(): fit got "
                f"{fit_io.describe()} arrays, {method} got {io.describe()} arrays. Pass X on "
                f"{fit_io.describe()}, or fit again on {io.describe()}."
            )
        return io

    # -- fitting ---------------------------------------------------------------------------
    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[Array, Any]:
        X, y = _validate_data(
            self,
            X,
            _host(y),
            reset=reset,
            accept_sparse=["csr", "csc"],
            dtype=_float_dtypes(X),
            multi_output=True,
            y_numeric=not self._is_classifier,
        )
        y = _host(y)
        if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y  # a sparse X stays sparse: densified a batch at a time

    def _new_network(
        self, n_features: int, n_outputs: int, compute: Backend, dtype: str, seed: int
    ) -> None:
        hidden = self._hidden_sizes()
        activation = self._hidden_activation()
        output, self.out_activation_ = self._output_activation(n_outputs)
        self.network_ = Network(
            [n_features, *hidden, n_outputs],
            [activation] * len(hidden) + [output],
            self._loss_name(),
            init="xavier",
            seed=seed,
            dtype=dtype,
            backend=compute,
        )
        self.n_layers_ = len(hidden) + 2
        self.n_outputs_ = n_outputs
        self.n_iter_ = 0
        self.t_ = 0
        self._epochs_seen = 0
        self._learning_rate: float | None = None
        self._state_lr: float | None = None
        if self.solver != "lbfgs":
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(
        self, X: Any, y: Any, *, incremental: bool, classes: Any = None, sample_weight: Any = None
    ) -> _BaseMLP:
        self._check_params()
        seed = self._seed()  # drawn once per call when random_state is None or a RandomState
        fitted = hasattr(self, "network_")
        first = not fitted or (not self.warm_start and not incremental)
        X, y = self._validate(X, y, reset=first)
        t, n_outputs = self._validate_targets(
            y, first=first, incremental=incremental, classes=classes
        )
        weights = None  # host float64 weights, as scikit-learn checks them
        if sample_weight is not None:
            # anynet's weighted losses take weights >= 0 (scikit-learn would accept others)
            checked = _check_sample_weight(_host(sample_weight), X, ensure_non_negative=True)
            weights = np.asarray(to_numpy(checked), dtype=np.float64)
        io = self._io_backend(X)
        if first:
            compute = self._compute_backend(io)
            dtype = self.dtype or _float_name(X)
            if dtype == "float64" and self.dtype is None and compute.float64_problem():
                dtype = "float32"  # following the data, where float64 cannot be computed
            self._new_network(X.shape[1], n_outputs, compute, dtype, seed)
        elif n_outputs != self.n_outputs_:
            raise ValueError(
                f"y must have {self.n_outputs_} output column(s) as in the previous fit, "
                f"got {n_outputs}"
            )
        if not first and self.solver != "lbfgs" and not hasattr(self, "loss_curve_"):
            self._new_curves()  # warm start of a stochastic solver after an lbfgs fit
        self._fit_io = io
        net = self.network_
        targets = _move(t, net.backend, None if self._is_classifier else net.dtype)
        try:
            if self.solver == "lbfgs":  # full batch: the one batch is the whole data
                x = _move(_dense(X), net.backend, net.dtype)
                self._fit_lbfgs(x, targets, n_outputs, weights)
            else:
                self._fit_stochastic(X, targets, t, seed, n_outputs, incremental, weights)
        except DivergenceError as error:
            raise ValueError(_NON_FINITE) from error
        xp = net.backend.xp
        if not all(bool(xp.all(xp.isfinite(value))) for value in net.params.values()):
            raise ValueError(_NON_FINITE)
        return self

    def _new_curves(self) -> None:
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    # -- L-BFGS ----------------------------------------------------------------------------
    def _fit_lbfgs(self, x: Array, t: Array, n_outputs: int, weights: Any = None) -> None:
        """scipy's L-BFGS-B on scikit-learn's objective, with anynet's gradients.

        The loss and its hand-written gradients are computed on the network's backend and
        device; the parameters travel to the host as one float64 vector per evaluation.
        The objective is scikit-learn's: the loss (half the squared error for the
        regressor) plus ``0.5 * alpha * sum(W**2) / n_samples``; with ``weights`` the
        weighted mean loss plus ``0.5 * alpha * sum(W**2) / sum(weights)``.
        """
        net = self.network_
        backend, model = net.backend, net.model
        keys, decay = model.param_keys, model.decay_keys
        host = {key: np.asarray(to_numpy(value), dtype=np.float64)
                for key, value in net.params.items()}  # fmt: skip
        shapes = [host[key].shape for key in keys]
        bounds = np.cumsum([0] + [int(np.prod(shape)) for shape in shapes])
        n = x.shape[0] if weights is None else float(np.sum(weights))
        engine_weights = self._engine_weights(weights)
        alpha = float(self.alpha)
        value_scale, grad_scale = self._loss_scales(n_outputs)

        def unpack(w: np.ndarray) -> dict[str, np.ndarray]:
            return {key: w[bounds[i] : bounds[i + 1]].reshape(shapes[i])
                    for i, key in enumerate(keys)}  # fmt: skip

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            parts = unpack(w)
            params = {key: backend.asarray(part, net.dtype) for key, part in parts.items()}
            with backend.float_errors_silenced():
                value, grads = value_and_grad(model, params, x, t, sample_weight=engine_weights)
            loss = value_scale * float(to_numpy(value))
            pieces = []
            for key in keys:
                grad = grad_scale * np.asarray(to_numpy(grads[key]), dtype=np.float64).ravel()
                if key in decay:
                    loss += 0.5 * alpha * float(np.dot(parts[key].ravel(), parts[key].ravel())) / n
                    grad = grad + (alpha / n) * parts[key].ravel()
                pieces.append(grad)
            return loss, np.concatenate(pieces)

        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        result = scipy.optimize.minimize(
            objective,
            np.concatenate([host[key].ravel() for key in keys]),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxfun": self.max_fun,
                "maxiter": self.max_iter,
                "gtol": self.tol,
                **_lbfgs_options("iprint", iprint),
            },
        )
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        net.set_params(unpack(np.asarray(result.x)))

    # -- the stochastic solvers ---------------------------------------------------------
    def _engine_weights(self, weights: Any) -> Array | None:
        """``weights`` on the network's backend for the weighted mean loss; None where
        they are all equal (the weighted mean is then the plain one)."""
        if weights is None or np.all(weights == weights[0]):
            return None
        net = self.network_
        return net._weights(weights, weights.shape[0])

    def _fit_stochastic(
        self, X: Any, t: Array, t_host: Any, seed: int, n_outputs: int, incremental: bool,
        weights: Any = None,
    ) -> None:  # fmt: skip
        """scikit-learn's ``_fit_stochastic``: epochs of anynet's engine (one call each, so
        the learning rate may change between them) with its schedules and stopping rule.
        ``X``: validated data (a SciPy sparse matrix stays sparse and trains a batch at a
        time: ``Network.fit``'s host rows). ``weights``: host sample weights (None:
        unweighted), split with the rows for early stopping, whose validation score they
        weight, as scikit-learn's."""
        net = self.network_
        sparse = scipy.sparse.issparse(X)
        x = X if sparse else _move(X, net.backend, net.dtype)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental or self._learning_rate is None:
            self._learning_rate = float(self.learning_rate_init)  # a fresh optimizer
            net.optimizer_state = None
        early_stopping = bool(self.early_stopping)
        validation = None
        if early_stopping:
            # scikit-learn stratifies when there is one output column (two classes)
            stratify = np.asarray(t_host) if self._is_classifier and n_outputs == 1 else None
            train_index, val_index = train_test_split(
                np.arange(x.shape[0]), random_state=check_random_state(seed),
                test_size=self.validation_fraction, stratify=stratify,
            )  # fmt: skip
            if val_index.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            xp, backend = net.backend.xp, net.backend
            rows, held = backend.asarray(train_index), backend.asarray(val_index)
            validation = (
                x[val_index] if sparse else xp.take(x, held, axis=0),  # predict batches it
                np.asarray(t_host)[val_index],
                None if weights is None else weights[val_index],
            )
            x = x[train_index] if sparse else xp.take(x, rows, axis=0)
            t = xp.take(t, rows, axis=0)
            weights = None if weights is None else weights[train_index]
        if sparse:
            x = net._training_inputs(x)
        n = x.shape[0]
        batch_size = self._batch_size(n)
        w = self._engine_weights(weights)
        best_params = None
        schedule = self.learning_rate if self.solver == "sgd" else "constant"
        self.n_iter_ = 0
        for _ in range(int(self.max_iter)):
            loss = self._epoch(x, t, seed, batch_size, n_outputs, weights, w)
            self.n_iter_ += 1
            self.loss_ = loss
            self.t_ += n
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if early_stopping:
                assert validation is not None
                if self._update_validation(*validation):
                    best_params = net.params
            else:
                self._update_loss()
            if schedule == "invscaling":
                self._learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** float(
                    self.power_t
                )
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (
                    f"{what} did not improve more than tol={self.tol:f} for "
                    f"{self.n_iter_no_change} consecutive epochs."
                )
                if schedule != "adaptive":
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
                if self._learning_rate <= 1e-6:
                    if self.verbose:
                        print(msg + " Learning rate too small. Stopping.")
                    break
                self._learning_rate /= 5.0
                if self.verbose:
                    print(msg + f" Setting learning rate to {self._learning_rate:f}")
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                    "the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,  # the caller of fit
                )
        if early_stopping and best_params is not None:
            net.set_params(best_params)  # scikit-learn restores the best weights

    def _epoch(
        self, x: Array, t: Array, seed: int, batch_size: int, n_outputs: int,
        weights: Any = None, w: Array | None = None,
    ) -> float:  # fmt: skip
        """One epoch of the engine at the current learning rate; scikit-learn's loss of it.

        ``weights``: the host sample weights, ``w`` the engine's (None where equal).

        SGD's velocity is anynet's (PyTorch's) ``v``, scikit-learn's is ``-lr * v``: when the
        rate changes, ``v`` is rescaled by ``old / new`` so both take the same steps.
        """
        net = self.network_
        lr = float(self._learning_rate)  # type: ignore[arg-type]
        mean_weight = 1.0 if weights is None else float(np.mean(weights))
        optimizer = self._optimizer(batch_size, lr, n_outputs, mean_weight)
        xp = net.backend.xp
        fresh = optimizer.init(net.params, xp=xp)
        state = net.optimizer_state
        if state is None or sorted(state) != sorted(fresh):
            state, self._state_lr = fresh, optimizer.lr
        elif (
            self._state_lr is not None
            and self._state_lr != optimizer.lr
            and isinstance(optimizer, SGD)
        ):
            ratio = self._state_lr / optimizer.lr
            state = {key: value * ratio if key.startswith("velocity.") else value
                     for key, value in state.items()}  # fmt: skip
        self._state_lr = optimizer.lr
        decay = net.model.decay_keys
        squares = 0.0
        if self.alpha:  # read back once per epoch, with the epoch's loss
            squares = sum(float(xp.sum(value * value)) for key, value in net.params.items()
                          if key in decay)  # fmt: skip
        # epoch _epochs_seen of the one engine loop: its order is default_rng([seed, epoch]),
        # its loss the mean of the batch losses weighted by size, as scikit-learn's
        epoch = self._epochs_seen
        start = Start(epoch=epoch, seed=seed, optimizer_state=state, history=None)
        targets = net._targets(t, x.shape[0])
        loop = train(
            net.model, net.backend, net.dtype, net.params, net.state, x, targets,
            epochs=epoch + 1, optimizer=optimizer, batch_size=batch_size,
            shuffle=bool(self.shuffle), seed=seed, start=start, sample_weight=w,
        )  # fmt: skip
        history = net._drive(loop, [], None, Progress(0, 1), epoch + 1)
        self._epochs_seen += 1
        value_scale, _ = self._loss_scales(n_outputs)
        # the L2 term of each batch, 0.5 * alpha * squares / (its sum of weights), weighted
        # by the batch's size, at the epoch's first weights: exact for one batch
        n = x.shape[0]
        if weights is None:
            share = math.ceil(n / batch_size) / n  # sum over batches of size / (n * size)
        else:
            order, _ = epoch_plan(get_schedule(None), lr, seed, epoch, n, batch_size,
                                  bool(self.shuffle))  # fmt: skip
            ordered = weights if order is None else weights[order]
            share = 0.0
            for first in range(0, n, batch_size):
                part = ordered[first : first + batch_size]
                total = float(np.sum(part))  # a batch of zero weights adds no L2 step
                share += part.shape[0] / (n * total) if total > 0 else 0.0
        penalty = 0.5 * float(self.alpha) * squares * share
        return value_scale * float(history.loss[-1]) + penalty

    def _update_loss(self) -> None:
        loss = self.loss_curve_[-1]
        if self.best_loss_ is None:  # a warm start after a fit with early stopping
            self.best_loss_ = np.inf
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if loss < self.best_loss_:
            self.best_loss_ = loss

    def _update_validation(self, x_val: Array, y_val: Any, w_val: Any = None) -> bool:
        """Score the held-out part (weighted by ``w_val``, as scikit-learn's); whether it
        is the best so far."""
        out = np.asarray(to_numpy(self.network_.predict(x_val)))
        score = self._score_host(y_val, out, w_val) if np.isfinite(out).all() else np.nan
        if self.validation_scores_ is None or self.best_validation_score_ is None:
            # a warm start with early stopping after a fit without
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def _check_solver(self) -> bool:
        if self.solver == "lbfgs":
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    # -- prediction ------------------------------------------------------------------------
    def _inputs(self, X: Any, method: str) -> tuple[Array, Backend]:
        check_is_fitted(self)
        X = _validate_data(
            self, X, reset=False, accept_sparse=["csr", "csc"], dtype=_float_dtypes(X)
        )
        io = self._check_namespace(X, method)
        net = self.network_
        if scipy.sparse.issparse(X):  # the network densifies one inference batch at a time
            return X, io
        return _move(X, net.backend, net.dtype), io

    @staticmethod
    def _result(array: Array, io: Backend) -> Array:
        return array if io.owns(array) else io.asarray(np.asarray(to_numpy(array)))

    def _layer_keys(self, weights: bool) -> list[str]:
        net = self.network_
        decay = net.model.decay_keys
        return [key for key in net.model.param_keys if (key in decay) == weights]

    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices, ``coefs_[i]`` of shape ``(n_in, n_out)`` (scikit-learn's layout:
        the transpose of anynet's ``W``), arrays of the namespace of fit's inputs.

        Settable, as in scikit-learn: a list of arrays (any backend, NumPy, lists) of these
        shapes replaces the weights, which the next ``fit`` with ``warm_start=True`` or
        ``partial_fit`` starts from."""
        check_is_fitted(self)
        net = self.network_
        xp = net.backend.xp
        return [self._result(xp.permute_dims(net.params[key], (1, 0)), self._fit_io)
                for key in self._layer_keys(True)]  # fmt: skip

    @coefs_.setter
    def coefs_(self, value: Sequence[Any]) -> None:
        self._set_layers("coefs_", value, weights=True)

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors, ``intercepts_[i]`` of shape ``(n_out,)``; settable as ``coefs_``."""
        check_is_fitted(self)
        net = self.network_
        return [self._result(net.params[key], self._fit_io) for key in self._layer_keys(False)]

    @intercepts_.setter
    def intercepts_(self, value: Sequence[Any]) -> None:
        self._set_layers("intercepts_", value, weights=False)

    def _set_layers(self, name: str, value: Sequence[Any], *, weights: bool) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(
                f"{name} can be set on a fitted {type(self).__name__} only (fit or "
                "partial_fit builds the network whose shapes it must have)"
            )
        keys = self._layer_keys(weights)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputError(
                f"{name} must be a list of {len(keys)} arrays, got {type(value).__name__}"
            )
        if len(value) != len(keys):
            raise InputError(f"{name} must be a list of {len(keys)} arrays, got {len(value)}")
        net = self.network_
        params = net.params
        new = {}
        for index, (key, array) in enumerate(zip(keys, value, strict=True)):
            host = np.asarray(to_numpy(array) if backend_of(array) is not None else array)
            if weights and host.ndim == 2:
                host = host.T
            expected = tuple(params[key].shape)
            if host.shape != expected:
                shape = expected[::-1] if weights else expected
                got = host.shape[::-1] if weights and host.ndim == 2 else host.shape
                raise InputError(f"{name}[{index}] must have shape {shape}, got {got}")
            new[key] = host
        net.set_params({**params, **new})

    # -- pickling: a Network holds modules, so it travels as a plain record ------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        net = state.pop("network_", None)
        if net is not None:
            state["_network_record"] = {
                "architecture": net.architecture(),
                "backend": net.backend.name,
                "device": str(net.backend.device),
                "params": {k: to_numpy(v) for k, v in net.params.items()},
                "state": {k: to_numpy(v) for k, v in net.state.items()},
                "optimizer_state": None
                if net.optimizer_state is None
                else {k: to_numpy(v) for k, v in net.optimizer_state.items()},
            }
        io = state.pop("_fit_io", None)
        if io is not None:
            state["_fit_io_record"] = (io.name, str(io.device))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        record = state.pop("_network_record", None)
        io = state.pop("_fit_io_record", None)
        super().__setstate__(state)
        if record is not None:
            backend = _restore_backend(record["backend"], record["device"])
            net = Network.from_architecture(record["architecture"], backend=backend)
            net.set_params(record["params"])
            if record["state"]:
                net.set_state(record["state"])
            if record["optimizer_state"] is not None:
                net.optimizer_state = {
                    k: backend.asarray(v) for k, v in record["optimizer_state"].items()
                }
            self.network_ = net
        if io is not None:
            self._fit_io = _restore_backend(*io)


def _restore_backend(name: str, device: str) -> Backend:
    """The backend of a pickled estimator: the same device when it exists here, else the
    backend's default device."""
    try:
        return get_backend(name, device)
    except InputError:
        return get_backend(name)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier on any anynet backend, scikit-learn style.

    Two classes train a sigmoid output (binary cross-entropy), more a softmax output
    (categorical cross-entropy). Labels may be of any kind (ints, strings, ...):
    ``classes_`` holds them sorted and ``predict`` returns them.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(100,)
        Width of each hidden layer (each > 0).
    activation : str, default="relu"
        Hidden activation: scikit-learn's ``"identity"``, ``"logistic"``, ``"tanh"``,
        ``"relu"``, or any anynet hidden activation (``"leaky_relu"``, registered ones).
    solver : str, default="adam"
        ``"lbfgs"`` (scipy's L-BFGS-B on the whole data, anynet's gradients), ``"adam"``
        (with ``beta_1``, ``beta_2``, ``epsilon``), ``"sgd"`` (with ``momentum``,
        ``nesterovs_momentum``, ``learning_rate``, ``power_t``), or any anynet optimizer
        name (``"momentum"``, ``"nesterov"``, ``"adamw"``, registered ones).
    alpha : float, default=0.0001
        L2 penalty as scikit-learn's: ``0.5 * alpha * sum(W**2) / n`` added to the loss
        of each batch of ``n`` samples (all samples for lbfgs), on the weight matrices.
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; ``"auto"`` is ``min(200, n_samples)``;
        larger than ``n_samples``, clipped with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of ``solver="sgd"``, scikit-learn's rules: ``"invscaling"`` sets
        ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch; ``"adaptive"``
        divides the rate by 5 where training would stop for lack of progress, and stops
        once the rate is at most 1e-6.
    learning_rate_init : float, default=0.001
        The initial learning rate of the stochastic solvers.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Most epochs per ``fit`` (stochastic solvers), most iterations (lbfgs).
    shuffle : bool, default=True
        Reshuffle the samples every epoch (an order drawn on the host from the seed, the
        same on every backend; not scikit-learn's order).
    random_state : int, RandomState or None, default=None
        An int is anynet's ``seed`` itself (same initial weights as
        ``anynet.Network(..., seed=random_state)``, on every backend); otherwise a seed is
        drawn from it.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no progress; lbfgs's ``gtol``.
    verbose : bool, default=False
        Print the loss every epoch (scipy's progress for lbfgs).
    warm_start : bool, default=False
        ``fit`` continues from the current weights (the optimizer starts afresh).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``, in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when the
        validation score stops improving; the best weights are kept. As in scikit-learn
        1.9, the split is stratified where there is one output (two classes).
    validation_fraction : float, default=0.1
        Held-out fraction with ``early_stopping``, in [0, 1); fewer than 2 held-out
        samples are refused.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int or np.inf, default=10
        Epochs without progress (by ``tol``) before stopping (or, with
        ``"adaptive"``, dividing the rate).
    max_fun : int, default=15000
        Most loss evaluations of lbfgs.
    backend : str or anynet.Backend, optional
        Where the network computes (``"numpy"``, ``"torch"``, ``"jax"``, ...). Default: the
        backend of ``X`` under ``array_api_dispatch``, else anynet's default backend
        (:func:`anynet.use_backend`, ``ANYNET_BACKEND``, NumPy). Data of another backend
        are copied through the host, once per call.
    device : str or device object, optional
        Device of ``backend`` (``"cpu"``, ``"gpu"``, ``"gpu:1"``, ...).
    dtype : {"float32", "float64"}, optional
        Dtype of the network. Default: that of ``X`` (integers become float64), or
        float32 where the backend cannot compute in float64 (JAX without
        ``JAX_ENABLE_X64``).

    Attributes
    ----------
    classes_ : numpy.ndarray of shape (n_classes,)
        The class labels, sorted (a NumPy array whatever the input's namespace);
        ``arange(n_labels)`` for a multilabel ``y``.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray of shape (n_features_in_,)
        Only when ``X`` had string feature names (pandas).
    loss_curve_ : list of float
        scikit-learn's training loss of each epoch (stochastic solvers only): the
        cross-entropy plus the L2 term, averaged over the epoch's batches by size. anynet
        evaluates each batch's L2 term at the epoch's first weights: exact with one batch.
    loss_ : float
        The last epoch's loss, or lbfgs's final objective.
    n_iter_ : int
        Epochs (iterations for lbfgs) of the last ``fit`` or ``partial_fit`` call, as in
        scikit-learn (1 after each ``partial_fit``).
    t_ : int
        Training samples seen by the stochastic solvers, over all calls (0 with lbfgs).
    best_loss_ : float or None
        Lowest training loss; None with ``early_stopping``.
    validation_scores_ : list of float or None
        Validation accuracy per epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units (1 for two classes, one per label for multilabel).
    out_activation_ : str
        ``"logistic"`` (two classes, multilabel) or ``"softmax"``.
    coefs_, intercepts_ : list of arrays
        Weights ``(n_in, n_out)`` and biases per layer (scikit-learn's layout).
    network_ : anynet.Network
        The trained network (its ``params``, ``predict``, ``save``, ``to``, ...).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from anynet.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    """

    _is_classifier = True

    def _validate_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> Any:
        if type_of_target(y) == "multilabel-indicator":
            return self._multilabel_targets(y, first=first, incremental=incremental)
        if getattr(self, "_multilabel", False) and not (first and not incremental):
            raise ValueError(
                "y must be a multilabel indicator matrix (n_samples, n_labels) as in the "
                f"previous fit, got {type_of_target(y)!r} targets"
            )
        self._multilabel = False
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first and not incremental:
            self.classes_ = np.unique(y)
        elif not incremental or self.warm_start:
            labels = unique_labels(y)
            if self.warm_start and set(labels) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {labels}"
                )
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least 2 classes, got 1 class: {list(self.classes_)}")
        codes = np.searchsorted(self.classes_, y)
        inside = codes < len(self.classes_)
        known = np.zeros(len(y), dtype=bool)
        known[inside] = self.classes_[codes[inside]] == y[inside]
        if not known.all():
            raise ValueError(
                "`y` has classes not in `self.classes_`. "
                f"`self.classes_` has {self.classes_}. 'y' has {unique_labels(y)}."
            )
        n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        return codes.astype(np.int64), n_outputs

    def _multilabel_targets(self, y: Any, *, first: bool, incremental: bool) -> Any:
        """An indicator matrix ``(n, K)``: K sigmoid outputs, ``classes_ = arange(K)`` as
        scikit-learn's ``LabelBinarizer`` sets them."""
        y = np.asarray(y)
        n_labels = y.shape[1]
        if first or not hasattr(self, "classes_"):  # partial_fit too: scikit-learn's binarizer
            self.classes_ = np.arange(n_labels)
        elif not getattr(self, "_multilabel", False) or len(self.classes_) != n_labels:
            raise ValueError(
                f"y must have the {len(self.classes_)} classes of the previous fit, got a "
                f"multilabel indicator matrix of {n_labels} labels"
            )
        self._multilabel = True
        return (y > 0).astype(np.int64), n_labels

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        if n_outputs == 1 or getattr(self, "_multilabel", False):
            return "sigmoid", "logistic"
        return "softmax", "softmax"

    def _loss_scales(self, n_outputs: int) -> tuple[float, float]:
        # scikit-learn sums the binary cross-entropy over the labels (anynet averages)
        k = float(n_outputs) if getattr(self, "_multilabel", False) else 1.0
        return k, k

    def _score_host(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Sparse matrices are densified one batch at a time on the host (anynet's
            layers take dense inputs; ``"lbfgs"`` densifies the whole matrix once).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Labels, or a 0/1 indicator matrix for multilabel classification.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights: each batch's loss is their weighted mean, and the L2
            term is divided by the batch's sum of weights, as in scikit-learn; early
            stopping weights its validation score with them.

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over ``X, y``, continuing the weights and the optimizer's state.

        Not available with ``solver="lbfgs"`` (an AttributeError, as in scikit-learn).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            As for :meth:`fit`.
        classes : array-like of shape (n_classes,), optional
            Every label that will ever appear; required on the first call.

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        if _check_partial_fit_first_call(self, _host(classes)):
            for name in ("network_", "_learning_rate"):
                self.__dict__.pop(name, None)  # a first call starts afresh
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order
        (for a multilabel fit each label's probability, rows not summing to 1).

        An array of ``X``'s namespace and device under array API dispatch (else NumPy),
        in the network's dtype; rows sum to 1.
        """
        x, io = self._inputs(X, "predict_proba")
        return self._result(self.network_.predict_proba(x), io)

    def predict_log_proba(self, X: Any) -> Array:
        """Logarithm of :meth:`predict_proba`, shape (n_samples, n_classes)."""
        x, io = self._inputs(X, "predict_log_proba")
        net = self.network_
        with np.errstate(divide="ignore"):
            return self._result(net.backend.xp.log(net.predict_proba(x)), io)

    def predict(self, X: Any) -> Array:
        """Predicted labels, shape (n_samples,), values from ``classes_``; for a multilabel
        fit an int64 indicator matrix (n_samples, n_labels), each label's probability > 0.5.

        Numeric labels come as an array of ``X``'s namespace and device under array API
        dispatch (else NumPy); other labels (strings) as a NumPy array.
        """
        x, io = self._inputs(X, "predict")
        codes = self._result(self.network_.predict(x), io)
        if getattr(self, "_multilabel", False):  # the indicator matrix, int64 as scikit-learn's
            return io.xp.astype(codes, io.xp.int64)
        if self.classes_.dtype.kind in "biuf":
            classes = io.asarray(self.classes_)
            return io.xp.take(classes, io.xp.astype(codes, io.int_dtype), axis=0)
        return self.classes_[np.asarray(to_numpy(codes))]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against ``y``, a float in [0, 1] (the
        subset accuracy for multilabel ``y``; weighted by ``sample_weight`` when given)."""
        y_pred = np.asarray(to_numpy(self.predict(X)))
        with sklearn.config_context(array_api_dispatch=False):
            return float(accuracy_score(_host(y), y_pred, sample_weight=_host(sample_weight)))


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on any anynet backend, scikit-learn style.

    An identity output trained on the squared error, with scikit-learn's gradient
    (``(prediction - y) / n_samples`` whatever the number of outputs); ``y`` of shape
    (n_samples,) or (n_samples, n_outputs) for several outputs at once.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        scikit-learn's half squared error, or its half Poisson deviance (summed over the
        outputs) on an ``exp`` output for counts ``y >= 0``.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun, backend, device, dtype
        As for :class:`MLPClassifier`; ``early_stopping`` watches the validation R² (the
        held-out part is not stratified).

    Attributes
    ----------
    n_features_in_, feature_names_in_, loss_curve_, n_iter_, t_, best_loss_, \
validation_scores_, best_validation_score_, n_layers_, coefs_, intercepts_, loss_, network_
        As for :class:`MLPClassifier`; ``loss_curve_`` and ``loss_`` hold scikit-learn's
        loss, half the mean of ``(prediction - y)**2`` plus the L2 term.
    n_outputs_ : int
        Number of targets.
    out_activation_ : str
        ``"identity"``, or ``"exp"`` with ``loss="poisson"``.

    Examples
    --------
    >>> import numpy as np
    >>> from anynet.sklearn import MLPRegressor
    >>> X = np.linspace(-2, 2, 1000).reshape(-1, 1)
    >>> y = np.sin(2 * X[:, 0])
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh",
    ...                    learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """

    _is_classifier = False

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: str | Backend | None = None,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        self.loss = loss
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            backend=backend, device=device, dtype=dtype,
        )  # fmt: skip

    @property
    def _parameter_constraints(self) -> dict[str, Any]:
        return {**_constraints(), "loss": [StrOptions({"squared_error", "poisson"})]}

    def _loss_name(self) -> str | None:
        return "poisson" if self.loss == "poisson" else None

    def _loss_scales(self, n_outputs: int) -> tuple[float, float]:
        if self.loss == "poisson":
            # scikit-learn's half Poisson deviance sums over the outputs (anynet's
            # averages), its gradient (exp(z) - y) / n_samples likewise
            return float(n_outputs), float(n_outputs)
        # scikit-learn's squared error is half the mean over all elements (anynet's mse
        # is the mean), and its gradient is (prediction - y) / n_samples whatever the
        # number of outputs: n_outputs / 2 times the gradient of anynet's mse
        return 0.5, n_outputs / 2

    def _score_host(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return float(r2_score(y_true, y_pred, sample_weight=sample_weight))

    def _validate_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> Any:
        y = np.asarray(y)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        return y, n_outputs

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        return ("exp", "exp") if self.loss == "poisson" else ("identity", "identity")

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train on ``X`` (n_samples, n_features) and targets ``y`` (n_samples[, n_outputs]).

        ``X`` may be a scipy sparse matrix (densified a batch at a time); ``sample_weight`` as for
        :meth:`MLPClassifier.fit`.

        Returns
        -------
        MLPRegressor
            ``self``.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``X, y``, continuing the weights and the optimizer's state.

        Not available with ``solver="lbfgs"`` (an AttributeError, as for scikit-learn's
        classifier).

        Returns
        -------
        MLPRegressor
            ``self``.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X: Any) -> Array:
        """Predictions, shape (n_samples,) for one target, (n_samples, n_outputs) otherwise.

        An array of ``X``'s namespace and device under array API dispatch (else NumPy), in
        the network's dtype.
        """
        x, io = self._inputs(X, "predict")
        return self._result(self.network_.predict(x), io)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R² of :meth:`predict` (averaged over the outputs)."""
        y_pred = np.asarray(to_numpy(self.predict(X)))
        with sklearn.config_context(array_api_dispatch=False):
            return float(r2_score(_host(y), y_pred, sample_weight=_host(sample_weight)))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.array_api_support = True
        tags.input_tags.sparse = True
        return tags
