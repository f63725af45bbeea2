"""One suite, every backend.

``pytest --backend NAME`` (repeatable) runs every numerical test on that
backend; without it, on every available backend. array_api_strict also runs on
its non-default ``device1``, standing in for a GPU: any implicit transfer or
device mix-up fails there. Asking for a backend that does not load is an error,
and a run in which no test of a selected backend passed fails instead of
passing with everything skipped.
"""

from __future__ import annotations

import os

# Tests compare float64 results on JAX too. This is the test session's choice,
# made before anything imports jax; anynet itself never flips the switch.
os.environ.setdefault("JAX_ENABLE_X64", "1")
# On GPUs, float32 matmuls default to TF32 (10-bit mantissas) in cuBLAS and JAX: the
# float32 tolerances assume full float32 products, so the tests pin them (no effect on CPU).
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

import pytest

import anynet
from anynet.backend import BACKEND_NAMES

_passed_on: set[str] = set()  # backends on which a test passed
_seen_on: set[str] = set()  # backends on which a test was reported (run or skipped)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        choices=BACKEND_NAMES,
        help="run the numerical tests on this backend (repeatable; default: all available)",
    )
    parser.addoption(
        "--device",
        default=None,
        help="device of the selected backends (e.g. gpu); default: each backend's own",
    )


def _selected(config: pytest.Config) -> list[str]:
    names = config.getoption("backend")
    env = os.environ.get("ANYNET_TEST_BACKENDS", "")
    if not names and env:
        names = [name.strip() for name in env.split(",") if name.strip()]
    return list(dict.fromkeys(names))


#: The dtype axis: every test that takes a ``dtype`` argument runs in both, unless it
#: narrows the axis with ``@pytest.mark.dtypes(...)`` or parametrizes it itself.
DTYPES = ("float32", "float64")

_MARKERS = (
    "backends(*names): run only on these backends; the others skip, saying why",
    "skip_backends(*names, reason): skip on these backends, with the reason",
    "needs(module, reason=None): skip unless this module imports here",
    "dtypes(*names): the dtypes this test runs in (default: float32 and float64)",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    explicit = _selected(config)
    if explicit:
        for name in explicit:
            try:
                anynet.get_backend(name)
            except anynet.BackendError as exc:
                raise pytest.UsageError(
                    f"--backend {name}: this backend did not load: {exc}"
                ) from exc
        config._anynet_backends = explicit  # type: ignore[attr-defined]
    else:
        config._anynet_backends = anynet.available_backends()  # type: ignore[attr-defined]
    config._anynet_explicit = bool(explicit)  # type: ignore[attr-defined]


def backend_cases(config: pytest.Config) -> list[tuple[str, str | None]]:
    """(backend, device) pairs the numerical tests run on."""
    cases: list[tuple[str, str | None]] = []
    for name in config._anynet_backends:  # type: ignore[attr-defined]
        cases.append((name, config.getoption("device")))
        cases.extend((name, device) for device in anynet.backend.stand_in_devices(name))
    return cases


def _parametrized_by_test(metafunc: pytest.Metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        cases = backend_cases(metafunc.config)
        ids = [name if device is None else f"{name}-{device}" for name, device in cases]
        metafunc.parametrize("backend", cases, ids=ids, indirect=True)
    if "dtype" in metafunc.fixturenames and not _parametrized_by_test(metafunc, "dtype"):
        marker = metafunc.definition.get_closest_marker("dtypes")
        metafunc.parametrize("dtype", marker.args if marker else DTYPES)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Backend-specific skips, declared by markers (see ``_MARKERS``)."""
    for marker in item.iter_markers("needs"):
        module = marker.args[0]
        pytest.importorskip(module, reason=marker.kwargs.get("reason") or f"needs {module}")
    params = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("backend")
    if case is None:
        return
    name = case[0]
    only = item.get_closest_marker("backends")
    if only is not None and name not in only.args:
        pytest.skip(f"runs on {list(only.args)} only: {only.kwargs.get('reason', 'by design')}")
    for marker in item.iter_markers("skip_backends"):
        if name in marker.args:
            pytest.skip(marker.kwargs.get("reason", f"not on {name}"))
    dtype = params.get("dtype")
    if dtype == "float64":
        problem = anynet.get_backend(*case).float64_problem()
        if problem is not None:
            pytest.skip(f"float64 unavailable on {name} here: {problem}")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> anynet.Backend:
    """The :class:`anynet.Backend` (and device) under test."""
    name, device = request.param
    return anynet.get_backend(name, device)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    # the backend travels with the report: under pytest-xdist the controller, which runs
    # no test itself, learns from the reports which backends ran
    case = item.callspec.params.get("backend") if hasattr(item, "callspec") else None
    if case is not None:
        report.user_properties.append(("anynet_backend", case[0]))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, name in report.user_properties:
        if key == "anynet_backend":
            _seen_on.add(str(name))
            if report.when == "call" and report.passed:
                _passed_on.add(str(name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not getattr(config, "_anynet_explicit", False):
        return
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the controller checks the whole run
    if not _seen_on or config.option.collectonly:
        return  # a run of backend-independent tests only (e.g. the datasets)
    chosen = config._anynet_backends  # type: ignore[attr-defined]
    missing = [name for name in chosen if name not in _passed_on]
    if missing:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"FAILED: no test passed on backend(s) {missing}: the backend did not run",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
