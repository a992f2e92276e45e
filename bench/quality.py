"""Look quality on the public-domain dev-eval set: identity, attribution, texture, colour, artefacts, speed.

Every dev-eval person (``shared/data/dev-eval/faces/<person>/``: the first photo by name is the selfie,
the others are held out as "other photos") x every dev-eval board (``boards/<look>/``) through the
evaluation harness (``tastemaker eval``'s code): the engine, plus the baselines given with
``--baselines`` (default ``stylize,none``), n=2 variations, 512 px, seed 7. Then, unless
``--skip-timing``, the wall time of ``tastemaker.generate`` for 4 variations at 1024 px (seed 1) of one
dev-eval selfie on (a) the ``engraving-tenniel`` board (medium transfer) and (b) the bundled demo board
(photos: a grade only): profile and board assets built beforehand, provenance in a scratch folder,
two guard workers (as bench/engine.py), median of 3 runs after one warm-up.

Run: python bench/quality.py [--people N|a,b] [--boards N|a,b] [-n 2] [--size 512] [-o OUT]
                             [--baselines stylize,none|all|''] [--skip-timing] [--data DIR]
Prints a table per board, then as its last line one JSON object: identity_verify (engine outputs with
dlib distance < 0.6 to the selfie), other_photo_verify (mean distance to the person's other photos < 0.6),
selfie_other_photo_verify (the same test for the selfie itself, for comparison), mean_identity_distance,
attribution (Gram, among the boards run), attribution_texture, monochrome_faithful (over outputs of
monochrome/toned boards), artefacts (outputs flagged mirrored or blocky), stylized_four_1024_s,
grade_four_1024_s, counts, and pins_attribution / pins_attribution_texture: how often the boards' own
pins, each left out, land on their board by the same descriptors (the ceiling those descriptors can certify).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.encoders.identity import identity_distance
from tastemaker.eval import EvalConfig, EvalRun, run_eval, write_report
from tastemaker.eval.metrics import VERIFY_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dev-eval"
DEMO_BOARD = ROOT / "src" / "tastemaker" / "data" / "demo" / "board"
MEDIUM_BOARD = "engraving-tenniel"


def pick(folder: Path, spec: str | None, what: str) -> list[Path]:
    """Sub-folders of ``folder`` by name: all, the first N (by name), or a comma list."""
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not spec:
        return dirs
    if spec.isdigit():
        return dirs[: int(spec)]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    by = {d.name: d for d in dirs}
    unknown = [n for n in names if n not in by]
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)} (have: {', '.join(by)})")
    return [by[n] for n in names]


def linked(dirs: list[Path], into: Path) -> Path:
    """A scratch folder of links to the chosen sub-folders (the dev-eval data is read in place, never copied)."""
    into.mkdir(parents=True)
    for d in dirs:
        (into / d.name).symlink_to(d, target_is_directory=True)
    return into


def rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def selfie_verifies(run: EvalRun) -> list[bool]:
    """Per person with other photos: is the selfie itself within 0.6 (mean distance) of them?"""
    out = []
    for p in run.selfies.people:
        selfie, others = p.photos[0], p.photos[1:]
        if others:
            d = float(np.mean([identity_distance(selfie.embedding, o.embedding) for o in others]))
            out.append(d < VERIFY_THRESHOLD)
    return out


def fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.0f} %" if pct else f"{x:.3f}"


def table(res: dict[str, Any], methods: list[str]) -> str:
    """Per board and method: identity, verification, attribution, texture attribution, colour, artefacts."""
    mono = {b["name"]: b.get("monochrome", False) for b in res["dataset"]["boards"]}
    head = f"{'board':<32}{'method':<10}{'imgs':>5}{'fail':>5}{'id→selfie':>10}{'verified':>9}{'others':>8}" \
           f"{'attrib':>8}{'texture':>8}{'colour ok':>10}{'mirror':>7}{'blocky':>7}"
    lines = [head, "-" * len(head)]
    for b, is_mono in mono.items():
        label = b + (" (mono)" if is_mono else "")
        for m in methods:
            s = res["per_board"][m][b]
            lines.append(
                f"{label:<32}{m:<10}{s['n_images']:>5}{s['n_failed_requests']:>5}"
                f"{fmt(s['identity_to_selfie']['mean']):>10}{fmt(s['verification_rate']['rate'], True):>9}"
                f"{fmt(s['verification_rate_others']['rate'], True):>8}"
                f"{fmt(s['attribution_accuracy']['rate'], True):>8}"
                f"{fmt(s['texture_attribution_accuracy']['rate'], True):>8}"
                f"{fmt(s['monochrome_faithful_rate']['rate'], True):>10}{s['n_mirrored']:>7}{s['n_blocky']:>7}"
            )
            label = ""
    lines.append("-" * len(head))
    for m in methods:
        s = res["summary"][m]
        lines.append(
            f"{'all boards':<32}{m:<10}{s['n_images']:>5}{s['n_failed_requests']:>5}"
            f"{fmt(s['identity_to_selfie']['mean']):>10}{fmt(s['verification_rate']['rate'], True):>9}"
            f"{fmt(s['verification_rate_others']['rate'], True):>8}{fmt(s['attribution_accuracy']['rate'], True):>8}"
            f"{fmt(s['texture_attribution_accuracy']['rate'], True):>8}"
            f"{fmt(s['monochrome_faithful_rate']['rate'], True):>10}{s['n_mirrored']:>7}{s['n_blocky']:>7}"
        )
    return "\n".join(lines)


def time_generate(selfie: Path, board_dir: Path, reps: int = 3) -> tuple[float | None, str | None]:
    """Median wall time of ``tastemaker.generate`` (n=4, 1024 px, seed 1) after one warm-up; or the error."""
    from tastemaker import GenerationRequest, generate, load_board
    from tastemaker.engines import create_engine
    from tastemaker.errors import TastemakerError
    from tastemaker.media import load_image
    from tastemaker.provenance.service import Provenance
    from tastemaker.taste.profile import build_profile

    try:
        board = load_board(board_dir)
        profile = build_profile(board)
        eng = create_engine("look")
        assets = eng.prepare_board(board, profile)  # what a board folder gives the engine: its pins
        image = load_image(selfie)
        prov = Provenance(tempfile.mkdtemp(prefix="tastemaker-bench-quality-"))
        req = GenerationRequest(n=4, size=1024, seed=1)

        def once() -> float:
            t = time.perf_counter()
            generate(req, selfies=[image], profile=profile, assets=assets, engine=eng, provenance=prov,
                     guard_workers=2)  # as bench/engine.py: the guard on the machine's two cores
            return time.perf_counter() - t

        once()  # warm-up: models, caches, worker processes
        return statistics.median(once() for _ in range(reps)), None
    except (TastemakerError, OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def pins_ceiling(boards: list[Path]) -> tuple[float, float]:
    """Leave-one-out attribution of the boards' own pins by the Gram and the texture descriptor."""
    from tastemaker.boards import load_board
    from tastemaker.eval.descriptors import gram_descriptor, pins_attribution
    from tastemaker.eval.texture import texture_descriptor

    thumbs = {d.name: load_board(d).thumbs for d in boards}
    gram = pins_attribution({b: np.stack([gram_descriptor(t) for t in ts]) for b, ts in thumbs.items()})
    texture = pins_attribution({b: np.stack([texture_descriptor(t) for t in ts]) for b, ts in thumbs.items()})
    return gram, texture


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, help=f"the dev-eval folder (faces/, boards/); default {DATA}")
    ap.add_argument("--people", help="how many people (first N by name) or a comma list; default all")
    ap.add_argument("--boards", help="how many boards (first N by name) or a comma list; default all")
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baselines", default="stylize,none", help="comma list, 'all', or '' for the engine only")
    ap.add_argument("-o", "--out", type=Path, help="write results.json + report.html here")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    if args.data is None:
        args.data = DATA
        if not (DATA / "faces").is_dir():  # a clone without the shared data: `make bench` goes on
            print(f"no dev-eval data at {DATA}; skipped")
            print(json.dumps({"skipped": "no dev-eval data"}))
            return
    if not (args.data / "faces").is_dir() or not (args.data / "boards").is_dir():
        sys.exit(f"no dev-eval data at {args.data} (expected faces/ and boards/)")

    people = pick(args.data / "faces", args.people, "people")
    boards = pick(args.data / "boards", args.boards, "boards")
    cfg = EvalConfig.create(n=args.n, size=args.size, seed=args.seed, baselines=args.baselines)

    def progress(what: str, done: int, total: int) -> None:
        if "×" in what:
            print(f"  [{done + 1}/{total}] {what}", flush=True)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tastemaker-quality-") as tmp:
        run = run_eval(linked(people, Path(tmp) / "faces"), linked(boards, Path(tmp) / "boards"), cfg,
                       progress=progress)
        res = run.to_dict()
        if args.out is not None:
            rj, rh = write_report(run, args.out)
    eng = run.engine
    methods = run.method_names
    print(f"\nLook quality on dev-eval: {len(run.selfies.people)} people × {len(run.boards.boards)} boards, "
          f"n={cfg.n}, {cfg.size} px, seed {cfg.seed}, engine {eng} v{run.engine_version}, "
          f"{time.perf_counter() - t0:.0f} s; chance attribution {100 * res['dataset']['chance_attribution']:.0f} %")
    print(table(res, methods))
    for e in res["errors"]:
        print(f"failed: {e['method']} {e['person']}/{e['selfie']} × {e['board']}: {e['error']}: {e['message'][:160]}")
    for s in res["skipped"]:
        print(f"skipped: {s['kind']} {s['where']}: {s['reason'][:160]}")
    if args.out is not None:
        print(f"report: {rh}\nresults: {rj}")

    imgs = [r for r in res["images"] if r["method"] == eng]
    mono_boards = {b["name"] for b in res["dataset"]["boards"] if b.get("monochrome")}
    s = res["summary"][eng]
    timing: dict[str, float | None] = {"stylized_four_1024_s": None, "grade_four_1024_s": None}
    if not args.skip_timing:
        selfie = sorted(p for p in people[0].iterdir() if p.is_file())[0]
        for key, board_dir in (("stylized_four_1024_s", args.data / "boards" / MEDIUM_BOARD),
                               ("grade_four_1024_s", DEMO_BOARD)):
            secs, err = time_generate(selfie, board_dir)
            timing[key] = None if secs is None else round(secs, 3)
            print(f"{key}: {'failed: ' + err if err else f'{secs:.3f} s'} ({selfie.name} × {board_dir.name})")
    pins_gram, pins_texture = pins_ceiling(boards)
    print(f"the boards' own pins, left out one at a time, attributed right: Gram {100 * pins_gram:.0f} %, "
          f"texture {100 * pins_texture:.0f} % (what the descriptors can certify)")
    print(json.dumps({
        "identity_verify": rate([bool(r["verified"]) for r in imgs]),
        "other_photo_verify": rate([bool(r["verified_others"]) for r in imgs if r["verified_others"] is not None]),
        "selfie_other_photo_verify": rate(selfie_verifies(run)),
        "mean_identity_distance": None if s["identity_to_selfie"]["mean"] is None
        else round(s["identity_to_selfie"]["mean"], 4),
        "attribution": rate([bool(r["attribution_correct"]) for r in imgs]),
        "attribution_texture": rate([bool(r["attribution_texture"]) for r in imgs]),
        "monochrome_faithful": rate([bool(r["monochrome_faithful"]) for r in imgs if r["board"] in mono_boards]),
        "artefacts": sum(1 for r in imgs if r["mirrored"] or r["blocky"]),
        **timing,
        "n_outputs": len(imgs),
        "failed_requests": s["n_failed_requests"],
        "chance_attribution": round(res["dataset"]["chance_attribution"], 4),
        "pins_attribution": round(pins_gram, 4),
        "pins_attribution_texture": round(pins_texture, 4),
    }))


if __name__ == "__main__":
    main()
