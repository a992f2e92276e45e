"""One output -> one clip with its own provenance: layers, the mark, the camera, the frames, the file, the record."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..errors import RequestError
from ..media import write_atomic
from ..provenance import fingerprint as fpr
from ..provenance import watermark as wm
from ..provenance.c2pa import sign_image
from ..provenance.record import ProvenanceRecord
from ..provenance.service import Prepared, Provenance
from .camera import Camera, plan_camera
from .codec import encode
from .layers import Layers, build_layers
from .options import GIF_MAX_BYTES, GIF_MIN_LONG, ClipOptions, clip_size
from .render import frames

if TYPE_CHECKING:
    from ..pipeline.output import GenerationResult
    from ..products.output import ProductResult

#: containers c2pa-python can sign (WebM carries the watermark only)
SIGNED_FORMATS = ("mp4", "gif")
#: a clip's mark is embedded at 1/MARK_COARSE of the frame's size and enlarged: a platform's re-encode at half size
#: (H.264, CRF 28) quantised a full-size mark's finest blocks away on line art (both Tenniel engravings of the clip
#: bench lost it), while a mark twice as coarse survives it; the detector finds it at scale 2 in full-size frames
MARK_COARSE = 2
#: the mark needs room both ways: line art's black ink (0) and white paper (255) clip half of it away. Tones below
#: KNEE (and above 255 - KNEE) are pressed into [HEADROOM, 255 - HEADROOM]; mid-tones are untouched. On the Tenniel
#: engravings of the clip bench a half-size CRF 28 copy then decoded 12 of 12 times (3 of 6 with 4 levels, 0 of 6
#: with neither this nor the coarse mark)
HEADROOM, KNEE = 6, 24


def _headroom_lut() -> np.ndarray:
    x = np.arange(256, dtype=np.float32)
    low = HEADROOM + x * ((KNEE - HEADROOM) / KNEE)
    high = 255 - HEADROOM - (255 - x) * ((KNEE - HEADROOM) / KNEE)
    return np.clip(np.where(x < KNEE, low, np.where(x > 255 - KNEE, high, x)) + 0.5, 0, 255).astype(np.uint8)


_HEADROOM = _headroom_lut()


@dataclass
class Clip:
    """A finished clip: the file's bytes (marked frames, signed where the container allows) and its record."""

    data: bytes
    options: ClipOptions
    width: int
    height: int
    record: ProvenanceRecord
    camera: str
    signed: bool
    #: the record's index in the transparency log; -1 when the caller logs it (``log=False``)
    log_index: int = -1
    #: the key picture's global fingerprint descriptor (what the store indexes when the record is logged)
    glob: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8), repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        return self.options.media_type

    def entry(self) -> dict[str, Any]:
        """What a manifest or an API answer says about the clip (no bytes)."""
        return {
            "record_id": self.record.id_hex,
            "log_index": self.log_index,
            "format": self.options.format,
            "media_type": self.media_type,
            "seconds": self.options.seconds,
            "fps": self.options.fps,
            "frames": self.options.frames,
            "width": self.width,
            "height": self.height,
            "camera": self.camera,
            "bytes": len(self.data),
            "c2pa": self.signed,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }


def _prefetch(it: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """``it`` run on a thread of its own, ``depth`` frames ahead: drawing frames (OpenCV, no GIL) overlaps encoding."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, name="clip-frames", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def subject_centre(alpha: np.ndarray) -> tuple[float, float] | None:
    """The subject's centre of mass in frame pixels (None: no subject)."""
    m = cv2.moments(alpha.astype(np.float32))
    if m["m00"] < 1e-3 * alpha.size:
        return None
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def mark_frame(base: np.ndarray, record_id: int, key: int) -> tuple[np.ndarray, int]:
    """``base`` (uint8 RGB, its extreme tones given :data:`HEADROOM`) carrying ``record_id``'s mark at
    :data:`MARK_COARSE` times the watermark's own block size, read back at full size (fail closed); a frame too
    small for that, or whose coarse mark does not read back, gets the image mark at full size
    (:func:`~tastemaker.provenance.watermark.embed`, itself checked). Returns the marked frame and the mark's scale
    (the record's ``clip.mark_scale``)."""
    base = cv2.LUT(base, _HEADROOM)
    h, w = base.shape[:2]
    hs, ws = h // MARK_COARSE, w // MARK_COARSE
    if min(hs, ws) >= wm.MIN_SIDE:
        small = cv2.resize(base, (ws, hs), interpolation=cv2.INTER_AREA)
        delta = wm.embed(small, record_id, key=key).astype(np.float32) - small.astype(np.float32)
        up = cv2.resize(delta, (w, h), interpolation=cv2.INTER_LINEAR)
        marked = cv2.add(base.astype(np.float32), up, dtype=cv2.CV_32F)
        marked = np.clip(marked + 0.5, 0, 255).astype(np.uint8)
        if wm.detect(marked, key=key).payload == record_id:
            return marked, MARK_COARSE
    return wm.embed(base, record_id, key=key), 1


def prepare(pixels: np.ndarray, options: ClipOptions, *, alpha: np.ndarray | None = None, live_grain: bool = True,
            scale: float = 1.0) -> Layers:
    """The layers of ``pixels`` at the clip's frame size (times ``scale``; GIFs made again smaller use it)."""
    h, w = pixels.shape[:2]
    cw, ch = clip_size(w, h, options.format)
    if scale != 1.0:
        cw, ch = clip_size(max(2, int(cw * scale)), max(2, int(ch * scale)), options.format)
    img = pixels if (cw, ch) == (w, h) else cv2.resize(pixels, (cw, ch), interpolation=cv2.INTER_AREA)
    a: np.ndarray | None = None
    if alpha is not None:  # 0..1, or 0..255 as a PNG's alpha channel comes
        a = np.asarray(alpha, np.float32) * np.float32(1 / 255 if np.asarray(alpha).dtype == np.uint8 else 1.0)
        if a.shape != (ch, cw):
            a = cv2.resize(a, (cw, ch), interpolation=cv2.INTER_AREA)
    return build_layers(np.ascontiguousarray(img), a, live_grain=live_grain)


def render(
    layers: Layers, options: ClipOptions, seed: int, *, yuv: bool = False
) -> tuple[Camera, Iterator[np.ndarray]]:
    """The seed's camera over ``layers`` and the clip's frames (unencoded RGB; ``yuv``: planar I420)."""
    w, h = layers.size
    camera = plan_camera(seed, w, h, subject_centre=subject_centre(layers.alpha))
    return camera, frames(layers, camera, options.frames, seed=seed, yuv=yuv)


def make_clip(
    pixels: np.ndarray,
    options: ClipOptions,
    *,
    provenance: Provenance,
    seed: int,
    profile_hash: str,
    engine: str,
    engine_version: str,
    of: str,
    prompt: str = "",
    account: str = "local",
    include_prompt: bool = False,
    alpha: np.ndarray | None = None,
    live_grain: bool = True,
    log: bool = True,
) -> Clip:
    """A clip of ``pixels`` (an output *before* its own mark: uint8 RGB) with a record of its own.

    ``of`` is the still's record id (hex). ``alpha`` is the subject's cut-out (a product's), else the person is
    segmented. Fails closed like every output: marked, recorded, signed (mp4, gif) and logged, or an error.
    With ``log=False`` the record is left for the caller to log (``Clip.record``, ``Clip.glob``).
    A GIF over 20 MB is made again at 3/4 of the size, down to 256 px; past that it is refused.
    """
    scale = 1.0
    while True:
        clip = _attempt(pixels, options, provenance, seed, scale, alpha=alpha, live_grain=live_grain,
                        meta=dict(profile_hash=profile_hash, engine=engine, engine_version=engine_version, of=of,
                                  prompt=prompt, account=account, include_prompt=include_prompt))
        if options.format != "gif" or len(clip.data) <= GIF_MAX_BYTES:
            break
        provenance.release_id(clip.record.record_id)
        if max(clip.width, clip.height) * 0.75 < GIF_MIN_LONG:
            raise RequestError(
                f"clip_format gif: {options.seconds:g} s at {options.fps} fps is {len(clip.data) / 2**20:.1f} MB even "
                f"at "
                f"{clip.width}x{clip.height}, over the 20 MB limit for GIFs; ask for mp4 or webm, or a shorter clip"
            )
        scale *= 0.75
    prepared = Prepared(data=clip.data, pixels=np.zeros((0, 0, 3), np.uint8), record=clip.record, glob=clip.glob)
    if log:
        clip.log_index = provenance.commit(prepared).log_index
    else:
        provenance.discard(prepared)
    return clip


def _attempt(pixels: np.ndarray, options: ClipOptions, prov: Provenance, seed: int, scale: float, *,
             alpha: np.ndarray | None, live_grain: bool, meta: dict[str, Any]) -> Clip:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    layers = prepare(pixels, options, alpha=alpha, live_grain=live_grain, scale=scale)
    timings["layers"] = time.perf_counter() - t
    rid = prov.reserve_id(layers.base)
    try:
        t = time.perf_counter()
        marked, mark_scale = mark_frame(layers.base, rid, prov.key)
        layers = layers.with_mark(marked)
        fp = fpr.compute(marked, prov.keys.fingerprint_seed)
        timings["mark"] = time.perf_counter() - t
        t = time.perf_counter()
        yuv = options.format != "gif"
        camera, it = render(layers, options, seed, yuv=yuv)
        w, h = layers.size
        data = encode(_prefetch(it), options.format, options.fps, (w, h), yuv=yuv)
        timings["frames+encode"] = time.perf_counter() - t
        t = time.perf_counter()
        record = ProvenanceRecord.create(
            account=prov.pseudonym(meta["account"]), prompt_hmac=prov.keys.prompt_hash(meta["prompt"]),
            profile_hash=meta["profile_hash"], engine=meta["engine"], engine_version=meta["engine_version"],
            seed=seed % (2**53), pixels=marked, fingerprint=fp.encode(), record_id=rid,
            clip={"duration_ms": round(options.seconds * 1000), "fps": options.fps, "frames": options.frames,
                  "width": w, "height": h, "format": options.format, "of": meta["of"],
                  **({"mark_scale": mark_scale} if mark_scale != 1 else {})},
        )
        signed = options.format in SIGNED_FORMATS
        if signed:
            data = sign_image(data, options.format, record, prov.identity,
                              prompt=meta["prompt"] if meta["include_prompt"] else None,
                              title=f"tastemaker-clip-{record.id_hex}")
        timings["sign"] = time.perf_counter() - t
    except BaseException:
        prov.release_id(rid)
        raise
    return Clip(data=data, options=options, width=w, height=h, record=record, camera=camera.move, signed=signed,
                glob=fp.glob, timings=timings)


def clips_for_result(
    result: GenerationResult | ProductResult,
    options: ClipOptions,
    *,
    provenance: Provenance,
    account: str = "local",
    include_prompt: bool = False,
    alphas: list[np.ndarray | None] | None = None,
    log: bool = True,
) -> list[Clip]:
    """One clip per output of a generation, each from the picture before its mark, with the image's seed (same
    seed, same move) and a record naming the image's. A medium's re-drawn picture keeps its texture as it is
    (its marks are the picture, not film grain); a photographic mode's grain is kept alive. ``alphas``: the
    subjects' cut-outs where the caller has them; a product's image carries its own (``alpha``: the product's
    matte as placed), and anything else is a person, segmented."""
    out = []
    profile_hash = result.profile.content_hash()
    images: list[Any] = list(result.images)  # GeneratedImage or ProductImage: both have render, seed, record_id, info
    for k, img in enumerate(images):
        if img.render is None:
            raise RequestError("a clip needs the output's picture as rendered; this result does not hold it")
        medium = img.info.get("medium") or {}
        out.append(make_clip(
            img.render, options, provenance=provenance, seed=img.seed, profile_hash=profile_hash,
            engine=result.engine, engine_version=result.engine_version, of=img.record_id,
            prompt=result.request.prompt, account=account, include_prompt=include_prompt,
            alpha=alphas[k] if alphas else getattr(img, "alpha", None),
            live_grain=not medium.get("applied", False), log=log,
        ))
    return out


def save_clips(
    result: GenerationResult | ProductResult,
    names: list[str],
    options: ClipOptions,
    *,
    provenance: Provenance,
    out: Path,
    advance: Callable[[], None] | None = None,
) -> list[str]:
    """A clip of each output written next to its image (``names``: the images' file names; a clip takes the
    image's stem), one at a time so that only one clip's frames are in memory. Each image's ``info`` gets
    ``clip`` (its file and :meth:`Clip.entry`), so the manifest written after says which clip is whose."""
    written = []
    images: list[Any] = list(result.images)
    for img, name in zip(images, names, strict=True):
        one: Any = dataclasses.replace(result, images=[img])  # type: ignore[arg-type]
        made = clips_for_result(one, options, provenance=provenance)[0]
        clip_name = Path(name).stem + options.suffix
        write_atomic(out / clip_name, made.data)
        img.info["clip"] = {"file": clip_name, **made.entry()}
        written.append(clip_name)
        if advance is not None:
            advance()
    return written
