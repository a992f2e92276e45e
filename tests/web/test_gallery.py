"""The gallery: every generation newest first with its settings and downloads, paging, and reactions that go
through the API's feedback into the board's taste profile (a hidden image leaves the gallery)."""

from __future__ import annotations

import re

import pytest

import tastemaker.web.pages.gallery as gallery
from tastemaker.media import decode_image

from .conftest import Site
from .test_generate import finished, signed_in


def figure(html: str, job_id: str, k: int) -> str:
    m = re.search(rf'<figure class="shot" id="img-{job_id}-{k}">(.*?)</figure>', html, re.S)
    assert m, f"no image {k} of {job_id}"
    return m.group(1)


def test_an_empty_gallery_says_what_to_do(site: Site) -> None:
    site.sign_in()
    r = site.client.get("/gallery")
    assert r.status_code == 200 and "Nothing generated yet" in r.text and 'href="/generate"' in r.text


def test_gallery_lists_generations_newest_first_with_settings_and_pages(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, csrf, board_id = signed_in(site)
    first = finished(site, csrf, board_id, prompt="first look", seed=21)
    second = finished(site, csrf, board_id, prompt="second look", seed=22, aspect="1:1")
    html = site.client.get("/gallery").text
    assert html.index(second) < html.index(first)  # newest first
    block = html[html.index(f'id="gen-{second}"'):html.index(f'id="gen-{first}"')]
    assert "second look" in block and "<dd>22</dd>" in block and "256 px, 1:1" in block and "<dd>demo</dd>" in block
    assert f'href="/generate?from={second}"' in block and f'href="/generations/{second}/zip"' in block
    assert f'src="/generations/{second}/images/0?thumb=1"' in block
    assert f'href="/generations/{second}/images/0?download=1"' in block

    monkeypatch.setattr(gallery, "PAGE", 1)
    page1 = site.client.get("/gallery").text
    assert second in page1 and first not in page1
    older = re.search(r'href="(/gallery\?before=[^"]+)" rel="next"', page1)
    assert older
    page2 = site.client.get(older.group(1).replace("&amp;", "&")).text
    assert first in page2 and f'id="gen-{second}"' not in page2 and 'rel="next"' not in page2
    assert site.client.get("/gallery?before=yesterday").status_code == 422


def test_a_reaction_is_recorded_in_the_taste_profile(site: Site) -> None:
    key, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id)
    r = site.client.post(f"/generations/{job_id}/images/0/react",
                         data={"csrf_token": csrf, "action": "like", "next": "/gallery"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/gallery?done=reacted"

    history = site.client.get(f"/v1/boards/{board_id}/profile/history",
                              headers={"Authorization": f"Bearer {key}"}).json()
    last = history["versions"][-1]
    assert last["kind"] == "feedback" and last["action"] == "like"
    assert last["generation_id"] == job_id and last["image_index"] == 0

    html = site.client.get("/gallery?done=reacted").text
    assert "Reaction recorded" in html
    card = figure(html, job_id, 0)
    assert re.search(r'value="like" class="secondary chosen" aria-pressed="true"', card)
    assert "Your reaction: <strong>Like</strong>" in card
    assert "Your reaction: <strong>Like</strong>" in figure(site.client.get(f"/generations/{job_id}").text, job_id, 0)


def test_htmx_reactions_swap_the_card_and_hide_removes_the_image(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id)
    hx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    r = site.client.post(f"/generations/{job_id}/images/0/react", data={"action": "save", "next": "/gallery"},
                         headers=hx)
    assert r.status_code == 200 and not r.text.startswith("<!doctype")
    assert r.text.lstrip().startswith(f'<figure class="shot" id="img-{job_id}-0">')
    assert 'role="status"' in r.text and "learnt from it" in r.text and 'aria-pressed="true"' in r.text

    r = site.client.post(f"/generations/{job_id}/images/0/react", data={"action": "hide"}, headers=hx)
    assert r.status_code == 200 and "hidden" in r.text and "<img" not in r.text
    html = site.client.get("/gallery").text
    assert f'id="img-{job_id}-0"' not in html and "1 hidden image not shown" in html
    assert f'id="img-{job_id}-0"' not in site.client.get(f"/generations/{job_id}").text


def test_reactions_are_checked(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id)
    bad = site.client.post(f"/generations/{job_id}/images/0/react", data={"csrf_token": csrf, "action": "love"})
    assert bad.status_code == 422 and "save, like, skip, hide" in bad.text
    missing = site.client.post(f"/generations/{job_id}/images/5/react", data={"csrf_token": csrf, "action": "like"})
    assert missing.status_code == 404
    no_csrf = site.client.post(f"/generations/{job_id}/images/0/react", data={"action": "like"})
    assert no_csrf.status_code == 403

    other = site.sign_in()  # another account, same browser
    r = site.client.post(f"/generations/{job_id}/images/0/react", data={"csrf_token": other, "action": "like"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert job_id not in site.client.get("/gallery").text


def test_an_off_site_next_is_ignored(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id)
    r = site.client.post(f"/generations/{job_id}/images/0/react",
                         data={"csrf_token": csrf, "action": "skip", "next": "https://evil.example/"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/generations/{job_id}?done=reacted"



def test_pages_show_small_thumbnails_and_link_the_real_image(site: Site) -> None:
    """A gallery of large outputs must not ship them whole: the page's <img> is a JPEG of at most 480 px."""
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id, size="512")
    html = site.client.get("/gallery").text
    thumb = re.search(rf'<img src="(/generations/{job_id}/images/0\?thumb=1)"', html)
    assert thumb and f'<a href="/generations/{job_id}/images/0">' in html
    r = site.client.get(thumb.group(1))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(decode_image(r.content).shape[:2]) <= 480
    full = site.client.get(f"/generations/{job_id}/images/0")
    assert full.headers["content-type"] == "image/png" and len(full.content) > len(r.content)
    again = site.client.get(thumb.group(1), headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
