"""``tastemaker ui``: one local person, no key to type — a secret and an account made once (0600 files in the
data dir), 127.0.0.1 only, and a sign-in link that works once. ``serve`` serves the same site."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tastemaker.cli import serve as serve_cli

LINK = "Sign in (this link works once): "


class UiProcess:
    """``tastemaker ui --no-browser`` as a subprocess; its output read line by line in a thread."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEMAKER_")}
        env.update(TASTEMAKER_JOB_EXECUTOR="thread", TASTEMAKER_GUARD_WORKERS="0", COLUMNS="200")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tastemaker.cli import main; main()", "ui", "--no-browser", "--port", "0",
             "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = 120) -> str:
        """The rest of the first output line that starts with ``prefix`` (waits for it; fails if the process ends)."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"`tastemaker ui` ended without printing {prefix!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_ui() -> Iterator[type[UiProcess]]:
    started: list[UiProcess] = []

    class Tracked(UiProcess):
        def __init__(self, data_dir: Path) -> None:
            super().__init__(data_dir)
            started.append(self)

    yield Tracked
    for p in started:
        p.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ui_signs_the_local_person_in_once_with_the_printed_link(start_ui: type[UiProcess], tmp_path: Path) -> None:
    data = tmp_path / "data"
    ui = start_ui(data)
    link = ui.wait_for(LINK)
    assert link.startswith("http://127.0.0.1:") and "/local-login?token=" in link
    base = link.split("/local-login")[0]

    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        r = browser.get(link)
        assert r.status_code == 200 and r.url.path == "/boards", (r.status_code, r.url)
        assert browser.cookies.get("tm_session")
        assert browser.get(f"{base}/account").status_code == 200  # signed in: no redirect to /signin
        assert browser.get(f"{base}/account").url.path == "/account"
    with httpx.Client(follow_redirects=False, timeout=30) as other:
        again = other.get(link)
        assert again.status_code == 401 and "works once" in again.text
        assert other.get(f"{base}/v1/usage").status_code == 401  # the API still needs a key
        assert other.get(f"{base}/healthz").status_code == 200

    # what the first start left in the data dir: a secret and the account's ids, readable by the owner only
    secret, account = data / serve_cli.UI_SECRET_FILE, data / serve_cli.UI_ACCOUNT_FILE
    assert mode(secret) == 0o600 and mode(account) == 0o600
    ids = json.loads(account.read_text())
    assert set(ids) == {"account_id", "key_id"}  # ids only: the raw key is not kept
    ui.stop()

    # a second start keeps the same secret and account, with a new one-time link
    ui2 = start_ui(data)
    link2 = ui2.wait_for(LINK)
    assert link2.split("token=")[1] != link.split("token=")[1]
    assert json.loads(account.read_text()) == ids
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        assert browser.get(link2).url.path == "/boards"


def test_serve_says_the_app_is_at_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``serve`` runs create_site (pages at /, the API under /v1); uvicorn itself is not started here."""
    ran: dict[str, object] = {}
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TASTEMAKER_SECRET_KEY", "s" * 40)
    cli = typer.Typer()
    serve_cli.register(cli)
    res = CliRunner().invoke(cli, ["serve", "--port", "8123"])
    assert res.exit_code == 0, res.output
    assert "the app at /, the API under /v1" in res.stderr
    app = ran["app"]
    assert hasattr(app.state, "local_login") and app.state.local_login is None  # type: ignore[attr-defined]
    assert "/static" in {getattr(r, "path", "") for r in app.routes}  # type: ignore[attr-defined]
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8123
