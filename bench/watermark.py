"""Watermark robustness bench: Tastemaker's tiled watermark vs stock dwtDct, dwtDctSvd and rivaGan.

Images (52 in a full run): the 14 demo photos at their native 512 px, the same 14 at 1024 px
(long side, bicubic), 8 real look-engine outputs (1024x819, two seeds), 8 crops / resizes of the
upscaled photos (640-900 px), 8 synthetic images (gradients + texture + noise, 512-1024 px).

Attacks: none, JPEG Q50, JPEG Q75, resize 0.5x (area), crop to 50 % of the area (random place,
aspect kept), JPEG75 + resize 0.75x + crop 80 %, a mirror copy saved as JPEG75, a quarter turn
saved as JPEG75; and what people do to pictures they share (issue 11): brightness +20 % with contrast
+30 % and a 1 px Gaussian blur (PIL ImageEnhance), a 0.25x thumbnail saved as JPEG 70, a 5° turn
cropped to the largest upright frame (a phone's "straighten"), saturation +-30 %, gamma 0.8 and 1.25.
``min_tpr`` is over every attack but the thumbnail, which the mark is not designed to survive (see
``provenance/watermark``); ``thumbnail_tpr`` reports it, and the provenance part below shows the
record is still found (by the picture's fingerprint).

Provenance (ours only, skipped with ``--no-provenance``): every image is stamped into a fresh store
(watermark under the store's secret key, fingerprint, C2PA, log) and then
* real outputs: each attack above, saved as PNG without metadata -> ``verify`` must answer ``verified``
  with the right record (``verified_min_tpr``, the worst attack; the thumbnail included);
* forgeries: the victim's record id written (with the store's key: the strongest forger) into three
  other bench pictures, as is / JPEG 75 / 50 % crop -> accepted if ``verify`` says ``verified`` with the
  victim's record (``forgeries_accepted``, target 0; most answer ``forged``);
* laundering: the output re-marked with an unused id + JPEG 75, its mark removed (the unmarked picture) +
  JPEG 75, that mirrored, and that at 0.5x -> found if the report names the right record
  (``laundered_found``, target >= 0.99).

* TPR: the embedded id is read back exactly (ours: CRC-checked 40-bit id; baselines: all 32
  bits equal, the most lenient fair rule for a method without a detection threshold).
* FPR: unmarked images and random crops of them, through the same attack. Ours counts *any* id
  returned as a false positive; baselines count a decode equal to the test payload. Ours gets
  >= 1000 clean decodes (4 variants x 52 images x 5 attacks + the unattacked ones); baselines
  fewer (stated in the n column) because they are slow.
* ms: mean detect time per attacked image; the last column of the summary is embed + detect at
  exactly 1024x1024 (median over 5 images), which is what the issue's 150 ms target means.
* dwtDct / dwtDctSvd run on all images but only 260 clean decodes; rivaGan (its shipped ONNX
  models, run with onnxruntime, no torch) costs seconds per call on this CPU, so it runs on 6 of
  the 512 px images and 24 clean decodes. Bit accuracy is shown for the baselines only (ours
  returns a CRC-checked id or nothing).

Last full run (shared 2-core CPU, 851 s): ours TPR 1.000 after every attack (none, Q50, Q75,
0.5x, crop 50 %, combo, mirror + Q75, quarter turn + Q75), 0 false ids in 1508 clean decodes, PSNR
39.95 dB mean (38.20 min), embed+detect 60-96 ms at 1024² (a mirrored / turned copy costs 170-240 ms
to detect: the other orientations are tried after the scale search). Stock dwtDct fails every attack,
dwtDctSvd survives only JPEG 75 (0.77), rivaGan (6 images) JPEG 50 0.50 / crop 1.00 / combo 0.50 at
~15 s per embed+detect at 1024²; none of the three reads a mirrored or turned copy. rivaGan's 0.000
after a 0.5x resize is the stock decoder refusing images under 256x256.

Run: python bench/watermark.py [--quick] [--seed 0] [--no-baselines] [--no-provenance]
The last line is one JSON object for our method:
{"min_tpr": ..., "max_fpr": ..., "psnr_db": ..., "embed_detect_ms_1024": ..., "thumbnail_tpr": ...,
 "forgeries_accepted": ..., "forgeries_tried": ..., "laundered_found": ..., "verified_min_tpr": ...}
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.provenance import imaging  # noqa: E402  (the same pictures and edits as the provenance tests)
from tests.provenance.imaging import crop_area, fit_long_side, jpeg, load_rgb, resize, synthetic  # noqa: E402

from tastemaker.provenance import fingerprint as fpr  # noqa: E402
from tastemaker.provenance import watermark as wm  # noqa: E402

DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"
ATTACK_NAMES = [
    "none", "jpeg50", "jpeg75", "resize0.5", "crop50", "jpeg75+resize0.75+crop80", "mirror+jpeg75", "rot90+jpeg75",
    "bright+contrast+blur", "thumb0.25+jpeg70", "rotate5", "saturation+30", "saturation-30", "gamma0.8", "gamma1.25",
]
THUMBNAIL = "thumb0.25+jpeg70"


# ----------------------------------------------------------------------------- images and attacks


def real_outputs(seeds: list[int]) -> list[tuple[str, np.ndarray]]:
    """Look-engine renders for the demo selfie + board, *before* marking.

    ``generate()`` returns what Tastemaker ships, and that already carries its provenance watermark; a
    "clean" image with a mark in it would count as a false detection. So the engine renders directly.
    """
    try:
        from tastemaker.boards import load_board
        from tastemaker.engines.base import GenerationRequest
        from tastemaker.engines.look import LookEngine
        from tastemaker.pipeline import prepare_subject
        from tastemaker.prompt import parse_prompt
        from tastemaker.taste.profile import build_profile

        profile = build_profile(load_board(DEMO / "board"))
        subject = prepare_subject([DEMO / "selfie.jpg"])
        engine = LookEngine()
        intent = parse_prompt("", [(m.id, m.text, m.weight) for m in profile.modes])
        out = []
        for seed in seeds:
            req = GenerationRequest(n=4, seed=seed, size=1024)
            plans = engine.plan(req, subject, profile, intent)
            rendered = engine.render(plans, subject, profile, req, hold=[0.0] * len(plans))
            out += [(f"look-s{seed}-{r.plan.index}", r.pixels) for r in rendered]
        return out
    except Exception as exc:  # noqa: BLE001 - the bench still runs on the other images
        print(f"(no real outputs: {type(exc).__name__}: {exc})", file=sys.stderr)
        return []


def build_images(quick: bool) -> list[tuple[str, np.ndarray]]:
    photos = [(p.stem, load_rgb(p)) for p in sorted((DEMO / "board").glob("*.jpg"))] + [
        ("selfie", load_rgb(DEMO / "selfie.jpg"))
    ]
    rng = np.random.default_rng(123)
    if quick:
        return [
            ("selfie@1024", fit_long_side(photos[-1][1], 1024)),
            (photos[0][0], photos[0][1]),
            ("synth0", synthetic(0, 640, 640)),
        ]
    images = list(photos) + [(f"{n}@1024", fit_long_side(im, 1024)) for n, im in photos]
    images += real_outputs([1, 2])
    for i in range(8):
        name, im = photos[(3 * i) % len(photos)]
        big = fit_long_side(im, 1400)
        h, w = int(rng.integers(640, 900)), int(rng.integers(640, 900))
        y, x = rng.integers(0, big.shape[0] - h + 1), rng.integers(0, big.shape[1] - w + 1)
        images.append((f"{name}-crop{i}", big[y : y + h, x : x + w].copy()))
    for i in range(8):
        h, w = (int(v) for v in rng.integers(512, 1025, 2))
        images.append((f"synth{i}", synthetic(i, h, w)))
    return images


ATTACKS: dict[str, imaging.Attack] = {
    **imaging.ATTACKS,
    "mirror+jpeg75": lambda im, r: jpeg(np.ascontiguousarray(im[:, ::-1]), 75),
    "rot90+jpeg75": lambda im, r: jpeg(np.ascontiguousarray(np.rot90(im)), 75),
    **imaging.SHARE_EDITS,
    **imaging.THUMBNAIL,
}
assert set(ATTACKS) == set(ATTACK_NAMES)


# ----------------------------------------------------------------------------- methods


def _load_imwatermark(module: str):  # type: ignore[no-untyped-def]
    """Load one imwatermark module from its file, bypassing the package __init__ (which imports torch)."""
    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "invisible-watermark is not installed (pip install --no-deps invisible-watermark)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / f"{module}.py"
    mod_spec = importlib.util.spec_from_file_location(f"_imwm_{module}", path)
    assert mod_spec and mod_spec.loader
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod, path.parent


@dataclass
class Method:
    name: str
    embed: Callable[[np.ndarray, int], np.ndarray]
    read: Callable[[np.ndarray], int | None]  # decoded id, or None
    bits: int
    any_id_is_fp: bool  # ours: any id on a clean image is a false positive
    max_images: int | None = None
    max_clean: int | None = None
    stats: dict = field(default_factory=dict)


def ours() -> Method:
    return Method("tastemaker", lambda im, p: wm.embed(im, p), lambda im: wm.detect(im).payload, 40, True)


def _bits(v: int, n: int = 32) -> list[int]:
    return [(v >> (n - 1 - i)) & 1 for i in range(n)]


def _int(bits) -> int:  # type: ignore[no-untyped-def]
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def stock(name: str) -> Method:
    """Stock invisible-watermark dwtDct / dwtDctSvd with its default settings (BGR, 32 bits)."""
    mod, _ = _load_imwatermark("maxDct" if name == "dwtDct" else "dwtDctSvd")
    cls = mod.EmbedMaxDct if name == "dwtDct" else mod.EmbedDwtDctSvd

    def embed(im: np.ndarray, p: int) -> np.ndarray:
        bgr = np.ascontiguousarray(im[..., ::-1])
        return np.ascontiguousarray(cls(watermarks=_bits(p), wmLen=32).encode(bgr)[..., ::-1]).astype(
            np.uint8
        )

    def read(im: np.ndarray) -> int | None:
        if im.shape[0] * im.shape[1] < 256 * 256:  # the stock decoder refuses these
            return None
        return _int(cls(watermarks=[], wmLen=32).decode(np.ascontiguousarray(im[..., ::-1])))

    return Method(name, embed, read, 32, False, max_clean=260)


def riva() -> Method:
    """Stock rivaGan: the ONNX models shipped in invisible-watermark, run with onnxruntime (no torch)."""
    import onnxruntime as ort

    _, folder = _load_imwatermark("maxDct")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    enc = ort.InferenceSession(str(folder / "rivagan_encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / "rivagan_decoder.onnx"), opts, providers=["CPUExecutionProvider"])

    def frame(
        im: np.ndarray,
    ) -> np.ndarray:  # stock code feeds the BGR frame in [-1, 1], shape (1, 3, 1, H, W)
        return (im[..., ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None, :, None]

    def embed(im: np.ndarray, p: int) -> np.ndarray:
        out = enc.run(None, {"frame": frame(im), "data": np.array([_bits(p)], np.float32)})[0]
        bgr = ((np.clip(out, -1, 1)[0, :, 0].transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)
        return np.ascontiguousarray(bgr[..., ::-1])

    def read(im: np.ndarray) -> int | None:
        if im.shape[0] * im.shape[1] < 256 * 256:
            return None
        return _int(dec.run(None, {"frame": frame(im)})[0][0] > 0.52)

    return Method("rivaGan", embed, read, 32, False, max_images=6, max_clean=24)


# ----------------------------------------------------------------------------- the run


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def run_method(m: Method, images: list[tuple[str, np.ndarray]], clean_variants: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pay_rng = np.random.default_rng(seed + 1)
    imgs = images
    if m.max_images is not None:
        imgs = [x for x in images if max(x[1].shape[:2]) <= 512][: m.max_images]
    tp = {a: 0 for a in ATTACK_NAMES}
    n = {a: 0 for a in ATTACK_NAMES}
    bit_acc: dict[str, list[float]] = {a: [] for a in ATTACK_NAMES}
    det_ms: dict[str, list[float]] = {a: [] for a in ATTACK_NAMES}
    psnrs: list[float] = []
    misses: list[str] = []
    refused = 0
    for img_name, img in imgs:
        payload = int(pay_rng.integers(0, 1 << m.bits))
        try:
            marked = m.embed(img, payload)
        except wm.WatermarkError:
            refused += 1  # fail closed: counted as a miss under every attack
            for a in ATTACK_NAMES:
                n[a] += 1
            continue
        psnrs.append(psnr(img, marked))
        for a in ATTACK_NAMES:
            attacked = ATTACKS[a](marked, rng)
            t = time.perf_counter()
            got = m.read(attacked)
            det_ms[a].append(1000 * (time.perf_counter() - t))
            n[a] += 1
            tp[a] += got == payload
            if got != payload:
                misses.append(f"{img_name}/{a}")
            if not m.any_id_is_fp and got is not None:  # ours returns an id or nothing, no raw bits
                bit_acc[a].append(1 - bin(got ^ payload).count("1") / m.bits)
    # clean decodes: every attack on unmarked images and random 90 % crops of them
    fp = {a: 0 for a in ATTACK_NAMES}
    nc = {a: 0 for a in ATTACK_NAMES}
    budget = m.max_clean
    test_payload = 0xA5A5_5A5A
    for k in range(clean_variants):
        for _, img in imgs if m.max_images else images:
            base = img if k == 0 else crop_area(img, 0.9, rng)
            for a in ATTACK_NAMES:
                if budget is not None and sum(nc.values()) >= budget:
                    break
                if k > 0 and a == "none":
                    continue
                got = m.read(ATTACKS[a](base, rng))
                nc[a] += 1
                fp[a] += (got is not None) if m.any_id_is_fp else (got == test_payload)
    m.stats = dict(
        tp=tp, n=n, fp=fp, nc=nc, bit_acc=bit_acc, det_ms=det_ms, psnr=psnrs, refused=refused, misses=misses
    )


def timing_1024(m: Method, images: list[tuple[str, np.ndarray]], k: int = 5) -> float:
    squares = [cv2.resize(im, (1024, 1024), interpolation=cv2.INTER_CUBIC) for _, im in images[:k]]
    times = []
    for i, sq in enumerate(squares):
        t = time.perf_counter()
        m.read(m.embed(sq, 1000 + i))
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def _provenance_run(images: list[tuple[str, np.ndarray]], rng: np.random.Generator, tally: dict) -> None:
    """One store: stamp ``images``, then verify real outputs, forgeries and laundered copies into ``tally``."""
    import tempfile

    from tastemaker.media import encode_image
    from tastemaker.provenance.service import Provenance

    with tempfile.TemporaryDirectory() as tmp:
        prov = Provenance(tmp)
        t = time.perf_counter()
        stamped = [
            prov.stamp(img, fmt="png", prompt=name, profile_hash="bench", engine="bench", engine_version="1", seed=i)
            for i, (name, img) in enumerate(images)
        ]
        tally["stamp_ms"].append(1000 * (time.perf_counter() - t) / len(images))
        for (name, _), out in zip(images, stamped, strict=True):
            for a in ATTACK_NAMES:
                data = encode_image(ATTACKS[a](out.pixels, rng), "png")
                t = time.perf_counter()
                rep = prov.verify(data)
                tally["verify_ms"].append(1000 * (time.perf_counter() - t))
                good = rep.verdict == "verified" and rep.record == out.record
                tally["ok"][a] += good
                if not good:
                    tally["misses"].append(f"{name}/{a}: {rep.verdict}")
        # forgeries: the victim's id in three other pictures (their unmarked originals), three ways. A host that
        # is the victim's picture already (full frame, no mark: its fingerprint matches) is not a forgery: two
        # renders that differ by a few percent of exposure are one picture to anything that tolerates edits.
        seed = prov.keys.fingerprint_seed
        for i, out in enumerate(stamped):
            victim = fpr.Fingerprint.decode(out.record.fingerprint or "")
            for j in rng.choice([k for k in range(len(images)) if k != i], size=min(3, len(images) - 1), replace=False):
                host = fpr.luma(images[j][1])
                if abs((host.shape[1] / host.shape[0]) / (victim.width / victim.height) - 1) < 0.04:
                    same = cv2.resize(host, (victim.width, victim.height), interpolation=cv2.INTER_AREA)
                    if fpr.match(victim, same, seed).same:
                        tally["same_picture"].append(f"{images[i][0]} / {images[j][0]}")
                        continue
                forged = wm.embed(images[j][1], out.record.record_id, key=prov.key)
                for a in ("none", "jpeg75", "crop50"):
                    rep = prov.verify(encode_image(ATTACKS[a](forged, rng), "png"))
                    tally["forgeries"] += 1
                    if rep.verdict == "verified" and rep.record == out.record:
                        tally["accepted"] += 1
                        tally["accepted_pairs"].append(f"{images[i][0]} on {images[j][0]}/{a}")
                    tally["forgery_verdicts"][rep.verdict] = tally["forgery_verdicts"].get(rep.verdict, 0) + 1
        # laundering: re-marked with an unused id, or the mark removed; found = the report names the record
        for (name, img), out in zip(images, stamped, strict=True):
            stripped = jpeg(img, 75)
            copies = {
                "remarked+jpeg75": jpeg(wm.embed(out.pixels, (out.record.record_id + 1) % (1 << 40), key=prov.key), 75),
                "stripped+jpeg75": stripped,
                "stripped+mirror": np.ascontiguousarray(stripped[:, ::-1]),
                "stripped+resize0.5": resize(stripped, 0.5),
            }
            for what, copy in copies.items():
                rep = prov.verify(encode_image(copy, "jpeg"))
                tally["laundered"] += 1
                hit = rep.record == out.record
                tally["found"] += hit
                if not hit:
                    tally["lost"].append(f"{name}/{what}: {rep.verdict}")
        prov.close()


def provenance_bench(images: list[tuple[str, np.ndarray]], seed: int) -> dict:
    """Verify real outputs, forgeries and laundered copies (see the module docstring).

    The bench set holds each demo photo at 512 px *and* at 1024 px; as outputs of one store, a copy of one
    would rightly be recognised as the other's picture. So the two sizes go to two stores (the crops, look
    outputs and synthetic images with the 512 px ones).
    """
    rng = np.random.default_rng(seed + 7)
    tally: dict = {
        "ok": {a: 0 for a in ATTACK_NAMES}, "verify_ms": [], "stamp_ms": [], "misses": [], "forgeries": 0,
        "accepted": 0, "accepted_pairs": [], "same_picture": [], "forgery_verdicts": {}, "laundered": 0,
        "found": 0, "lost": [],
    }
    for group in ([x for x in images if "@" not in x[0]], [x for x in images if "@" in x[0]]):
        if group:
            _provenance_run(group, rng, tally)
    n = len(images)
    ok = tally["ok"]
    print()
    print(f"| {'verify (real outputs, PNG, no metadata)':<40} | {'verified':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|")
    for a in ATTACK_NAMES:
        print(f"| {a:<40} | {ok[a] / n:>8.3f} |")
    said = ", ".join(f"{v} {k}" for k, v in sorted(tally["forgery_verdicts"].items()))
    print(f"\nforgeries: {tally['accepted']} accepted of {tally['forgeries']} (answers: {said}; `tampered` = the "
          "host is itself an output, whose mark was replaced: the report names that output)")
    if tally["same_picture"]:
        print(f"hosts left out, the victim's picture already (the fingerprint of an unmarked full frame matches): "
              f"{', '.join(tally['same_picture'])}")
    if tally["accepted_pairs"]:
        print(f"accepted forgeries: {', '.join(tally['accepted_pairs'])}")
    lost = ", ".join(tally["lost"])
    print(f"laundered copies found: {tally['found']}/{tally['laundered']}" + (f" (lost: {lost})" if lost else ""))
    print(f"verify misses: {', '.join(tally['misses']) or 'none'}")
    print(f"stamp {statistics.mean(tally['stamp_ms']):.0f} ms/image; verify median "
          f"{statistics.median(tally['verify_ms']):.0f} ms, p95 {np.percentile(tally['verify_ms'], 95):.0f} ms")
    return {
        "forgeries_accepted": tally["accepted"],
        "forgeries_tried": tally["forgeries"],
        "laundered_found": round(tally["found"] / max(1, tally["laundered"]), 4),
        "verified_min_tpr": round(min(ok[a] / n for a in ATTACK_NAMES), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 images, 1 clean variant, no rivaGan: a smoke run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-provenance", action="store_true", help="skip the verify / forgery / laundering part")
    ap.add_argument("--only-provenance", action="store_true", help="only the verify / forgery / laundering part")
    args = ap.parse_args()
    if args.only_provenance:
        print(json.dumps(provenance_bench(build_images(args.quick), args.seed)))
        return
    t0 = time.perf_counter()
    images = build_images(args.quick)
    methods = [ours()]
    if not args.no_baselines:
        for make in (lambda: stock("dwtDct"), lambda: stock("dwtDctSvd"), riva):
            try:
                b = make()
            except Exception as exc:  # noqa: BLE001 - a missing optional baseline is reported, not fatal
                print(f"(baseline skipped: {exc})", file=sys.stderr)
                continue
            if args.quick:
                b.max_images, b.max_clean = 1, 6
                if b.name == "rivaGan":
                    continue
            methods.append(b)
    variants = 1 if args.quick else 4
    print(f"{len(images)} images; attacks: {', '.join(ATTACK_NAMES)}", flush=True)
    rows = []
    for m in methods:
        t = time.perf_counter()
        run_method(m, images, variants, args.seed)
        ms1024 = timing_1024(m, images, 1 if (args.quick or m.name == "rivaGan") else 5)
        s = m.stats
        print(f"  {m.name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        for a in ATTACK_NAMES:
            rows.append(
                (
                    m.name,
                    a,
                    s["n"][a],
                    s["tp"][a] / max(1, s["n"][a]),
                    s["fp"][a],
                    s["nc"][a],
                    float(np.mean(s["bit_acc"][a])) if s["bit_acc"][a] else float("nan"),
                    float(np.mean(s["det_ms"][a])) if s["det_ms"][a] else float("nan"),
                )
            )
        s["ms1024"] = ms1024
    print()
    print(
        f"| {'method':<10} | {'attack':<24} | {'n':>3} | {'TPR':>6} | {'FPR (false/clean)':>18} | "
        f"{'bit acc':>7} | {'detect ms':>9} |"
    )
    print(f"|{'-' * 12}|{'-' * 26}|{'-' * 5}|{'-' * 8}|{'-' * 20}|{'-' * 9}|{'-' * 11}|")
    for name, a, n, tpr, fp, nc, acc, ms in rows:
        fpr = f"{fp / max(1, nc):.4f} ({fp}/{nc})"
        acc_s = "-" if np.isnan(acc) else f"{acc:.3f}"
        print(f"| {name:<10} | {a:<24} | {n:>3} | {tpr:>6.3f} | {fpr:>18} | {acc_s:>7} | {ms:>9.1f} |")
    print()
    print(
        f"| {'method':<10} | {'PSNR mean':>9} | {'PSNR min':>8} | {'refused':>7} | {'clean decodes':>13} | "
        f"{'embed+detect ms @1024²':>22} |"
    )
    print(f"|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 9}|{'-' * 15}|{'-' * 24}|")
    for m in methods:
        s = m.stats
        print(
            f"| {m.name:<10} | {np.mean(s['psnr']):>9.2f} | {np.min(s['psnr']):>8.2f} | {s['refused']:>7} | "
            f"{sum(s['nc'].values()):>13} | {s['ms1024']:>22.1f} |"
        )
    s = methods[0].stats
    total_fp, total_clean = sum(s["fp"].values()), sum(s["nc"].values())
    print(f"\nours: {total_fp} false ids in {total_clean} clean decodes")
    print(f"ours missed: {', '.join(s['misses']) or 'nothing'}; run took {time.perf_counter() - t0:.0f} s")
    summary = {
        "min_tpr": round(min(s["tp"][a] / s["n"][a] for a in ATTACK_NAMES if a != THUMBNAIL), 4),
        "max_fpr": round(max(s["fp"][a] / max(1, s["nc"][a]) for a in ATTACK_NAMES), 5),
        "psnr_db": round(float(np.mean(s["psnr"])), 2),
        "embed_detect_ms_1024": round(s["ms1024"], 1),
        "thumbnail_tpr": round(s["tp"][THUMBNAIL] / s["n"][THUMBNAIL], 4),
    }
    if not args.no_provenance:
        summary |= provenance_bench(images, args.seed)
    print(f"run took {time.perf_counter() - t0:.0f} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
