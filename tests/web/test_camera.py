"""The generate form's camera, in a real Chromium with a fake camera: start it, wait for the picture, capture,
and the selfie field holds a JPEG (with its preview) — what a person with a webcam does instead of choosing a
file. The fake camera shows a synthetic pattern, not a face, so the form is not submitted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import CHROMIUM, shot, sign_in_browser

#: Chromium's own fake camera, allowed without a prompt
CAMERA_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def camera_browser(chromium: Any) -> Iterator[Any]:
    """A second Chromium with a fake camera, launched from the shared Playwright (one driver per process)."""
    browser = chromium.browser_type.launch(executable_path=str(CHROMIUM), args=CAMERA_ARGS)
    yield browser
    browser.close()


def poll(page: Any, expression: str, timeout: float = 15.0) -> Any:
    """Wait until ``expression`` is truthy in the page. Playwright's wait_for_function compiles it with eval,
    which the site's Content-Security-Policy forbids; page.evaluate goes through the debugging protocol."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def test_a_selfie_taken_with_the_camera_fills_the_selfie_field(live_site: Any, camera_browser: Any) -> None:
    site = live_site()
    context = camera_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.grant_permissions(["camera"], origin=site.url)
        page = context.new_page()
        sign_in_browser(page, site.url, site.new_key())
        page.goto(f"{site.url}/generate")
        assert page.evaluate("document.getElementById('selfie').files.length") == 0
        assert not page.locator("#selfie-preview").is_visible()

        page.get_by_role("button", name="Take one with the camera").click()
        poll(page, "(() => { const v = document.getElementById('camera-video');"
                   " return !v.hidden && !v.paused && v.readyState >= 2 && v.videoWidth > 0; })()")
        assert page.get_by_role("button", name="Take one with the camera").is_hidden()
        assert page.get_by_role("button", name="Close camera").is_visible()
        assert page.evaluate("document.activeElement.id") == "camera-capture"  # ready for Enter/Space

        page.get_by_role("button", name="Capture").click()
        poll(page, "document.getElementById('selfie').files.length === 1")
        picked = page.evaluate("""async () => {
            const f = document.getElementById('selfie').files[0];
            const head = new Uint8Array(await f.slice(0, 3).arrayBuffer());
            return {type: f.type, size: f.size, name: f.name, head: Array.from(head)};
        }""")
        assert picked["type"] == "image/jpeg" and picked["name"] == "camera-selfie.jpg"
        assert picked["head"] == [0xFF, 0xD8, 0xFF], "the file is not a JPEG"
        assert 5_000 < picked["size"] <= int(page.get_attribute("#selfie", "data-max-bytes") or 0)

        poll(page, "(() => { const p = document.getElementById('selfie-preview');"
                   " return !p.hidden && p.complete && p.naturalWidth > 0; })()")
        assert page.locator("#selfie-preview").is_visible()
        assert page.locator("#selfie-client-error").is_hidden()
        assert "Photo taken" in page.locator("#camera-status").inner_text()
        # the camera is off again: no stream kept once the photo is taken
        assert page.evaluate("document.getElementById('camera-video').srcObject === null")
        assert page.get_by_role("button", name="Take one with the camera").is_visible()
        shot(page, "generate-camera")
    finally:
        context.close()
