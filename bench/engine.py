"""Engine speed: per-variation cost, 4 variations at 1024², the decode+encode floor, profile build.

Everything is measured in this one process, warm (models loaded, worker processes started), as the
median of several repeats. The floor is what any implementation must pay for the same outputs:
decoding the selfie and encoding four 1024² images in the same format with the same (threaded)
encoder. The floor ratio is the median of per-round ratios (the two are timed in alternation).

Run: python bench/engine.py [--repeats 5] [--format png]
Last line: {"four_variations_1024_s": ..., "floor_ratio": ..., "profile_200_pins_s": ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from _common import DEMO, synthetic_pins  # noqa: E402  (bench/ is on sys.path when run as a script)
from tastemaker.boards import build_board, load_board
from tastemaker.engines.base import GenerationRequest
from tastemaker.engines.look import LookEngine
from tastemaker.media import decode_image, encode_image, encode_many, read_image_bytes
from tastemaker.pipeline import generate, prepare_subject
from tastemaker.prompt import parse_prompt
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import build_profile


def timed(fn, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--format", default="png")
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    fmt, size, reps = args.format, args.size, args.repeats

    selfie_bytes = read_image_bytes(DEMO / "selfie.jpg")
    subject = prepare_subject([decode_image(selfie_bytes)])
    profile = build_profile(load_board(DEMO / "board"))
    req = GenerationRequest(n=4, size=size, aspect="1:1", seed=1, format=fmt)

    # warm everything: LUTs, segmentation, worker processes; provenance in a scratch data dir
    prov = Provenance(tempfile.mkdtemp(prefix="tastemaker-bench-"))
    generate(req, subject=subject, profile=profile, guard_workers=2, provenance=prov)

    # per-variation engine cost, one thread, no guard
    eng = LookEngine(threads=1)
    intent = parse_prompt("", [(m.id, m.text, m.weight) for m in profile.modes])
    plans = eng.plan(req, subject, profile, intent)
    eng.render(plans, subject, profile, req, hold=[0.0] * 4)
    t_render1, _ = timed(lambda: eng.render(plans[:1], subject, profile, req, hold=[0.0]), reps)

    # the full user-visible path for 4 variations: render (2 threads) + identity guard + provenance
    # (watermark, encode, C2PA signature, log append) + style scores
    def four() -> list[bytes]:
        res = generate(req, subject=subject, profile=profile, guard_workers=2, provenance=prov)
        return [i.data for i in res.images]

    res = generate(req, subject=subject, profile=profile, guard_workers=2, provenance=prov)
    stages = {k: v for k, v in res.timings.items() if k in ("render", "guard", "provenance", "score")}
    outputs = [i.pixels for i in res.images]

    # floor: decode the selfie + encode the four outputs, same format, same encoder. The two are
    # timed in alternation and the ratio is the median of per-round ratios, so a slow spell on a shared
    # machine lands on both sides of a ratio instead of on one.
    def floor() -> None:
        decode_image(selfie_bytes)
        encode_many(outputs, fmt)

    fours, floors, ratios = [], [], []
    for _ in range(reps):
        (a, blobs), (b, _) = timed(four, 1), timed(floor, 1)
        fours.append(a)
        floors.append(b)
        ratios.append(a / b)
    t_four, t_floor, ratio = statistics.median(fours), statistics.median(floors), statistics.median(ratios)
    t_floor_serial, _ = timed(lambda: (decode_image(selfie_bytes), [encode_image(o, fmt) for o in outputs]), reps)

    # profile build for a 200-pin board: decode (reduced JPEG) + describe + cluster
    rows = []
    for n in (50, 200):
        items = synthetic_pins(n)
        t_prof, prof = timed(lambda items=items: build_profile(build_board("bench", items)), max(1, reps // 2))
        rows.append((n, t_prof, len(prof.modes)))  # type: ignore[attr-defined]
    t_prof200 = rows[-1][1]

    print(f"Tastemaker look engine, {size}x{size} {fmt}, median of {reps} (2 cores)")
    print(f"{'measure':<46}{'value':>12}")
    print("-" * 58)
    print(f"{'render, 1 variation, 1 thread':<46}{t_render1 * 1000:>10.0f} ms")
    print(f"{'4 variations end to end (all stages below)':<46}{t_four:>10.3f} s")
    for k, v in stages.items():
        label = f"  {k}" + (" (runs alongside the guard)" if k == "provenance" else "")
        print(f"{label:<46}{v * 1000:>10.0f} ms")
    print(f"{'floor: decode selfie + encode 4 (threaded)':<46}{t_floor * 1000:>10.0f} ms")
    print(f"{'floor: decode selfie + encode 4 (serial)':<46}{t_floor_serial * 1000:>10.0f} ms")
    print(f"{'ratio 4 variations / threaded floor (median)':<46}{ratio:>11.2f}x")
    for n, t, k in rows:
        print(f"{f'profile build, {n} pins ({k} modes)':<46}{t:>10.3f} s   ({n / t:.0f} pins/s)")
    print(f"{'sizes of the 4 outputs':<46}{sum(len(b) for b in blobs) / 1e6:>9.1f} MB")  # type: ignore[union-attr]
    print(json.dumps({
        "four_variations_1024_s": round(t_four, 3),
        "floor_ratio": round(ratio, 2),
        "profile_200_pins_s": round(t_prof200, 3),
    }))


if __name__ == "__main__":
    main()
