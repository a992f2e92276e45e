"""Skin-tone fidelity on the dev-eval faces and synthetic skin-tone shifts of them, across every dev-eval board.

Each dev-eval person's first photo (by name) is re-toned three times, so every tone group has people in it:
the skin (the look engine's own skin likelihood, limited to the person) is moved in CIELAB toward a light
(ITA ≈ 52°), a medium (≈ 22°) and a dark (≈ −25°) target, then its measured ITA° decides the group (light
> 41°, medium 10–41°, dark < 10°). Every such selfie × every board is generated (n=1, 256 px, seed 11)
through the full pipeline with the built-in plugins, and the skin-tone plugin's record of each output is
read: ITA° shift of the released output (after any hold), whether it was held back, and the shift of the
first render (what would have been released without the plugin). Monochrome, toned and stylised modes are
exempt from the check (and counted apart).

Run: python bench/fairness.py [--people N] [--boards N|a,b] [--size 256] [--data DIR]
Prints a table per tone group, then as its last line one JSON object: ita_shift_p95_deg (over all checked
outputs, absolute), held_back (outputs held back at least once), by_tone_group (n, p95 after, p95 of the
first render, held back, exempt, within_threshold), threshold_deg and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tastemaker.boards import load_board
from tastemaker.encoders.identity import IdentityEncoder
from tastemaker.engines.base import GenerationRequest
from tastemaker.engines.look.segment import person_mask, skin_map
from tastemaker.errors import TastemakerError
from tastemaker.media import load_image, resize_max_side
from tastemaker.pipeline import Pipeline, prepare_subject
from tastemaker.plugins import Plugins
from tastemaker.plugins.builtin.skin_tone import THRESHOLD_DEG
from tastemaker.plugins.skin import measure, tone_group
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import build_profile

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/dev-eval")
#: (L*, b*) the skin is moved toward for each synthetic tone
TARGETS = {"light": (68.0, 14.0), "medium": (58.0, 20.0), "dark": (42.0, 17.0)}
SELFIE_SIDE = 1280


def retone(img: np.ndarray, encoder: IdentityEncoder, target: tuple[float, float]) -> np.ndarray:
    """``img`` with its skin moved toward ``target`` (L*, b*), feathered by the skin likelihood."""
    face = encoder.detect(img)[0]
    person = person_mask(img)
    weight = np.clip(skin_map(img, face.landmarks, person), 0.0, 1.0)
    weight = cv2.GaussianBlur(weight, (0, 0), 2.0)[..., None]
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    tone = measure(img, face.landmarks, face.box)
    if tone is None:
        return img
    shift = np.array([target[0] - tone.lightness, 0.0, target[1] - tone.b], np.float32)
    lab = lab + weight * shift
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def p95(values: list[float]) -> float | None:
    return round(float(np.percentile(np.abs(values), 95)), 2) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--boards", default="all")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every output's row on stderr")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    faces_dir, boards_dir = args.data / "faces", args.data / "boards"
    if not faces_dir.is_dir() or not boards_dir.is_dir():
        print(f"no dev-eval data at {args.data} (faces/ and boards/)", file=sys.stderr)
        return 2
    people = sorted(p for p in faces_dir.iterdir() if p.is_dir())[: args.people]
    boards = sorted(p for p in boards_dir.iterdir() if p.is_dir())
    if args.boards != "all":
        wanted = args.boards.split(",") if not args.boards.isdigit() else None
        boards = [b for b in boards if b.name in wanted] if wanted else boards[: int(args.boards)]
    encoder = IdentityEncoder()
    profiles = {b.name: (load_board(b), None) for b in boards}
    profiles = {name: (board, build_profile(board)) for name, (board, _) in profiles.items()}
    pipe = Pipeline("look", guard_workers=0, encoder=encoder, provenance=Provenance(tempfile.mkdtemp()),
                    plugins=Plugins.load(["skin_tone"]))
    assets = {name: pipe.engine.prepare_board(board, profile) for name, (board, profile) in profiles.items()}
    rows: list[dict[str, Any]] = []
    for person in people:
        photo = sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[0]
        original = resize_max_side(load_image(photo), SELFIE_SIDE)
        for tone_name, target in TARGETS.items():
            selfie = retone(original, encoder, target)
            try:
                subject = prepare_subject([selfie], encoder=encoder)
            except TastemakerError as exc:
                print(f"  {person.name} {tone_name}: {exc.message}", file=sys.stderr)
                continue
            own = measure(subject.image, subject.face.landmarks, subject.face.box)
            group = tone_group(own.ita) if own is not None else "unmeasured"
            for board_name, (_, profile) in profiles.items():
                request = GenerationRequest(n=1, size=args.size, seed=11)
                try:
                    result = pipe(request, subject=subject, profile=profile, assets=assets[board_name])
                except TastemakerError as exc:
                    rows.append({"person": person.name, "tone": tone_name, "group": group, "board": board_name,
                                 "error": exc.code})
                    if args.verbose:
                        print("   ", rows[-1], exc.message, file=sys.stderr)
                    continue
                rec = (result.images[0].info.get("plugins") or {}).get("skin_tone", {})
                first = rec.get("first") or rec
                rows.append({"person": person.name, "tone": tone_name, "group": group, "board": board_name,
                             "ita_selfie": own.ita if own else None, "shift": rec.get("ita_shift_deg"),
                             "first_shift": first.get("ita_shift_deg"), "held": bool(rec.get("held_back")),
                             "exempt": rec.get("exempt"), "verdict": rec.get("verdict"),
                             "hold": result.images[0].hold})
                if args.verbose:
                    print("   ", rows[-1], file=sys.stderr)
            print(f"  {person.name:24s} {tone_name:6s} -> {group:6s} ITA {own.ita if own else float('nan'):6.1f}°"
                  f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    by_group: dict[str, Any] = {}
    print(f"\n{'group':8s} {'n':>4s} {'exempt':>6s} {'held':>5s} {'p95 first':>10s} {'p95 after':>10s} {'ok':>4s} "
          f"{'refused':>8s}")
    checked_all: list[float] = []
    for group in ("light", "medium", "dark"):
        rs = [r for r in rows if r["group"] == group and "error" not in r]
        checked = [r for r in rs if not r["exempt"] and r["shift"] is not None]
        after = [float(r["shift"]) for r in checked]
        before = [float(r["first_shift"]) for r in checked if r["first_shift"] is not None]
        checked_all += after
        held = sum(r["held"] for r in rs)
        ok = (p95(after) or 0.0) <= THRESHOLD_DEG
        refused = [r for r in rows if r["group"] == group and "error" in r]
        by_group[group] = {"n": len(rs), "checked": len(checked), "exempt": len(rs) - len(checked), "held_back": held,
                           "ita_shift_p95_first_deg": p95(before), "ita_shift_p95_deg": p95(after),
                           "within_threshold": ok, "refused": len(refused)}
        print(f"{group:8s} {len(rs):4d} {len(rs) - len(checked):6d} {held:5d} {p95(before) or 0:10.2f} "
              f"{p95(after) or 0:10.2f} {'yes' if ok else 'NO':>4s} {len(refused):8d}")
    errors = [r for r in rows if "error" in r]
    if errors:
        print(f"{len(errors)} generation(s) refused: " + ", ".join(sorted({r['error'] for r in errors})))
        for r in errors:  # who and where: a refusal that falls on one tone group is a fairness finding too
            print(f"  refused: {r['person']} ({r['tone']}, {r['group']}) × {r['board']}: {r['error']}")
    out = {"ita_shift_p95_deg": p95(checked_all), "held_back": sum(r.get("held", False) for r in rows),
           "by_tone_group": by_group, "threshold_deg": THRESHOLD_DEG, "outputs": len(rows), "errors": len(errors),
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
