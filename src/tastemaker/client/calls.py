"""Each API operation as a :class:`~.http.Call` (what to send) — one place for both clients, so the synchronous
and asynchronous ones cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import RequestError
from .http import Call, FileInput, file_part, form_fields


def create_board(name: str, images: Sequence[FileInput], pins: list[dict[str, Any]] | None) -> Call:
    if not images:
        raise RequestError("images: give at least one image (a path, bytes, or (file name, bytes))")
    parts = [file_part("images", im, default_name=f"pin-{i}.jpg") for i, im in enumerate(images)]
    return Call("POST", "/v1/boards", data=form_fields(name=name, pins=pins), files=parts, idempotent_key=True)


def add_pins(board_id: str, images: Sequence[FileInput], pins: list[dict[str, Any]] | None) -> Call:
    if not images:
        raise RequestError("images: give at least one image")
    parts = [file_part("images", im, default_name=f"pin-{i}.jpg") for i, im in enumerate(images)]
    return Call("POST", f"/v1/boards/{board_id}/pins", data=form_fields(pins=pins), files=parts, idempotent_key=True)


def submit(
    *,
    selfie: FileInput | None,
    identity: Any,
    board_id: str | None,
    profile: dict[str, Any] | None,
    consent: bool,
    options: dict[str, Any],
) -> Call:
    """``POST /v1/generations``: a selfie (multipart) or an identity (JSON), with the request's options."""
    if (selfie is None) == (identity is None):
        raise RequestError("give exactly one of selfie (a photo) or identity (an embedding made on your device)")
    fields = {"board_id": board_id, "profile": profile, "consent": consent, **options}
    if selfie is not None:
        part = file_part("selfie", selfie, default_name="selfie.jpg")
        return Call("POST", "/v1/generations", data=form_fields(**fields), files=[part], idempotent_key=True)
    vector = identity.to_dict() if hasattr(identity, "to_dict") else identity
    body = {k: v for k, v in {**fields, "identity": vector}.items() if v is not None}
    return Call("POST", "/v1/generations", json=body, idempotent_key=True)


def feedback(
    action: str,
    *,
    generation_id: str | None,
    image_index: int,
    board_id: str | None,
    image: FileInput | None,
    dwell_seconds: float,
) -> Call:
    if image is not None:
        part = file_part("image", image)
        data = form_fields(action=action, board_id=board_id, dwell_seconds=dwell_seconds)
        return Call("POST", "/v1/feedback", data=data, files=[part], idempotent_key=True)
    body = {"action": action, "generation_id": generation_id, "image_index": image_index, "board_id": board_id,
            "dwell_seconds": dwell_seconds}
    return Call("POST", "/v1/feedback", json={k: v for k, v in body.items() if v is not None}, idempotent_key=True)


def verify(image: FileInput, since: tuple[int, str] | None) -> Call:
    params = {"since_size": since[0], "since_root": since[1]} if since is not None else None
    return Call("POST", "/v1/verify", files=[file_part("image", image)], params=params, safe=True)


def register(
    image: FileInput,
    *,
    profile_hash: str,
    engine: str,
    engine_version: str,
    seed: int,
    prompt: str,
    board_id: str | None,
    output_format: str | None,
) -> Call:
    """``POST /v1/records``: the output image and what it was made with — never a selfie or an identity."""
    data = form_fields(profile_hash=profile_hash, engine=engine, engine_version=engine_version, seed=seed,
                       prompt=prompt or None, board_id=board_id, output_format=output_format)
    return Call("POST", "/v1/records", data=data, files=[file_part("image", image, default_name="output.png")],
                idempotent_key=True)


__all__ = ["add_pins", "create_board", "feedback", "register", "submit", "verify"]
