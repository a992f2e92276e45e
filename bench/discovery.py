""""More like my board", leave one out, on ../shared/data/dev-eval: is a held-out pin among the top 10?

Every image of dev-eval (six boards of one look each, plus the face photos as distractors; faces allowed here, the
set is public domain) is indexed. For each board and each of its pins, the pin is held out: the board without it
is the query, its other pins are left out of the results (a board is never recommended its own pins), and the
held-out pin counts as found when it is among the 10 results out of every other dev-eval image. The figure is
the share of held-out pins found (the issue calls it precision@10; with one held-out pin per query it is the hit
rate at 10). Compared:

* ``multimode`` — the taste profile's modes, one query per mode (its centre), merged by weight with MMR
  (:func:`tastemaker.discovery.search.search_board`: what ``tastemaker search --board`` does);
* ``centroid`` — one query, the engagement-weighted mean of the board's pins (same MMR step);
* ``random`` — 10 images drawn at random from the candidates (the expected hit rate, exactly).

Last line: ``{"precision10_multimode", "precision10_centroid", "precision10_random"}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tastemaker.boards import Board, load_board
from tastemaker.discovery.index import create_or_open
from tastemaker.discovery.search import centroid_query, mode_queries, search_modes
from tastemaker.discovery.sources import board_images
from tastemaker.taste.profile import build_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev-eval"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    if not (args.data / "boards").is_dir():
        raise SystemExit(f"dev-eval data not found at {args.data} (expected boards/ and faces/)")
    t0 = time.perf_counter()
    idx = create_or_open(Path(tempfile.mkdtemp(prefix="bench-discovery-")) / "index")
    idx.add(list(board_images(args.data)), allow_faces=True)
    index_s = time.perf_counter() - t0
    n_items = idx.count()
    found: dict[str, list[float]] = {"multimode": [], "centroid": [], "random": []}
    per_board = []
    t0 = time.perf_counter()
    for folder in sorted(p for p in (args.data / "boards").iterdir() if p.is_dir()):
        board = load_board(folder)
        hits = {"multimode": 0, "centroid": 0}
        n_modes = []
        for held in range(len(board)):
            keep = [i for i in range(len(board)) if i != held]
            rest = Board(board.name, [board.pins[i] for i in keep], [board.thumbs[i] for i in keep])
            target = idx.rows_with_sha([board.pins[held].sha256])
            exclude = idx.rows_with_sha([p.sha256 for p in rest.pins])
            prof = build_profile(rest)
            n_modes.append(len(prof.modes))
            for name, queries in (("multimode", mode_queries(prof)), ("centroid", centroid_query(prof))):
                res = search_modes(idx, queries, args.k, exclude=exclude)
                got = {h.key for h in res}
                ok = any(item.key in got for item in idx.items(target).values())
                hits[name] += int(ok)
                found[name].append(float(ok))
            found["random"].append(min(1.0, args.k / (n_items - len(exclude))))
        per_board.append((board.name, len(board), float(np.mean(n_modes)), hits["multimode"] / len(board),
                          hits["centroid"] / len(board)))
    query_s = time.perf_counter() - t0
    print(f"dev-eval: {n_items} images indexed in {index_s:.1f} s; {len(found['random'])} leave-one-out queries "
          f"in {query_s:.1f} s")
    print(f"{'board':<28}{'pins':>5}{'modes':>7}{'multimode':>11}{'centroid':>10}")
    print("-" * 61)
    for name, n, modes, mm, ce in per_board:
        print(f"{name:<28}{n:>5}{modes:>7.1f}{mm:>11.2f}{ce:>10.2f}")
    means = {k: float(np.mean(v)) for k, v in found.items()}
    print(f"{'all':<28}{len(found['random']):>5}{'':>7}{means['multimode']:>11.3f}{means['centroid']:>10.3f}"
          f"   random {means['random']:.3f}")
    print(json.dumps({"precision10_multimode": round(means["multimode"], 4),
                      "precision10_centroid": round(means["centroid"], 4),
                      "precision10_random": round(means["random"], 4)}))


if __name__ == "__main__":
    main()
