# ruff: noqa: F401  (the private helpers imported below are re-exported: the ``anynet``
# command and test suites written against the single-module anynet.testing import them)
"""Validate computations: gradient checks, cross-backend agreement, and test helpers.

This package is public: use it in your own test suites and notebooks.

* :func:`check_layer` checks one layer, built in or your own: its hand-written
  ``backward`` against central finite differences (and, optionally, the autodiff of
  PyTorch or JAX), and its forward and backward passes on every backend against NumPy.
* :func:`check_gradients` compares a network's hand-written backprop with central
  finite differences in float64 and, optionally, with the autodiff of JAX or PyTorch
  (an independent reimplementation of the same forward pass).
* :func:`compare_backends` / :func:`assert_backends_agree` run one computation (a
  function of ``xp`` or a :class:`~anynet.Network`) on several backends from identical
  inputs and initial weights, and measure how far each result is from a reference.
* :func:`trace_divergence` finds where backends that disagree first part: the epoch,
  the step, the phase, the layer and the operation, or rounding amplified by training.
* :func:`backend_params` / :func:`backend_fixture` parametrize a pytest suite over
  every backend, skipping (with the reason) those that do not load here.
* :func:`assert_close` / :func:`assert_on_backend`: single-array assertions.

One module per concern: :mod:`~anynet.testing.tolerances` (the tables below,
:func:`relative_errors`, the assertions), :mod:`~anynet.testing.gradients`
(:func:`check_gradients`), :mod:`~anynet.testing.oracles` (the autodiff oracles),
:mod:`~anynet.testing.agreement` (:func:`compare_backends`),
:mod:`~anynet.testing.layer_check` (:func:`check_layer`) and
:mod:`~anynet.testing.pytest_helpers`; every public name is importable from here.

Tolerances
----------
Every tolerance depends on the dtype and can be overridden by argument.

=====================  =========  =========  ===========================================
table                  float64    float32    used for
=====================  =========  =========  ===========================================
:data:`RTOL`           1e-10      1e-4       one computation on two backends;
:data:`ATOL`           1e-12      1e-6       analytic vs autodiff gradients
:data:`GRADIENT_RTOL`  1e-6       1e-3       analytic vs finite-difference gradients
:data:`GRADIENT_ATOL`  1e-8       1e-6       (atol scaled by ``max(1, |loss|)``)
:data:`TRAINING_RTOL`  1e-10      1e-3       parameters and loss after training
=====================  =========  =========  ===========================================

Differences are measured as *relative errors with a floor*: for an entry ``a`` of a
result and ``r`` of the reference, ``|a - r| / max(|a|, |r|, atol / rtol)``; a result
passes when every entry's error is at most ``rtol``, that is when
``|a - r| <= max(rtol * max(|a|, |r|), atol)``. Entries far from zero are compared
relatively, entries near zero absolutely.

Nothing here imports pytest, JAX or PyTorch at import time; each is imported when a
function that needs it is called.
"""

from __future__ import annotations

from ._text import _host, _worst, format_number, text_table
from .agreement import (
    BackendMismatch,
    Comparison,
    OutputDifference,
    _compiles,
    _differences,
    _flatten,
    _is_number_list,
    _move_input,
    _network_copy,
    _run_function,
    _run_network,
    _short_device,
    _to_host_outputs,
    _unavailable,
    _usable_cases,
    assert_backends_agree,
    backend_label,
    compare_backends,
    resolve_backend,
)
from .divergence import Divergence, DivergenceReport, trace_divergence
from .gradients import (
    GradientCheckError,
    GradientReport,
    ParameterCheck,
    _entries,
    _finite_differences,
    _float64_twin,
    check_gradients,
    describe_network,
)
from .layer_check import LayerCheckError, LayerGradientCheck, LayerReport, check_layer
from .oracles import (
    _import_oracle,
    _jax_x64,
    _layer_oracle_gradients,
    _oracle_gradients,
    _reference_loss,
)
from .pytest_helpers import _cases, _pytest, backend_fixture, backend_params
from .tolerances import (
    ATOL,
    DEFAULT_EPS,
    GRADIENT_ATOL,
    GRADIENT_RTOL,
    RTOL,
    TRAINING_RTOL,
    _check_tolerance,
    _dtype_key,
    _dtype_name,
    assert_close,
    assert_on_backend,
    default_atol,
    default_rtol,
    relative_errors,
)

__all__ = [
    "ATOL",
    "DEFAULT_EPS",
    "GRADIENT_ATOL",
    "GRADIENT_RTOL",
    "RTOL",
    "TRAINING_RTOL",
    "BackendMismatch",
    "Comparison",
    "Divergence",
    "DivergenceReport",
    "GradientCheckError",
    "GradientReport",
    "LayerCheckError",
    "LayerGradientCheck",
    "LayerReport",
    "OutputDifference",
    "ParameterCheck",
    "assert_backends_agree",
    "assert_close",
    "assert_on_backend",
    "backend_fixture",
    "backend_params",
    "check_gradients",
    "check_layer",
    "compare_backends",
    "default_atol",
    "default_rtol",
    "relative_errors",
    "trace_divergence",
]
