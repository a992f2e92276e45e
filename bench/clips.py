"""Clips: time to make a 3 s 720p MP4, and how often verify finds its record from a re-encoded copy and one frame.

Twenty pictures from the dev-eval set (/work/shared/data/dev-eval: one photo per face, ten board pictures from
all six looks, so photographs with grain, paintings, line art), each cropped to 1280x720 as an output would be,
each made into a 3 s, 24 fps MP4 clip with its own record (layers, mark, camera, frames, H.264, C2PA) in a
throwaway provenance store. Then:

* ``verify_reencoded_tpr``: the clip decoded, scaled to half size (640x360) and encoded again with libx264 at
  CRF 28 (PyAV, default preset), then ``verify_clip``: verified with the clip's own record id;
* ``verify_frame_tpr``: one frame at a seeded random time, as a PNG, through ``Provenance.verify``;
* FPR: ten clips of other dev-eval pictures (never made into a clip here), rendered the same way but never
  marked: any verdict other than ``not_ours``, or any decoded mark, is a false positive. (An unmarked clip of a
  picture that *was* registered is found by the picture's fingerprint: that is a true positive, not a false one.)

``clip_3s_720p_s`` is the median wall time of ``make_clip`` (target <= 5 s on 2 cores); the table also shows the
CPU time each clip took (all threads: on two idle cores the wall time is about half of it, at most the whole),
the worst wall time and the machine's load average, since this machine is shared.

Run: ``python bench/clips.py [--n 20]``. The last line is the JSON the issue asks for.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from tastemaker.clips import ClipOptions, build_layers, make_clip, render, verify_clip
from tastemaker.clips.codec import decode, encode
from tastemaker.media import encode_image
from tastemaker.provenance.service import Provenance

DEV = Path(os.environ.get("TASTEMAKER_DEV_EVAL", "/work/shared/data/dev-eval"))
W, H = 1280, 720


def pictures(n: int, *, others: bool = False) -> list[tuple[str, np.ndarray]]:
    """``n`` dev-eval pictures cropped to 1280x720 (portraits from their upper part, where the face is); ``others``:
    pictures the first call never returns (each face's second photo, the boards' later pictures)."""
    k = 1 if others else 0
    faces = sorted(p for d in sorted((DEV / "faces").iterdir()) for p in sorted(d.glob("*.jpg"))[k:k + 1])
    boards = sorted((DEV / "boards").iterdir())
    art = [sorted(b.glob("*.jpg"))[j] for j in range(2 + 2 * k) for b in boards if len(list(b.glob("*.jpg"))) > j]
    chosen = (faces[: n // 2] + art[len(boards) * 2 * k:])[:n]
    out = []
    for path in chosen:
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        f = max(W / w, H / h)
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        y0 = 0 if img.shape[0] > img.shape[1] else (img.shape[0] - H) // 2
        x0 = (img.shape[1] - W) // 2
        out.append((path.stem[:28], np.ascontiguousarray(img[y0:y0 + H, x0:x0 + W])))
    return out


def reencode_half(data: bytes, crf: int = 28) -> bytes:
    """The clip at half size, H.264 CRF 28 (what a platform's re-encode does)."""
    buf = io.BytesIO()
    with av.open(io.BytesIO(data), "r") as inp, av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = W // 2, H // 2, "yuv420p"
        for frame in inp.decode(video=0):
            small = cv2.resize(frame.to_ndarray(format="rgb24"), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(small, np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--fpr", type=int, default=10)
    args = ap.parse_args()
    if not DEV.is_dir():
        sys.exit(f"the dev-eval set is not at {DEV} (set TASTEMAKER_DEV_EVAL)")
    options = ClipOptions.create(3, 24, "mp4")
    assert options is not None
    rng = np.random.default_rng(18)
    pics = pictures(args.n)
    rows, times, cpu, re_ok, frame_ok = [], [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        prov = Provenance(tmp)
        make_clip(pics[0][1][:256, :256].copy(), ClipOptions.create(1, 24) or options, provenance=prov, seed=0,
                  profile_hash="w", engine="bench", engine_version="1", of="0000000000")  # warm-up: models, codecs
        print(f"{'picture':28} {'camera':9} {'make s':>6} {'cpu s':>6} {'MB':>5} {'re-enc':>9} {'frame':>9}")
        for k, (name, img) in enumerate(pics):
            t, c = time.perf_counter(), time.process_time()
            clip = make_clip(img, options, provenance=prov, seed=1000 + k, profile_hash="bench", engine="bench",
                             engine_version="1", of=f"{k:010x}")
            dt = time.perf_counter() - t
            times.append(dt)
            cpu.append(time.process_time() - c)
            rid = clip.record.record_id
            rep = verify_clip(prov, reencode_half(clip.data))
            ok_re = rep.verdict == "verified" and rep.record is not None and rep.record.record_id == rid
            frames = [f for _, f in decode(clip.data)]
            single = prov.verify(encode_image(frames[int(rng.integers(len(frames)))], "png"))
            ok_frame = single.verdict == "verified" and single.record is not None and single.record.record_id == rid
            re_ok += ok_re
            frame_ok += ok_frame
            rows.append(dt)
            print(f"{name:28} {clip.camera:9} {dt:6.2f} {cpu[-1]:6.2f} {len(clip.data) / 1e6:5.2f} {rep.verdict:>9} "
                  f"{single.verdict:>9}")
        false = 0
        fpr_opts = ClipOptions.create(1.5, 24, "mp4")
        assert fpr_opts is not None
        for k, (_, img) in enumerate(pictures(args.fpr, others=True)):
            layers = build_layers(img)
            _, it = render(layers, fpr_opts, 7 + k)
            rep = verify_clip(prov, encode(it, "mp4", 24, (W, H)))
            false += rep.verdict != "not_ours" or rep.watermark_id is not None
    n = len(pics)
    load = os.getloadavg()[0]
    print(f"\n{n} clips, 3 s 720p 24 fps MP4: make median {statistics.median(times):.2f} s, worst {max(times):.2f} s "
          f"(load average {load:.1f} on {os.cpu_count()} cores); CPU time median {statistics.median(cpu):.2f} s")
    print(f"verify, half-size CRF 28 copy: {re_ok}/{n}; one frame as PNG: {frame_ok}/{n}; "
          f"never-marked clips verified or carrying a mark: {false}/{args.fpr}")
    print(f"FPR (never-marked clips): {false / max(1, args.fpr):.3f}")
    print(json.dumps({"clip_3s_720p_s": round(statistics.median(times), 2),
                      "verify_reencoded_tpr": round(re_ok / n, 3), "verify_frame_tpr": round(frame_ok / n, 3)}))


if __name__ == "__main__":
    main()
