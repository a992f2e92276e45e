"""The flow in one call: selfie(s) + board or profile + request -> images with their measurements.

``generate`` decodes and encodes the selfie(s), builds the profile when given a board, reads the
prompt, asks the engine for a plan, renders, and runs the **identity guard** on every output: the
output's dlib embedding is compared with the person's; while it is farther than the threshold
(default 0.35; dlib's same-person line is 0.6) the variation is re-rendered with a stronger hold on
the face (0 -> 0.4 -> 0.6 -> 0.8 -> 0.9 -> 1: the look engine keeps each variation's medium synthesis,
so a step only re-blends the face). An output that still drifts is an error, never a silent return.
Each output is also scored against the profile with the style encoder.

Every output then gets its provenance (``provenance/service.py``): a record, the invisible watermark
carrying its id, a signed C2PA manifest and an entry in the transparency log. This is not optional and
fails closed: if any step fails, ``generate`` raises and returns no image at all.

``save_result`` writes the images, a ``manifest.json`` and a contact sheet, all-or-nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ._version import __version__
from .boards import Board
from .encoders.identity import (
    Face,
    IdentityEmbedding,
    IdentityEncoder,
    embed_chips,
    embed_pool,
    identity_distance,
)
from .encoders.style import describe
from .engines import Engine, get_engine
from .engines.base import BoardAssets, GenerationRequest, IdentitySubject, Rendered, Subject
from .errors import IdentityGuardError, NoFaceError, ProvenanceError, RequestError
from .media import encode_image, ensure_writable_dir, load_image, suffix_for, write_atomic
from .prompt import parse_prompt
from .provenance.service import Prepared, Provenance, prepare_many
from .taste.profile import ProfileConfig, TasteProfile, build_profile

Progress = Callable[[str, int, int], None]
HOLD_LEVELS = (0.0, 0.4, 0.6, 0.8, 0.9, 1.0)
#: The guard never asks an output to be closer to the identity than its own source photo is, plus this.
GUARD_MARGIN = 0.05


@dataclass
class GeneratedImage:
    """One output and what we measured about it."""

    pixels: np.ndarray
    index: int
    seed: int
    mode_id: str
    mode_name: str
    background: str
    framing: str
    strength: float
    hold: float
    identity_distance: float
    style_score: float
    #: the encoded file (request format) with its watermark and signed C2PA manifest
    data: bytes = b""
    record_id: str = ""
    log_index: int = -1
    timings: dict[str, float] = field(default_factory=dict)
    #: what the engine did (medium, exemplar pin, scene pin, honest size, fallbacks): see Rendered.info
    info: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """Manifest entry (without pixels)."""
        return {
            "index": self.index,
            "record_id": self.record_id,
            "log_index": self.log_index,
            "seed": self.seed,
            "mode": self.mode_id,
            "mode_name": self.mode_name,
            "background": self.background,
            "framing": self.framing,
            "strength": self.strength,
            "face_hold": self.hold,
            "identity_distance": round(self.identity_distance, 4),
            "style_score": round(self.style_score, 4),
            **self.info,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }


@dataclass
class GenerationResult:
    images: list[GeneratedImage]
    request: GenerationRequest
    profile: TasteProfile
    identity: IdentityEmbedding
    engine: str
    engine_version: str
    #: None for an identity-only run (an identity file, no selfie pixels)
    selfie: np.ndarray | None
    face: Face | None
    selfie_style_score: float
    guard_threshold: float
    board: Board | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: where the pins the engine drew from came from ("board 'name'"), or None for a profile-only run
    assets_source: str | None = None

    def notes(self) -> list[str]:
        """What a person should know about how the images were made: fallbacks and reduced sizes, once each."""
        out: list[str] = []
        for im in self.images:
            for key in ("medium", "scene"):
                part = im.info.get(key) or {}
                if part.get("reason"):
                    what = "medium transfer" if key == "medium" else "scene"
                    out.append(f"{what}: {part.get('fallback', 'not applied')} — {part['reason']}")
            if im.info.get("face_detectable") is False:
                out.append(f"variation {im.index}: the face is as near to yours as required, but a face detector "
                           "does not find it on its own (an unusual pose or a strong style); try another seed")
            size = im.info.get("size")
            if size:
                w, h = size["rendered"]
                out.append(f"rendered at {w}x{h} instead of {size['requested'][0]}x{size['requested'][1]}: "
                           f"{size['reason']}")
        return list(dict.fromkeys(out))


class IdentityGuard:
    """Measures outputs' identity distances (one in-process batch; dlib's own runner uses ``workers`` processes).

    The face is aligned inside the box where the engine put it; an engine that cannot say where the
    face is gets a full detection instead. A missing face counts as infinitely far. :meth:`detectable`
    also asks whether a face detector finds the face there on its own (as anyone verifying the picture
    would have to): a stylised face that is near enough but undetectable is held more, like one that drifts.
    """

    def __init__(
        self, encoder: IdentityEncoder, identity: IdentityEmbedding, threshold: float, *, workers: int = 0
    ) -> None:
        self.encoder = encoder
        self.identity = identity
        self.threshold = threshold
        self.workers = workers

    def _chip(self, rendered: Rendered) -> np.ndarray | None:
        img = rendered.pixels
        if rendered.face_box is not None:
            h, w = img.shape[:2]
            x0, y0, x1, y1 = rendered.face_box
            box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
            if box[2] - box[0] >= 20 and box[3] - box[1] >= 20:
                return self.encoder.chip(img, box)
        faces = self.encoder.detect(img)
        return self.encoder.chip(img, faces[0].box) if faces else None

    def detectable(self, rendered: Sequence[Rendered]) -> list[bool]:
        """Does dlib's detector, unaided, find a face where the engine says the face is? (a crop around it)

        An output without a face box was already searched whole for its distance (no face there: an infinite
        distance), so it is not searched again here.
        """
        out = []
        for r in rendered:
            if r.face_box is None:
                out.append(True)
                continue
            h, w = r.pixels.shape[:2]
            x0, y0, x1, y1 = r.face_box
            bw, bh = x1 - x0, y1 - y0
            cx0, cy0 = max(0, int(x0 - 0.75 * bw)), max(0, int(y0 - 0.75 * bh))
            cx1, cy1 = min(w, int(x1 + 0.75 * bw)), min(h, int(y1 + 0.75 * bh))
            crop = np.ascontiguousarray(r.pixels[cy0:cy1, cx0:cx1])
            if crop.shape[0] < 20 or crop.shape[1] < 20:
                out.append(False)
                continue
            mx, my = (x0 + x1) / 2 - cx0, (y0 + y1) / 2 - cy0
            out.append(any(f.box[0] <= mx <= f.box[2] and f.box[1] <= my <= f.box[3]
                           for f in self.encoder.detect(crop)))
        return out

    def check(self, rendered: Sequence[Rendered]) -> list[tuple[float, bool]]:
        """(identity distance, face detectable) per output."""
        return list(zip(self.distances(rendered), self.detectable(rendered), strict=True))

    def distances(self, rendered: Sequence[Rendered]) -> list[float]:
        chips = [self._chip(r) for r in rendered]
        found = [c for c in chips if c is not None]
        vecs = iter(embed_chips(found, workers=self.workers))
        return [float("inf") if c is None else identity_distance(next(vecs), self.identity) for c in chips]


_DEFAULT_PROVENANCE: dict[tuple[str, str | None], Provenance] = {}


def provenance_for(data_dir: Path | str, secret: str | None = None) -> Provenance:
    """The provenance store under ``data_dir``, opened once per process (certificates from settings).

    ``secret`` (a deployment's secret key) derives the store's keys, watermark key included; without it the
    store keeps its own random key file (the CLI's local store). A store is always opened with the secret it
    was made with: another one is refused (:class:`LedgerError`), so marks never silently stop resolving.
    """
    from .config import Settings

    settings = Settings()
    key = (str(Path(data_dir).resolve()), secret)
    prov = _DEFAULT_PROVENANCE.get(key)
    if prov is None:
        prov = Provenance(data_dir, chain_pem=settings.c2pa_chain_pem, key_pem=settings.c2pa_key_pem,
                          anchor_pem=settings.c2pa_anchor_pem, secret=secret)
        _DEFAULT_PROVENANCE[key] = prov
    return prov


def default_provenance() -> Provenance:
    """The provenance store in the configured data dir (``TASTEMAKER_DATA_DIR``)."""
    from .config import Settings

    return provenance_for(Settings().data_dir)


def _as_image(item: np.ndarray | str | Path, max_pixels: int) -> tuple[np.ndarray, str]:
    if isinstance(item, np.ndarray):
        return item, "selfie"
    p = Path(item)
    return load_image(p, max_pixels=max_pixels), p.name


def prepare_subject(
    selfies: Sequence[np.ndarray | str | Path],
    *,
    encoder: IdentityEncoder | None = None,
    identity: IdentityEmbedding | None = None,
    face_index: int | None = None,
    max_pixels: int = 40_000_000,
) -> Subject:
    """Decode the selfies, find the face in each, and combine them into one identity.

    The first selfie is the one the look engine re-draws; the others only sharpen the identity.
    """
    if not selfies:
        raise NoFaceError("no selfie given; pass at least one photo of your face")
    enc = encoder or IdentityEncoder()
    decoded = [_as_image(s, max_pixels) for s in selfies]
    combined, faces = enc.encode([d[0] for d in decoded], names=[d[1] for d in decoded], face_index=face_index)
    return Subject(image=decoded[0][0], face=faces[0], identity=identity or combined, name=decoded[0][1])


def generate(
    request: GenerationRequest,
    *,
    selfies: Sequence[np.ndarray | str | Path] | None = None,
    subject: Subject | IdentitySubject | None = None,
    board: Board | None = None,
    profile: TasteProfile | None = None,
    assets: BoardAssets | None = None,
    engine: str | Engine = "look",
    identity: IdentityEmbedding | None = None,
    identity_threshold: float = 0.35,
    face_index: int | None = None,
    profile_config: ProfileConfig | None = None,
    encoder: IdentityEncoder | None = None,
    text_encoder: Any = None,
    guard_workers: int = 0,
    provenance: Provenance | None = None,
    account: str = "local",
    include_prompt: bool = False,
    progress: Progress | None = None,
) -> GenerationResult:
    """Make ``request.n`` images of the person in the board's (or profile's) aesthetic.

    With ``identity`` and no selfies (or an :class:`IdentitySubject`), the person is known only by an embedding
    made on their device; engines that can draw from it alone (``accepts_identity_only``) do, others refuse.
    With a board the engine's ``prepare_board`` loads what it draws from (the look engine: the modes'
    medoid pins, for medium transfer and scenes; the diffusion engine embeds pins with CLIP). With a
    profile alone there are no pins, unless the caller passes ``assets`` it loaded (the server does, from
    its stored board); an engine that needed them falls back and says so in each image's record.
    """
    timings: dict[str, float] = {}
    report = progress or (lambda stage, done, total: None)
    if (board is None) == (profile is None):
        raise RequestError("give exactly one of a board or a taste profile")
    if request.seed is None:
        request = request.with_seed(secrets.randbelow(2**31))
    enc = encoder or IdentityEncoder()
    embed_pool(guard_workers)  # with dlib's runner, start its worker processes early (they load models meanwhile)

    eng = get_engine(engine) if isinstance(engine, str) else engine
    t = time.perf_counter()
    if subject is None and not selfies and identity is not None:
        subject = IdentitySubject(identity=identity)
    if isinstance(subject, IdentitySubject) and not getattr(eng, "accepts_identity_only", False):
        raise NoFaceError(f"the {eng.name} engine redraws a selfie; give a selfie photo, not only an identity file")
    if subject is None:
        report("identity", 0, 1)
        subject = prepare_subject(selfies or [], encoder=enc, identity=identity, face_index=face_index)
        report("identity", 1, 1)
    timings["identity"] = time.perf_counter() - t

    t = time.perf_counter()
    if profile is None:
        assert board is not None
        report("profile", 0, 1)
        profile = build_profile(board, profile_config)
        report("profile", 1, 1)
    timings["profile"] = time.perf_counter() - t

    if board is not None:
        t = time.perf_counter()
        assets = eng.prepare_board(board, profile)
        timings["board"] = time.perf_counter() - t
    intent = parse_prompt(request.prompt, [(m.id, m.text, m.weight) for m in profile.modes], text_encoder)
    # an IdentitySubject only reaches engines that accept one (checked above)
    person = cast(Subject, subject)
    plans = eng.plan(request, person, profile, intent, assets=assets)

    own = subject.cache.get("own_distance")
    if own is None:
        own = 0.0 if isinstance(subject, IdentitySubject) else identity_distance(
            enc.embed_face(subject.image, subject.face), subject.identity
        )
        subject.cache["own_distance"] = own
    threshold = max(identity_threshold, own + GUARD_MARGIN)
    guard = IdentityGuard(enc, subject.identity, threshold, workers=guard_workers)

    t = time.perf_counter()
    report("render", 0, len(plans))
    current = eng.render(plans, person, profile, request, hold=[HOLD_LEVELS[0]] * len(plans), assets=assets)
    timings["render"] = time.perf_counter() - t

    # The guard (a batch through the face ResNet) and the expensive half of provenance (watermark, encode,
    # C2PA signature) run at the same time. Provenance here is only *prepared*: nothing is logged until
    # the guard has passed an image, and prepared outputs the guard rejects are discarded.
    prov = provenance or default_provenance()
    meta: dict[str, Any] = dict(
        fmt=request.format, prompt=request.prompt, profile_hash=profile.content_hash(), engine=eng.name,
        engine_version=eng.version, seed=request.seed, account=account, include_prompt=include_prompt,
    )
    prepared: list[Prepared | None] = [None] * len(current)
    try:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as side:
            guarded = side.submit(guard.check, current)
            t_prep = time.perf_counter()
            prepared = list(prepare_many(prov, [r.pixels for r in current], **meta))
            timings["provenance"] = time.perf_counter() - t_prep
            checked = guarded.result()
        timings["guard"] = time.perf_counter() - t
        dists = [d for d, _ in checked]
        found = [f for _, f in checked]
        level = [0] * len(plans)
        while True:
            todo = [k for k, (d, f) in enumerate(zip(dists, found, strict=True))
                    if (d > threshold or not f) and level[k] + 1 < len(HOLD_LEVELS)]
            if not todo:
                break
            for k in todo:
                level[k] += 1
                stale = prepared[k]
                if stale is not None:
                    prov.discard(stale)
                    prepared[k] = None
            t = time.perf_counter()
            again = eng.render(
                [current[k].plan for k in todo], person, profile, request,
                hold=[HOLD_LEVELS[level[k]] for k in todo], assets=assets,
            )
            timings["render"] += time.perf_counter() - t
            t = time.perf_counter()
            for k, r, (d, f) in zip(todo, again, guard.check(again), strict=True):
                current[k], dists[k], found[k] = r, d, f
            timings["guard"] += time.perf_counter() - t
        for r, dist, f in zip(current, dists, found, strict=True):
            if dist > threshold:
                raised = (f"; the threshold {identity_threshold:.2f} was raised to your own selfie's distance + "
                          f"{GUARD_MARGIN:g}") if threshold > identity_threshold else ""
                raise IdentityGuardError(
                    f"variation {r.plan.index} drifted from the selfie (identity distance {dist:.2f} > "
                    f"{threshold:.2f}{raised}) even with the face fully held; try a lower strength or another seed"
                )
            if not f:
                r.info["face_detectable"] = False  # near enough, but a detector does not find it unaided
        report("render", len(plans), len(plans))
        t = time.perf_counter()
        missing = [k for k, pr in enumerate(prepared) if pr is None]
        fresh = prepare_many(prov, [current[k].pixels for k in missing], **meta)
        for k, new in zip(missing, fresh, strict=True):
            prepared[k] = new
        report("provenance", 0, len(current))
        stamped = [prov.commit(pr) for pr in prepared if pr is not None]
        report("provenance", len(stamped), len(current))
        timings["provenance"] = timings.get("provenance", 0.0) + time.perf_counter() - t
    except BaseException:
        for pr in prepared:
            if pr is not None:
                prov.discard(pr)
        raise
    finals = list(zip(current, dists, strict=True))

    t = time.perf_counter()
    images = []
    for (r, dist), st in zip(finals, stamped, strict=True):
        mode = profile.mode(r.plan.mode_id)
        images.append(
            GeneratedImage(
                pixels=st.pixels,
                index=r.plan.index,
                seed=r.plan.seed,
                mode_id=mode.id,
                mode_name=mode.name,
                background=r.plan.background,
                framing=r.plan.framing,
                strength=r.plan.strength,
                hold=r.hold,
                identity_distance=dist,
                style_score=profile.style_score(describe(st.pixels, palette=False)),
                data=st.data,
                record_id=st.record.id_hex,
                log_index=st.log_index,
                timings=r.timings,
                info=r.info,
            )
        )
    selfie_score = float("nan")
    if subject.image is not None:  # the same selfie against the same profile: describe it once
        key = f"selfie_score:{meta['profile_hash']}"
        if key not in subject.cache:
            subject.cache[key] = profile.style_score(describe(subject.image, palette=False))
        selfie_score = subject.cache[key]
    timings["score"] = time.perf_counter() - t
    return GenerationResult(
        images=images,
        request=request,
        profile=profile,
        identity=subject.identity,
        engine=eng.name,
        engine_version=eng.version,
        selfie=subject.image,
        face=subject.face,
        selfie_style_score=selfie_score,
        guard_threshold=threshold,
        board=board,
        timings=timings,
        assets_source=assets.source if assets is not None else None,
    )


def save_result(result: GenerationResult, outdir: Path | str, *, contact_sheet: bool = True) -> Path:
    """Write images, ``manifest.json`` and ``contact_sheet.png`` into ``outdir``; returns the manifest path.

    Everything is encoded in memory first and each file is written atomically, manifest last, so an
    interrupted run never leaves a manifest pointing at missing or partial images.
    """
    out = ensure_writable_dir(outdir)
    fmt = result.request.format
    t = time.perf_counter()
    names = [f"tastemaker_{result.request.seed}_{img.index:02d}{suffix_for(fmt)}" for img in result.images]
    if any(not img.data for img in result.images):
        raise ProvenanceError("refusing to save images that carry no provenance (they did not come from generate)")
    blobs = [(name, img.data) for name, img in zip(names, result.images, strict=True)]
    encode_s = time.perf_counter() - t
    sheet_bytes = None
    if contact_sheet:
        from .report import contact_sheet as make_sheet

        sheet_bytes = encode_image(make_sheet(result), "png")
    for name, data in blobs:
        write_atomic(out / name, data)
    if sheet_bytes is not None:
        write_atomic(out / "contact_sheet.png", sheet_bytes)
    manifest = {
        "tastemaker_version": __version__,
        "engine": {"name": result.engine, "version": result.engine_version},
        "request": result.request.model_dump(mode="json"),
        "profile": {
            "hash": result.profile.content_hash(),
            "board": result.profile.board,
            "modes": [{"id": m.id, "name": m.name, "weight": round(m.weight, 4)} for m in result.profile.modes],
        },
        "identity_threshold": round(result.guard_threshold, 4),
        "pins_from": result.assets_source,
        # None, not NaN, for an identity-only run (no selfie pixels to score): the manifest is standard JSON
        "selfie_style_score": _finite(round(result.selfie_style_score, 4)),
        "contact_sheet": "contact_sheet.png" if sheet_bytes is not None else None,
        "notes": result.notes(),
        "timings_ms": {k: round(v * 1000, 1) for k, v in {**result.timings, "encode": encode_s}.items()},
        "images": [{"file": name, **img.record()} for (name, _), img in zip(blobs, result.images, strict=True)],
    }
    text = json.dumps(_finite(manifest), indent=2, allow_nan=False)
    path = write_atomic(out / "manifest.json", (text + "\n").encode())
    return path


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
