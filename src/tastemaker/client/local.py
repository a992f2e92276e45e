"""On-device rendering: the selfie and the identity never leave the machine.

``Client.generate_local`` (and ``tastemaker generate --remote``) fetch the board's taste from the server — the
differentially private release of ``POST /v1/styleembed``, the only taste that leaves the server's store — then
read the selfie, build the identity and render **here** with the local engine and identity guard
(:func:`render`). Each output the person keeps is registered with the server (``POST /v1/records``: the output
image and what it was made with), which marks, signs and logs it with the deployment's keys and sends back the
marked file; its record says ``rendered_on: device``. What leaves the device: the board id and those outputs.

While rendering, outputs are not marked here (:class:`DeviceMarks`): the service they are registered with marks
them, and a second, local mark under it would only cost picture quality (and read as a replaced mark to this
device's own store). Nothing unmarked is ever returned: an output not chosen for registering is marked into this
device's own provenance store instead, as a local ``tastemaker generate`` would. The profile carries no pixels, so
what needs the board's pins (medium transfer, scenes) falls back to the colour grade, and each image's notes say so.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..media import encode_image
from ..provenance.record import ProvenanceRecord, pixels_sha256, utc_now
from ..provenance.service import Prepared, Provenance, Stamped
from .models import LocalGeneration, LocalImage, RegisteredRecord, StyleEmbed

if TYPE_CHECKING:
    from ..engines.base import GenerationRequest
    from ..pipeline import GeneratedImage, GenerationResult, Pipeline
    from ..taste.profile import TasteProfile

Progress = Callable[[str, int, int], None]
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class DeviceMarks(Provenance):
    """The pipeline's provenance step for on-device rendering: outputs are encoded unmarked, with a placeholder
    record, and nothing is logged — every one is then registered with the server, or marked into the device's own
    store, before it is returned (:func:`finish`). Only for :func:`render`; it holds no store, keys or log."""

    def __init__(self) -> None:  # no store on purpose: nothing of this run is kept on the device
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def prepare(self, pixels: np.ndarray, *, fmt: str, prompt: str, profile_hash: str, engine: str,
                engine_version: str, seed: int, account: str = "local", include_prompt: bool = False,
                quality: int = 92, rendered_on: str | None = None) -> Prepared:
        with self._lock:
            rid = next(self._ids)
        record = ProvenanceRecord(
            record_id=rid, account="device", created_at=utc_now(), profile_hash=profile_hash, engine=engine,
            engine_version=engine_version, seed=seed % (2**53), image_sha256=pixels_sha256(pixels),
            prompt_hmac="0" * 64, fingerprint="fp0:unmarked",
        )
        return Prepared(data=encode_image(pixels, fmt, quality=quality), pixels=pixels, record=record,
                        glob=np.zeros(0, np.int8))

    def commit(self, prepared: Prepared) -> Stamped:
        return Stamped(data=prepared.data, pixels=prepared.pixels, record=prepared.record, log_index=-1)

    def discard(self, prepared: Prepared) -> None:
        return None


def profile_of(release: StyleEmbed) -> TasteProfile:
    """The portable profile in a ``/v1/styleembed`` release."""
    from ..taste.profile import TasteProfile

    return TasteProfile.from_json(json.dumps(release.profile), name=f"board {release.board_id}'s taste")


def render(
    request: GenerationRequest,
    profile: TasteProfile,
    selfies: Sequence[str | Path | np.ndarray],
    *,
    engine: str = "look",
    identity_threshold: float = 0.35,
    face_index: int | None = None,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
) -> GenerationResult:
    """Render on this machine: the selfies are read and encoded here, the identity guard runs here."""
    from ..pipeline import Pipeline

    if not selfies:
        raise RequestError("selfie: give at least one photo of your face (it stays on this device)")
    pipe = pipeline or Pipeline(engine, identity_threshold=identity_threshold, provenance=DeviceMarks())
    if not isinstance(pipe.provenance, DeviceMarks):
        raise RequestError("pipeline: on-device rendering needs a pipeline built with provenance=DeviceMarks()")
    return pipe(request, selfies=list(selfies), profile=profile, face_index=face_index, progress=progress)


def chosen(register: bool | Collection[int], n: int) -> set[int]:
    """Which outputs to register: all (True), none (False), or the given indices (checked)."""
    if register is True:
        return set(range(n))
    if register is False:
        return set()
    picked = {int(k) for k in register}
    bad = sorted(k for k in picked if not 0 <= k < n)
    if bad:
        raise RequestError(f"register: output indices are 0-{n - 1}, got {bad}")
    return picked


def registered(im: GeneratedImage, rec: RegisteredRecord) -> LocalImage:
    """An output as the server marked it."""
    return LocalImage(
        index=im.index, data=rec.image.data, media_type=rec.image.media_type, width=rec.image.width,
        height=rec.image.height, seed=im.seed, mode=im.mode_id, identity_distance=float(im.identity_distance),
        style_score=float(im.style_score), registered=True, record_id=rec.record_id, record=rec.record,
        info=dict(im.info),
    )


def marked_here(im: GeneratedImage, result: GenerationResult, prov: Provenance) -> LocalImage:
    """An output the person did not register, marked into this device's own provenance store."""
    req = result.request
    st = prov.stamp(im.pixels, fmt=req.format, prompt=req.prompt, profile_hash=result.profile.content_hash(),
                    engine=result.engine, engine_version=result.engine_version, seed=req.seed or 0)
    h, w = st.pixels.shape[:2]
    return LocalImage(
        index=im.index, data=st.data, media_type=_MEDIA[req.format], width=w, height=h, seed=im.seed,
        mode=im.mode_id, identity_distance=float(im.identity_distance), style_score=float(im.style_score),
        registered=False, record_id=st.record.id_hex, record=st.record.to_dict(), info=dict(im.info),
    )


def finish(board_id: str, result: GenerationResult, images: list[LocalImage]) -> LocalGeneration:
    return LocalGeneration(
        board_id=board_id, request=result.request.model_dump(mode="json"), profile_hash=result.profile.content_hash(),
        engine=result.engine, engine_version=result.engine_version, images=images, notes=list(result.notes()),
        timings=dict(result.timings),
    )


def register_args(result: GenerationResult, board_id: str) -> dict[str, Any]:
    """What ``POST /v1/records`` is told about every output of ``result`` (besides the image itself)."""
    req = result.request
    return dict(profile_hash=result.profile.content_hash(), engine=result.engine,
                engine_version=result.engine_version, seed=req.seed or 0, prompt=req.prompt, board_id=board_id,
                output_format=req.format)


__all__ = ["DeviceMarks", "chosen", "finish", "marked_here", "profile_of", "register_args", "registered", "render"]
