"""Differential privacy: how much taste survives a private release, by epsilon and board size.

For each board (the 13-pin demo board, and 200 / 1000 synthetic pins made from it) and each epsilon,
a private profile is released (DP k-means, taste/privacy.py) and compared with the exact profile:

* retention   — mean style score of the board's own pins under the private profile, divided by the same
                under the exact profile (1.0 = no loss);
* attribution — share of pins (the board's own and a control board's) that the private profile
                assigns to the right board, against the control's exact profile (0.5 = chance).

Median of 3 releases (seeds). Run: python bench/privacy.py [--quick]
Last line: {"retention_eps1_200": ..., "attribution_eps1_200": ..., "retention_eps1_1000": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from _common import brand_image, synthetic_pins
from tastemaker.boards import Pin, build_board, load_board
from tastemaker.encoders.style import describe
from tastemaker.media import encode_image
from tastemaker.taste.privacy import Accountant, PrivacyConfig, private_profile
from tastemaker.taste.profile import build_profile

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="demo board and 200 pins only, 1 seed")
    args = ap.parse_args()
    from _common import DEMO

    boards = {"demo (13)": load_board(DEMO / "board"), "200 pins": build_board("b200", synthetic_pins(200, 512))}
    if not args.quick:
        boards["1000 pins"] = build_board("b1000", synthetic_pins(1000, 384, seed=1))
    control = build_board("brand", [(Pin(image=f"c{i}.png"), encode_image(brand_image(i, 256), "png"))
                                    for i in range(12)])
    control_prof = build_profile(control)
    control_descs = [describe(t) for t in control.thumbs]
    seeds = (1,) if args.quick else (1, 2, 3)
    tmp = tempfile.mkdtemp(prefix="tastemaker-privacy-")
    rows: dict[tuple[str, float], tuple[float, float, int]] = {}
    for name, board in boards.items():
        exact = build_profile(board)
        descs = [describe(t) for t in board.thumbs]
        base = np.mean([exact.style_score(d) for d in descs])
        vecs = np.array([p.vector for p in exact.pins])
        eng = np.array([p.engagement for p in exact.pins])
        for eps in EPSILONS:
            ret, att, k = [], [], []
            for s in seeds:
                acc = Accountant(tmp, f"{name}-{eps}-{s}", PrivacyConfig(epsilon=eps, budget_epsilon=1e9))
                priv = private_profile(exact, vecs, eng, accountant=acc, seed=s)
                ret.append(np.mean([priv.style_score(d) for d in descs]) / base)
                own = [priv.style_score(d) > control_prof.style_score(d) for d in descs]
                other = [control_prof.style_score(d) > priv.style_score(d) for d in control_descs]
                att.append((np.mean(own) + np.mean(other)) / 2)
                k.append(len(priv.modes))
            rows[(name, eps)] = (float(np.median(ret)), float(np.median(att)), int(np.median(k)))
    print("Private taste release (DP k-means, Gaussian via OpenDP, delta 1e-6): retention / attribution / modes")
    header = f"{'epsilon':>8}" + "".join(f"{n:>26}" for n in boards)
    print(header)
    print("-" * len(header))
    for eps in EPSILONS:
        cells = "".join(f"{rows[(n, eps)][0]:>10.2f} / {rows[(n, eps)][1]:>5.2f} / {rows[(n, eps)][2]:>2d}   "
                        for n in boards)
        print(f"{eps:>8g}  {cells}")
    out = {}
    for n, key in (("200 pins", "200"), ("1000 pins", "1000")):
        if n in boards:
            out[f"retention_eps1_{key}"] = round(rows[(n, 1.0)][0], 3)
            out[f"attribution_eps1_{key}"] = round(rows[(n, 1.0)][1], 3)
    out["retention_eps1_demo"] = round(rows[("demo (13)", 1.0)][0], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
