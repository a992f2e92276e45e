"""``tastemaker worker`` and ``tastemaker serve --workers N`` refuse what cannot work, in one line each (exit 78)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def dev(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASTEMAKER_DEV_MODE", "1")
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path))


PG = {"TASTEMAKER_QUEUE_URL": "postgresql://u:p@127.0.0.1:9/q", "TASTEMAKER_DATABASE_URL": "postgresql://u:p@127.0.0.1:9/q"}


@pytest.mark.parametrize(("args", "env", "says"), [
    (["worker"], {}, "set TASTEMAKER_QUEUE_URL"),
    (["worker"], {"TASTEMAKER_QUEUE_URL": "redis://127.0.0.1:6379/0"}, "must be a PostgreSQL URL"),
    (["worker"], {"TASTEMAKER_QUEUE_URL": "postgresql://u:p@127.0.0.1:9/q"}, "the database is SQLite"),
    (["worker"], PG, "cannot reach the database"),
    (["serve", "--workers", "2"], {}, "--workers above 1 needs queue mode"),
    (["serve", "--workers", "2"], PG, "needs shared rate limits"),
])
def test_what_cannot_work_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], says: str
) -> None:
    if args[0] == "worker":
        pytest.importorskip("procrastinate")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = runner.invoke(app, args)
    assert result.exit_code == 78, result.output
    assert says in result.output and "Traceback" not in result.output
