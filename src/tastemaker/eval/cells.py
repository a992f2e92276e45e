"""One selfie x board, the evaluation's unit of work: the same code in this process or in a Ray task.

A cell is the engine's request and then each baseline's on one selfie and one board, every output measured
(:class:`.scoring.Scorer`). :func:`measure_cell` is the one code path: the local run (:mod:`.runner`) calls it
cell after cell, and a Ray task (:mod:`.ray_runner`) calls it through :func:`run_cell` in a worker process of
its own. Everything a cell reads crosses that boundary as plain values — a :class:`CellJob` (which cell) and
the run's :class:`CellInputs` (config, people, prepared boards, baseline objects) — and a cell's result is a
:class:`CellOutcome` the driver merges in cell order, so a run gives the same results wherever its cells ran.

Each cell stamps its engine outputs into a provenance store of its own (:func:`scratch_provenance`, removed
when the cell ends), repeatable: what a cell's outputs are marked with depends on nothing but their pixels,
not on which cells shared a store before it. Test images never become entries of the user's permanent,
append-only log.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.identity import IdentityEmbedding, IdentityEncoder
from ..engines import create_engine
from ..engines.base import Engine, GenerationRequest, Subject, VariationPlan
from ..errors import TastemakerError
from ..media import encode_many, resize_max_side
from ..pipeline import OWN_DISTANCE, Pipeline
from ..provenance.service import Provenance
from . import metrics as M
from .baselines import BaselineContext, frame_like_engine
from .config import EvalConfig
from .datasets import Person, Photo
from .scoring import BoardData, Scorer

#: longest side of the contact sheets' thumbnails
THUMB = 256

Progress = Callable[[str, int, int], None]

#: The throwaway store's keys come from this fixed secret and its record ids from the pixels (``repeatable``),
#: so two runs on the same inputs measure the same pixels: the invisible watermark depends on both, and with
#: random ones the engine's identity distance moved by up to 0.06 between runs. Nothing it marks or signs is
#: kept or trusted anywhere.
SCRATCH_SECRET = "tastemaker-eval-scratch-store"


@contextmanager
def scratch_provenance() -> Iterator[Provenance]:
    """A provenance store for one cell (or the warm-up) only, in a temporary folder that is removed afterwards;
    repeatable (see :data:`SCRATCH_SECRET`)."""
    with tempfile.TemporaryDirectory(prefix="tastemaker-eval-") as folder:
        prov = Provenance(folder, secret=SCRATCH_SECRET, repeatable=True)
        try:
            yield prov
        finally:
            prov.close()


@dataclass(frozen=True)
class CellJob:
    """Which cell: a person's photo (by position in :attr:`CellInputs.people`) x a board (by name)."""

    person: int
    photo: int
    board: str


@dataclass
class CellInputs:
    """What every cell of a run reads. On Ray it is put in the object store once, not shipped with each task."""

    config: EvalConfig
    people: list[Person]
    boards: dict[str, BoardData]
    #: the baseline objects themselves (not their names), so a registered one needs no registry where it runs
    baselines: dict[str, Any]
    #: the identity encoder's smallest face (the driver's setting; a worker builds its own encoder from it)
    min_face_px: int = 80

    def photo(self, job: CellJob) -> tuple[Person, Photo]:
        person = self.people[job.person]
        return person, person.photos[job.photo]

    def label(self, job: CellJob) -> str:
        person, photo = self.photo(job)
        return f"{person.name}/{photo.name} × {job.board}"


@dataclass
class CellTools:
    """What a process measures with: the engine, the face encoder and the optional CLIP and ArcFace scorers."""

    engine: Engine
    encoder: IdentityEncoder
    clip: Any = None
    arcface: Any = None
    #: seconds its engine's warm-up took, once it has had one (:func:`warm_up`)
    warmup_s: float | None = None


@dataclass
class CellOutcome:
    """What one cell adds to the run (requests, images, errors, contact-sheet thumbnails), merged by the driver."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    sheet: dict[str, list[np.ndarray]] = field(default_factory=dict)
    #: seconds the worker process spent warming its engine up before this cell (Ray: its first cell only)
    warmup_s: float = 0.0


def measure_cell(
    job: CellJob,
    inputs: CellInputs,
    tools: CellTools,
    *,
    scorer: Scorer | None = None,
    guard_workers: int | None = None,
    step: Callable[[str], None] | None = None,
) -> CellOutcome:
    """The engine and then each baseline on one cell, measured; the one code path local and Ray runs share.

    ``scorer`` may be one made for this selfie before (it embeds the person's other photos; a local run keeps
    one per selfie). ``guard_workers`` overrides the config's (a Ray task holds one CPU: 0). ``step`` hears
    each method's name before it runs (progress).
    """
    cfg = inputs.config
    person, photo = inputs.photo(job)
    board = inputs.boards[job.board]
    if scorer is None:
        scorer = Scorer(cfg, tools.encoder, inputs.boards, photo, person.others(photo), tools.clip, tools.arcface)
    out = CellOutcome()
    cell = _Cell(person, photo, board, scorer, out.sheet)
    with scratch_provenance() as prov:
        pipeline = Pipeline(tools.engine, identity_threshold=cfg.identity_threshold,
                            guard_workers=cfg.guard_workers if guard_workers is None else guard_workers,
                            encoder=tools.encoder, provenance=prov)
        if step is not None:
            step(pipeline.engine.name)
        _run_engine(cfg, out, cell, pipeline)
    for name, baseline in inputs.baselines.items():
        if step is not None:
            step(name)
        _run_baseline(cfg, out, cell, name, baseline)
    return out


def run_cell(job: CellJob, inputs: CellInputs) -> CellOutcome:
    """One cell in a worker process (a Ray task's body): the process's own engine, encoder and models, made
    and warmed up on its first cell and kept for the next ones; one CPU, so no guard pool."""
    cfg = inputs.config
    tools = _worker_tools(cfg.engine, cfg.clip_model, cfg.arcface_model, inputs.min_face_px)
    warmup_s = 0.0
    if tools.warmup_s is None:
        _, photo = inputs.photo(job)
        tools.warmup_s = warmup_s = warm_up(cfg.engine, tools.encoder, photo, inputs.boards[job.board],
                                            guard_workers=0)
    out = measure_cell(job, inputs, tools, guard_workers=0)
    out.warmup_s = warmup_s
    return out


@functools.lru_cache(maxsize=2)
def _worker_tools(engine: str, clip_model: Path | None, arcface_model: Path | None, min_face_px: int) -> CellTools:
    """This process's tools for these settings, made once (a Ray worker process runs many cells)."""
    clip, arcface, _ = load_models(EvalConfig(engine=engine, clip_model=clip_model, arcface_model=arcface_model),
                                   lambda what, done, total: None)
    return CellTools(create_engine(engine), IdentityEncoder(min_face_px=min_face_px), clip, arcface)


def load_models(cfg: EvalConfig, report: Progress) -> tuple[Any, Any, dict[str, Any]]:
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


def warm_up(engine: str, encoder: IdentityEncoder, photo: Photo, board: BoardData, *, guard_workers: int) -> float:
    """One untimed engine call, into a store of its own: segmentation models, guard workers and caches load
    here, so the first request's latency is not a cold start. Returns its duration (``engine_warmup``)."""
    t = time.perf_counter()
    with scratch_provenance() as prov:
        warm = Pipeline(create_engine(engine), identity_threshold=2.0,  # no re-render loop
                        guard_workers=guard_workers, encoder=encoder, provenance=prov)
        try:
            warm(GenerationRequest(n=1, size=256, seed=0), subject=_subject(photo), profile=board.profile,
                 assets=board.assets)
        except TastemakerError:
            pass  # the real requests record whatever this is
    return time.perf_counter() - t


def pixels_sha256(img: np.ndarray) -> str:
    """The hex SHA-256 of an output's pixels (uint8 RGB, row by row): equal outputs, equal hashes, whatever
    the file's metadata (the engine's C2PA manifest carries a time)."""
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()


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


def _record_failure(
    cfg: EvalConfig, out: CellOutcome, cell: _Cell, method: str, kind: str, exc: TastemakerError
) -> None:
    out.errors.append({"method": method, **cell.common, "error": type(exc).__name__, "message": exc.message})
    out.requests.append(_failed_request(method, kind, cell.common, cfg.n))


def _run_engine(cfg: EvalConfig, out: CellOutcome, cell: _Cell, pipeline: Pipeline) -> None:
    engine = pipeline.engine
    M.reset_peak_rss()
    t = time.perf_counter()
    try:
        result = pipeline(cfg.request(), subject=cell.subject(), profile=cell.board.profile, assets=cell.board.assets)
    except TastemakerError as exc:
        _record_failure(cfg, out, cell, engine.name, "engine", exc)
        return
    gen_s = time.perf_counter() - t
    peak = M.peak_rss_mb()
    pixels = [im.pixels for im in result.images]
    # the images come encoded (watermarked, signed) from the pipeline, in gen_s: not encoded again here
    lat = {**cell.setup_ms, "profile": (cell.board.profile_s + cell.board.assets_s) * 1000, "engine": gen_s * 1000,
           "encode": 0.0}
    lat["total"] = sum(lat.values())
    extra = [{"mode": im.mode_id, "background": im.background, "guard_identity_distance": im.identity_distance,
              "note": f"{im.mode_name}, face hold {im.hold}", "engine_info": _jsonable(getattr(im, "info", None)),
              "pixels_sha256": pixels_sha256(im.pixels)}
             for im in result.images]
    req, recs = cell.scorer.score(engine.name, "engine", cell.common, pixels, [im.seed for im in result.images], extra)
    req.update({"latency_ms": lat, "engine_stages_ms": {k: v * 1000 for k, v in result.timings.items()},
                "peak_rss_mb": peak})
    out.requests.append(req)
    out.images += recs
    cell.sheet[engine.name] = [resize_max_side(p, THUMB) for p in pixels]


def _run_baseline(cfg: EvalConfig, out: CellOutcome, cell: _Cell, name: str, baseline: Any) -> None:
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
        _record_failure(cfg, out, cell, name, "baseline", exc)
        return
    render_s = time.perf_counter() - t + frame_s
    t = time.perf_counter()
    encode_many(outs, cfg.format)
    enc_s = time.perf_counter() - t
    lat = {**cell.setup_ms, "profile": 0.0, "engine": render_s * 1000, "encode": enc_s * 1000}
    lat["total"] = sum(lat.values())
    extra = [{"mode": None, "background": "keep", "guard_identity_distance": None, "note": ctx.notes.get(i, ""),
              "engine_info": None, "pixels_sha256": pixels_sha256(o)} for i, o in enumerate(outs)]
    req, recs = cell.scorer.score(name, "baseline", cell.common, outs, [p.seed for p in plans], extra)
    req.update({"latency_ms": lat, "engine_stages_ms": None, "peak_rss_mb": None})
    out.requests.append(req)
    out.images += recs
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
