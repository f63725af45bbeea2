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
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import array_namespace

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d
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


from .backend import Backend, backend_of, get_backend, to_numpy
from .callbacks import Callback, Progress
from .engine import train
from .engine.resume import Start
from .errors import InputError
from .network import Network
from .optimizers import SGD, Adam, Optimizer
from .registry import activations as activation_registry
from .registry import optimizers as optimizer_registry

__all__ = ["MLPClassifier", "MLPRegressor"]

Array = Any

#: scikit-learn's activation names, as anynet's; other names are looked up in anynet's registry.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}

#: Compiled (where the backend compiles) single optimizer steps for partial_fit, the most
#: recently used first out; the learning rate is an argument, so one serves every rate.
_STEPS: OrderedDict[tuple, Any] = OrderedDict()
_MAX_STEPS = 16


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


def _same_place(a: Backend, b: Backend) -> bool:
    return a.name == b.name and str(a.device) == str(b.device)


def _float_name(X: Array) -> str:
    """``"float32"`` for float32 data, ``"float64"`` otherwise."""
    xp = array_namespace(X)
    return "float32" if X.dtype == xp.float32 else "float64"


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_real(value: Any, name: str, low: float, high: float, *, open_low: bool) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (float(value) > low if open_low else float(value) >= low)
        and float(value) < high
    )
    if not ok:
        bracket = "(" if open_low else "["
        raise InputError(f"{name} must be a number in {bracket}{low}, {high}), got {value!r}")
    return float(value)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class _Stopping(Callback):
    """scikit-learn's convergence rule, epoch by epoch, recording the estimator's curves.

    Without early stopping an epoch counts as "no improvement" when its training loss is
    not below the best loss minus ``tol``; with it, when the validation score (accuracy
    or R²) is not above the best score plus ``tol``. Training stops after more than
    ``n_iter_no_change`` such epochs in a row.
    """

    def __init__(self, estimator: _BaseMLP, n_samples: int, early_stopping: bool) -> None:
        self.estimator = estimator
        self.n_samples = n_samples
        self.early_stopping = early_stopping
        self.stopped = False
        self.best_params: dict[str, Array] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], network: Network) -> bool:
        est = self.estimator
        loss = float(logs["loss"])
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += self.n_samples
        tol = est.tol
        line = f"Iteration {est.n_iter_}, loss = {loss:.8f}"
        if self.early_stopping:
            score = float(logs["val_score"])
            scores, best = est.validation_scores_, est.best_validation_score_
            assert scores is not None and best is not None  # _fit_epochs set them
            scores.append(score)
            if score < best + tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > best:
                est.best_validation_score_ = score
                self.best_params = network.params
            line += f", validation score = {score:.6f}"
        else:
            best_loss = est.best_loss_
            assert best_loss is not None  # _fit_epochs set it
            if loss > best_loss - tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < best_loss:
                est.best_loss_ = loss
        if est.verbose:
            print(line)
        if est._no_improvement_count > est.n_iter_no_change:
            self.stopped = True
            if est.verbose:
                what = "Validation score" if self.early_stopping else "Training loss"
                print(
                    f"{what} did not improve more than tol={tol:f} for "
                    f"{est.n_iter_no_change} consecutive epochs. Stopping."
                )
            return True
        return False


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
        learning_rate_init: float = 0.001,
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
        n_iter_no_change: int = 10,
        backend: str | Backend | None = None,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
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
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # -- subclass hooks ------------------------------------------------------------------
    _is_classifier = False

    def _validate_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> Any:
        raise NotImplementedError

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        raise NotImplementedError

    # -- checks --------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [int(sizes)]
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
            raise InputError(
                "hidden_layer_sizes must be a positive integer or a sequence of positive "
                f"integers, got {self.hidden_layer_sizes!r}"
            )
        checked: list[int] = []
        for index, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
                raise InputError(
                    f"hidden_layer_sizes[{index}] must be a positive integer, got {size!r}"
                )
            checked.append(int(size))
        return checked

    def _hidden_activation(self) -> str:
        known = sorted({*_ACTIVATIONS, *activation_registry.names()})
        name = (
            _ACTIVATIONS.get(self.activation, self.activation)
            if isinstance(self.activation, str)
            else None
        )
        if name is None or name not in activation_registry:
            raise InputError(f"activation must be one of {known}, got {self.activation!r}")
        if activation_registry.get(name)().output_only:
            raise InputError(
                f"activation must be a hidden-layer activation, got {self.activation!r}, "
                "which anynet allows on the output only"
            )
        return name

    def _check_params(self) -> None:
        """Check every hyperparameter (scikit-learn checks in fit, never in __init__)."""
        self._hidden_sizes()
        self._hidden_activation()
        if not isinstance(self.solver, str) or self.solver not in optimizer_registry:
            raise InputError(
                f"solver must be one of {optimizer_registry.names()}, got {self.solver!r}"
            )
        _check_real(self.alpha, "alpha", 0.0, np.inf, open_low=False)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_int(self.batch_size, "batch_size", 1)
        _check_real(self.learning_rate_init, "learning_rate_init", 0.0, np.inf, open_low=True)
        _check_int(self.max_iter, "max_iter", 1)
        _check_flag(self.shuffle, "shuffle")
        _check_real(self.tol, "tol", 0.0, np.inf, open_low=False)
        _check_flag(self.warm_start, "warm_start")
        _check_real(self.momentum, "momentum", 0.0, 1.0, open_low=False)
        _check_flag(self.nesterovs_momentum, "nesterovs_momentum")
        _check_flag(self.early_stopping, "early_stopping")
        _check_real(self.validation_fraction, "validation_fraction", 0.0, 1.0, open_low=True)
        _check_real(self.beta_1, "beta_1", 0.0, 1.0, open_low=False)
        _check_real(self.beta_2, "beta_2", 0.0, 1.0, open_low=False)
        _check_real(self.epsilon, "epsilon", 0.0, np.inf, open_low=True)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        if self.dtype is not None and self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        rs = self.random_state
        if not (
            rs is None
            or isinstance(rs, np.random.RandomState)
            or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and rs >= 0)
        ):
            raise InputError(
                "random_state must be None, a non-negative integer or a "
                f"numpy.random.RandomState, got {rs!r}"
            )

    def _seed(self) -> int:
        """anynet's seed: ``random_state`` itself when it is an int, else one drawn from it."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _batch_size(self, n_samples: int) -> int:
        if isinstance(self.batch_size, str):
            return min(200, n_samples)
        return min(int(self.batch_size), n_samples)

    def _optimizer(self, batch_size: int) -> Optimizer:
        """The solver as an anynet optimizer; ``alpha`` becomes ``l2 = alpha / batch_size``."""
        lr, l2 = float(self.learning_rate_init), float(self.alpha) / batch_size
        cls = optimizer_registry.get(self.solver, "solver")
        if cls is SGD:
            momentum = float(self.momentum)
            return SGD(lr=lr, l2=l2, momentum=momentum,
                       nesterov=bool(self.nesterovs_momentum) and momentum > 0)  # fmt: skip
        if cls is Adam:
            return Adam(lr=lr, l2=l2, betas=(float(self.beta_1), float(self.beta_2)),
                        eps=float(self.epsilon))  # fmt: skip
        return cls(lr=lr, l2=l2)

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
            dtype=_float_dtypes(X),
            multi_output=not self._is_classifier,
            y_numeric=not self._is_classifier,
        )
        return X, _host(y)

    def _new_network(
        self, n_features: int, n_outputs: int, compute: Backend, dtype: str, seed: int
    ) -> None:
        hidden = self._hidden_sizes()
        activation = self._hidden_activation()
        output, self.out_activation_ = self._output_activation(n_outputs)
        self.network_ = Network(
            [n_features, *hidden, n_outputs],
            [activation] * len(hidden) + [output],
            init="xavier",
            seed=seed,
            dtype=dtype,
            backend=compute,
        )
        self.n_layers_ = len(hidden) + 2
        self.n_outputs_ = n_outputs
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0
        self.t_ = 0
        self._no_improvement_count = 0
        self.best_loss_: float | None = np.inf
        self.validation_scores_: list[float] | None = None
        self.best_validation_score_: float | None = None

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: set early_stopping=False, "
                "or use fit"
            )
        seed = self._seed()  # drawn once per call when random_state is None or a RandomState
        fitted = hasattr(self, "network_")
        first = not fitted or (not self.warm_start and not incremental)
        X, y = self._validate(X, y, reset=first)
        t, n_outputs = self._validate_targets(
            y, first=first, incremental=incremental, classes=classes
        )
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
        self._fit_io = io
        net = self.network_
        x = _move(X, net.backend, net.dtype)
        targets = _move(t, net.backend, None if self._is_classifier else net.dtype)
        if incremental:
            self._partial_epoch(x, targets, seed)
        else:
            self._fit_epochs(x, targets, t, seed)
        return self

    def _fit_epochs(self, x: Array, t: Array, t_host: Any, seed: int) -> None:
        """``max_iter`` epochs of ``Network.fit`` with scikit-learn's stopping rule."""
        net = self.network_
        n = x.shape[0]
        early_stopping = bool(self.early_stopping)
        validation = None
        if early_stopping:
            indices = np.arange(n)
            stratify = np.asarray(t_host) if self._is_classifier else None
            train, val = train_test_split(
                indices, test_size=self.validation_fraction, random_state=seed,
                stratify=stratify,
            )  # fmt: skip
            xp, backend = net.backend.xp, net.backend
            train_index, val_index = backend.asarray(train), backend.asarray(val)
            validation = (xp.take(x, val_index, axis=0), xp.take(t, val_index, axis=0))
            x, t = xp.take(x, train_index, axis=0), xp.take(t, train_index, axis=0)
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        batch_size = self._batch_size(x.shape[0])
        stopping = _Stopping(self, x.shape[0], early_stopping)
        shuffles = int(np.random.SeedSequence([seed, self.n_iter_]).generate_state(1)[0])
        net.fit(
            x, t, epochs=int(self.max_iter), optimizer=self._optimizer(batch_size),
            batch_size=batch_size, shuffle=bool(self.shuffle), seed=shuffles,
            validation_data=validation, callbacks=[stopping],
        )  # fmt: skip
        if early_stopping and stopping.best_params is not None:
            net.set_params(stopping.best_params)
        if not stopping.stopped:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit
            )

    def _partial_epoch(self, x: Array, t: Array, seed: int) -> None:
        """One pass over the data, continuing the optimizer's state (scikit-learn's partial_fit)."""
        net = self.network_
        n = x.shape[0]
        batch_size = self._batch_size(n)
        optimizer = self._optimizer(batch_size)
        fresh = optimizer.init(net.params, xp=net.backend.xp)
        state = net.optimizer_state
        if state is None or sorted(state) != sorted(fresh):
            state = fresh
        # epoch n_iter_ of the one engine loop: its order is default_rng([seed, n_iter_]),
        # its loss the mean of the batch losses weighted by size, as scikit-learn's
        start = Start(epoch=self.n_iter_, seed=seed, optimizer_state=state, history=None)
        loop = train(
            net.model, net.backend, net.dtype, net.params, net.state, x, net._targets(t, n),
            epochs=self.n_iter_ + 1, optimizer=optimizer, batch_size=batch_size,
            shuffle=bool(self.shuffle), seed=seed, start=start,
        )  # fmt: skip
        history = net._drive(loop, [], None, Progress(0, 1), self.n_iter_ + 1)
        loss = history.loss[-1]
        self.loss_curve_.append(loss)
        self.n_iter_ += 1
        self.t_ += n
        if self.best_loss_ is not None:
            self.best_loss_ = min(self.best_loss_, loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")

    # -- prediction ------------------------------------------------------------------------
    def _inputs(self, X: Any, method: str) -> tuple[Array, Backend]:
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=_float_dtypes(X))
        io = self._check_namespace(X, method)
        net = self.network_
        return _move(X, net.backend, net.dtype), io

    @staticmethod
    def _result(array: Array, io: Backend) -> Array:
        return array if io.owns(array) else io.asarray(np.asarray(to_numpy(array)))

    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices, ``coefs_[i]`` of shape ``(n_in, n_out)`` (scikit-learn's layout:
        the transpose of anynet's ``W``), arrays of the namespace of fit's inputs."""
        check_is_fitted(self)
        net = self.network_
        params, weights = net.params, net.model.decay_keys
        keys = [key for key in net.model.param_keys if key in weights]
        xp = net.backend.xp
        return [self._result(xp.permute_dims(params[k], (1, 0)), self._fit_io) for k in keys]

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors, ``intercepts_[i]`` of shape ``(n_out,)``."""
        check_is_fitted(self)
        net = self.network_
        params, weights = net.params, net.model.decay_keys
        keys = [key for key in net.model.param_keys if key not in weights]
        return [self._result(params[k], self._fit_io) for k in keys]

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
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer.
    activation : str, default="relu"
        Hidden activation: scikit-learn's ``"identity"``, ``"logistic"``, ``"tanh"``,
        ``"relu"``, or any anynet activation name (``"leaky_relu"``, registered ones).
    solver : str, default="adam"
        ``"adam"`` (with ``beta_1``, ``beta_2``, ``epsilon``), ``"sgd"`` (with
        ``momentum``, ``nesterovs_momentum``), or any anynet optimizer name
        (``"momentum"``, ``"nesterov"``, ``"adamw"``, registered ones).
    alpha : float, default=0.0001
        L2 penalty, as scikit-learn's ``0.5 * alpha * ||W||² / batch_size`` on the weight
        matrices: anynet's optimizer ``l2 = alpha / batch_size``. ``loss_curve_`` holds the
        data loss only.
    batch_size : int or "auto", default="auto"
        Minibatch size; ``"auto"`` is ``min(200, n_samples)``. Clipped to ``n_samples``.
    learning_rate_init : float, default=0.001
        The (constant) learning rate.
    max_iter : int, default=200
        Most epochs per ``fit``.
    shuffle : bool, default=True
        Reshuffle the samples every epoch (an order drawn on the host from the seed, the
        same on every backend).
    random_state : int, RandomState or None, default=None
        An int is anynet's ``seed`` itself (same initial weights as
        ``anynet.Network(..., seed=random_state)``, on every backend); otherwise a seed is
        drawn from it.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no progress.
    verbose : bool, default=False
        Print the loss every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights (the optimizer starts afresh).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified) and stop when
        the validation accuracy stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Held-out fraction with ``early_stopping``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
        Epochs without progress (by ``tol``) before stopping.
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
        The class labels, sorted (a NumPy array whatever the input's namespace).
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray of shape (n_features_in_,)
        Only when ``X`` had string feature names (pandas).
    loss_curve_ : list of float
        Training loss (binary or categorical cross-entropy, mean over the epoch's batches)
        of each epoch.
    n_iter_ : int
        Epochs run (summed over warm starts and partial_fit calls).
    t_ : int
        Training samples seen.
    best_loss_ : float or None
        Lowest training loss; None with ``early_stopping``.
    validation_scores_ : list of float or None
        Validation accuracy per epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units (1 for two classes).
    out_activation_ : str
        ``"logistic"`` or ``"softmax"``.
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
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first and incremental:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit, got classes=None"
                )
            self.classes_ = np.unique(np.asarray(_host(classes)))
        elif first:
            self.classes_ = np.unique(y)
        elif incremental:
            if classes is not None and not np.array_equal(
                np.unique(np.asarray(_host(classes))), self.classes_
            ):
                raise ValueError(
                    f"classes must be those of the first call to partial_fit, "
                    f"{list(self.classes_)}, got {list(np.unique(classes))}"
                )
        elif set(np.unique(y).tolist()) != set(self.classes_.tolist()):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, `y` has {np.unique(y)}"
            )
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least 2 classes, got 1 class: {list(self.classes_)}")
        codes = np.searchsorted(self.classes_, y)
        inside = codes < len(self.classes_)
        known = np.zeros(len(y), dtype=bool)
        known[inside] = self.classes_[codes[inside]] == y[inside]
        if not known.all():
            raise ValueError(
                f"y has classes not in classes_ {list(self.classes_)}: {list(np.unique(y[~known]))}"
            )
        n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        return codes.astype(np.int64), n_outputs

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        return ("sigmoid", "logistic") if n_outputs == 1 else ("softmax", "softmax")

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over ``X, y``, continuing the weights and the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), optional
            Every label that will ever appear; required on the first call.

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order.

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
        """Predicted labels, shape (n_samples,), values from ``classes_``.

        Numeric labels come as an array of ``X``'s namespace and device under array API
        dispatch (else NumPy); other labels (strings) as a NumPy array.
        """
        x, io = self._inputs(X, "predict")
        codes = self._result(self.network_.predict(x), io)
        if self.classes_.dtype.kind in "biuf":
            classes = io.asarray(self.classes_)
            return io.xp.take(classes, io.xp.astype(codes, io.int_dtype), axis=0)
        return self.classes_[np.asarray(to_numpy(codes))]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against ``y``, a float in [0, 1]."""
        y_pred = np.asarray(to_numpy(self.predict(X)))
        with sklearn.config_context(array_api_dispatch=False):
            return float(accuracy_score(_host(y), y_pred, sample_weight=_host(sample_weight)))


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on any anynet backend, scikit-learn style.

    An identity output trained on the mean squared error; ``y`` of shape (n_samples,)
    or (n_samples, n_outputs) for several outputs at once.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate_init, max_iter, \
shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping, \
validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, backend, device, dtype
        As for :class:`MLPClassifier`; ``early_stopping`` watches the validation R² (the
        held-out part is not stratified).

    Attributes
    ----------
    n_features_in_, feature_names_in_, loss_curve_, n_iter_, t_, best_loss_, \
validation_scores_, best_validation_score_, n_layers_, coefs_, intercepts_, network_
        As for :class:`MLPClassifier`; ``loss_curve_`` holds anynet's mean squared error
        (the mean of ``(prediction - y)**2``, without scikit-learn's factor 1/2).
    n_outputs_ : int
        Number of targets.
    out_activation_ : str
        ``"identity"``.

    Examples
    --------
    >>> import numpy as np
    >>> from anynet.sklearn import MLPRegressor
    >>> X = np.linspace(-2, 2, 1000).reshape(-1, 1)
    >>> y = np.sin(2 * X[:, 0])
    >>> reg = MLPRegressor((32,), activation="tanh", learning_rate_init=0.01, max_iter=300,
    ...                    random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """

    _is_classifier = False

    def _validate_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> Any:
        y = np.asarray(y)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        return y, n_outputs

    def _output_activation(self, n_outputs: int) -> tuple[str, str]:
        return "identity", "identity"

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on ``X`` (n_samples, n_features) and targets ``y`` (n_samples[, n_outputs]).

        Returns
        -------
        MLPRegressor
            ``self``.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over ``X, y``, continuing the weights and the optimizer's state.

        Returns
        -------
        MLPRegressor
            ``self``.
        """
        return self._fit(X, y, incremental=True)

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
        return tags
