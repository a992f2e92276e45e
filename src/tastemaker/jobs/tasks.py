"""The work itself: module-level task functions that run in worker processes (or threads).

Picklable for spawned processes, and the same code in thread mode. A task never raises: it returns an
:data:`Outcome`, ``("ok", value)`` or ``("error", *ForwardedError.of(exc))``, because some Tastemaker errors
take extra constructor arguments and would not survive pickling; :func:`unwrap` raises the error again on the
caller's side with the same code and status.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BlobMissingError, ForwardedError, InternalError, TastemakerError
from ..lifeline import die_with_parent

log = logging.getLogger("tastemaker.jobs")

Outcome = tuple[Any, ...]
_SINK: Any = None  # the progress queue, in generation worker processes


def init_worker(sink: Any, nice: int = 0, parent_pid: int | None = None, registry: Any = None) -> None:
    """Worker process setup: die with the server, the progress queue, a lower CPU priority than the API.

    A worker exits as soon as the server process is gone, however it went (``kill -9`` included; see
    :mod:`tastemaker.lifeline`), so a crashed or killed server never leaves idle workers behind. Rendering
    is batch work; request handling is interactive. On a small machine the kernel then gives the API its
    time slices first, which is what keeps cached calls fast during generation. ``registry`` (a queue) gets
    this worker's pid, so its pool can say which processes are its workers.
    """
    global _SINK
    die_with_parent(parent_pid)
    _SINK = sink
    if registry is not None:
        registry.put(os.getpid())
    if nice:
        try:
            os.nice(nice)
        except OSError:  # not permitted (some containers): run at normal priority
            pass


def guard(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn`` and return its :data:`Outcome`; an unexpected exception is logged here and told little."""
    try:
        return ("ok", fn())
    except TastemakerError as exc:
        return ("error", *ForwardedError.of(exc))
    except Exception as exc:  # a bug or a native-library failure: log it here, tell the client little
        log.error("worker task failed: %s", "".join(traceback.format_exception(exc)))
        return ("error", *ForwardedError.of(
            InternalError(f"the worker failed unexpectedly ({type(exc).__name__}); the server log has details")
        ))


def unwrap(outcome: Outcome) -> Any:
    """The task's value, or its error raised again in this process with the same code and status."""
    if outcome[0] == "ok":
        return outcome[1]
    raise ForwardedError(*outcome[1:])


def task_warm(engine: str | None = None) -> bool:
    """Load the models and the configured engine once per worker process, before the first request needs them.

    The engine instance is the process's shared one (:func:`tastemaker.engines.get_engine`), so jobs reuse
    it — its caches and, for the diffusion engine, its weights.
    """
    from ..encoders.identity import warm_models
    from ..engines import get_engine

    warm_models()
    if engine is not None:
        get_engine(engine)
    return True


def task_prepare_subject(
    data: bytes, name: str, max_pixels: int, max_bytes: int, min_face_px: int, face_index: int | None
) -> Outcome:
    """Decode a selfie and find and embed its face: (Face, IdentityEmbedding). Pixels are not returned."""

    def run() -> Any:
        from ..encoders.identity import IdentityEncoder
        from ..errors import MultipleFacesError
        from ..media import decode_image
        from ..pipeline import prepare_subject

        img = decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
        try:
            subject = prepare_subject(
                [img], encoder=IdentityEncoder(min_face_px=min_face_px), face_index=face_index, max_pixels=max_pixels
            )
        except MultipleFacesError as exc:  # the core names the CLI's option; an API caller sends a field
            exc.message = exc.message.replace("--face-index", "the face_index field (0 = the largest face)")
            raise
        return subject.face, subject.identity

    return guard(run)


def task_prepare_product(data: bytes, name: str, max_pixels: int, max_bytes: int, consent: bool) -> Outcome:
    """A product photo cut out at admission (subject=product): :func:`.product_tasks.prepare_product`."""
    from .product_tasks import prepare_product

    return guard(lambda: prepare_product(data, name, max_pixels, max_bytes, consent))


def task_build_profile(
    name: str,
    pins: list[Any],
    blobs: Any,
    max_pixels: int,
    max_bytes: int,
    max_modes: int,
    half_life_days: float,
) -> Outcome:
    """Build a board's taste profile from its pins, whose bytes the worker reads from ``blobs`` (a
    :class:`~tastemaker.store.BlobStore`); returns the profile JSON."""

    def run() -> str:
        from dataclasses import replace

        from ..boards import build_board
        from ..taste.profile import ProfileConfig, build_profile
        from ..taste.weights import WeightConfig

        items = [(replace(pin, sha256=""), blobs.get(pin.sha256)) for pin in pins]
        board = build_board(name, items, max_pixels=max_pixels, max_bytes=max_bytes)
        config = ProfileConfig(max_modes=max_modes, weights=WeightConfig(half_life_days=half_life_days))
        return build_profile(board, config).to_json()

    return guard(run)


def task_describe(data: bytes, name: str, max_pixels: int, max_bytes: int) -> Outcome:
    """Decode an image and describe its style (``POST /v1/feedback``); returns the StyleDescriptor."""

    def run() -> Any:
        from ..encoders.style import describe
        from ..media import decode_image

        return describe(decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes))

    return guard(run)


def verify_input(
    data: bytes, *, decode_side: int, max_pixels: int, max_bytes: int, header_max_pixels: int = 40_000_000
) -> bytes:
    """The image a provenance check reads: a large JPEG decoded reduced, everything capped at ``max_pixels``.

    The watermark and the picture's fingerprint survive a 0.5x resize, so a JPEG longer than ``decode_side``
    is decoded at 1/2, 1/4 or 1/8 (DCT scaling: a fraction of the time and memory of a full decode) and
    handed on losslessly. Not when it carries an APP11 segment, where a C2PA manifest would be: its hard
    binding is over the original bytes, which then go through unchanged. What would be decoded is capped at
    ``max_pixels`` (422 ``image_too_many_pixels``); an unreadable header is left to the verifier, which
    still reads a manifest if there is one.
    """
    from ..errors import ImageDecodeError, ImagePixelLimitError
    from ..media import check_image, decode_image, encode_image, has_jpeg_app11

    try:
        w, h = check_image(data, name="image", max_pixels=header_max_pixels, max_bytes=max_bytes)
    except ImageDecodeError:
        return data
    reducible = data[:3] == b"\xff\xd8\xff" and max(w, h) > decode_side and not has_jpeg_app11(data)
    if not reducible:
        if w * h > max_pixels:
            raise ImagePixelLimitError(
                f"image: {w}x{h} = {w * h:,} pixels is over the {max_pixels:,}-pixel limit for provenance checks "
                "(send the image at the size it was shared)"
            )
        return data
    try:
        pixels = decode_image(
            data, name="image", max_pixels=header_max_pixels, max_bytes=max_bytes, reduce_longest=decode_side
        )
    except ImageDecodeError:
        return data
    ph, pw = pixels.shape[:2]
    if ph * pw > max_pixels:
        raise ImagePixelLimitError(
            f"image: {w}x{h} is {pw}x{ph} = {pw * ph:,} pixels even decoded reduced, over the {max_pixels:,}-pixel "
            "limit for provenance checks"
        )
    return encode_image(pixels, "png")


def task_verify(
    data: bytes,
    data_dir: str,
    max_pixels: int,
    max_bytes: int,
    verify_max_pixels: int | None = None,
    decode_side: int = 2048,
    provenance_secret: str | None = None,
) -> Outcome:
    """Check an image against the service's provenance store (``POST /v1/verify``); returns the report dict.

    The service's caps are applied from the header first (a bomb is a 413, not a long decode), and a large
    JPEG is read reduced (:func:`verify_input`).
    """

    def run() -> dict[str, Any]:
        from ..clips import is_clip, verify_clip
        from ..pipeline import provenance_for

        if is_clip(data):  # a clip (MP4, WebM, GIF): a few frames decoded and voted on
            return verify_clip(provenance_for(data_dir, provenance_secret), data).to_dict()
        image = verify_input(
            data, decode_side=decode_side, max_pixels=min(max_pixels, verify_max_pixels or max_pixels),
            max_bytes=max_bytes, header_max_pixels=max_pixels,
        )
        return provenance_for(data_dir, provenance_secret).verify(image).to_dict()

    return guard(run)


@dataclass
class GeneratedBlob:
    data: bytes
    media_type: str
    width: int
    height: int
    record: dict[str, Any]
    #: rendered with ``log=False`` (queue workers): the provenance record (canonical JSON) and its global
    #: fingerprint descriptor, to be logged by the caller; None once logged by the pipeline itself
    pending: dict[str, Any] | None = None
    #: the image's clip (``clip`` in the request): ``data`` (bytes), ``entry`` (what the image's record shows of
    #: it) and, unlogged, ``pending`` like the image's
    clip: dict[str, Any] | None = None


def job_clips(result: Any, clip: dict[str, Any] | None, provenance: Any, account_id: str, log: bool
              ) -> list[dict[str, Any] | None]:
    """A clip of each image of ``result`` when the job asked for one (see :attr:`GeneratedBlob.clip`)."""
    if not clip:
        return [None] * len(result.images)
    from ..clips import ClipOptions, clips_for_result

    made = clips_for_result(result, ClipOptions.from_dict(clip), provenance=provenance, account=account_id, log=log)
    return [{"data": c.data, "entry": c.entry(),
             "pending": None if log else {"record": c.record.canonical_json().decode(),
                                          "glob": c.glob.astype("int8").tolist()}} for c in made]


def task_limit_threads(threads: int, engine: str | None = None) -> bool:
    """Hold this worker process's native thread pools (OpenCV, BLAS/OpenMP, faiss) to ``threads`` each, then warm
    up as :func:`task_warm` does. A queue worker started with ``--threads 1`` stays on about one core."""
    if threads > 0:
        import cv2
        from threadpoolctl import threadpool_limits

        cv2.setNumThreads(threads)
        threadpool_limits(threads)
        try:
            import faiss

            faiss.omp_set_num_threads(threads)
        except (ImportError, AttributeError):  # pragma: no cover - faiss is a core dependency
            pass
    return task_warm(engine)


_PIPELINES: dict[tuple[int, str, float, str | None, str | None, str, str], Any] = {}


def _pipeline(engine: str, identity_threshold: float, data_dir: str | None, secret: str | None,
              plugins: str = "all", plugin_errors: str = "") -> Any:
    """This worker's :class:`~tastemaker.pipeline.Pipeline` for a configuration: built on its first job and
    reused (the engine's caches, the guard's encoder and the provenance store stay warm between jobs). One per
    thread: in thread mode (tests) two jobs never share a provenance store's connections."""
    from ..pipeline import Pipeline, default_provenance, provenance_for
    from ..plugins import Plugins

    key = (threading.get_ident(), engine, identity_threshold, data_dir, secret, plugins, plugin_errors)
    pipe = _PIPELINES.get(key)
    if pipe is None:
        prov = provenance_for(data_dir, secret) if data_dir else default_provenance()
        pipe = _PIPELINES[key] = Pipeline(engine, identity_threshold=identity_threshold, guard_workers=0,
                                          provenance=prov, plugins=Plugins.load(plugins, on_error=plugin_errors))
    return pipe


def task_generate(
    job_id: str,
    request: dict[str, Any],
    selfie: bytes,
    selfie_name: str,
    face: Any,
    identity: Any,
    profile_json: str,
    engine: str,
    identity_threshold: float,
    max_pixels: int,
    max_bytes: int,
    sink: Callable[[str, str, int, int], None] | None = None,
    account_id: str = "local",
    data_dir: str | None = None,
    pins: list[Any] | None = None,
    provenance_secret: str | None = None,
    blobs: Any = None,
    log: bool = True,
    plugins: str = "all",
    plugin_errors: str = "",
) -> Outcome:
    """Render one job and encode its images. Progress goes to ``sink`` (threads) or the process queue.

    ``pins`` are the stored board's pins the engine may draw from; their bytes are read here, in the worker,
    from ``blobs`` (a :class:`~tastemaker.store.BlobStore`), and live only for this job. ``log=False`` (queue
    workers) leaves each image's provenance record unlogged, in :attr:`GeneratedBlob.pending`.
    """

    def report(stage: str, done: int, total: int) -> None:
        if sink is not None:
            sink(job_id, stage, done, total)
        elif _SINK is not None:
            _SINK.put((job_id, stage, done, total))

    def run() -> list[GeneratedBlob]:
        from ..engines.assets import AssetLimits, assets_from_bytes
        from ..engines.base import GenerationRequest, IdentitySubject, Subject
        from ..media import decode_image
        from ..taste.profile import TasteProfile

        report("starting", 0, 1)
        req = GenerationRequest.model_validate({k: v for k, v in request.items() if k != "clip"})
        subject: Subject | IdentitySubject
        if selfie:
            img = decode_image(selfie, name=selfie_name, max_pixels=max_pixels, max_bytes=max_bytes)
            subject = Subject(image=img, face=face, identity=identity, name=selfie_name)
        else:  # an identity made on the person's device (engines that draw from one alone); no pixels came here
            subject = IdentitySubject(identity=identity)
        profile = TasteProfile.from_json(profile_json, name="profile")
        assets = None
        if pins and blobs is not None:
            stored = {}
            for pin in pins:
                try:
                    stored[pin.id] = (pin, blobs.get(pin.sha256))
                except BlobMissingError:
                    continue  # deleted meanwhile: the engine falls back for that pin and says so
            assets = assets_from_bytes("the stored board", stored, profile,
                                       AssetLimits(max_pixels=max_pixels, max_bytes=max_bytes))
        from .product_tasks import ProductSubject, render_product

        pipe = _pipeline(engine, identity_threshold, data_dir, provenance_secret, plugins, plugin_errors)
        if isinstance(face, ProductSubject):  # subject=product: the photo is a product's (see product_tasks)
            result = render_product(req, selfie, selfie_name, face, profile, assets, pipe.provenance,
                                    account=account_id, progress=report, log=log, max_pixels=max_pixels,
                                    max_bytes=max_bytes)
        else:
            result = pipe(req, subject=subject, profile=profile, assets=assets, account=account_id, progress=report,
                          log=log)
        # the images come back watermarked, C2PA-signed and logged (pipeline provenance); never re-encode them
        media_type = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}[req.format]
        out = []
        pending: list[dict[str, Any] | None] = [
            {"record": p.record.canonical_json().decode(), "glob": p.glob.astype("int8").tolist()}
            for p in result.unlogged
        ]
        pending = pending or [None] * len(result.images)
        clips = job_clips(result, request.get("clip"), pipe.provenance, account_id, log)
        for im, unlogged, clip in zip(result.images, pending, clips, strict=True):
            h, w = im.pixels.shape[:2]
            out.append(GeneratedBlob(data=im.data, media_type=media_type, width=w, height=h, record=im.record(),
                                     pending=unlogged, clip=clip))
        return out

    return guard(run)
