"""Taste-profile cost as boards grow: pins/s for 50, 200 and 1000-pin boards, stage by stage.

A board of n distinct ~800 px JPEG pins (crops, flips and colour shifts of the demo board's photos,
with random engagement) is imported and distilled into a profile. Stages:

* ``import``   — :func:`build_board`: reduced-size JPEG decode, thumbnail, SHA-256 per pin (linear);
* ``describe`` — the style descriptor of every thumbnail (linear);
* ``modes``    — :func:`build_profile` given the descriptors: weights, Ward clustering, weighted
  silhouette for k = 2..4 (quadratic in n: pairwise distances), medoids, colour samples, palettes.

Everything runs in this process, single-threaded as the library does it, median of a few repeats
(fewer for the big board). The "growth" column is the cost per pin relative to the 50-pin board:
1.0 means linear scaling.

Run: python bench/profile_build.py [--sizes 50,200,1000] [--side 800]
Last line: {"pins_per_s_50": ..., "pins_per_s_200": ..., "pins_per_s_1000": ..., "profile_1000_pins_s": ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tastemaker.boards import Pin, build_board
from tastemaker.encoders.style import describe
from tastemaker.media import decode_image, encode_image, read_image_bytes
from tastemaker.taste.profile import build_profile

DEMO = Path(__file__).resolve().parents[1] / "src" / "tastemaker" / "data" / "demo"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def synthetic_pins(n: int, side: int) -> list[tuple[Pin, bytes]]:
    """n distinct JPEG pins made from the demo board's photos, with random engagement."""
    srcs = [decode_image(read_image_bytes(p)) for p in sorted((DEMO / "board").glob("*.jpg"))]
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        img = srcs[i % len(srcs)]
        h, w = img.shape[:2]
        y0, x0 = int(rng.integers(0, h // 4)), int(rng.integers(0, w // 4))
        crop = img[y0 : y0 + 3 * h // 4, x0 : x0 + 3 * w // 4]
        crop = cv2.resize(crop, (side, side * 3 // 4), interpolation=cv2.INTER_AREA)
        if i % 2:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.int16) + rng.integers(-14, 14, 3), 0, 255).astype(np.uint8)
        pin = Pin(image=f"pin{i:04d}.jpg", saves=int(rng.integers(0, 30)), clicks=int(rng.integers(0, 50)),
                  dwell_seconds=float(rng.integers(0, 120)))
        items.append((pin, encode_image(np.ascontiguousarray(crop), "jpeg", quality=85)))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="50,200,1000")
    ap.add_argument("--side", type=int, default=800)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    t = time.perf_counter()
    all_items = synthetic_pins(max(sizes), args.side)
    make_s = time.perf_counter() - t
    describe(np.zeros((64, 64, 3), np.uint8))  # warm caches and imports outside the timings

    rows = []
    for n in sizes:
        items = all_items[:n]
        reps = 3 if n <= 50 else 2 if n <= 200 else 1
        t_import, board = timed(lambda items=items: build_board("bench", items), reps)
        t_describe, descs = timed(lambda board=board: [describe(th, palette=False) for th in board.thumbs], reps)
        t_modes, prof = timed(lambda board=board, descs=descs: build_profile(board, descriptors=descs), reps)
        t_total, _ = timed(lambda items=items: build_profile(build_board("bench", items)), reps)
        rows.append({"n": n, "import": t_import, "describe": t_describe, "modes": t_modes, "total": t_total,
                     "k": len(prof.modes), "reps": reps})

    base = rows[0]["total"] / rows[0]["n"]
    print(f"Taste profile build vs board size (~{args.side} px JPEG pins, 1 process; pins made in {make_s:.1f} s)")
    head = f"{'pins':>6} {'import s':>9} {'describe s':>11} {'modes s':>9} {'total s':>9} {'pins/s':>8} " \
           f"{'ms/pin':>7} {'growth':>7} {'modes':>6} {'reps':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        per = r["total"] / r["n"]
        print(f"{r['n']:>6} {r['import']:>9.3f} {r['describe']:>11.3f} {r['modes']:>9.3f} {r['total']:>9.3f} "
              f"{r['n'] / r['total']:>8.0f} {per * 1000:>7.2f} {per / base:>6.2f}x {r['k']:>6} {r['reps']:>5}")
    big = rows[-1]
    stage_sum = max(big["import"] + big["describe"] + big["modes"], 1e-9)
    share = {k: 100 * big[k] / stage_sum for k in ("import", "describe", "modes")}
    print(f"at {big['n']} pins: import {share['import']:.0f} %, describe {share['describe']:.0f} %, "
          f"modes {share['modes']:.0f} % of the stage sum; growth = cost per pin / cost per pin at {rows[0]['n']}")
    out: dict[str, float] = {f"pins_per_s_{r['n']}": round(r["n"] / r["total"], 1) for r in rows}
    out[f"profile_{big['n']}_pins_s"] = round(big["total"], 3)
    out[f"growth_{big['n']}_vs_{rows[0]['n']}"] = round((big["total"] / big["n"]) / base, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
