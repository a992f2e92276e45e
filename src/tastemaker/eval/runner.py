"""The evaluation run: every selfie x board through the engine and each baseline, then measured.

For each person's selfie and each board the engine makes ``n`` variations with one request (same
seed everywhere; the engine also gets the board's pins, loaded once per board with its
``prepare_board``, as ``tastemaker generate --board`` gives them), and each baseline makes ``n`` images
from the same framing (see :mod:`.baselines`). Every image is measured (:mod:`.metrics`: identity,
style, attribution by the Gram descriptor and by the texture-only descriptor of :mod:`.texture`;
:mod:`.artefacts`: colour faithfulness, mirrored fills, block grids), every request's variations
are compared with each other, and every stage is timed. Failures (an engine request the identity guard refused, a
baseline that raised) are recorded with their message and counted, never dropped.

Latency per request is the cost a user would see for it: ``decode`` (selfie + board images),
``identity`` (face detection + embedding of the selfie), ``profile`` (engine only: board -> taste
profile, and the engine's board assets), ``engine`` (the engine's generate call — itself split into
render, guard and score in ``engine_stages_ms`` — or, for a baseline, its framing + restyle),
``encode`` (a baseline's outputs in the request's format; the engine's arrive encoded — watermarked and
signed — from its generate call, inside its ``engine`` time, so its ``encode`` is 0 and nothing is encoded
twice). Peak RSS is the process's resident-memory high-water mark across each engine call (reset before it
on Linux).

The engine's outputs are stamped like any others (watermark, C2PA, transparency log), but into a provenance
store of the run's own, in a temporary folder removed when the run ends (:func:`scratch_provenance`): test
images never become entries of the user's permanent, append-only log.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.identity import IdentityEmbedding, IdentityEncoder
from ..engines import create_engine
from ..engines.base import GenerationRequest, Subject, VariationPlan
from ..errors import TastemakerError
from ..media import encode_many, resize_max_side
from ..pipeline import OWN_DISTANCE, Pipeline
from ..provenance.service import Provenance
from ..taste.profile import TasteProfile, build_profile
from . import artefacts as Q
from . import metrics as M
from .baselines import BaselineContext, create_baseline, frame_like_engine
from .config import EvalConfig
from .datasets import BoardSet, Person, Photo, SelfieSet, load_boards, load_selfies
from .descriptors import gram_descriptor
from .results import EvalRun
from .scoring import BoardData, Scorer
from .texture import texture_descriptor

THUMB = 256

Progress = Callable[[str, int, int], None]


def _board_text(profile: TasteProfile) -> str | None:
    """A sentence from the board's heaviest tags and titles, for CLIP text similarity."""
    tags: dict[str, float] = {}
    for m in profile.modes:
        for t, w in m.tags.items():
            tags[t] = tags.get(t, 0.0) + w
    words = [t for t, _ in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:8]]
    if not words:
        words = [t for m in profile.modes for t in m.titles[:2]][:4]
    return f"a photo with a {', '.join(words)} look" if words else None


#: The throwaway store's keys come from this fixed secret and its record ids from the pixels (``repeatable``),
#: so two runs on the same inputs measure the same pixels: the invisible watermark depends on both, and with
#: random ones the engine's identity distance moved by up to 0.06 between runs. Nothing it marks or signs is
#: kept or trusted anywhere.
SCRATCH_SECRET = "tastemaker-eval-scratch-store"


@contextmanager
def scratch_provenance() -> Iterator[Provenance]:
    """A provenance store for one run only, in a temporary folder that is removed afterwards; repeatable
    (see :data:`SCRATCH_SECRET`)."""
    with tempfile.TemporaryDirectory(prefix="tastemaker-eval-") as folder:
        prov = Provenance(folder, secret=SCRATCH_SECRET, repeatable=True)
        try:
            yield prov
        finally:
            prov.close()


def run_eval(
    selfies: Path | str | SelfieSet,
    boards: Path | str | BoardSet,
    config: EvalConfig | None = None,
    *,
    progress: Progress | None = None,
    encoder: IdentityEncoder | None = None,
) -> EvalRun:
    """Run the engine and the baselines on every selfie x board and measure everything."""
    cfg = config or EvalConfig()
    report = progress or (lambda what, done, total: None)
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    cfg.request()  # invalid settings fail here, before anything is loaded
    enc = encoder or IdentityEncoder()
    baselines = {name: create_baseline(name) for name in cfg.baselines}
    engine = create_engine(cfg.engine)
    clip, arcface, models = _load_models(cfg, report)

    # load the face models now so no selfie's timing includes it (a one-off cost, reported apart)
    t = time.perf_counter()
    enc.detect(np.zeros((32, 32, 3), np.uint8))
    models_load_s = time.perf_counter() - t

    report("reading selfies", 0, 1)
    sset = selfies if isinstance(selfies, SelfieSet) else load_selfies(
        selfies, encoder=enc, max_pixels=cfg.max_image_pixels, max_bytes=cfg.max_image_bytes
    )
    report("reading boards", 0, 1)
    bset = boards if isinstance(boards, BoardSet) else load_boards(
        boards, max_pixels=cfg.max_image_pixels, max_bytes=cfg.max_image_bytes
    )
    bdata = _prepare_boards(bset, clip, report)
    _prepare_assets(bdata, engine, report)
    with scratch_provenance() as prov:
        pipeline = Pipeline(engine, identity_threshold=cfg.identity_threshold, guard_workers=cfg.guard_workers,
                            encoder=enc, provenance=prov)
        warmup_s = _warm_up(cfg, sset, bdata, enc, prov)
        run = _run_cells(cfg, sset, bset, bdata, pipeline, baselines, clip, arcface, report)
    run.models, run.started_at = models, started_at
    run.latency_setup = {
        "models_load": models_load_s * 1000,
        "engine_warmup": warmup_s * 1000,
        "selfies": {p.name: {ph.name: {"decode": ph.decode_s * 1000, "identity": ph.identity_s * 1000}
                             for ph in p.photos} for p in sset.people},
        "boards": {n: {"decode": d.entry.load_s * 1000, "profile": d.profile_s * 1000, "assets": d.assets_s * 1000,
                       "n_pins": len(d.entry.board)}
                   for n, d in bdata.items()},
    }
    run.duration_s = time.perf_counter() - started
    return run


def _run_cells(
    cfg: EvalConfig,
    sset: SelfieSet,
    bset: BoardSet,
    bdata: dict[str, BoardData],
    pipeline: Pipeline,
    baselines: dict[str, Any],
    clip: Any,
    arcface: Any,
    report: Progress,
) -> EvalRun:
    """Every selfie x board through the engine's pipeline and each baseline, measured."""
    engine = pipeline.engine
    methods = [{"name": engine.name, "kind": "engine", "description": f"the {engine.name} engine v{engine.version}"}]
    methods += [{"name": n, "kind": "baseline", "description": b.description} for n, b in baselines.items()]
    run = EvalRun(
        config=cfg, engine=engine.name, engine_version=engine.version, methods=methods, selfies=sset,
        boards=bset, profiles={n: d.profile for n, d in bdata.items()}, skipped=[*sset.skipped, *bset.skipped],
        board_colour={n: {"monochrome": d.chroma.monochrome, "chroma_range": [d.chroma.lo, d.chroma.hi],
                          "hue_std_deg": d.chroma.hue_std_deg, "hue_deg": d.chroma.hue_deg} for n, d in bdata.items()},
    )
    peak = M.peak_rss_mb()
    cells = [(p, ph) for p in sset.people for ph in p.photos[: cfg.selfies_per_person]]
    total = len(cells) * len(bdata) * (1 + len(baselines))
    done = 0
    for person, photo in cells:
        run.selfie_thumbs[(person.name, photo.name)] = resize_max_side(photo.image, THUMB)
        scorer = Scorer(cfg, pipeline.encoder, bdata, photo, person.others(photo), clip, arcface)
        for bname, bd in bdata.items():
            cell = _Cell(person, photo, bd, scorer, run.thumbs.setdefault((person.name, photo.name, bname), {}))
            label = f"{person.name}/{photo.name} × {bname}"
            report(f"{label}: {engine.name}", done, total)
            peak = max(peak, M.peak_rss_mb())  # the next call resets the mark; keep the run's peak
            _run_engine(run, cell, pipeline)
            done += 1
            for name, baseline in baselines.items():
                report(f"{label}: {name}", done, total)
                _run_baseline(run, cell, name, baseline)
                done += 1
    report("done", total, total)
    # The kernel's RSS counters are per-thread cached and can read a few pages apart from one call to the
    # next, so the run's peak is also at least every request's own peak (otherwise it could read below one).
    req_peaks = [r["peak_rss_mb"] for r in run.requests if r.get("peak_rss_mb") is not None]
    run.peak_rss_mb = max([peak, M.peak_rss_mb(), *req_peaks])
    return run


def _load_models(cfg: EvalConfig, report: Progress) -> tuple[Any, Any, dict[str, Any]]:
    """The optional CLIP and ArcFace scorers, loaded first so a missing package fails before the work."""
    clip = arcface = None
    models: dict[str, Any] = {}
    if cfg.clip_model is not None:
        from .models import ClipScorer

        report("loading CLIP model", 0, 1)
        clip = ClipScorer(cfg.clip_model)
        models["clip"] = {"path": str(cfg.clip_model), "text": clip.tokenizer is not None}
    if cfg.arcface_model is not None:
        from .models import ArcFaceScorer

        report("loading ArcFace model", 0, 1)
        arcface = ArcFaceScorer(cfg.arcface_model)
        models["arcface"] = {"path": str(cfg.arcface_model), "input_size": arcface.size,
                             "input_mean": arcface.input_mean, "input_std": arcface.input_std}
    return clip, arcface, models


def _prepare_boards(bset: BoardSet, clip: Any, report: Progress) -> dict[str, BoardData]:
    """Per board: its profile (timed), its pins' Gram descriptors, and its CLIP centroid and text."""
    out: dict[str, BoardData] = {}
    for b in bset.boards:
        report(f"profile of board {b.name}", 0, 1)
        t = time.perf_counter()
        prof = build_profile(b.board)
        bd = BoardData(b, prof, time.perf_counter() - t, np.stack([gram_descriptor(th) for th in b.board.thumbs]),
                        np.stack([texture_descriptor(th) for th in b.board.thumbs]), Q.board_chroma(b.board.thumbs))
        if clip is not None:
            weight = {p.id: p.weight for p in prof.pins}
            w = np.array([weight.get(p.id, 1.0) for p in b.board.pins])
            c = (clip.embed_images(b.board.thumbs) * w[:, None]).sum(0)
            bd.clip_centroid = c / max(float(np.linalg.norm(c)), 1e-12)
            bd.clip_text = _board_text(prof)
            if bd.clip_text is not None:
                tv = clip.embed_texts([bd.clip_text])
                bd.clip_text_vec = None if tv is None else tv[0]
        out[b.name] = bd
    return out


def _prepare_assets(bdata: dict[str, BoardData], engine: Any, report: Progress) -> None:
    """The engine's board assets per board (pins for medium transfer and scenes); a failure is a fallback."""
    for name, bd in bdata.items():
        report(f"assets of board {name}", 0, 1)
        t = time.perf_counter()
        try:
            bd.assets = engine.prepare_board(bd.entry.board, bd.profile)
        except TastemakerError:
            bd.assets = None  # the engine falls back to the profile alone, and says so per image
        bd.assets_s = time.perf_counter() - t


def _warm_up(
    cfg: EvalConfig, sset: SelfieSet, bdata: dict[str, BoardData], enc: IdentityEncoder, prov: Provenance
) -> float:
    """One untimed engine call: segmentation models, guard workers and caches load here, so the first
    request's latency is not a cold start. Returns its duration (reported as ``engine_warmup``)."""
    t = time.perf_counter()
    first = sset.people[0].photos[0]
    board = next(iter(bdata.values()))
    warm = Pipeline(create_engine(cfg.engine), identity_threshold=2.0,  # no re-render loop
                    guard_workers=cfg.guard_workers, encoder=enc, provenance=prov)
    try:
        warm(GenerationRequest(n=1, size=256, seed=0), subject=_subject(first), profile=board.profile,
             assets=board.assets)
    except TastemakerError:
        pass  # the real requests record whatever this is
    return time.perf_counter() - t


@dataclass
class _Cell:
    """One selfie x board: what the engine and every baseline are run on."""

    person: Person
    photo: Photo
    board: BoardData
    scorer: Scorer
    sheet: dict[str, list[np.ndarray]]
    #: the framing every baseline starts from: (subject, framed images, plans, seconds), made once
    framed: tuple[Subject, list[np.ndarray], list[VariationPlan], float] | None = None

    @property
    def common(self) -> dict[str, Any]:
        return {"person": self.person.name, "selfie": self.photo.name, "board": self.board.entry.name,
                "seed": self.scorer.cfg.seed}

    @property
    def setup_ms(self) -> dict[str, float]:
        """What every method pays before its own work: decoding the selfie and board, reading the face."""
        return {"decode": (self.photo.decode_s + self.board.entry.load_s) * 1000,
                "identity": self.photo.identity_s * 1000}

    def subject(self) -> Subject:
        """A Subject with a fresh cache: the look engine caches LUTs per mode id on it, and mode ids repeat
        across profiles (m1, m2...), so one subject must never be shared between boards."""
        return _subject(self.photo)


def _subject(photo: Photo) -> Subject:
    """The photo as a Subject whose identity is that very face's embedding (made when the selfies were read), so
    its own distance to it is 0: the pipeline's guard need not embed the selfie again."""
    return Subject(image=photo.image, face=photo.face, identity=IdentityEmbedding(vector=photo.embedding),
                   name=photo.name, cache={OWN_DISTANCE: 0.0})


def _record_failure(run: EvalRun, cell: _Cell, method: str, kind: str, exc: TastemakerError) -> None:
    run.errors.append({"method": method, **cell.common, "error": type(exc).__name__, "message": exc.message})
    run.requests.append(_failed_request(method, kind, cell.common, run.config.n))


def _run_engine(run: EvalRun, cell: _Cell, pipeline: Pipeline) -> None:
    cfg = run.config
    engine = pipeline.engine
    M.reset_peak_rss()
    t = time.perf_counter()
    try:
        result = pipeline(cfg.request(), subject=cell.subject(), profile=cell.board.profile, assets=cell.board.assets)
    except TastemakerError as exc:
        _record_failure(run, cell, engine.name, "engine", exc)
        return
    gen_s = time.perf_counter() - t
    peak = M.peak_rss_mb()
    pixels = [im.pixels for im in result.images]
    # the images come encoded (watermarked, signed) from the pipeline, in gen_s: not encoded again here
    lat = {**cell.setup_ms, "profile": (cell.board.profile_s + cell.board.assets_s) * 1000, "engine": gen_s * 1000,
           "encode": 0.0}
    lat["total"] = sum(lat.values())
    extra = [{"mode": im.mode_id, "background": im.background, "guard_identity_distance": im.identity_distance,
              "note": f"{im.mode_name}, face hold {im.hold}", "engine_info": _jsonable(getattr(im, "info", None))}
             for im in result.images]
    req, recs = cell.scorer.score(engine.name, "engine", cell.common, pixels, [im.seed for im in result.images], extra)
    req.update({"latency_ms": lat, "engine_stages_ms": {k: v * 1000 for k, v in result.timings.items()},
                "peak_rss_mb": peak})
    run.requests.append(req)
    run.images += recs
    cell.sheet[engine.name] = [resize_max_side(p, THUMB) for p in pixels]


def _run_baseline(run: EvalRun, cell: _Cell, name: str, baseline: Any) -> None:
    cfg = run.config
    request = cfg.request()
    if cell.framed is None:  # every baseline starts from the same framing: made once, its time charged to each
        t = time.perf_counter()
        subject = cell.subject()
        framed, plans = frame_like_engine(subject, cell.board.profile, request)
        cell.framed = (subject, framed, plans, time.perf_counter() - t)
    subject, framed, plans, frame_s = cell.framed
    ctx = BaselineContext(board=cell.board.entry.board, profile=cell.board.profile, request=request, plans=plans,
                          subject=subject)
    t = time.perf_counter()
    try:
        outs = baseline.render(framed, ctx)
        if len(outs) != len(framed):
            raise TastemakerError(f"baseline {name} returned {len(outs)} images for {len(framed)} frames")
    except TastemakerError as exc:
        _record_failure(run, cell, name, "baseline", exc)
        return
    render_s = time.perf_counter() - t + frame_s
    t = time.perf_counter()
    encode_many(outs, cfg.format)
    enc_s = time.perf_counter() - t
    lat = {**cell.setup_ms, "profile": 0.0, "engine": render_s * 1000, "encode": enc_s * 1000}
    lat["total"] = sum(lat.values())
    extra = [{"mode": None, "background": "keep", "guard_identity_distance": None, "note": ctx.notes.get(i, ""),
              "engine_info": None} for i in range(len(outs))]
    req, recs = cell.scorer.score(name, "baseline", cell.common, outs, [p.seed for p in plans], extra)
    req.update({"latency_ms": lat, "engine_stages_ms": None, "peak_rss_mb": None})
    run.requests.append(req)
    run.images += recs
    cell.sheet[name] = [resize_max_side(o, THUMB) for o in outs]


def _failed_request(method: str, kind: str, common: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "method": method, "kind": kind, **common, "n": n, "ok": False, "pairs": 0, "diversity_gram": None,
        "diversity_delta_e": None, "near_duplicate_pairs": [], "latency_ms": {}, "engine_stages_ms": None,
        "peak_rss_mb": None,
    }


def _jsonable(obj: Any) -> Any:
    """What an engine reports about an image (medium, fallbacks), reduced to JSON types."""
    if obj is None or isinstance(obj, str | bool | int | float | np.generic):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return str(obj)
