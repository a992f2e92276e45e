"""Web app page weight and speed on loopback, in Debian's Chromium (Playwright).

The site (``create_site``) runs under uvicorn on 127.0.0.1 with a temp SQLite store; a fresh browser
context (empty cache) loads each page. Per page: bytes transferred (the document and everything it loads,
from the browser's Resource Timing), and time until usable (DOMContentLoaded: the HTML parsed and the
deferred scripts — htmx and ours — run). The first load is the sign-in page in a cold browser; the others
are the signed-in pages with a demo board and one generation in the store, each in a cold context too.

Run: python bench/web.py [--repeats 3]
Last line: {"first_load_kb": ..., "first_load_ms": ..., "max_page_kb": ..., "max_page_ms": ...}
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from _common import DEMO  # noqa: E402  (bench/ is on sys.path when run as a script)
from tastemaker.api.admin import issue_key
from tastemaker.api.settings import ServerSettings
from tastemaker.web.mount import create_site

CHROMIUM = "/usr/bin/chromium"
PAGES = ["/boards", "/boards/{board}", "/generate", "/gallery", "/verify", "/account"]
MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const bytes = nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0);
  return {bytes, dcl: nav.domContentLoadedEventEnd, resources: res.length};
}"""


def serve(data: Path) -> tuple[str, Any, uvicorn.Server, threading.Thread]:
    settings = ServerSettings(data_dir=data, secret_key="bench-" + "x" * 40, job_executor="thread", job_workers=1)
    app = create_site(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", app, server, thread


def seed(base: str, app: Any) -> tuple[str, str]:
    """A pro account with the demo board and one 2-image generation; returns (key, board id)."""
    svc = app.state.services
    key = issue_key(svc.store, svc.audit, svc.settings, name="bench", tier="pro").key
    auth = {"Authorization": f"Bearer {key}"}
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((DEMO / "board").glob("*.jpg"))]
    r = httpx.post(f"{base}/v1/boards", data={"name": "demo"}, files=files, headers=auth, timeout=120)
    r.raise_for_status()
    board = r.json()["id"]
    r = httpx.post(f"{base}/v1/generations", headers={**auth, "Prefer": "wait=60"}, timeout=120,
                   data={"board_id": board, "consent": "true", "n": "2", "size": "512", "seed": "1"},
                   files={"selfie": ("selfie.jpg", (DEMO / "selfie.jpg").read_bytes(), "image/jpeg")})
    r.raise_for_status()
    return key, board


def load(browser: Any, url: str, cookies: list[dict[str, Any]] | None = None) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    if cookies:
        context.add_cookies(cookies)
    page = context.new_page()
    page.goto(url, wait_until="load")
    m = page.evaluate(MEASURE)
    context.close()
    return {"kb": m["bytes"] / 1024, "ms": m["dcl"], "resources": m["resources"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base, app, server, thread = serve(Path(tmp))
        try:
            key, board = seed(base, app)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                signin = [load(browser, f"{base}/signin") for _ in range(args.repeats)]
                ctx = browser.new_context()
                page = ctx.new_page()
                page.goto(f"{base}/signin")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r".*/boards.*"))
                cookies = ctx.cookies()
                ctx.close()
                rows = [("/signin (first load, signed out)", signin)]
                for path in PAGES:
                    url = base + path.format(board=board)
                    rows.append((path, [load(browser, url, cookies) for _ in range(args.repeats)]))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=30)

    print(f"{'page (cold cache)':40s} {'KB':>8s} {'ms to usable':>13s} {'requests':>9s}")
    summary = []
    for name, runs in rows:
        kb = statistics.median(r["kb"] for r in runs)
        ms = statistics.median(r["ms"] for r in runs)
        summary.append((kb, ms))
        print(f"{name:40s} {kb:8.1f} {ms:13.0f} {int(runs[0]['resources']) + 1:9d}")
    print("targets: first load <= 200 KB and <= 1000 ms until usable")
    print(json.dumps({
        "first_load_kb": round(summary[0][0], 1),
        "first_load_ms": round(summary[0][1]),
        "max_page_kb": round(max(kb for kb, _ in summary), 1),
        "max_page_ms": round(max(ms for _, ms in summary)),
    }))


if __name__ == "__main__":
    main()
