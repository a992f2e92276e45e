"""The service commands: exact exit codes, the key printed once, tampering reported by `audit verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tastemaker.api.keys import is_well_formed
from tastemaker.cli.serve import register

from .conftest import SECRET

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TASTEMAKER_SECRET_KEY", SECRET)
    app = typer.Typer()
    register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_keys_create_list_revoke(cli: typer.Typer) -> None:
    code, out, err = run(cli, "keys", "create", "--name", "studio", "--tier", "pro")
    assert code == 0, err
    key = out.strip()
    assert is_well_formed(key) and "not shown again" in err
    code, out, _ = run(cli, "keys", "list")
    assert code == 0 and key[:11] in out and key not in out and "studio" in out and "active" in out
    code, out, _ = run(cli, "keys", "revoke", key[:11])
    assert code == 0 and "revoked" in out
    code, out, _ = run(cli, "keys", "list")
    assert "revoked" in out
    code, _, err = run(cli, "keys", "revoke", "tm_nothere")
    assert code == 1 and "NotFoundError" in err


def test_keys_create_with_scopes(cli: typer.Typer, tmp_path: Path) -> None:
    from tastemaker.api.keys import key_hash
    from tastemaker.store import open_store

    code, out, err = run(cli, "keys", "create", "--name", "app", "--scope", "styleembed", "--scope", "boards:read")
    assert code == 0, err
    key = out.strip()
    assert "scopes: boards:read styleembed" in err
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'tastemaker.db'}", tmp_path / "data" / "blobs")
    with store.session() as s:
        row = s.find_key(key_hash(key))
        assert row is not None and row.scopes == "boards:read styleembed"
    store.dispose()
    code, out, _ = run(cli, "keys", "list")
    assert "boards:read,styleembed" in out
    code, out, err = run(cli, "keys", "create", "--name", "all")
    assert code == 0 and "scopes: boards:read boards:write styleembed generate verify" in err
    code, _, err = run(cli, "keys", "create", "--name", "bad", "--scope", "boards:delete")
    assert code == 2 and "boards:delete" in err and "styleembed" in err


def test_unknown_tier_is_a_configuration_error(cli: typer.Typer) -> None:
    code, _, err = run(cli, "keys", "create", "--name", "x", "--tier", "platinum")
    assert code == 78 and "ConfigurationError" in err and "free" in err


def test_audit_verify_detects_tampering(cli: typer.Typer, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        assert run(cli, "keys", "create", "--name", name)[0] == 0
    code, out, _ = run(cli, "audit", "verify")
    assert code == 0 and "3 entries" in out
    anchor = out.split("later): ")[1].split()[0]
    assert run(cli, "audit", "verify", "--anchor", anchor)[0] == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'tastemaker.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET outcome = 'denied' WHERE seq = 2"))
    engine.dispose()
    code, out, err = run(cli, "audit", "verify")
    assert code == 5 and "AuditTamperedError" in err and "2" in out


def test_default_secret_is_refused_outside_dev_mode(cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    monkeypatch.delenv("TASTEMAKER_SECRET_KEY")
    code, _, err = run(cli, "serve")
    assert code == 78 and "TASTEMAKER_SECRET_KEY" in err and not started
    monkeypatch.setenv("TASTEMAKER_SECRET_KEY", "short")
    assert run(cli, "serve")[0] == 78
    monkeypatch.setenv("TASTEMAKER_DEV_MODE", "1")
    monkeypatch.delenv("TASTEMAKER_SECRET_KEY")
    code, _, err = run(cli, "serve", "--port", "8123")
    assert code == 0, err
    assert len(started) == 1
    opts = started[0]
    assert {k: opts[k] for k in ("host", "port", "log_level", "workers", "timeout_keep_alive")} == {
        "host": "127.0.0.1", "port": 8123, "log_level": "info", "workers": 1, "timeout_keep_alive": 5
    }
    assert (opts["http"].header_timeout, opts["http"].body_timeout) == (10.0, 120.0)  # read deadlines (issue 12)
    assert opts["log_config"]["loggers"]["tastemaker"]["level"] == "INFO"


def test_db_upgrade(cli: typer.Typer) -> None:
    from tastemaker.store.sql import head_revision

    head = head_revision()
    code, out, _ = run(cli, "db", "upgrade")
    assert code == 0 and f"empty -> {head}" in out
    code, out, _ = run(cli, "db", "upgrade")
    assert code == 0 and f"{head} -> {head}" in out
