"""The package's shape: one-way imports, names compared only by their owners.

These read the source with :mod:`ast`; they need no backend.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "anynet"


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _runtime_imports(tree: ast.AST) -> list[ast.AST]:
    """Import nodes at any depth (lazy ones too), except under ``if TYPE_CHECKING:``."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                hidden.update(id(n) for n in ast.walk(child))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in hidden
    ]


def _targets(module: str, path: pathlib.Path, node: ast.AST, modules: dict) -> list[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [
            f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names
        ]
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        if name and name != module and not module.startswith(name + "."):
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text())):
            graph[name].update(_targets(name, path, node, modules))
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                cycles.append([*stack[stack.index(child) :], child])
            elif child not in state:
                visit(child)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 20 and "anynet.layers.base" in graph
    assert "anynet.io" in graph["anynet.network"]  # the finder sees real edges
    assert find_cycles(graph) == []


def _engine(graph):
    return sorted(name for name in graph if name.startswith("anynet.engine"))


def test_streets_run_one_way():
    graph = import_graph()
    engine = set(_engine(graph))
    assert {"anynet.engine.step", "anynet.engine.fit", "anynet.engine.runner"} <= engine
    assert not graph["anynet.io"] & ({"anynet.network"} | engine)
    for module in ("anynet.model", "anynet.heads", "anynet.losses", "anynet.layers.base"):
        assert not graph[module] & ({"anynet.network", "anynet.io"} | engine), module
    assert not graph["anynet.functional"] & {"anynet.network", "anynet.io"}


def test_the_engine_never_imports_the_network_or_its_faces():
    """``Network`` drives the engine; the engine hands back completed chunks, never
    reaching into the network, its callbacks or the scikit-learn face."""
    graph = import_graph()
    faces = {"anynet.network", "anynet.callbacks", "anynet.sklearn", "anynet.cli", "anynet"}
    for module in _engine(graph):
        assert not graph[module] & faces, (module, graph[module] & faces)


def test_backends_know_nothing_of_training():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("anynet.backend")):
        training = {m for m in graph[module] if m.startswith(("anynet.engine", "anynet.network"))}
        assert not training, (module, training)


def _package_of(module: str, path: pathlib.Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def test_no_private_name_is_imported_across_packages():
    """``from .other_package import _private`` couples to another package's insides:
    packages (``anynet``, ``anynet.engine``, ``anynet.backend``, ``anynet.layers``,
    ``anynet.testing``) share only their public names."""
    modules = _modules()
    hits = []
    for module, path in sorted(modules.items()):
        own = _package_of(module, path)
        for node in _runtime_imports(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            for target in _targets(module, path, node, modules):
                target_path = modules[target]
                if _package_of(target, target_path) == own or target == own:
                    continue
                hits += [
                    f"{module}: {target}.{a.name}" for a in node.names if a.name.startswith("_")
                ]
    assert hits == []


def _source_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            yield path.relative_to(PACKAGE.parent).as_posix(), number, code


@pytest.mark.parametrize(
    "pattern, owners",
    [
        (r"""startswith\(\s*["']W|\[0\]\s*==\s*["']W""", ()),  # parameter kinds by key prefix
        (
            r"""(name|head|kind)\s*[!=]=\s*["'](softmax|sigmoid|identity|tanh|relu|binary|"""
            r"""multiclass|regression|categorical_crossentropy|binary_crossentropy|mse)["']""",
            ("anynet/heads.py",),
        ),
        (
            r"""(backend|name)\s*[!=]=\s*["'](jax|cupy|torch|numpy|array_api_strict)["']""",
            (),  # each backend's class answers for its library (anynet/backend/*.py)
        ),
    ],
)
def test_names_are_compared_only_by_their_owner(pattern, owners):
    hits = [
        f"{path}:{number}: {code.strip()}"
        for path, number, code in _source_lines()
        if re.search(pattern, code) and path not in owners
    ]
    assert hits == []


def test_backend_libraries_are_imported_in_their_backend_module_only():
    libraries = {"jax", "cupy", "torch", "array_api_strict"}
    own = {"jax.py": "jax", "cupy.py": "cupy", "torch.py": "torch", "strict.py": "array_api_strict"}
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        allowed = {own.get(path.name)} if path.parent == PACKAGE / "backend" else set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            hits += [
                f"{path.name}:{node.lineno}"
                for n in names
                if n.split(".")[0] in libraries - allowed
            ]
    assert hits == []


def test_private_backend_names_stay_in_the_backend_package():
    """Outside ``anynet/backend/``, code imports only the public names of ``anynet.backend``."""
    modules = _modules()
    hits = []
    for module, path in sorted(modules.items()):
        if module == "anynet.backend" or module.startswith("anynet.backend."):
            continue
        for node in _runtime_imports(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            targets = _targets(module, path, node, modules)
            if any(t == "anynet.backend" or t.startswith("anynet.backend.") for t in targets):
                hits += [f"{module}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert hits == []
