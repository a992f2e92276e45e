"""Screenshots of the web app for the README (docs/web/*.png), made from the bundled demo data.

Starts the site on loopback with a temp store, makes a board from the demo pins, generates 4 images from
the demo selfie, and photographs the board, taste, generate, job, gallery and verify pages in Debian's
Chromium at 1280×860 (and the generate page at phone size). The PNGs are palette-quantised to keep the
repository small.

Run: python scripts/web_screenshots.py [--out docs/web]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from PIL import Image

from tastemaker.api.admin import issue_key
from tastemaker.api.settings import ServerSettings
from tastemaker.web.mount import create_site

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"


def save(page: Any, path: Path) -> None:
    deadline = time.monotonic() + 60  # every image decoded (thumbnails are made on first request)
    while not page.evaluate("[...document.images].filter(i => i.getAttribute('src') && i.offsetParent)"
                            ".every(i => i.complete && i.naturalWidth > 0)"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{page.url}: images did not load")
        time.sleep(0.1)
    page.evaluate("window.scrollTo(0, 0)")  # the page as it opens, not where the last field scrolled it
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "web")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(data_dir=Path(tmp), secret_key="screens-" + "x" * 40, job_executor="thread")
        app = create_site(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the site did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        svc = app.state.services
        key = issue_key(svc.store, svc.audit, settings, name="demo", tier="pro").key
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
                page.goto(f"{base}/signin")
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r".*/boards.*"))
                page.get_by_label("Name", exact=True).fill("Golden hour")
                board = DEMO / "board"
                page.get_by_label("Images", exact=True).set_input_files(
                    sorted(str(f) for f in board.glob("*.jpg")) + [str(board / "pins.csv")])
                page.get_by_role("button", name="Create board").click()
                page.wait_for_url(re.compile(r".*/boards/brd_\w+.*"))
                board_url = page.url.split("?")[0]
                page.goto(board_url)
                save(page, args.out / "board.png")
                page.goto(f"{board_url}/taste")
                save(page, args.out / "taste.png")
                page.goto(f"{base}/generate")
                page.get_by_label("Selfie photo").set_input_files(str(DEMO / "selfie.jpg"))
                page.get_by_label("Prompt (optional)").fill("golden hour, close-up")
                page.get_by_label("Images", exact=True).fill("4")
                page.get_by_label("Size (px)").fill("512")
                page.get_by_label("Seed (optional)").fill("7")
                page.get_by_label(re.compile("I confirm the selfie")).check()
                save(page, args.out / "generate.png")
                page.get_by_role("button", name="Generate").click()
                try:
                    page.wait_for_url(re.compile(r".*/generations/gen_\w+$"), timeout=120_000)
                except Exception:
                    page.screenshot(path="/tmp/gen-fail.png", full_page=True)
                    raise
                page.locator(".shot img").nth(3).wait_for(timeout=120_000)
                job_url = page.url
                save(page, args.out / "job.png")
                page.goto(f"{base}/gallery")
                save(page, args.out / "gallery.png")
                out = Path(tmp) / "ours.png"
                out.write_bytes(page.request.get(f"{job_url}/images/0?download=1").body())
                page.goto(f"{base}/verify")
                page.get_by_label("Image to check").set_input_files(str(out))
                page.get_by_role("button", name="Check this image").click()
                page.get_by_role("heading", name=re.compile("Made by this Tastemaker server")).wait_for()
                save(page, args.out / "verify.png")
                page.set_viewport_size({"width": 390, "height": 844})
                page.goto(f"{base}/generate?from={job_url.rsplit('/', 1)[1]}")
                save(page, args.out / "generate-phone.png")
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=30)


if __name__ == "__main__":
    main()
