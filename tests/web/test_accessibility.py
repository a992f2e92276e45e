"""Every page passes axe-core's automated accessibility rules (WCAG 2.1 A and AA: labels, contrast, names,
landmarks, focusable controls...) at desktop and phone size, in Debian's Chromium.

axe-core comes with ``axe-playwright-python``; it is injected through the debugging protocol, so the test's
browser context bypasses the site's Content-Security-Policy (the site itself never runs it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from ..api.conftest import DEMO, board_parts, demo_pins
from .conftest import sign_in_browser

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

#: WCAG 2.x A/AA rule tags; best-practice rules are advisory and left out
RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
         "resultTypes": ["violations"]}
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def _violations(page: Any) -> list[str]:
    results = axe_module.Axe().run(page, options=RULES)
    out = []
    for v in results.response["violations"]:
        targets = [", ".join(n["target"]) for n in v["nodes"][:3]]
        out.append(f"{v['id']} ({v['impact']}): {v['help']} — {targets}")
    return out


@pytest.fixture
def seeded(live_site: Any) -> tuple[Any, str, str, str]:
    """A site with one account, its demo board and one finished generation: (site, key, board id, job id)."""
    site = live_site()
    key = site.new_key(tier="pro", name="a11y")
    auth = {"Authorization": f"Bearer {key}"}
    names = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg", "cafe-morning.jpg"]
    pins = [p for p in demo_pins() if p["image"] in names]
    r = httpx.post(f"{site.url}/v1/boards", data={"name": "Access", "pins": json.dumps(pins)},
                   files=board_parts(names), headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    board = r.json()["id"]
    r = httpx.post(f"{site.url}/v1/generations", headers={**auth, "Prefer": "wait=60"}, timeout=120,
                   data={"board_id": board, "consent": "true", "n": "2", "size": "256", "seed": "2"},
                   files={"selfie": ("selfie.jpg", (DEMO / "selfie.jpg").read_bytes(), "image/jpeg")})
    assert r.json()["status"] == "succeeded", r.text
    return site, key, board, r.json()["id"]


@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_page_passes_axe(chromium: Any, seeded: tuple[Any, str, str, str], size: str) -> None:
    site, key, board, job = seeded
    context = chromium.new_context(viewport=SIZES[size], bypass_csp=True)
    page = context.new_page()
    found: dict[str, list[str]] = {}
    try:
        page.goto(f"{site.url}/signin")
        found["/signin"] = _violations(page)
        sign_in_browser(page, site.url, key)
        for path in ("/boards", f"/boards/{board}", f"/boards/{board}/taste", "/generate",
                     f"/generations/{job}", "/gallery", "/verify", "/account"):
            page.goto(site.url + path)
            page.wait_for_load_state("load")
            found[path] = _violations(page)
        page.goto(f"{site.url}/generate")
        page.get_by_role("button", name="Generate").click()  # an error state: messages next to fields
        page.wait_for_url(re.compile(r".*/generate.*"))
        found["/generate (errors)"] = _violations(page)
    finally:
        context.close()
    bad = {path: v for path, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)


def test_the_check_finds_what_it_is_for(chromium: Any) -> None:
    """The rule set catches an unlabelled field and grey-on-white text (so the test above can fail)."""
    page = chromium.new_page()
    try:
        page.set_content('<html lang="en"><title>x</title><main><input type="text">'
                         '<p style="color:#bbb;background:#fff">faint</p></main></html>')
        ids = {v.split(" ")[0] for v in _violations(page)}
    finally:
        page.close()
    assert {"label", "color-contrast"} <= ids, ids
