"""Diffusion engine speed: per-image latency, one-by-one vs a batch of n in one call, per configuration.

With CUDA and a real base (``--base``, e.g. a local SD-Turbo folder) it compares fp32 / fp16 / bf16,
``channels_last`` and ``torch.compile`` (the first call, which compiles, is timed apart as warm-up). Without
a GPU or a base it runs the tiny random models (``build_tiny_models``) on the CPU, so the script itself is
tested (``--quick``); those numbers measure overhead, not image quality or a real model's speed.

Everything is warm (weights loaded, one warm-up call) and each figure is the median of ``--repeats`` runs.
The subject is identity-only (text-to-image) unless ``--img2img``; the style prototype comes from the demo
board embedded with the configured CLIP encoder.

Run: python bench/diffusion.py [--base DIR --image-encoder DIR --styleembed DIR] [--n 4] [--steps 2]
                               [--compile] [--channels-last] [--dtype auto|float32|float16|bfloat16] [--quick]
Last line: {"device": ..., "per_image_single_s": ..., "per_image_batch_s": ..., "batch_speedup": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.boards import load_board
from tastemaker.encoders.identity import IdentityEmbedding
from tastemaker.engines.base import GenerationRequest, IdentitySubject
from tastemaker.prompt import parse_prompt
from tastemaker.taste.profile import build_profile

DEMO = Path(__file__).resolve().parents[1] / "src" / "tastemaker" / "data" / "demo"


def _median(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_config(paths: dict[str, Any], label: str, args: argparse.Namespace, **engine_kw: Any) -> dict[str, Any]:
    import torch

    from tastemaker.engines.diffusion import DiffusionEngine
    from tastemaker.pipeline import prepare_subject

    t = time.perf_counter()
    eng = DiffusionEngine(**paths, steps=args.steps, img2img=args.img2img, **engine_kw)
    load_s = time.perf_counter() - t
    board = load_board(DEMO / "board")
    profile = build_profile(board)
    eng.prepare_board(board, profile)
    if args.img2img:
        subject: Any = prepare_subject([DEMO / "selfie.jpg"])
    else:
        subject = IdentitySubject(identity=IdentityEmbedding(vector=np.full(128, 0.05)))
    req = GenerationRequest(n=args.n, size=args.size, aspect="1:1", seed=1)
    intent = parse_prompt(req.prompt, [(m.id, m.text, m.weight) for m in profile.modes], None)
    plans = eng.plan(req, subject, profile, intent)

    def sync() -> None:
        if eng.device.startswith("cuda"):
            torch.cuda.synchronize()

    def batch() -> None:
        eng.render(plans, subject, profile, req, hold=[0.0] * len(plans))
        sync()

    def singles() -> None:
        for p in plans:
            eng.render([p], subject, profile, req, hold=[0.0])
        sync()

    t = time.perf_counter()
    batch()  # warm-up (and compilation with --compile)
    warm_s = time.perf_counter() - t
    singles()
    single_s = _median(singles, args.repeats) / len(plans)
    batch_s = _median(batch, args.repeats) / len(plans)
    return {
        "config": label,
        "device": eng.device,
        "dtype": str(eng.dtype).replace("torch.", ""),
        "gen_side": eng.gen_side,
        "load_s": load_s,
        "warmup_s": warm_s,
        "per_image_single_s": single_s,
        "per_image_batch_s": batch_s,
        "batch_speedup": single_s / batch_s if batch_s > 0 else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path)
    ap.add_argument("--image-encoder", type=Path)
    ap.add_argument("--styleembed", type=Path)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--img2img", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny models on the CPU, n=2, 1 repeat: a smoke run")
    args = ap.parse_args()

    import torch

    from tastemaker.engines.diffusion import build_tiny_models

    cuda = torch.cuda.is_available()
    tmp = None
    if args.quick:
        args.n, args.repeats, args.size = 2, 1, 256
    if args.base is None:
        tmp = tempfile.TemporaryDirectory(prefix="tastemaker-bench-")
        tiny = build_tiny_models(tmp.name)
        args.base, args.image_encoder, args.styleembed = tiny.base, tiny.image_encoder, tiny.styleembed
        kind = "tiny random models"
    else:
        kind = f"base {args.base.name}"
    paths = {"base": args.base, "image_encoder": args.image_encoder, "styleembed": args.styleembed}
    configs: list[tuple[str, dict[str, Any]]] = [(f"{args.dtype}", {"dtype": args.dtype})]
    if cuda and not args.quick:
        configs = [("float32", {"dtype": "float32"}), ("float16", {"dtype": "float16"})]
        if torch.cuda.is_bf16_supported():
            configs.append(("bfloat16", {"dtype": "bfloat16"}))
        configs.append(("float16 + channels_last", {"dtype": "float16", "channels_last": True}))
        if args.compile:
            configs.append(("float16 + channels_last + compile",
                            {"dtype": "float16", "channels_last": True, "compile": True}))
    elif args.channels_last or args.compile:
        configs.append(("with options", {"dtype": args.dtype, "channels_last": args.channels_last,
                                         "compile": args.compile}))
    try:
        rows = [bench_config(paths, label, args, **kw) for label, kw in configs]
    finally:
        if tmp is not None:
            tmp.cleanup()

    print(f"Diffusion engine · {kind} · n={args.n} · steps={args.steps} · output {args.size}px · "
          f"{'img2img' if args.img2img else 'text-to-image'} · torch {torch.__version__} · "
          f"{'CUDA ' + torch.cuda.get_device_name() if cuda else 'CPU, ' + str(torch.get_num_threads()) + ' threads'}")
    head = f"{'config':<36} {'device':<7} {'dtype':<9} {'gen px':>6} {'load s':>7} {'warm-up s':>9} " \
           f"{'1-by-1 s/img':>12} {'batch s/img':>11} {'speed-up':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['config']:<36} {r['device']:<7} {r['dtype']:<9} {r['gen_side']:>6} {r['load_s']:>7.2f} "
              f"{r['warmup_s']:>9.2f} {r['per_image_single_s']:>12.4f} {r['per_image_batch_s']:>11.4f} "
              f"{r['batch_speedup']:>7.2f}x")
    best = min(rows, key=lambda r: r["per_image_batch_s"])
    print(json.dumps({
        "device": best["device"],
        "model": "tiny" if kind.startswith("tiny") else str(args.base.name),
        "best_config": best["config"],
        "n": args.n,
        "steps": args.steps,
        "per_image_single_s": round(best["per_image_single_s"], 4),
        "per_image_batch_s": round(best["per_image_batch_s"], 4),
        "batch_speedup": round(best["batch_speedup"], 3),
    }))


if __name__ == "__main__":
    main()
