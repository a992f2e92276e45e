"""Clips through the shells: ``generate --clip`` and ``verify clip.mp4``; ``clip`` on POST /v1/generations, the clip
downloaded like the images and verified by POST /v1/verify; bad values refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.clips import decode, sniff

from ..api.conftest import Api, generate, upload_board
from ..api.conftest import make_api as make_api  # the live app fixture

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_generate_clip_then_verify_it(tmp_path: Path, demo_dir: Path, selfie_path: Path) -> None:
    out = tmp_path / "out"
    code, text = run("generate", "-s", str(selfie_path), "-b", str(demo_dir / "board"), "-o", str(out), "-n", "1",
                     "--size", "384", "--seed", "3", "--clip", "2", "--fps", "24")
    assert code == 0, text
    entry = json.loads((out / "manifest.json").read_text())["images"][0]
    clip = out / entry["clip"]["file"]
    assert clip.name == Path(entry["file"]).stem + ".mp4" and clip.is_file()
    data = clip.read_bytes()
    assert sniff(data) == "mp4" and len(list(decode(data))) == 48
    assert entry["clip"]["record_id"] != entry["record_id"] and entry["clip"]["c2pa"] is True
    code, text = run("verify", str(clip))
    assert code == 0, text
    assert "verified" in text and "2 s · 24 fps · 48 frames" in text and entry["record_id"] in text
    code, text = run("verify", "--json", str(clip))
    assert code == 0 and json.loads(text)["record"]["clip"]["of"] == entry["record_id"]


@pytest.mark.parametrize(("args", "says"), [
    (["--clip", "0"], "--clip: a clip lasts 1 to 6 seconds"),
    (["--clip", "60"], "--clip: a clip lasts 1 to 6 seconds"),
    (["--clip", "2", "--fps", "25"], "--fps: must be 24 or 30"),
    (["--clip", "2", "--clip-format", "avi"], "--clip-format: must be mp4, webm or gif"),
    (["--fps", "30"], "--fps: only apply to a clip"),
])
def test_generate_refuses_bad_clip_options_before_any_work(
    tmp_path: Path, demo_dir: Path, selfie_path: Path, args: list[str], says: str
) -> None:
    code, text = run("generate", "-s", str(selfie_path), "-b", str(demo_dir / "board"), "-o", str(tmp_path / "o"),
                     *args)
    assert code == 2, text
    assert says in " ".join(text.split())
    assert not (tmp_path / "o").exists()


def test_api_clip_downloaded_and_verified(make_api: Callable[..., Api], selfie_path: Path) -> None:
    api = make_api()
    selfie_bytes = selfie_path.read_bytes()
    headers = api.key()
    board = upload_board(api, headers)
    r = generate(api, headers, selfie_bytes, wait=60, board_id=board["id"], size=384, clip=1, fps=24,
                 clip_format="mp4")
    job = r.json()
    assert job["status"] == "succeeded", job
    assert job["request"]["clip"] == {"seconds": 1.0, "fps": 24, "format": "mp4"}
    clip = job["images"][0]["clip"]
    assert clip["media_type"] == "video/mp4" and clip["frames"] == 24
    got = api.client.get(clip["url"], headers=headers)
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4" and sniff(got.content) == "mp4"
    v = api.client.post("/v1/verify", files={"image": ("clip.mp4", got.content, "video/mp4")}, headers=headers)
    assert v.status_code == 200, v.text
    doc = v.json()
    assert doc["verdict"] == "verified" and doc["record"]["clip"]["frames"] == 24 and doc["record_owner"] == "you"
    assert doc["media"]["container"] == "mp4" and doc["c2pa"]["state"] == "valid"
    # an image without a clip says so
    plain = generate(api, headers, selfie_bytes, wait=60, board_id=board["id"], size=256).json()
    assert plain["images"][0]["clip"] is None
    none = api.client.get(plain["images"][0]["url"] + "/clip", headers=headers)
    assert none.status_code == 404 and "has no clip" in none.json()["message"]
    # bad values are a 422 naming the field, before any job exists
    for fields, field in (({"clip": 60}, "clip"), ({"clip": 0}, "clip"), ({"clip": 2, "fps": 25}, "fps"),
                          ({"clip": 2, "clip_format": "avi"}, "clip_format")):
        bad = generate(api, headers, selfie_bytes, board_id=board["id"], **fields)
        assert bad.status_code == 422 and bad.json()["message"].startswith(field), bad.text
