"""Type checkers see anynet in an editable install: the check ``nox -s typecheck`` runs.

A fresh virtual environment (no system site-packages), ``pip install -e <repo>`` into it,
then mypy, run from an empty folder with ``--python-executable`` pointing at that
environment, so that anynet is found only through the install:

- ``user_api.py`` (a typed user script) passes ``mypy --strict``;
- ``user_wrong.py`` fails, with the error at ``net.fit(X, y, epochs="10")``.

Usage: ``python tests/typecheck/check_editable.py [--no-deps]``. ``--no-deps`` installs
anynet alone and puts the running interpreter's site-packages (numpy, array-api-compat)
behind the environment's own, for machines without a package index; the build then runs
without isolation, with the running interpreter's setuptools. Exits 0 when both checks
hold, 1 otherwise, saying which.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import venv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WRONG_LINE = 'net.fit(X, y, epochs="10")'


def _python(env: pathlib.Path) -> pathlib.Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(*args: str | os.PathLike[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    return subprocess.run([os.fspath(a) for a in args], cwd=cwd, env=clean, text=True,
                          capture_output=True)  # fmt: skip


def main(argv: list[str]) -> int:
    no_deps = "--no-deps" in argv
    with tempfile.TemporaryDirectory(prefix="anynet-typecheck-") as tmp:
        work = pathlib.Path(tmp)
        env = work / "venv"
        venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env)
        python = _python(env)
        install: list[str | os.PathLike[str]] = [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
        ]
        if no_deps:
            # what the running interpreter has: numpy, array-api-compat, setuptools
            purelib = sysconfig.get_paths()["purelib"]
            target = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                          cwd=work).stdout.strip()  # fmt: skip
            pathlib.Path(target, "zz_outer_site.pth").write_text(purelib + "\n")
            # the environment's bundled setuptools may be older than pyproject.toml needs
            _run(python, "-m", "pip", "uninstall", "-y", "-q", "setuptools", cwd=work)
            install += ["--no-deps", "--no-build-isolation"]
        done = _run(*install, "-e", ROOT, cwd=work)
        if done.returncode != 0:
            print(f"pip install -e {ROOT} failed:\n{done.stdout}{done.stderr}", file=sys.stderr)
            return 1
        users = work / "user"
        users.mkdir()
        for name in ("user_api.py", "user_wrong.py"):
            shutil.copy(HERE / name, users / name)
        mypy: list[str | os.PathLike[str]] = [
            sys.executable,
            "-m",
            "mypy",
            "--python-executable",
            python,
            "--no-incremental",
        ]
        failures = []
        good = _run(*mypy, "--strict", "user_api.py", cwd=users)
        if good.returncode != 0:
            failures.append(f"mypy --strict user_api.py should pass:\n{good.stdout}{good.stderr}")
        bad = _run(*mypy, "user_wrong.py", cwd=users)
        line = 1 + (HERE / "user_wrong.py").read_text().splitlines().index(
            next(x for x in (HERE / "user_wrong.py").read_text().splitlines() if WRONG_LINE in x)
        )
        expected = f'user_wrong.py:{line}: error: Argument "epochs" to "fit" of "Network"'
        if bad.returncode != 1 or expected not in bad.stdout or "import-not-found" in bad.stdout:
            failures.append(
                f"mypy user_wrong.py should report only {expected!r}:\n{bad.stdout}{bad.stderr}"
            )
        for failure in failures:
            print(failure, file=sys.stderr)
        if failures:
            return 1
        print("editable install: mypy sees anynet (user_api.py passes --strict; "
              "user_wrong.py's epochs='10' is caught)")  # fmt: skip
        return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
