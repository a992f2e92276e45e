"""The generate pages: the form (fields from the schema, consent, restore from history), submitting it through
the API's admission (errors shown next to their field, as HTML), the job page with its event stream, images,
zip and cancel — and one real browser run with live progress."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from html import unescape
from typing import Any, get_args

import pytest
from markupsafe import escape

import tastemaker.jobs.tasks as tasks
from tastemaker.api.keys import key_hash
from tastemaker.api.schemas import GenerationCreate
from tastemaker.api.settings import TierLimits
from tastemaker.taste.profile import TasteProfile
from tastemaker.web.pages.generate import CONSENT_WORDS, mode_label

from ..api.conftest import DEMO, TEST_TIERS, board_parts, demo_pins
from .conftest import Site, shot, sign_in_browser

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]
SELFIE = (DEMO / "selfie.jpg").read_bytes()


def make_board(site: Site, key: str, name: str = "demo") -> str:
    """A small board made through the JSON API with the same key the browser signed in with."""
    pins = [p for p in demo_pins() if p["image"] in SMALL_BOARD]
    r = site.client.post("/v1/boards", data={"name": name, "pins": json.dumps(pins)}, files=board_parts(SMALL_BOARD),
                         headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    board_id: str = r.json()["id"]
    return board_id


def signed_in(site: Site, tier: str = "free") -> tuple[str, str, str]:
    """(key, csrf token, board id) for a new signed-in account with one board."""
    key = site.new_key(tier)
    csrf = site.sign_in(key)
    return key, csrf, make_board(site, key)


def account_of(site: Site, key: str) -> str:
    with site.services.store.session() as s:
        found = s.find_key(key_hash(key))
    assert found is not None
    return str(found.account_id)


def submit(site: Site, csrf: str, board_id: str, *, selfie: bytes | None = SELFIE, **fields: Any) -> Any:
    data = {"csrf_token": csrf, "board_id": board_id, "consent": "true", "n": "1", "size": "256", "seed": "3",
            **{k: str(v) for k, v in fields.items()}}
    data = {k: v for k, v in data.items() if v != "None"}
    files = {"selfie": ("me.jpg", selfie, "image/jpeg")} if selfie is not None else {"selfie": ("", b"", "")}
    return site.client.post("/generate", data=data, files=files, follow_redirects=False)


def events(site: Site, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Read the page's event stream to its end (the job's terminal event)."""
    out: list[tuple[str, dict[str, Any]]] = []
    with site.client.stream("GET", f"/generations/{job_id}/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((name, json.loads(line.split(":", 1)[1])))
    return out


def started(site: Site, csrf: str, board_id: str, **fields: Any) -> str:
    r = submit(site, csrf, board_id, **fields)
    assert r.status_code == 303, r.text
    m = re.fullmatch(r"/generations/(gen_\w+)", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def finished(site: Site, csrf: str, board_id: str, **fields: Any) -> str:
    job_id = started(site, csrf, board_id, **fields)
    assert events(site, job_id)[-1][0] == "succeeded"
    return job_id


def error_next_to(html: str, field: str) -> str:
    m = re.search(rf'<p class="error field-error" id="{field}-error" role="alert">([^<]+)</p>', html)
    assert m, f"no message next to {field}"
    return m.group(1)


# ------------------------------------------------------------------------------------------ the form


def test_form_is_built_from_the_schema(site: Site) -> None:
    key, _, board_id = signed_in(site)
    r = site.client.get(f"/generate?board={board_id}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for name in ("aspect", "output_format", "background", "framing"):
        choices = get_args(GenerationCreate.model_fields[name].annotation)
        found = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', html, re.S)
        assert found, name
        assert re.findall(r'<option value="([^"]*)"', found.group(1)) == list(choices)
    assert re.search(r'<input type="number" id="n" name="n" value="4"[^>]* min="1" max="8"', html)
    assert re.search(r'<input type="number" id="size" name="size" value="1024"[^>]* min="256" max="2048"', html)
    assert f'<option value="{board_id}" selected>demo</option>' in html
    assert CONSENT_WORDS.replace("'", "&#39;") in html and 'name="consent" value="true" required' in html
    assert "processed in memory and never stored" in html
    assert 'type="file" id="selfie" name="selfie"' in html and 'enctype="multipart/form-data"' in html
    assert '<script src="/static/generate.js' in html and "<script>" not in html
    for label in re.findall(r'<label for="([^"]+)"', html):  # every labelled control exists
        assert f'id="{label}"' in html


def test_generate_with_consent_then_the_job_page_shows_its_images(site: Site) -> None:
    key, csrf, board_id = signed_in(site)
    job_id = started(site, csrf, board_id, prompt="golden hour")
    stream = events(site, job_id)
    assert stream[-1][0] == "succeeded" and stream[-1][1]["images"] == 1
    assert all(name == "progress" for name, _ in stream[:-1])
    assert [d["fraction"] for _, d in stream] == sorted(d["fraction"] for _, d in stream)

    page = site.client.get(f"/generations/{job_id}")
    assert page.status_code == 200
    assert f'src="/generations/{job_id}/images/0?thumb=1"' in page.text and "Download all (zip)" in page.text
    assert 'id="job-progress"' not in page.text  # finished: no progress bar, no Cancel
    assert f'href="/generate?from={job_id}"' in page.text and "golden hour" in page.text

    img = site.client.get(f"/generations/{job_id}/images/0")
    api = site.client.get(f"/v1/generations/{job_id}/images/0", headers={"Authorization": f"Bearer {key}"})
    assert img.status_code == 200 and img.content == api.content
    for h in ("content-type", "etag", "cache-control", "content-disposition"):
        assert img.headers[h] == api.headers[h]
    dl = site.client.get(f"/generations/{job_id}/images/0?download=1")
    assert dl.headers["content-disposition"] == f'attachment; filename="{job_id}_0.png"'

    z = site.client.get(f"/generations/{job_id}/zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert z.headers["content-disposition"] == f'attachment; filename="{job_id}.zip"'
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert zf.namelist() == [f"{job_id}_0.png"] and zf.read(f"{job_id}_0.png") == img.content


def test_missing_consent_is_a_message_next_to_the_checkbox(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    r = submit(site, csrf, board_id, consent=None, prompt="keep me", seed=11)
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "Tick the consent box" in error_next_to(r.text, "consent")
    assert r.text.startswith("<!doctype html>") and "consent_required" not in r.text  # a page, not JSON
    assert ">keep me</textarea>" in r.text and 'name="seed" value="11"' in r.text  # the rest stays filled
    assert "Choose the selfie again" in r.text  # the photo itself was not kept
    assert f'<option value="{board_id}" selected>' in r.text


def test_field_errors_and_a_missing_selfie(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    r = submit(site, csrf, board_id, size=100, aspect="3:1")
    assert r.status_code == 422
    assert "256" in error_next_to(r.text, "size") and error_next_to(r.text, "aspect")
    r = submit(site, csrf, board_id, selfie=None)
    assert r.status_code == 422 and "Choose a selfie" in error_next_to(r.text, "selfie")
    r = submit(site, csrf, board_id, mode="m99")
    assert r.status_code == 422 and "m99" in error_next_to(r.text, "mode")


def all_pins_board(site: Site, key: str, name: str = "everything") -> str:
    """A board of every demo pin: it has more modes than the small one (whose only mode is m1)."""
    names = [p["image"] for p in demo_pins()]
    r = site.client.post("/v1/boards", data={"name": name, "pins": json.dumps(demo_pins())},
                         files=board_parts(names), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    board_id: str = r.json()["id"]
    return board_id


def profile_modes(site: Site, board_id: str) -> list[tuple[str, str]]:
    """The board's cached profile's modes as the form should offer them: (id, label), heaviest first (the form
    builds and caches the profile the first time it shows the board)."""
    assert site.client.get(f"/generate?board={board_id}").status_code == 200
    with site.services.store.session() as s:
        cur = s.read_board_profile(board_id)
    assert cur is not None and cur.profile_json, "the form caches the profile it read the modes from"
    modes = TasteProfile.from_json(cur.profile_json).modes
    total = sum(m.weight for m in modes)
    return [(m.id, mode_label(m.id, m.name, m.weight / total)) for m in sorted(modes, key=lambda m: -m.weight)]


def options_of(html: str, select: str = "mode") -> list[tuple[str, str, bool]]:
    found = re.search(rf'<select id="{select}" name="{select}"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no select {select}"
    return options_in(found.group(1))


def options_in(html: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of each <option> in ``html``."""
    return [(v, unescape(label), bool(sel))
            for v, sel, label in re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', html)]


def test_the_mode_is_a_choice_among_the_boards_modes(site: Site) -> None:
    key, _, small = signed_in(site)
    big = all_pins_board(site, key)
    html = site.client.get(f"/generate?board={big}").text
    assert 'type="text" id="mode"' not in html and '<label for="mode">Mode</label>' in html
    expected = profile_modes(site, big)
    assert len(expected) >= 2
    assert options_of(html) == [("", "Let the board choose (auto)", False)] + [(i, lab, False) for i, lab in expected]
    assert re.fullmatch(r"m\d+ — .+ \(\d+%\)", expected[0][1]) and "·" in expected[0][1]
    assert re.search(r" — [A-Z]", expected[0][1])  # capitalised as the taste page shows the look
    assert f'href="/boards/{big}/taste"' in html and "“everything”" in html
    # the board select asks for another board's modes in place, keeping the chosen mode
    board_select = re.search(r'<select id="board_id"[^>]*>', html)
    assert board_select and 'hx-get="/generate/modes"' in board_select.group(0)
    assert 'hx-target="#mode"' in board_select.group(0) and 'hx-include="#mode"' in board_select.group(0)
    assert options_of(site.client.get(f"/generate?board={small}").text)[1:] == [
        (i, lab, False) for i, lab in profile_modes(site, small)]
    latest = site.client.get("/generate").text  # no board named: the one changed last is chosen
    assert re.search(rf'<option value="{big}" selected>', latest)
    assert options_of(latest)[1:] == [(i, lab, False) for i, lab in expected]


def test_the_modes_fragment_for_another_board(site: Site) -> None:
    key, _, small = signed_in(site)
    big = all_pins_board(site, key)
    small_ids = [i for i, _ in profile_modes(site, small)]
    only_big = next(i for i, _ in profile_modes(site, big) if i not in small_ids)
    kept = small_ids[0]

    r = site.client.get(f"/generate/modes?board_id={big}&mode={kept}", headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<html" not in r.text and "<select" not in r.text  # just the options (and the help, out of band)
    got = options_in(r.text)
    assert [(v, lab) for v, lab, _ in got] == [("", "Let the board choose (auto)")] + profile_modes(site, big)
    assert [v for v, _, sel in got if sel] == [kept]  # the new board has it: still chosen
    help_ = re.search(r'<small class="muted" id="mode-help"[^>]*hx-swap-oob="true"[^>]*>(.*?)</small>', r.text, re.S)
    assert help_ and "“everything”" in help_.group(1) and f"/boards/{big}/taste" in help_.group(1)

    back = site.client.get(f"/generate/modes?board_id={small}&mode={only_big}", headers={"HX-Request": "true"}).text
    assert [v for v, _, sel in options_in(back) if sel] == []  # the small board lacks it: auto
    assert f"Mode {only_big} is not one of them" in back and "“demo”" in back

    for unknown in ("brd_nope", ""):  # an unknown board, or none: auto only, and why
        r = site.client.get(f"/generate/modes?board_id={unknown}", headers={"HX-Request": "true"})
        assert r.status_code == 200 and [v for v, _, _ in options_in(r.text)] == [""]
    other = make_board(site, site.new_key(), "not yours")  # another account's board offers nothing
    r = site.client.get(f"/generate/modes?board_id={other}&mode=m1", headers={"HX-Request": "true"})
    assert [v for v, _, _ in options_in(r.text)] == [""] and "could not be read" in r.text
    assert "not yours" not in r.text


def test_a_mode_the_chosen_board_lacks_is_refused_next_to_the_field(site: Site) -> None:
    key, csrf, small = signed_in(site)
    big = all_pins_board(site, key)
    small_ids = {i for i, _ in profile_modes(site, small)}
    only_big = next(i for i, _ in profile_modes(site, big) if i not in small_ids)
    # without JavaScript the options stay those of the board chosen first: the server checks the pair
    r = submit(site, csrf, small, mode=only_big, prompt="keep me")
    assert r.status_code == 422
    message = error_next_to(r.text, "mode")
    assert "“demo”" in message and f"no mode {only_big} (" in message and "let the board choose" in message
    assert re.search(r'<select id="mode" name="mode" aria-invalid="true" aria-describedby="mode-help mode-error">',
                     r.text)
    assert [v for v, _, _ in options_of(r.text)] == ["", *[i for i, _ in profile_modes(site, small)]]
    assert f'<option value="{small}" selected>' in r.text and ">keep me</textarea>" in r.text
    with site.services.store.session() as s:
        assert s.list_jobs(account_of(site, key)) == []  # nothing was admitted
    # the same mode with the board that has it goes through
    assert started(site, csrf, big, mode=only_big).startswith("gen_")


def test_the_board_and_its_taste_link_to_generate_with_it(site: Site) -> None:
    _, _, board_id = signed_in(site)
    link = f'<a class="button" href="/generate?board={board_id}">Generate with this board</a>'
    for url in (f"/boards/{board_id}", f"/boards/{board_id}/taste"):
        r = site.client.get(url)
        assert r.status_code == 200 and link in r.text, url
    form = site.client.get(f"/generate?board={board_id}").text
    assert f'<option value="{board_id}" selected>demo</option>' in form and len(options_of(form)) >= 2


def test_a_selfie_over_the_limit_or_without_a_face(make_site: Any) -> None:
    site = make_site(max_image_bytes=180_000)
    _, csrf, board_id = signed_in(site)
    r = submit(site, csrf, board_id, selfie=SELFIE + bytes(120_000))
    assert r.status_code == 413 and "too large" in error_next_to(r.text, "selfie")
    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (320, 320), (200, 180, 160)).save(blank, "JPEG")
    r = submit(site, csrf, board_id, selfie=blank.getvalue())
    assert r.status_code == 422 and "No face" in error_next_to(r.text, "selfie")


def test_without_the_csrf_token_nothing_is_generated(site: Site) -> None:
    _, _, board_id = signed_in(site)
    r = submit(site, "wrong", board_id)
    assert r.status_code == 403 and "out of date" in r.text


TIGHT = {**TEST_TIERS, "tiny": TierLimits(requests_per_minute=10_000, styleembed_per_minute=100, images_per_month=2,
                                          max_active_jobs=1)}


def test_429s_are_shown_on_the_form_with_their_wait(make_site: Any) -> None:
    site = make_site(tiers=TIGHT)
    key, csrf, board_id = signed_in(site, "tiny")
    runner, acct = site.services.runner, account_of(site, key)
    assert runner.begin_admission(acct, 0, 1)  # another generation of this account is being admitted
    try:
        r = submit(site, csrf, board_id, prompt="wait for me")
    finally:
        runner.end_admission(acct)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert re.search(r"Too many requests right now\. Try again in \d+ seconds?\.", error_next_to(r.text, "form"))
    assert ">wait for me</textarea>" in r.text

    r = submit(site, csrf, board_id, n=3)  # 3 images > the tier's 2 a month
    assert r.status_code == 429 and "quota is used up" in error_next_to(r.text, "form")


# ------------------------------------------------------------------------------------------ history


def test_use_these_settings_restores_every_field_and_the_seed(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id, prompt="film grain", seed=1234, aspect="1:1", output_format="jpeg",
                      strength="0.6", background="blur", framing="closeup", mode="m1")
    html = site.client.get(f"/generate?from={job_id}").text
    assert [v for v, _, sel in options_of(html) if sel] == ["m1"]  # the mode too, among the board's modes
    assert "m1" in {i for i, _ in profile_modes(site, board_id)}
    assert ">film grain</textarea>" in html and 'name="seed" value="1234"' in html
    assert 'name="size" value="256"' in html and 'name="n" value="1"' in html and 'name="strength" value="0.6"' in html
    for name, value in {"aspect": "1:1", "output_format": "jpeg", "background": "blur", "framing": "closeup"}.items():
        found = re.search(rf'<select id="{name}"[^>]*>(.*?)</select>', html, re.S)
        assert found and f'<option value="{value}" selected>' in found.group(1), name
    assert f'<option value="{board_id}" selected>' in html and f"/generations/{job_id}" in html


def test_another_accounts_generation_is_404(site: Site) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = finished(site, csrf, board_id)
    site.sign_in()  # someone else, same browser
    for url in (f"/generations/{job_id}", f"/generations/{job_id}/images/0", f"/generations/{job_id}/zip",
                f"/generations/{job_id}/events", f"/generate?from={job_id}"):
        r = site.client.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url
        assert "not found" in r.text or "no page" in r.text, url


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_a_running_generation(site: Site, held: threading.Event) -> None:
    _, csrf, board_id = signed_in(site)
    job_id = started(site, csrf, board_id)
    page = site.client.get(f"/generations/{job_id}").text
    assert 'id="job-progress"' in page and f'data-events="/generations/{job_id}/events"' in page
    assert f'action="/generations/{job_id}/cancel"' in page and f'href="/generations/{job_id}"' in page  # Reload
    r = site.client.post(f"/generations/{job_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/generations/{job_id}?done=cancelled"
    page = site.client.get(r.headers["location"]).text
    assert "Generation cancelled" in page and "Cancelled" in page and 'id="job-progress"' not in page
    assert events(site, job_id)[-1][0] == "cancelled"
    again = site.client.post(f"/generations/{job_id}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409 and "already been cancelled" in again.text or "already cancelled" in again.text


# ------------------------------------------------------------------------------------------ from a taste export


def exported(site: Site, tier: str = "pro") -> tuple[str, str, str, bytes]:
    """(key, csrf, board id, export file) for a new account: its board's taste downloaded from /account."""
    key = site.new_key(tier)
    csrf = site.sign_in(key)
    board_id = make_board(site, key)
    r = site.client.post("/account/export", data={"csrf_token": csrf, "board_id": board_id})
    assert r.status_code == 200 and r.json()["signature"], r.text
    return key, csrf, board_id, r.content


def submit_export(site: Site, csrf: str, export: bytes | None, **fields: Any) -> Any:
    """The form sent with a taste export file as the taste (and a stale board id the server must ignore)."""
    data = {"csrf_token": csrf, "source": "export", "board_id": "brd_ignored", "consent": "true", "n": "1",
            "size": "256", "seed": "3", **{k: str(v) for k, v in fields.items()}}
    files = {"selfie": ("me.jpg", SELFIE, "image/jpeg"),
             "export": ("taste.json", export, "application/json") if export is not None else ("", b"", "")}
    return site.client.post("/generate", data=data, files=files, follow_redirects=False)


def test_generate_from_a_taste_export_file(site: Site) -> None:
    key, csrf, board_id, export = exported(site)
    # the account page's check links to the form with the export option chosen
    checked = site.client.post("/account/import", data={"csrf_token": csrf},
                               files={"export": ("taste.json", export, "application/json")})
    assert checked.status_code == 200 and 'href="/generate?source=export"' in checked.text
    assert "pick this file again" in checked.text
    form = site.client.get("/generate?source=export").text
    assert '<input type="radio" name="source" value="export" checked>' in form
    assert re.search(r'<input type="file" id="export" name="export" accept="application/json,.json" required', form)
    assert "keeps no copy of the file" in form and 'id="allow_unsigned"' in form
    assert '<input type="radio" name="source" value="board" checked>' in site.client.get("/generate").text

    mode = json.loads(export)["profile"]["modes"][0]["id"]
    r = submit_export(site, csrf, export, export_mode=mode, prompt="from the file")
    assert r.status_code == 303, error_next_to(r.text, "export") if "export-error" in r.text else r.text
    job_id = r.headers["location"].rsplit("/", 1)[1]
    assert events(site, job_id)[-1][0] == "succeeded"
    api = site.client.get(f"/v1/generations/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert api["board_id"] is None and api["status"] == "succeeded" and api["images"][0]["mode"] == mode
    with site.services.store.session() as s:
        assert s.read_board_profile(board_id) is not None  # the board is untouched; the job just does not name it

    for url in (f"/generations/{job_id}", "/gallery"):  # shown as from an export; no reactions (no board learns)
        page = site.client.get(url).text
        assert re.search(r"<dt>Taste</dt><dd>from a taste export</dd>", page), url
        alt = f'alt="{escape(api["images"][0]["alt_text"])}"'  # the alt_text plugin's text alternative
        assert f"/generations/{job_id}/images/0/react" not in page and alt in page, url
    again = site.client.get(f"/generate?from={job_id}").text  # "use these settings": the file is chosen again
    assert '<input type="radio" name="source" value="export" checked>' in again
    assert f'id="export_mode" name="export_mode" value="{mode}"' in again


def test_a_tampered_export_or_an_unknown_mode_is_refused_next_to_its_field(site: Site) -> None:
    key, csrf, _, export = exported(site)
    doc = json.loads(export)
    doc["profile"]["modes"][0]["weight"] = 0.99
    r = submit_export(site, csrf, json.dumps(doc).encode(), prompt="keep me", allow_unsigned="yes")
    assert r.status_code == 422 and "modified after it was exported" in error_next_to(r.text, "export")
    assert ">keep me</textarea>" in r.text and '<input type="radio" name="source" value="export" checked>' in r.text
    assert "Choose the export file again" not in r.text  # the message next to the field says enough

    r = submit_export(site, csrf, b"not json at all", prompt="keep me")
    assert r.status_code == 422 and "not valid JSON" in error_next_to(r.text, "export")
    r = submit_export(site, csrf, None)
    assert r.status_code == 422 and "Choose a taste export file" in error_next_to(r.text, "export")

    r = submit_export(site, csrf, export, export_mode="m99", prompt="keep me")
    assert r.status_code == 422
    message = error_next_to(r.text, "export_mode")
    assert "no mode m99" in message and "taste.json" in message
    assert "Choose the export file again" in r.text and 'value="m99"' in r.text
    with site.services.store.session() as s:
        assert s.list_jobs(account_of(site, key)) == []  # nothing was admitted


def test_an_unsigned_export_needs_the_box_ticked(site: Site) -> None:
    _, csrf, _, export = exported(site)
    doc = json.loads(export)
    del doc["signature"]
    unsigned = json.dumps(doc).encode()
    r = submit_export(site, csrf, unsigned)
    assert r.status_code == 422 and "not signed" in error_next_to(r.text, "export")
    assert "Accept an unsigned file" in error_next_to(r.text, "export")
    r = submit_export(site, csrf, unsigned, allow_unsigned="yes")
    assert r.status_code == 303, r.text


# ------------------------------------------------------------------------------------------ a real browser


def test_browser_generates_two_images_with_live_progress(
    live_site: Any, browser_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    real = tasks.task_generate

    def held_mid_render(*args: Any, **kw: Any) -> tasks.Outcome:
        """Renders for real, but waits after the first image while the test photographs the progress."""
        args_ = list(args)
        sink = args_[11]  # task_generate's progress sink (thread executor)
        assert callable(sink)

        def report(job_id: str, stage: str, done: int, total: int) -> None:
            sink(job_id, stage, done, total)
            if stage == "render" and done >= 1:
                go.wait(30)

        args_[11] = report
        return real(*args_, **kw)

    monkeypatch.setattr(tasks, "task_generate", held_mid_render)
    site = live_site()
    key = site.new_key()
    import httpx

    pins = [p for p in demo_pins() if p["image"] in SMALL_BOARD]
    r = httpx.post(f"{site.url}/v1/boards", data={"name": "Autumn looks", "pins": json.dumps(pins)},
                   files=board_parts(SMALL_BOARD), headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 201, r.text
    page = browser_page
    sign_in_browser(page, site.url, key)
    page.goto(f"{site.url}/generate")
    page.get_by_label("Board whose look to use").select_option(label="Autumn looks")
    deadline = time.monotonic() + 30  # htmx swaps in the board's modes (polled: wait_for_function needs eval)
    while page.evaluate("document.querySelectorAll('#mode option').length") < 2:
        assert time.monotonic() < deadline, "the board's modes never arrived"
        time.sleep(0.1)
    assert "Autumn looks" in page.locator("#mode-help").inner_text()
    mode_id, label = page.evaluate("[document.querySelector('#mode option:nth-child(2)').value,"
                                   " document.querySelector('#mode option:nth-child(2)').textContent]")
    assert re.fullmatch(r"m\d+ — .+ \(\d+%\)", label), label
    page.get_by_label("Mode", exact=True).select_option(mode_id)
    page.get_by_label("Selfie photo").set_input_files(str(DEMO / "selfie.jpg"))
    page.get_by_label("Prompt (optional)").fill("warm light, film grain")
    page.get_by_label("Images", exact=True).fill("2")
    page.get_by_label("Size (px)").fill("256")
    page.get_by_label("Seed (optional)").fill("5")
    page.get_by_label(re.compile("I confirm the selfie")).check()
    assert page.locator("#selfie-preview").is_visible()
    shot(page, "generate-form")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r".*/generations/gen_\w+$"))
    page.locator("#job-progress").wait_for()
    page.get_by_text(re.compile(r"Rendering image \d of 2")).wait_for()  # live: the page was rendered before it
    assert page.get_by_role("button", name="Cancel").is_visible()
    assert page.get_by_role("link", name="Reload").is_visible()
    shot(page, "generation-progress")
    page.evaluate("window.stillThisPage = true")
    go.set()
    page.locator(".shot img").nth(1).wait_for(timeout=60_000)  # both images swapped in by the event stream
    assert page.evaluate("window.stillThisPage === true"), "the page was reloaded instead of updated"
    assert page.locator("#job-status").inner_text() == "Done" and page.locator("#job-progress").count() == 0
    assert re.search(rf"Mode\s+{mode_id}\b", page.locator(".settings").inner_text(), re.I)  # made in the chosen mode
    page.get_by_role("button", name="Like image 1").click()
    page.get_by_text("Your reaction:").wait_for()
    page.goto(f"{site.url}/gallery")
    assert page.locator(".shot img").count() == 2
    shot(page, "gallery")

    # the taste from an export file (downloaded with this session, as the account page's button does)
    page.goto(f"{site.url}/account")
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    board_id = r.json()["id"]
    export = page.request.post(f"{site.url}/account/export", form={"csrf_token": csrf, "board_id": board_id})
    assert export.ok, export.text()
    modes = [m["id"] for m in export.json()["profile"]["modes"]]
    page.goto(f"{site.url}/generate?source=export")
    assert page.get_by_label("A taste export file").is_checked()
    assert page.locator("#from-export").is_visible() and not page.locator("#from-board").is_visible()
    assert page.locator("#board_id").is_disabled()  # not sent, not required
    page.get_by_label("Taste export (.json)").set_input_files(
        {"name": "taste.json", "mimeType": "application/json", "buffer": export.body()})
    page.get_by_text("This file's looks:").wait_for()  # its modes suggested, read in the page
    assert page.evaluate("[...document.querySelectorAll('#export-modes option')].map(o => o.value)") == modes
    page.get_by_label("Mode (optional)").fill(modes[0])
    shot(page, "generate-export")
    page.get_by_label("One of my boards").check()
    assert page.locator("#from-board").is_visible() and not page.locator("#from-export").is_visible()
    page.get_by_label("A taste export file").check()

    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the export form scrolls sideways at 390 px ({width})"
    shot(page, "generate-export-mobile")
    page.goto(f"{site.url}/generate")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form scrolls sideways at 390 px ({width})"
    shot(page, "generate-mobile")
