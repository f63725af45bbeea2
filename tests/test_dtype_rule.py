"""One rule for a backend that cannot run a dtype, in every testing helper.

By default a helper leaves such a backend out and says why (``skipped``, with the
reason, in the result and its text); asked for by name, it is a failure. The backend
under test is made to refuse float64, as JAX does without ``JAX_ENABLE_X64=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import anynet as an
from anynet.layers import Activation, Dense
from anynet.testing import (
    LayerCheckError,
    check_layer,
    compare_backends,
    trace_divergence,
)
from anynet.testing import agreement as agreement_module
from anynet.testing import divergence as divergence_module

REASON = "float64 refused for this test"


@pytest.fixture
def refusing(backend, monkeypatch):
    """The backend under test, refusing float64; the default lists are numpy and it."""
    if backend.name == "numpy":
        pytest.skip("makes the backend under test refuse float64: needs one other than NumPy")
    monkeypatch.setattr(type(backend), "float64_problem", lambda self: REASON)
    names = ["numpy", backend.name]
    monkeypatch.setattr(agreement_module, "available_backends", lambda: names)
    monkeypatch.setattr(divergence_module, "available_backends", lambda: names)
    return backend


def test_compare_backends_skips_by_default_and_fails_when_asked(refusing):
    x = np.linspace(-1, 1, 5)
    comparison = compare_backends(lambda xp, x: xp.tanh(x), x)
    assert refusing.name in comparison.skipped and REASON in comparison.skipped[refusing.name]
    assert comparison.ok and refusing.name not in comparison.backends
    assert f"skipped: {refusing.name} cannot compute in float64 here" in str(comparison)
    asked = compare_backends(lambda xp, x: xp.tanh(x), x, backends=[refusing])
    assert not asked.ok and asked.failures()[0].output == "(run)"


def test_check_layer_skips_by_default_and_fails_when_asked(refusing):
    report = check_layer(Dense(2), 3)
    assert REASON in report.skipped[refusing.name]
    assert f"skipped: {refusing.name} cannot compute in float64" in str(report)
    with pytest.raises(LayerCheckError, match="disagrees"):
        check_layer(Dense(2), 3, backends=[refusing])


def test_trace_divergence_skips_by_default_and_fails_when_asked(refusing):
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = (X[:, 0] > 0).astype(int)
    net = an.Network([3, 4, 1], seed=0, dtype="float64", backend="numpy")
    report = trace_divergence(net, X, y, epochs=2, lr=0.1)
    assert REASON in report.skipped[refusing.name] and report.backends == ()
    assert "skipped" in str(report)
    with pytest.raises(an.BackendError, match=REASON):
        trace_divergence(net, X, y, epochs=2, lr=0.1, backends=[refusing])


# ------------------------------------------------------------ check_layer in float32


@dataclass(frozen=True)
class SlightlyWrongTanh(Activation):
    """tanh whose derivative is 1% off: caught in float32 too."""

    def value(self, z, *, xp):
        return xp.tanh(z)

    def derivative(self, dy, z, y, *, xp):
        return dy * (1 - y * y) * 1.01


def test_check_layer_in_float32(backend):
    report = check_layer(Dense(3), 4, backend=backend, dtype="float32", backends=[backend])
    assert report.ok and report.dtype == "float32"
    assert report.rtol == an.testing.GRADIENT_RTOL["float32"]
    assert report.agreement.dtype == "float32"
    assert "float32" in str(report).splitlines()[0]
    assert 0 < report.worst <= report.rtol  # float32 rounding, within its tolerance
    with pytest.raises(LayerCheckError, match="dx"):
        check_layer(SlightlyWrongTanh(), 4, backend=backend, dtype="float32", backends=[])
    with pytest.raises(an.InputError, match="dtype must be"):
        check_layer(Dense(3), 4, dtype="float16")
