"""On-device mode against a real server on loopback: the face never leaves the device.

Every request the client makes is captured at the transport (its method, URL, headers and whole body) and
searched for the selfie's bytes and the identity embedding in every form they could take; the outputs verify as
the server's own, and say ``rendered_on: device``.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.client import Client
from tastemaker.encoders.identity import IdentityEncoder
from tastemaker.engines import register_engine
from tastemaker.engines.base import Rendered, VariationPlan
from tastemaker.errors import (
    AlreadyRegisteredError,
    IdentityOnlyUnsupportedError,
    InsufficientScopeError,
    RateLimitedError,
)
from tastemaker.media import load_image

from ..api.conftest import DEMO, TEST_TIERS, make_settings
from .conftest import LiveServer, board_files, demo_pins, serve

SELFIE = DEMO / "selfie.jpg"


class Recorder(httpx.HTTPTransport):
    """The real transport, keeping every request as it went out (the body read whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, bytes, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        head = "\n".join(f"{k}: {v}" for k, v in request.headers.items()).encode()
        self.sent.append((request.method, str(request.url), head, body))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from tastemaker.api.settings import TierLimits

    tiers = {**TEST_TIERS, "one_record": TierLimits(requests_per_minute=100, styleembed_per_minute=10,
                                                    images_per_month=10, max_active_jobs=1, records_per_minute=1)}
    live, stop = serve(make_settings(tmp_path_factory.mktemp("device"), tiers=tiers))
    yield live
    stop()


@pytest.fixture(scope="module")
def owner(server: LiveServer) -> tuple[str, str]:
    """(key, board id) of an account with the demo board."""
    key = server.key()
    with Client(server.url, key) as tm:
        return key, tm.create_board("demo", board_files(), demo_pins()).id


def forms_of_identity() -> list[bytes]:
    """The identity embedding as anything could carry it: raw float64/float32, JSON numbers, the identity file."""
    identity, _ = IdentityEncoder().encode([load_image(SELFIE)], names=["selfie.jpg"])
    vec = np.asarray(identity.vector, dtype=np.float64)
    forms = [vec.tobytes(), vec.astype(np.float32).tobytes(), vec.astype(">f8").tobytes(),
             json.dumps(identity.to_dict()).encode(), json.dumps([round(float(v), 6) for v in vec])[1:-1].encode()]
    for fmt in ("{:.6f}", "{:.4f}", "{!r}"):
        forms.append(", ".join(fmt.format(float(v)) for v in vec[:3]).encode())
        forms.append(",".join(fmt.format(float(v)) for v in vec[:3]).encode())
    forms.append(struct.pack("<3d", *vec[:3]))
    return forms


def test_generate_local_sends_only_the_board_id_and_the_outputs(server: LiveServer, owner: tuple[str, str]) -> None:
    key, board_id = owner
    selfie = SELFIE.read_bytes()
    recorder = Recorder()
    with Client(server.url, key, transport=recorder) as tm:
        result = tm.generate_local(board_id, [SELFIE], n=2, size=256, seed=5, prompt="close-up")
        assert len(result.images) == 2 and all(im.registered for im in result.images)
        verdicts = [tm.verify(im.data) for im in result.images]
        with pytest.raises(AlreadyRegisteredError):  # a marked output has its record: not a second one
            tm.register(result.images[0].data, profile_hash=result.profile_hash, engine_version="1", seed=5)
    # what went out: the board's taste fetched, each output registered; nothing else
    calls = [(m, httpx.URL(u).path) for m, u, _, _ in recorder.sent]
    assert calls[0] == ("POST", "/v1/styleembed")
    assert calls[1:3] == [("POST", "/v1/records")] * 2
    secrets = [selfie, base64.b64encode(selfie), selfie[1000:1400], *forms_of_identity()]
    for method, url, head, body in recorder.sent:
        for secret in secrets:
            assert secret not in body and secret not in head and secret not in url.encode(), (method, url)
    # the outputs verify as this server's, rendered on the device, in the record and the C2PA manifest
    for im, verdict in zip(result.images, verdicts, strict=True):
        assert verdict.verdict == "verified" and verdict.record_owner == "you"
        assert verdict.rendered_on == "device" and (verdict.c2pa["record"] or {})["rendered_on"] == "device"
        assert verdict.record is not None and verdict.record["profile_hash"] == result.profile_hash
        assert im.record["rendered_on"] == "device" and im.identity_distance < 0.35
    assert any("grade only" in n or "profile" in n for n in result.notes)  # no pins here: said so


def test_registering_needs_its_scope_and_has_its_own_limit(server: LiveServer, owner: tuple[str, str]) -> None:
    _, board_id = owner
    out = np.full((300, 300, 3), 120, np.uint8)
    out[100:200, 100:200] = (200, 80, 40)
    from tastemaker.media import encode_image

    png = encode_image(out, "png")
    args = dict(profile_hash="0" * 64, engine_version="1", seed=1)
    with Client(server.url, server.key(scopes=["generate", "styleembed"])) as tm, \
            pytest.raises(InsufficientScopeError) as err:
        tm.register(png, **args)  # type: ignore[arg-type]
    assert "register" in err.value.message
    from tastemaker.client import Retry

    with Client(server.url, server.key(tier="one_record"), retry=Retry(max_wait_s=0)) as tm:
        first = tm.register(png, **args)  # type: ignore[arg-type]
        assert first.record["rendered_on"] == "device"
        png2 = encode_image(out[::-1].copy(), "png")
        with pytest.raises(RateLimitedError) as limited:
            tm.register(png2, **args)  # type: ignore[arg-type]
        assert limited.value.retry_after_s and limited.value.retry_after_s <= 60
        assert tm.usage().rate_limits["records"]["limit"] == 1


def test_the_look_engine_refuses_an_identity_and_points_to_on_device_mode(
    server: LiveServer, owner: tuple[str, str]
) -> None:
    key, board_id = owner
    with Client(server.url, key) as tm, pytest.raises(IdentityOnlyUnsupportedError) as err:
        tm.submit(board_id=board_id, identity=[0.05] * 128, consent=True, n=1, size=256)
    assert "--remote" in err.value.message and err.value.status_code == 422


class IdentityOnlyEngine:
    """A stand-in for a text-to-image engine that draws from an identity alone: it 'draws' the demo person."""

    name = "test-identity-only"
    version = "1"
    accepts_identity_only = True

    def prepare_board(self, board: Any, profile: Any) -> None:
        return None

    def plan(self, request: Any, subject: Any, profile: Any, intent: Any, *, assets: Any = None) -> list[VariationPlan]:
        return [VariationPlan(index=i, seed=(request.seed or 0) + i, mode_id=profile.modes[0].id, background="auto",
                              framing="auto", strength=request.strength) for i in range(request.n)]

    def render(self, plans: Any, subject: Any, profile: Any, request: Any, *, hold: Any, assets: Any = None
               ) -> list[Rendered]:
        assert subject.image is None  # no pixels of the person reached the server
        img = load_image(SELFIE)
        return [Rendered(pixels=img, plan=p, hold=h, face_box=None) for p, h in zip(plans, hold, strict=True)]


def test_generations_accept_an_identity_for_engines_that_draw_from_one(tmp_path: Path) -> None:
    register_engine("test-identity-only", IdentityOnlyEngine)  # type: ignore[arg-type]
    live, stop = serve(make_settings(tmp_path, engine="test-identity-only"))
    try:
        identity, _ = IdentityEncoder().encode([load_image(SELFIE)], names=["selfie.jpg"])
        with Client(live.url, live.key()) as tm:
            board = tm.create_board("demo", board_files(), demo_pins())
            events: list[str] = []
            job = tm.generate(board_id=board.id, identity=identity, consent=True, n=1, seed=2,
                              on_progress=lambda g: events.append(g.status))
            assert job.status == "succeeded" and events[-1] == "succeeded"
            assert tm.verify(tm.download(job.id, 0)).verdict == "verified"
            with pytest.raises(Exception) as err:
                tm.submit(board_id=board.id, identity=identity, consent=False)
            assert getattr(err.value, "code", "") == "consent_required" and "identity" in str(err.value)
    finally:
        stop()


def test_cli_generate_remote_writes_the_registered_outputs(
    server: LiveServer, owner: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tastemaker.cli.app import app

    key, board_id = owner
    monkeypatch.setenv("TASTEMAKER_API_KEY", key)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["generate", "--remote", server.url, "--board-id", board_id, "--selfie", str(SELFIE),
                                 "-n", "1", "--size", "256", "--seed", "9", "-o", str(out)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rendered_on"] == "device" and manifest["images"][0]["registered"]
    with Client(server.url, key) as tm:
        assert tm.verify(out / manifest["images"][0]["file"]).rendered_on == "device"
    r = CliRunner().invoke(app, ["generate", "--remote", server.url, "--board-id", board_id, "--board", str(DEMO),
                                 "--selfie", str(SELFIE), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--board" in r.output


def test_async_generate_local_marks_unregistered_outputs_into_the_devices_own_store(
    server: LiveServer, owner: tuple[str, str], tmp_path: Path
) -> None:
    """Outputs the person does not register are never handed back unmarked: this device's store marks them."""
    import asyncio

    from tastemaker.client import AsyncClient
    from tastemaker.provenance.service import Provenance

    key, board_id = owner
    store = Provenance(tmp_path / "device-store")
    paths: list[str] = []

    async def note(request: httpx.Request) -> None:
        paths.append(request.url.path)

    async def run() -> Any:
        async with AsyncClient(server.url, key, event_hooks={"request": [note]}) as tm:
            return await tm.generate_local(board_id, [SELFIE], n=1, size=256, seed=8, register=False,
                                           local_provenance=store)

    result = asyncio.run(run())
    assert paths == ["/v1/styleembed"]  # nothing was registered, so no image left the device either
    image = result.images[0]
    assert not image.registered and store.verify(image.data).verdict == "verified"
