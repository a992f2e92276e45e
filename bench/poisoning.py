"""Poisoning: how far injected "brand" pins steer a profile, with and without the defence.

Clean board: 100 pins made from the demo board (dated over a year, ordinary engagement). Attack: 1 %, 5 %
and 20 % of that many look-alike pins of one saturated brand look, with inflated engagement, from one
source, pinned within a day. For each, with the defence on (default) and off:

* attack share — total engagement weight the profile gives the injected pins;
* brand pull   — how strongly the profile pulls toward the brand look: sum over modes of
                 mode weight x style similarity to the brand look (clean board = baseline);
* output drift — style similarity of generated images (n=2, 384 px) to the brand look;
* output share — the share of planned outputs (n = 1..8, 8 seeds each) drawn in the mode that holds most
                 of the injected pins: the planner promises no variation to a flagged or light mode, so
                 this stays at or under that mode's defended weight.

Clean-quality cost: on the clean board, the defended profile's fit to its own pins relative to the
undefended one (1.0 = no cost) and whether any clean pin was flagged.

Run: python bench/poisoning.py [--quick]
Last line: {"share_20_defended": ..., "share_20_undefended": ..., "pull_20_defended": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime, timedelta

import numpy as np

from _common import DEMO, brand_image, synthetic_pins
from tastemaker.boards import Pin, build_board
from tastemaker.encoders.style import describe, style_similarity
from tastemaker.engines.base import GenerationRequest
from tastemaker.engines.planning import plan_variations
from tastemaker.media import encode_image
from tastemaker.pipeline import generate, prepare_subject
from tastemaker.prompt import parse_prompt
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import ProfileConfig, TasteProfile, build_profile
from tastemaker.taste.robust import RobustConfig

RATES = (0.0, 0.01, 0.05, 0.20)


def attack_items(n: int) -> list[tuple[Pin, bytes]]:
    t0 = datetime(2025, 12, 30, 20, tzinfo=UTC)
    base = brand_image(7, 512)
    rng = np.random.default_rng(9)
    items = []
    for i in range(n):
        y, x = rng.integers(0, 96, 2)
        img = np.clip(base[y : y + 416, x : x + 416].astype(int) + rng.integers(-6, 6, 3), 0, 255).astype(np.uint8)
        pin = Pin(
            image=f"brand{i:03d}.jpg", saves=int(rng.integers(800, 3000)), clicks=int(rng.integers(2000, 9000)),
            dwell_seconds=float(rng.uniform(300, 900)),
            pinned_at=t0 + timedelta(minutes=int(rng.integers(0, 600))), source="brand.example",
        )
        items.append((pin, encode_image(img, "jpeg", quality=90)))
    return items


def pull(profile: TasteProfile, brand_vec: np.ndarray) -> float:
    return float(sum(profile.mode_weights_for(brand_vec)))


def output_share(profile: TasteProfile) -> tuple[float, float]:
    """(share of planned outputs in the brand pins' mode, that mode's weight) over n = 1..8, 8 seeds each."""
    counts: dict[str, int] = {}
    for e in profile.pins:
        if e.image.startswith("brand"):
            counts[e.mode] = counts.get(e.mode, 0) + 1
    if not counts:
        return 0.0, 0.0
    brand_mode = max(counts, key=lambda m: counts[m])
    intent = parse_prompt("", [(m.id, m.text, m.weight) for m in profile.modes])
    hits = total = 0
    for n in range(1, 9):
        for seed in range(8):
            plans = plan_variations(GenerationRequest(n=n, seed=seed), profile, intent, backgrounds=("keep",))
            hits += sum(p.mode_id == brand_mode for p in plans)
            total += n
    return hits / total, profile.mode(brand_mode).weight


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="no image generation")
    args = ap.parse_args()
    clean = synthetic_pins(100, 512, seed=3, dated=True)
    brand_vec = np.mean([describe(brand_image(s, 256)).vector for s in range(7, 10)], axis=0)
    subject = prepare_subject([DEMO / "selfie.jpg"])
    prov = Provenance(tempfile.mkdtemp(prefix="tastemaker-poison-"))
    on, off = ProfileConfig(), ProfileConfig(robust=RobustConfig(enabled=False))
    rows = {}
    fit = {}
    for rate in RATES:
        n_attack = round(rate * len(clean))
        board = build_board("poisoned", clean + attack_items(n_attack))
        for label, cfg in (("defended", on), ("undefended", off)):
            prof = build_profile(board, cfg)
            share = sum(e.weight for e in prof.pins if e.image.startswith("brand"))
            drift = float("nan")
            if not args.quick:
                res = generate(GenerationRequest(n=2, size=384, seed=5), subject=subject, profile=prof, provenance=prov)
                drift = float(np.mean([style_similarity(describe(i.pixels), brand_vec) for i in res.images]))
            rows[(rate, label)] = (n_attack, share, pull(prof, brand_vec), drift,
                                   sum(1 for e in prof.pins if e.flags and not e.image.startswith("brand")),
                                   *output_share(prof))
            if rate == 0.0:
                descs = [describe(t) for t in board.thumbs]
                fit[label] = float(np.mean([prof.style_score(d) for d in descs]))
    print("Poisoning: injected brand pins (inflated engagement, one source, one day) vs the defence")
    print(f"{'injected':>9}{'pins':>6}{'':>3}{'attack share':>26}{'brand pull':>26}{'output drift':>26}")
    print(f"{'':>18}" + "".join(f"{'defended':>13}{'undefended':>13}" for _ in range(3)))
    print("-" * 96)
    for rate in RATES:
        d, u = rows[(rate, "defended")], rows[(rate, "undefended")]
        print(f"{rate:>9.0%}{d[0]:>6}{'':>3}{d[1]:>13.3f}{u[1]:>13.3f}{d[2]:>13.3f}{u[2]:>13.3f}"
              f"{d[3]:>13.3f}{u[3]:>13.3f}")
    print(f"{'injected':>9}  output share in the brand mode (defended) vs that mode's weight")
    for rate in RATES[1:]:
        d = rows[(rate, "defended")]
        print(f"{rate:>9.0%}  {d[5]:.3f} vs {d[6]:.3f}")
    cost = fit["defended"] / fit["undefended"]
    flagged_clean = max(rows[(r, "defended")][4] for r in RATES)
    print(f"clean-quality cost: defended fit / undefended fit on the clean board = {cost:.3f}; "
          f"clean pins ever flagged: {flagged_clean}")
    out = {
        "share_20_defended": round(rows[(0.2, "defended")][1], 4),
        "share_20_undefended": round(rows[(0.2, "undefended")][1], 4),
        "pull_20_defended": round(rows[(0.2, "defended")][2], 4),
        "pull_20_undefended": round(rows[(0.2, "undefended")][2], 4),
        "pull_clean": round(rows[(0.0, "defended")][2], 4),
        "clean_fit_ratio": round(cost, 4),
        "output_share_20_defended": round(rows[(0.2, "defended")][5], 4),
        "brand_mode_weight_20_defended": round(rows[(0.2, "defended")][6], 4),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
