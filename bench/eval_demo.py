"""The evaluation harness on the bundled demo data: engine vs baselines, as a table.

Builds a small evaluation set from files the repository ships, then runs ``tastemaker eval``'s code:

* selfies (flat layout): the demo astronaut portrait and Grace Hopper's portrait (tests/data);
* boards: ``demo`` (the bundled 13-pin board, two looks), ``demo-faded-cool`` (the *same* 13 photos
  graded into another look: chroma x 0.25, b* -9, blacks lifted, grain — so attribution cannot lean on
  content, only on the look), and ``neon`` (8 generated saturated pop-art pictures).

Run: python bench/eval_demo.py [-o eval-demo] [-n 4] [--size 512]
Writes OUT/data/ (the inputs) and OUT/report/ (results.json + report.html).
Last line: {"engine_attribution": ..., "none_attribution": ..., "engine_verification": ..., ...}
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from tastemaker.encoders.style import lab_to_rgb8, to_lab
from tastemaker.eval import EvalConfig, markdown_table, run_eval, write_report
from tastemaker.media import encode_image, load_image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"
HOPPER = ROOT / "tests" / "data" / "grace_hopper.jpg"


def faded_cool(img: np.ndarray, seed: int) -> np.ndarray:
    """A muted, cool, lifted-black film look with grain."""
    lab = to_lab(img)
    lab[..., 0] = 18.0 + 0.72 * lab[..., 0]
    lab[..., 1] *= 0.25
    lab[..., 2] = lab[..., 2] * 0.25 - 9.0
    rgb = lab_to_rgb8(lab).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 7.0, img.shape[:2]).astype(np.float32)
    return np.clip(rgb + noise[..., None], 0, 255).astype(np.uint8)


def neon_image(seed: int, size: int = 512) -> np.ndarray:
    """Saturated magenta / cyan / yellow shapes with hard edges (as the test suite's control board)."""
    rng = np.random.default_rng(seed)
    cols = np.array([[250, 40, 200], [30, 230, 240], [255, 240, 40], [255, 255, 255]], np.float32)
    img = np.zeros((size, size, 3), np.float32)
    img[:] = cols[rng.integers(0, 3)]
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(6):
        c = cols[rng.integers(0, 4)]
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(size / 10, size / 3)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c
    return img.astype(np.uint8)


def build_data(root: Path) -> tuple[Path, Path]:
    if root.exists():
        shutil.rmtree(root)
    selfies, boards = root / "selfies", root / "boards"
    selfies.mkdir(parents=True)
    shutil.copy(DEMO / "selfie.jpg", selfies / "astronaut.jpg")
    shutil.copy(HOPPER, selfies / "hopper.jpg")
    shutil.copytree(DEMO / "board", boards / "demo")
    graded = boards / "demo-faded-cool"
    graded.mkdir()
    rows = list(csv.DictReader((DEMO / "board" / "pins.csv").open()))
    for i, row in enumerate(rows):
        img = load_image(DEMO / "board" / row["image"])
        (graded / row["image"]).write_bytes(encode_image(faded_cool(img, i), "jpeg", quality=90))
        row["tags"] = "faded;cool;muted;film"
    with (graded / "pins.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    neon = boards / "neon"
    neon.mkdir()
    for s in range(8):
        (neon / f"neon-{s}.png").write_bytes(encode_image(cv2.GaussianBlur(neon_image(s), (0, 0), 0.7), "png"))
    return selfies, boards


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("eval-demo"))
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--guard-workers", type=int, default=0)
    args = ap.parse_args()
    selfies, boards = build_data(args.out / "data")
    cfg = EvalConfig.create(n=args.n, size=args.size, seed=0, guard_workers=args.guard_workers)

    def progress(what: str, done: int, total: int) -> None:
        if "×" in what:
            print(f"  [{done + 1}/{total}] {what}", flush=True)

    run = run_eval(selfies, boards, cfg, progress=progress)
    rj, rh = write_report(run, args.out / "report")
    res = json.loads(rj.read_text())
    print(f"\nTastemaker eval on the demo data: {len(run.selfies.people)} selfies × {len(run.boards.boards)} boards, "
          f"n={cfg.n}, {cfg.size} px, seed {cfg.seed}, {res['duration_s']:.0f} s · report: {rh}")
    print(markdown_table(res))
    print(f"chance attribution = {100 * res['dataset']['chance_attribution']:.0f} %; "
          f"skipped inputs: {len(res['skipped'])}; failed requests: {len(res['errors'])}")
    s = res["summary"]
    eng = run.engine
    print(json.dumps({
        "engine_attribution": s[eng]["attribution_accuracy"]["rate"],
        "none_attribution": s["none"]["attribution_accuracy"]["rate"],
        "best_baseline_attribution": max(v["attribution_accuracy"]["rate"] or 0 for k, v in s.items() if k != eng),
        "engine_verification": s[eng]["verification_rate"]["rate"],
        "engine_identity_to_selfie": round(s[eng]["identity_to_selfie"]["mean"], 4),
        "engine_style_score": round(s[eng]["style_score"]["mean"], 4),
        "none_style_score": round(s["none"]["style_score"]["mean"], 4),
        "engine_request_ms": round(s[eng]["latency_ms"]["total"]["mean"], 1),
    }))


if __name__ == "__main__":
    main()
