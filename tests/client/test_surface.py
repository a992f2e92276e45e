"""The client's install surface: it works with the core install alone, and the server knows which built-in
engines draw from an identity alone without loading them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tastemaker.api.domain.generations import BUILTIN_IDENTITY_ONLY

NO_SERVER = """
import sys
for name in ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "limits", "pebble", "jinja2", "openai"):
    sys.modules[name] = None  # as if the [server] extra (and the dev tools) were not installed
from tastemaker.client import AsyncClient, Client
with Client("http://127.0.0.1:9", "tm_x") as c:
    assert c.base_url == "http://127.0.0.1:9"
print("ok")
"""


def test_the_client_needs_only_the_core_install() -> None:
    r = subprocess.run([sys.executable, "-c", NO_SERVER], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_identity_only_table_matches_the_engines() -> None:
    from tastemaker.engines.look.engine import LookEngine

    assert BUILTIN_IDENTITY_ONLY["look"] is LookEngine.accepts_identity_only is False
    from tastemaker.errors import MissingDependencyError

    try:
        from tastemaker.engines.diffusion import DiffusionEngine
    except MissingDependencyError:
        pytest.skip("the [diffusion] extra is not installed")
    assert BUILTIN_IDENTITY_ONLY["diffusion"] is DiffusionEngine.accepts_identity_only is True
