"""Tests of anynet.datasets: host-side NumPy generators, independent of any backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anynet import datasets
from anynet.datasets import circles, moons, planar_flower, spirals
from anynet.errors import InputError

GENERATORS = {
    "planar_flower": planar_flower,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
}


def _tutorial_load_planar_dataset():
    """The tutorial's ``load_planar_dataset``, transcribed verbatim (global seed and all)."""
    np.random.seed(1)  # noqa: NPY002
    m = 400  # number of examples
    N = int(m / 2)  # number of points per class
    D = 2  # dimensionality
    X = np.zeros((m, D))  # data matrix where each row is a single example
    Y = np.zeros((m, 1), dtype="uint8")  # labels vector (0 for red, 1 for blue)
    a = 4  # maximum ray of the flower
    for j in range(2):
        ix = range(N * j, N * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + np.random.randn(N) * 0.2  # noqa: NPY002 (theta)
        r = a * np.sin(4 * t) + np.random.randn(N) * 0.2  # noqa: NPY002 (radius)
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    X = X.T
    Y = Y.T
    return X, Y


@pytest.fixture
def tutorial_flower():
    """The tutorial's data, with the global NumPy random state saved and restored."""
    state = np.random.get_state()  # noqa: NPY002
    try:
        yield _tutorial_load_planar_dataset()
    finally:
        np.random.set_state(state)  # noqa: NPY002


# --------------------------------------------------------------------------- the flower


def test_planar_flower_matches_tutorial_exactly(tutorial_flower):
    X_ref, Y_ref = tutorial_flower
    assert X_ref.shape == (2, 400) and Y_ref.shape == (1, 400)
    X, y = planar_flower()
    np.testing.assert_array_equal(X.T, X_ref)
    np.testing.assert_array_equal(y, Y_ref.ravel())
    np.testing.assert_array_equal(y[np.newaxis, :], Y_ref)


def test_planar_flower_explicit_defaults_match_tutorial(tutorial_flower):
    X_ref, Y_ref = tutorial_flower
    X, y = planar_flower(n=400, seed=1, noise=0.2)
    np.testing.assert_array_equal(X, X_ref.T)
    np.testing.assert_array_equal(y, Y_ref.ravel())


def test_planar_flower_layout():
    X, y = planar_flower()
    assert X.shape == (400, 2) and X.dtype == np.float64
    assert y.shape == (400,) and y.dtype == np.int64
    assert X.flags.c_contiguous and y.flags.c_contiguous
    np.testing.assert_array_equal(y[:200], 0)
    np.testing.assert_array_equal(y[200:], 1)
    assert np.all(np.isfinite(X))
    # radius = 4 |sin 4t| + noise: points stay within a few noise widths of the rose
    assert np.max(np.hypot(X[:, 0], X[:, 1])) < 4 + 5 * 0.2


@pytest.mark.parametrize("n", [2, 3, 7, 100, 401, 1000])
def test_planar_flower_other_n(n):
    X, y = planar_flower(n=n)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == {0, 1}
    # class 0 gets n // 2 points, class 1 the rest (the extra point when n is odd)
    assert int(np.sum(y == 0)) == n // 2
    assert int(np.sum(y == 1)) == n - n // 2
    assert np.all(np.diff(y) >= 0)


def test_planar_flower_without_noise_lies_on_the_rose():
    X, _ = planar_flower(n=50, noise=0.0)
    t = np.arctan2(X[:, 0], X[:, 1])  # x = r sin t, y = r cos t
    r = np.hypot(X[:, 0], X[:, 1])
    # r may be negative in the generator (r = 4 sin 4t), so compare |r|
    np.testing.assert_allclose(r, np.abs(4 * np.sin(4 * t)), atol=1e-12)


def test_planar_flower_accepts_numpy_integers(tutorial_flower):
    X_ref, _ = tutorial_flower
    X, _ = planar_flower(n=np.int64(400), seed=np.int32(1), noise=np.float64(0.2))
    np.testing.assert_array_equal(X, X_ref.T)


# --------------------------------------------------------------------------- all generators


@pytest.mark.parametrize(
    "name, kwargs, n, labels",
    [
        ("planar_flower", {}, 400, {0, 1}),
        ("moons", {}, 200, {0, 1}),
        ("moons", {"n": 51}, 51, {0, 1}),
        ("circles", {}, 200, {0, 1}),
        ("circles", {"n": 9, "factor": 0.3}, 9, {0, 1}),
        ("spirals", {}, 300, {0, 1, 2}),
        ("spirals", {"n": 100, "n_classes": 4}, 100, {0, 1, 2, 3}),
        ("spirals", {"n": 10, "n_classes": 3}, 10, {0, 1, 2}),
        ("spirals", {"n": 2, "n_classes": 2}, 2, {0, 1}),
    ],
)
def test_shapes_dtypes_labels(name, kwargs, n, labels):
    X, y = GENERATORS[name](**kwargs)
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == labels
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_seed_is_reproducible_and_matters(name):
    gen = GENERATORS[name]
    X1, y1 = gen(seed=3)
    X2, y2 = gen(seed=3)
    X3, y3 = gen(seed=4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y1, y3)  # labels do not depend on the seed
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_global_random_state_untouched(name):
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(12345)  # noqa: NPY002
        before = np.random.get_state()  # noqa: NPY002
        GENERATORS[name]()
        after = np.random.get_state()  # noqa: NPY002
        assert before[0] == after[0]
        np.testing.assert_array_equal(before[1], after[1])
        assert before[2:] == after[2:]
    finally:
        np.random.set_state(state)  # noqa: NPY002


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_zero_noise_is_deterministic_across_seeds(name):
    gen = GENERATORS[name]
    X1, _ = gen(noise=0.0, seed=0)
    X2, _ = gen(noise=0.0, seed=1)
    np.testing.assert_array_equal(X1, X2)


def test_moons_shape_of_the_curves():
    X, y = moons(n=100, noise=0.0)
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, atol=1e-12)
    assert np.all(outer[:, 1] >= -1e-12) and np.all(inner[:, 1] <= 0.5 + 1e-12)


def test_circles_radii():
    X, y = circles(n=60, noise=0.0, factor=0.3)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(radius[y == 1], 0.3, atol=1e-12)


def test_spirals_structure():
    X, y = spirals(n=300, n_classes=3, noise=0.0)
    assert [int(np.sum(y == k)) for k in range(3)] == [100, 100, 100]
    r = np.hypot(X[:, 0], X[:, 1])
    for k in range(3):
        np.testing.assert_allclose(r[y == k], np.linspace(0.0, 1.0, 100), atol=1e-12)
    X, y = spirals(n=11, n_classes=3)
    assert [int(np.sum(y == k)) for k in range(3)] == [4, 4, 3]


# --------------------------------------------------------------------------- bad arguments

NAN = float("nan")
INF = float("inf")

BAD_ARGUMENTS: list[tuple[str, dict[str, Any], list[str]]] = [
    # (generator, kwargs, fragments expected in the message)
    ("planar_flower", {"n": -3}, ["n must be an integer in [2, 100000000]", "-3"]),
    ("planar_flower", {"n": 1}, ["n must be an integer in [2, 100000000]", "got 1"]),
    ("planar_flower", {"n": 0}, ["n must be an integer in [2, 100000000]", "got 0"]),
    ("planar_flower", {"n": 400.0}, ["n must be an integer", "400.0", "float"]),
    ("planar_flower", {"n": "400"}, ["n must be an integer", "'400'", "str"]),
    ("planar_flower", {"n": True}, ["n must be an integer", "True", "bool"]),
    ("planar_flower", {"n": None}, ["n must be an integer", "None"]),
    ("planar_flower", {"seed": -1}, ["seed must be an integer in [0, 4294967295]", "-1"]),
    ("planar_flower", {"seed": 2**32}, ["seed must be an integer", "4294967296"]),
    ("planar_flower", {"seed": 1.5}, ["seed must be an integer", "1.5"]),
    ("planar_flower", {"seed": False}, ["seed must be an integer", "False"]),
    ("planar_flower", {"noise": NAN}, ["noise must be a finite number in [0, 1e+06]", "nan"]),
    ("planar_flower", {"noise": INF}, ["noise must be a finite number in [0, 1e+06]", "inf"]),
    ("planar_flower", {"noise": -0.1}, ["noise must be a finite number in [0, 1e+06]", "-0.1"]),
    ("planar_flower", {"noise": "0.2"}, ["noise must be a finite number", "'0.2'"]),
    ("planar_flower", {"noise": True}, ["noise must be a finite number", "True"]),
    ("moons", {"n": -3}, ["n must be an integer in [2, 100000000]", "-3"]),
    ("moons", {"n": 2.5}, ["n must be an integer", "2.5"]),
    ("moons", {"noise": NAN}, ["noise must be a finite number in [0, 1e+06]", "nan"]),
    ("moons", {"noise": -1}, ["noise must be a finite number in [0, 1e+06]", "-1"]),
    ("moons", {"seed": -5}, ["seed must be an integer >= 0", "-5"]),
    ("moons", {"seed": "0"}, ["seed must be an integer", "'0'"]),
    ("circles", {"n": 1}, ["n must be an integer in [2, 100000000]", "1"]),
    ("circles", {"noise": INF}, ["noise must be a finite number in [0, 1e+06]", "inf"]),
    ("circles", {"factor": 1.0}, ["factor must be a finite number in [0, 1)", "1.0"]),
    ("circles", {"factor": -0.5}, ["factor must be a finite number in [0, 1)", "-0.5"]),
    ("circles", {"factor": NAN}, ["factor must be a finite number in [0, 1)", "nan"]),
    ("circles", {"factor": None}, ["factor must be a finite number", "None"]),
    ("circles", {"seed": True}, ["seed must be an integer", "True"]),
    ("spirals", {"n": 0}, ["n must be an integer in [2, 100000000]", "0"]),
    ("spirals", {"n": 3, "n_classes": 4}, ["n must be an integer >= n_classes (4)", "got 3"]),
    ("spirals", {"n_classes": 1}, ["n_classes must be an integer in [2, 1000]", "1"]),
    ("spirals", {"n_classes": 3.0}, ["n_classes must be an integer", "3.0"]),
    ("spirals", {"n_classes": True}, ["n_classes must be an integer", "True"]),
    ("spirals", {"noise": -0.2}, ["noise must be a finite number in [0, 1e+06]", "-0.2"]),
    ("spirals", {"seed": -1}, ["seed must be an integer >= 0", "-1"]),
]


@pytest.mark.parametrize(
    "name, kwargs, fragments",
    BAD_ARGUMENTS,
    ids=[f"{name}-{next(iter(kw))}={kw[next(iter(kw))]!r}" for name, kw, _ in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_input_error(name, kwargs, fragments):
    with pytest.raises(InputError) as info:
        GENERATORS[name](**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_input_error_is_value_and_type_error():
    with pytest.raises(ValueError):
        planar_flower(n=-3)
    with pytest.raises(TypeError):
        moons(n="many")


def test_public_names():
    assert set(datasets.__all__) == set(GENERATORS)
    for name in datasets.__all__:
        doc = getattr(datasets, name).__doc__
        assert doc and "float64" in doc and "int64" in doc
