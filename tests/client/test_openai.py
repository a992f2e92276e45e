"""The OpenAI-compatible images endpoints, driven by the real ``openai`` package against a server on loopback."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tastemaker.api.settings import TierLimits

from ..api.conftest import TEST_TIERS, make_settings
from .conftest import LiveServer, board_files, demo_pins, serve

openai = pytest.importorskip("openai")

TIERS = {
    **TEST_TIERS,
    # one request a minute: the second call of a minute is a 429 with Retry-After
    "one_a_minute": TierLimits(requests_per_minute=1, styleembed_per_minute=1, images_per_month=100, max_active_jobs=1),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live, stop = serve(make_settings(tmp_path_factory.mktemp("openai"), tiers=TIERS))
    yield live
    stop()


@pytest.fixture(scope="module")
def owner(server: LiveServer) -> str:
    """The key of the account that owns the demo board."""
    return server.key()


@pytest.fixture(scope="module")
def board_id(server: LiveServer, owner: str) -> str:
    from tastemaker.client import Client

    with Client(server.url, owner) as tm:
        return tm.create_board("demo", board_files(), demo_pins()).id


def oai(server: LiveServer, key: str, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, **kw)


def test_edit_returns_images_in_openai_shape_that_verify(
    server: LiveServer, owner: str, board_id: str, selfie_bytes: bytes
) -> None:
    key = owner
    client = oai(server, key)
    result = client.images.edit(
        image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="golden hour, close-up", n=1, size="256x256",
        extra_body={"board_id": board_id, "consent": True, "seed": 3},
    )
    assert isinstance(result, openai.types.ImagesResponse)
    assert result.created > 0 and result.output_format == "png" and len(result.data or []) == 1
    png = base64.b64decode(result.data[0].b64_json or "")
    assert Image.open(io.BytesIO(png)).size == (256, 256)
    assert result.usage is not None and result.usage.total_tokens == 0
    assert (result.usage.model_extra or {})["images"] == 1  # Tastemaker meters images, not tokens
    # the same job path as /v1/generations: provenance, and the account's usage
    headers = {"Authorization": f"Bearer {key}"}
    verdict = httpx.post(f"{server.url}/v1/verify", files={"image": ("o.png", png, "image/png")}, headers=headers)
    assert verdict.json()["verdict"] == "verified" and verdict.json()["record_owner"] == "you"
    usage = httpx.get(f"{server.url}/v1/usage", headers=headers).json()
    assert usage["images"]["used"] >= 1 and usage["generations"] >= 1


def test_url_response_links_work_without_the_key(
    server: LiveServer, owner: str, board_id: str, selfie_bytes: bytes
) -> None:
    result = oai(server, owner).images.edit(
        image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="", n=1, size="256x256", response_format="url",
        output_format="jpeg", extra_body={"board_id": board_id, "consent": True, "seed": 4},
    )
    url = (result.data or [])[0].url or ""
    image = httpx.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    forged = httpx.get(url[:-1] + ("0" if url[-1] != "0" else "1"))
    assert forged.status_code == 404


def test_wrong_key_is_401_authentication_error(server: LiveServer, selfie_bytes: bytes) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        oai(server, "tm_" + "A" * 33).images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x")
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key" and err.value.type == "invalid_request_error"


def test_bad_size_is_400_naming_the_param(server: LiveServer, owner: str, board_id: str, selfie_bytes: bytes) -> None:
    client = oai(server, owner)
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x", size="1000x1000",
                           extra_body={"board_id": board_id, "consent": True})
    assert err.value.status_code == 400 and err.value.param == "size" and "1024x1536" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:  # a size the engines do not draw: the ones they do, named
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x", size="1600x900",
                           extra_body={"board_id": board_id, "consent": True})
    assert "1536x1024" in err.value.message


def test_unsupported_fields_and_missing_consent_are_400(
    server: LiveServer, owner: str, board_id: str, selfie_bytes: bytes
) -> None:
    client = oai(server, owner)
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x",
                           mask=("m.png", selfie_bytes, "image/png"),
                           extra_body={"board_id": board_id, "consent": True})
    assert err.value.param == "mask" and err.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x", extra_body={"board_id": board_id})
    assert err.value.code == "consent_required"
    with pytest.raises(openai.BadRequestError) as err:  # the look engine redraws a selfie: render on the device
        client.images.generate(prompt="x", extra_body={"board_id": board_id, "consent": True, "identity": [0.1] * 128})
    assert err.value.code == "identity_only_unsupported" and "--remote" in err.value.message


def test_rate_limit_and_quota_are_429_with_retry_after(server: LiveServer, selfie_bytes: bytes) -> None:
    client = oai(server, server.key(tier="one_a_minute"), max_retries=0)
    with pytest.raises(openai.BadRequestError):  # the minute's one request (refused for its size, still counted)
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x", size="1x1")
    with pytest.raises(openai.RateLimitError) as err:
        client.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x")
    assert err.value.status_code == 429 and err.value.code == "rate_limited" and err.value.type == "rate_limit_error"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    tight = oai(server, server.key(tier="tight"))  # 2 images a month: 3 are refused before anything runs
    with pytest.raises(openai.RateLimitError) as err:
        tight.images.edit(image=("me.jpg", selfie_bytes, "image/jpeg"), prompt="x", n=3,
                          extra_body={"board_id": "brd_nope", "consent": True})
    assert err.value.code == "quota_exceeded" and err.value.type == "insufficient_quota"
    assert int(err.value.response.headers["retry-after"]) > 60
