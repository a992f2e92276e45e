"""``subject=product`` on ``POST /v1/generations``: the product photo in the selfie part, no face or consent needed,
the same keys, quota and provenance; bad product photos are a 422 at admission."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tastemaker.api.app import create_app
from tastemaker.products.samples import make_shot

from ..api.conftest import Api, make_settings, upload_board


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("products-api")))) as client:
        yield Api(client, make_settings(tmp_path_factory.mktemp("unused")))


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def _post(api: Api, headers: dict[str, str], photo: bytes, **fields: Any) -> Any:
    data = {"subject": "product", "n": "1", "size": "256", "seed": "5", **{k: str(v) for k, v in fields.items()}}
    return api.client.post("/v1/generations", data=data, files={"selfie": ("product.png", photo, "image/png")},
                           headers={**headers, "Prefer": "wait=60"})


def test_product_generation_end_to_end(api: Api, tmp_path: Path) -> None:
    key = api.key("pro", "shop")
    board = upload_board(api, key)
    r = _post(api, key, _png(make_shot(2, size=320).image), board_id=board["id"])  # no consent: no face in it
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    (image,) = job["images"]
    assert image["subject"] == "product"
    fid = image["fidelity"]
    assert fid["passed"] and fid["delta_e"] <= 3 and fid["shape_ssim"] >= 0.9
    data = api.client.get(image["url"], headers=key).content
    report = api.client.post("/v1/verify", files={"image": ("x.png", data, "image/png")}, headers=key).json()
    assert report["verdict"] == "verified"
    usage = api.client.get("/v1/usage", headers=key).json()
    assert usage["images"]["used"] == 1 and usage["generations"] == 1  # a product image counts against the quota


def test_product_clip_moves_the_product_and_verifies(api: Api) -> None:
    key = api.key("pro", "shop-clip")
    board = upload_board(api, key)
    r = _post(api, key, _png(make_shot(1, size=320).image), board_id=board["id"], clip=1, clip_format="mp4")
    job = r.json()
    assert r.status_code == 200 and job["status"] == "succeeded", job
    (image,) = job["images"]
    clip = image["clip"]
    assert clip["media_type"] == "video/mp4" and clip["frames"] == 24, clip
    got = api.client.get(clip["url"], headers=key)
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    v = api.client.post("/v1/verify", files={"image": ("clip.mp4", got.content, "video/mp4")}, headers=key).json()
    still = api.client.post("/v1/verify", files={"image": ("x.png", api.client.get(image["url"], headers=key).content,
                                                           "image/png")}, headers=key).json()
    assert v["verdict"] == "verified" and int(v["record"]["clip"]["of"], 16) == still["record"]["record_id"], v


def test_product_generation_refusals(api: Api) -> None:
    key = api.key("pro", "shop2")
    board = upload_board(api, key, names=["meadow.jpg", "whiskers.jpg", "cat-nap.jpg"])
    blank = _post(api, key, _png(np.full((200, 200, 3), 240, np.uint8)), board_id=board["id"])
    assert blank.status_code == 422 and blank.json()["code"] == "product_not_found", blank.text
    line = np.full((300, 300, 3), 240, np.uint8)
    line[40:260, 150] = 10
    thin = _post(api, key, _png(line), board_id=board["id"])
    assert thin.status_code == 422 and thin.json()["code"] == "product_too_thin", thin.text
    selfie = (Path(__file__).resolve().parents[2] / "src/tastemaker/data/demo/selfie.jpg").read_bytes()
    face = _post(api, key, selfie, board_id=board["id"])
    assert face.status_code == 422 and face.json()["code"] == "subject_ambiguous", face.text
    assert "consent=true" in face.json()["message"]
    ident = api.client.post("/v1/generations", json={"subject": "product", "board_id": board["id"],
                                                     "identity": [0.1] * 128}, headers=key)
    assert ident.status_code == 422 and "not an identity" in ident.json()["message"], ident.text


def test_openai_edits_take_a_product(api: Api) -> None:
    key = api.key("pro", "shop3")
    board = upload_board(api, key, names=["meadow.jpg", "whiskers.jpg", "cat-nap.jpg"])
    r = api.client.post("/v1/images/edits", data={"subject": "product", "board_id": board["id"], "n": "1",
                                                  "size": "1024x1024", "seed": "2"},
                        files={"image": ("p.png", _png(make_shot(4, size=256).image), "image/png")}, headers=key)
    assert r.status_code == 200, r.text
    (item,) = r.json()["data"]
    assert item["b64_json"]
