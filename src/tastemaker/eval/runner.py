"""The evaluation run: every selfie x board through the engine and each baseline, then measured.

For each person's selfie and each board the engine makes ``n`` variations with one request (same
seed everywhere; the engine also gets the board's pins, loaded once per board with its
``prepare_board``, as ``tastemaker generate --board`` gives them), and each baseline makes ``n`` images
from the same framing (see :mod:`.baselines`). Every image is measured (:mod:`.metrics`: identity,
style, attribution by the Gram descriptor and by the texture-only descriptor of :mod:`.texture`;
:mod:`.artefacts`: colour faithfulness, mirrored fills, block grids), every request's variations
are compared with each other, and every stage is timed. Failures (an engine request the identity guard refused, a
baseline that raised) are recorded with their message and counted, never dropped. Every image record carries
``pixels_sha256``, the hash of the output's pixels, so two runs can be compared output by output.

Latency per request is the cost a user would see for it: ``decode`` (selfie + board images),
``identity`` (face detection + embedding of the selfie), ``profile`` (engine only: board -> taste
profile, and the engine's board assets), ``engine`` (the engine's generate call — itself split into
render, guard and score in ``engine_stages_ms`` — or, for a baseline, its framing + restyle),
``encode`` (a baseline's outputs in the request's format; the engine's arrive encoded — watermarked and
signed — from its generate call, inside its ``engine`` time, so its ``encode`` is 0 and nothing is encoded
twice). Peak RSS is the process's resident-memory high-water mark across each engine call (reset before it
on Linux).

The engine's outputs are stamped like any others (watermark, C2PA, transparency log), but into a provenance
store of the cell's own, in a temporary folder removed when the cell ends (:func:`.cells.scratch_provenance`):
test images never become entries of the user's permanent, append-only log.

The selfies, boards, profiles and engine assets are read and prepared here; the cells (:mod:`.cells`) then
run one after the other in this process, or with ``ray_address`` as Ray tasks on a cluster
(:mod:`.ray_runner`, imported only then: Ray is an optional extra). Either way the driver merges them in cell
order, so the results are the same apart from timings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.identity import IdentityEncoder
from ..engines import create_engine
from ..errors import TastemakerError
from ..media import resize_max_side
from ..taste.profile import TasteProfile, build_profile
from . import artefacts as Q
from . import metrics as M
from .baselines import create_baseline
from .cells import THUMB, CellInputs, CellJob, CellOutcome, CellTools, Progress, load_models, measure_cell, warm_up
from .config import EvalConfig
from .datasets import BoardSet, SelfieSet, load_boards, load_selfies
from .descriptors import gram_descriptor
from .results import EvalRun
from .scoring import BoardData, Scorer
from .texture import texture_descriptor


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


def run_eval(
    selfies: Path | str | SelfieSet,
    boards: Path | str | BoardSet,
    config: EvalConfig | None = None,
    *,
    progress: Progress | None = None,
    encoder: IdentityEncoder | None = None,
    ray_address: str | None = None,
    ray_max_retries: int = 3,
) -> EvalRun:
    """Run the engine and the baselines on every selfie x board and measure everything.

    With ``ray_address`` each selfie x board is a Ray task on the cluster there (needs the ``ray`` extra); a
    task whose worker dies is retried up to ``ray_max_retries`` times. The results are the same as a local
    run's, in the same order, apart from timings.
    """
    cfg = config or EvalConfig()
    report = progress or (lambda what, done, total: None)
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    cfg.request()  # invalid settings fail here, before anything is loaded
    if ray_address is not None:
        from .ray_runner import check_cluster

        check_cluster(ray_address)  # and a missing extra or a wrong address
    enc = encoder or IdentityEncoder()
    baselines = {name: create_baseline(name) for name in cfg.baselines}
    engine = create_engine(cfg.engine)
    clip, arcface, models = load_models(cfg, report)

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
    inputs = CellInputs(cfg, sset.people, bdata, baselines, enc.min_face_px)
    jobs = [CellJob(i, j, b) for i, p in enumerate(sset.people) for j in range(len(p.photos[: cfg.selfies_per_person]))
            for b in bdata]
    total = len(jobs) * (1 + len(baselines))
    peak = M.peak_rss_mb()
    if ray_address is None:
        tools = CellTools(engine, enc, clip, arcface)
        first = sset.people[0].photos[0]
        warmup_s = warm_up(cfg.engine, enc, first, next(iter(bdata.values())), guard_workers=cfg.guard_workers)
        outcomes, peak = _run_here(jobs, inputs, tools, report, total)
    else:
        from .ray_runner import run_cells_ray

        outcomes = run_cells_ray(jobs, inputs, ray_address, progress=report, total=total, max_retries=ray_max_retries)
        warmup_s = max((o.warmup_s for o in outcomes), default=0.0)  # every worker process warms up its own
    report("done", total, total)
    run = _merge(cfg, engine, sset, bset, bdata, inputs, jobs, outcomes)
    # The kernel's RSS counters are per-thread cached and can read a few pages apart from one call to the
    # next, so the run's peak is also at least every request's own peak (otherwise it could read below one).
    req_peaks = [r["peak_rss_mb"] for r in run.requests if r.get("peak_rss_mb") is not None]
    run.peak_rss_mb = max([peak, M.peak_rss_mb(), *req_peaks])
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


def _run_here(
    jobs: Sequence[CellJob], inputs: CellInputs, tools: CellTools, report: Progress, total: int
) -> tuple[list[CellOutcome], float]:
    """Every cell in this process, one after the other; the outcomes in ``jobs`` order and the peak RSS."""
    outcomes: list[CellOutcome] = []
    scorers: dict[tuple[int, int], Scorer] = {}
    peak = M.peak_rss_mb()
    done = 0
    for job in jobs:
        person, photo = inputs.photo(job)
        key = (job.person, job.photo)
        if key not in scorers:  # one scorer per selfie: it embeds the person's other photos once
            scorers[key] = Scorer(inputs.config, tools.encoder, inputs.boards, photo, person.others(photo),
                                  tools.clip, tools.arcface)
        label = inputs.label(job)
        peak = max(peak, M.peak_rss_mb())  # the next engine call resets the mark; keep the run's peak

        def step(method: str, label: str = label) -> None:
            nonlocal done
            report(f"{label}: {method}", done, total)
            done += 1

        outcomes.append(measure_cell(job, inputs, tools, scorer=scorers[key], step=step))
    return outcomes, peak


def _merge(
    cfg: EvalConfig,
    engine: Any,
    sset: SelfieSet,
    bset: BoardSet,
    bdata: dict[str, BoardData],
    inputs: CellInputs,
    jobs: Sequence[CellJob],
    outcomes: Sequence[CellOutcome],
) -> EvalRun:
    """The run from its cells' outcomes, in cell order (selfie by selfie, board by board)."""
    methods = [{"name": engine.name, "kind": "engine", "description": f"the {engine.name} engine v{engine.version}"}]
    methods += [{"name": n, "kind": "baseline", "description": b.description} for n, b in inputs.baselines.items()]
    run = EvalRun(
        config=cfg, engine=engine.name, engine_version=engine.version, methods=methods, selfies=sset,
        boards=bset, profiles={n: d.profile for n, d in bdata.items()}, skipped=[*sset.skipped, *bset.skipped],
        board_colour={n: {"monochrome": d.chroma.monochrome, "chroma_range": [d.chroma.lo, d.chroma.hi],
                          "hue_std_deg": d.chroma.hue_std_deg, "hue_deg": d.chroma.hue_deg} for n, d in bdata.items()},
    )
    for job, outcome in zip(jobs, outcomes, strict=True):
        person, photo = inputs.photo(job)
        if (person.name, photo.name) not in run.selfie_thumbs:
            run.selfie_thumbs[(person.name, photo.name)] = resize_max_side(photo.image, THUMB)
        run.thumbs[(person.name, photo.name, job.board)] = outcome.sheet
        run.requests += outcome.requests
        run.images += outcome.images
        run.errors += outcome.errors
    return run


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
