"""One evaluation run on tiny generated data: what it measures, what it catches, what it writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tastemaker.eval import EvalConfig, EvalRun, run_eval, write_report
from tastemaker.eval.baselines import BaselineContext, create_baseline, frame_like_engine
from tastemaker.eval.scoring import LATENCY_STAGES

from ..api.conftest import DEMO

N = 2
SIZE = 384


@pytest.fixture(scope="module")
def run(eval_data: dict[str, Path], cheat: str) -> EvalRun:
    cfg = EvalConfig.create(n=N, size=SIZE, seed=3, baselines=f"all,{cheat}")
    seen: list[tuple[str, int, int]] = []
    r = run_eval(eval_data["selfies"], eval_data["boards"], cfg, progress=lambda *a: seen.append(a))
    r.progress_seen = seen  # type: ignore[attr-defined]
    return r


@pytest.fixture(scope="module")
def written(run: EvalRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("report")
    rj, rh = write_report(run, out)
    return json.loads(rj.read_text()), rh.read_text()


TOP_KEYS = {
    "schema", "schema_version", "tastemaker_version", "created_at", "duration_s", "config", "environment",
    "engine", "methods", "descriptors", "models", "dataset", "skipped", "errors", "summary", "per_board",
    "per_person", "latency_setup_ms", "resources", "requests", "images",
}
IMAGE_KEYS = {
    "method", "kind", "person", "selfie", "board", "seed", "index", "variation_seed", "mode", "background",
    "guard_identity_distance", "note", "face_found", "identity_to_selfie", "identity_to_others", "verified",
    "verified_others", "style_score", "attributed_board", "attribution_correct", "attribution_margin",
    "board_distances", "near_duplicate", "clip_image_similarity", "clip_text_similarity", "clip_attributed_board",
    "clip_attribution_correct", "arcface_cos_selfie", "arcface_cos_others",
    "texture_attributed_board", "attribution_texture", "texture_attribution_margin", "texture_board_distances",
    "mean_chroma", "monochrome_faithful", "mirror_score", "mirrored", "blockiness", "blocky", "engine_info",
    "pixels_sha256",
}
REQUEST_KEYS = {
    "method", "kind", "person", "selfie", "board", "seed", "n", "ok", "pairs", "diversity_gram",
    "diversity_delta_e", "near_duplicate_pairs", "latency_ms", "engine_stages_ms", "peak_rss_mb",
}
SUMMARY_KEYS = {
    "kind", "n_images", "n_requests", "n_failed_requests", "n_no_face", "verification_rate",
    "verification_rate_others", "attribution_accuracy", "clip_attribution_accuracy", "near_duplicate_pairs",
    "variation_pairs", "diversity_gram", "diversity_delta_e", "latency_ms", "peak_rss_mb", "identity_to_selfie",
    "identity_to_others", "style_score", "attribution_margin", "clip_image_similarity", "clip_text_similarity",
    "arcface_cos_selfie", "arcface_cos_others", "texture_attribution_accuracy", "texture_attribution_margin",
    "monochrome_faithful_rate", "mirrored_rate", "blocky_rate", "n_mirrored", "n_blocky", "n_artefacts",
    "mean_chroma", "mirror_score", "blockiness",
}
METHODS = ["look", "none", "reinhard", "histmatch", "single-pin", "stylize", "oilpaint", "cheat"]


def test_results_json_has_every_key(written: tuple[dict[str, Any], str]) -> None:
    res, _ = written
    assert set(res) == TOP_KEYS
    assert res["schema"] == "tastemaker.eval" and res["engine"]["name"] == "look"
    assert [m["name"] for m in res["methods"]] == METHODS
    assert set(res["summary"]) == set(METHODS) and set(res["per_board"]) == set(METHODS)
    for s in res["summary"].values():
        assert set(s) == SUMMARY_KEYS
        assert set(s["latency_ms"]) == set(LATENCY_STAGES)
        assert set(s["verification_rate"]) == {"rate", "ci95", "k", "n"}
        assert set(s["style_score"]) == {"mean", "std", "ci95", "n"}
    for per in res["per_board"].values():
        assert set(per) == {"neon", "sepia"}
        assert all(set(s) == SUMMARY_KEYS for s in per.values())
    assert set(res["per_person"]["look"]) == {"astronaut"}
    # one image record per output: 6 methods x 2 boards x n, each with every key and every board's distance
    assert len(res["images"]) == len(METHODS) * 2 * N
    for rec in res["images"]:
        assert set(rec) == IMAGE_KEYS
        assert set(rec["board_distances"]) == {"neon", "sepia"}
        assert rec["style_score"] is not None and 0 < rec["style_score"] <= 1
    assert len(res["requests"]) == len(METHODS) * 2
    for req in res["requests"]:
        assert set(req) == REQUEST_KEYS and req["ok"]
        assert set(req["latency_ms"]) == set(LATENCY_STAGES)
        assert req["latency_ms"]["total"] == pytest.approx(
            sum(req["latency_ms"][k] for k in LATENCY_STAGES if k != "total"), rel=1e-4
        )
    engine_reqs = [r for r in res["requests"] if r["kind"] == "engine"]
    for r in engine_reqs:
        assert r["peak_rss_mb"] > 50 and {"render", "guard", "score"} <= set(r["engine_stages_ms"])
    assert res["resources"]["peak_rss_mb"] >= max(r["peak_rss_mb"] for r in engine_reqs)
    assert res["dataset"]["chance_attribution"] == 0.5
    assert res["dataset"]["selfies"]["people"][0]["held_out"] == ["b-other.jpg"]


def test_json_holds_no_nan_and_round_trips(written: tuple[dict[str, Any], str]) -> None:
    res, _ = written

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, float):
            assert math.isfinite(x)

    walk(res)


def test_engine_attribution_beats_none_on_two_different_boards(run: EvalRun) -> None:
    s = run.summary()
    assert s["look"]["attribution_accuracy"]["rate"] == 1.0
    # the untouched selfie is nearer one of the two boards for every output: half right at best
    assert s["none"]["attribution_accuracy"]["rate"] <= 0.5
    assert s["look"]["attribution_accuracy"]["rate"] > s["none"]["attribution_accuracy"]["rate"]
    # and the engine moves the project's own style score too
    assert s["look"]["style_score"]["mean"] > s["none"]["style_score"]["mean"] + 0.05


def test_verification_rate_is_one_on_the_demo_selfie(run: EvalRun) -> None:
    s = run.summary()["look"]
    assert s["verification_rate"] == {**s["verification_rate"], "rate": 1.0, "k": 2 * N, "n": 2 * N}
    assert s["n_no_face"] == 0 and s["n_failed_requests"] == 0
    assert s["identity_to_selfie"]["mean"] < 0.35  # the engine's own guard holds it tighter than 0.6
    # identity transfer to the held-out photo, which the engine never saw
    assert s["verification_rate_others"]["rate"] == 1.0
    assert s["identity_to_others"]["n"] == 2 * N


def test_planted_cheat_is_caught_by_identity(run: EvalRun) -> None:
    s = run.summary()["cheat"]
    # returning the board's own pins fools every style measure ...
    assert s["attribution_accuracy"]["rate"] == 1.0
    assert s["style_score"]["mean"] > run.summary()["look"]["style_score"]["mean"]
    # ... and fails identity: no face, so nothing is verified (and nothing is silently left out)
    assert s["verification_rate"]["rate"] == 0.0 and s["verification_rate"]["n"] == 2 * N
    assert s["n_no_face"] == 2 * N


def test_skips_are_reported_not_dropped(run: EvalRun, written: tuple[dict[str, Any], str]) -> None:
    res, page = written
    where = {s["where"]: s for s in res["skipped"]}
    assert "sepia/broken.jpg" in where and where["sepia/broken.jpg"]["kind"] == "pin"
    assert "stray.png" in where and "not inside a board" in where["stray.png"]["reason"]
    assert "astronaut/c-noface.png" in where and "no face" in where["astronaut/c-noface.png"]["reason"]
    for w in ("sepia/broken.jpg", "stray.png", "astronaut/c-noface.png"):
        assert w in page
    assert "3 input(s) skipped" in page


def test_report_html_is_self_contained(written: tuple[dict[str, Any], str]) -> None:
    _, page = written
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # 3 plots + one contact sheet per selfie x board
    assert page.count("src='data:image/png;base64,") == 3 and page.count("src='data:image/jpeg;base64,") == 2
    for m in METHODS:
        assert f"<td>{m}" in page


def test_baselines_share_the_engines_seeds_framing_and_size(run: EvalRun) -> None:
    seeds: dict[tuple[str, int], set[int]] = {}
    for rec in run.images:
        seeds.setdefault((rec["board"], rec["index"]), set()).add(rec["variation_seed"])
    assert all(len(v) == 1 for v in seeds.values())
    sizes = {m: {im.shape for im in ims} for (_, _, _), by in run.thumbs.items() for m, ims in by.items()}
    assert len({frozenset(v) for v in sizes.values()}) == 1


def test_none_baseline_is_the_engines_framing_untouched(run: EvalRun) -> None:
    """Same crop and size as the engine's outputs; the pixels inside the face are the selfie's."""
    from tastemaker.engines.base import GenerationRequest, Subject
    from tastemaker.pipeline import generate

    photo = run.selfies.people[0].photos[0]
    from tastemaker.encoders.identity import IdentityEmbedding

    subject = Subject(image=photo.image, face=photo.face, identity=IdentityEmbedding(vector=photo.embedding))
    req = GenerationRequest(n=2, size=256, seed=5, aspect="1:1")
    profile = run.profiles["neon"]
    framed, plans = frame_like_engine(subject, profile, req)
    eng = generate(req, subject=Subject(image=photo.image, face=photo.face, identity=subject.identity),
                   profile=profile)
    assert [p.seed for p in plans] == [im.seed for im in eng.images]
    assert all(f.shape == im.pixels.shape for f, im in zip(framed, eng.images, strict=True))
    ctx = BaselineContext(board=run.boards.boards[0].board, profile=profile, request=req, plans=plans,
                          subject=subject)
    none = create_baseline("none").render(framed, ctx)
    assert all(np.array_equal(a, b) for a, b in zip(none, framed, strict=True))
    # a restyling baseline changes colours only: same size, and at strength 0 it is the framing itself
    zero = BaselineContext(board=ctx.board, profile=profile, request=req.model_copy(update={"strength": 0.0}),
                           plans=plans, subject=subject)
    for name in ("reinhard", "histmatch", "single-pin", "stylize", "oilpaint"):
        out = create_baseline(name).render(framed, zero)
        assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(out, framed, strict=True)), name
        moved = create_baseline(name).render(framed, ctx)
        assert all(a.shape == b.shape and not np.array_equal(a, b) for a, b in zip(moved, framed, strict=True))


def test_progress_reports_every_step(run: EvalRun) -> None:
    seen = run.progress_seen  # type: ignore[attr-defined]
    steps = [s for s in seen if "×" in s[0]]
    assert len(steps) == len(METHODS) * 2
    assert seen[-1][1] == seen[-1][2] == len(METHODS) * 2


def test_results_carry_texture_attribution_colour_and_artefacts(written: tuple[dict[str, Any], str]) -> None:
    res, page = written
    boards = {b["name"]: b for b in res["dataset"]["boards"]}
    assert boards["sepia"]["monochrome"] is True and boards["neon"]["monochrome"] is False
    assert boards["sepia"]["hue_std_deg"] < 10 and boards["neon"]["chroma_range"][1] > 30
    assert res["descriptors"]["texture_attribution"].startswith("texture-")
    for rec in res["images"]:
        assert isinstance(rec["attribution_texture"], bool) and rec["texture_attributed_board"] in boards
        assert set(rec["texture_board_distances"]) == set(boards)
        assert isinstance(rec["mirrored"], bool) and 0 <= rec["mirror_score"] <= 1
        assert isinstance(rec["blocky"], bool) and (rec["blockiness"] is None) == (not rec["face_found"])
        assert isinstance(rec["monochrome_faithful"], bool) and rec["mean_chroma"] >= 0
    for s in res["summary"].values():
        assert s["texture_attribution_accuracy"]["n"] == s["n_images"]
        assert s["n_artefacts"] <= s["n_mirrored"] + s["n_blocky"]
    # the planted cheat returns the pins themselves: right board by texture too, and the board's colours
    cheat = res["summary"]["cheat"]
    assert cheat["texture_attribution_accuracy"]["rate"] == 1.0 and cheat["monochrome_faithful_rate"]["rate"] == 1.0
    # the untouched colour selfie is not faithful to the sepia board
    none_sepia = [r for r in res["images"] if r["method"] == "none" and r["board"] == "sepia"]
    assert none_sepia and not any(r["monochrome_faithful"] for r in none_sepia)
    assert "texture attribution" in page and "colour faithful" in page and "mirrored" in page


def test_stylize_baselines_take_the_boards_colours(run: EvalRun) -> None:
    """At full strength the filter + board LUT output is toned like the sepia board."""
    from tastemaker.eval import artefacts as Q

    photo = run.selfies.people[0].photos[0]
    from tastemaker.encoders.identity import IdentityEmbedding
    from tastemaker.engines.base import GenerationRequest, Subject

    subject = Subject(image=photo.image, face=photo.face, identity=IdentityEmbedding(vector=photo.embedding))
    req = GenerationRequest(n=2, size=256, seed=5, aspect="1:1", strength=1.0)
    sepia = next(b for b in run.boards.boards if b.name == "sepia").board
    framed, plans = frame_like_engine(subject, run.profiles["sepia"], req)
    ctx = BaselineContext(board=sepia, profile=run.profiles["sepia"], request=req, plans=plans, subject=subject)
    pins = Q.board_chroma(sepia.thumbs)
    for name in ("stylize", "oilpaint"):
        out = create_baseline(name).render(framed, ctx)
        assert [o.shape for o in out] == [f.shape for f in framed]
        assert all(Q.monochrome_faithful(o, pins) for o in out), name
        assert all(np.abs(o.astype(int) - f).mean() > 5 for o, f in zip(out, framed, strict=True)), name


def test_two_runs_mark_the_same_pixels() -> None:
    """The eval's throwaway provenance store is repeatable (fixed keys, record ids from the pixels): the same
    output is watermarked the same way in every run, so what eval measures on it repeats."""
    from tastemaker.eval.cells import scratch_provenance
    from tastemaker.media import load_image, resize_max_side

    img = resize_max_side(load_image(DEMO / "selfie.jpg"), 256)
    kw: dict[str, Any] = dict(fmt="png", prompt="", profile_hash="0" * 64, engine="look", engine_version="2", seed=1)
    marked = []
    for _ in range(2):
        with scratch_provenance() as prov:
            prepared = prov.prepare(img, **kw)
            marked.append((prepared.record.record_id, prepared.pixels))
            prov.discard(prepared)
    assert marked[0][0] == marked[1][0] and np.array_equal(marked[0][1], marked[1][1])
    assert not np.array_equal(marked[0][1], img)  # it is marked
