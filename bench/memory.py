"""Memory: resident set size of the loaded engine and peak RSS of one generate call, each in a fresh process.

Every measurement runs in its own subprocess (this script re-invoked with ``--child``), so one
measurement's allocations and caches never leak into another's. Figures come from Linux's
``/proc/self/status`` (VmRSS = resident now, VmHWM = peak); the peak mark is reset with
``/proc/self/clear_refs`` before the call being measured.

* ``import``   — ``import tastemaker`` (numpy, OpenCV, Pillow, pydantic...): the floor;
* ``engine``   — the engine ready to serve: dlib models, the demo profile, the selfie prepared and one
  256 px variation rendered so MediaPipe's segmentation model is loaded; then the peak of one warm
  ``generate`` call (4 variations, 1024 px, identity guard in-process) — the process total at its
  peak, and how far it rose above the loaded engine;
* ``cold``     — a fresh process doing everything at once: load, then one generate call (peak);
* ``workers``  — the same call with dlib's own descriptor runner (``TASTEMAKER_FACE_NET=dlib``, the
  fallback) in the guard's 2 worker processes: each worker's peak RSS (each holds its own copy of
  dlib's models; copy-on-write does not apply to spawned processes). The default NumPy runner embeds
  in-process and starts no workers.

Run: python bench/memory.py [--size 1024] [--n 4]
Last line: {"generate_peak_rss_mb": ..., "engine_loaded_rss_mb": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parents[1] / "src" / "tastemaker" / "data" / "demo"


def _status(pid: str = "self") -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child(mode: str, size: int, n: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    if mode == "import":
        import tastemaker  # noqa: F401

        s = _status()
        return {"rss_mb": s["VmRSS"], "peak_mb": s["VmHWM"]}

    from tastemaker.boards import load_board
    from tastemaker.engines import create_engine
    from tastemaker.engines.base import GenerationRequest
    from tastemaker.pipeline import generate, prepare_subject
    from tastemaker.taste.profile import build_profile

    req = GenerationRequest(n=n, size=size, aspect="4:5", seed=1)
    workers = 2 if mode == "workers" else 0
    if mode == "cold":
        _reset_peak()
        generate(req, selfies=[DEMO / "selfie.jpg"], board=load_board(DEMO / "board"), guard_workers=0)
        return {"peak_mb": _status()["VmHWM"]}

    profile = build_profile(load_board(DEMO / "board"))
    subject = prepare_subject([DEMO / "selfie.jpg"])
    engine = create_engine("look")
    generate(GenerationRequest(n=1, size=256, seed=0), subject=subject, profile=profile, engine=engine,
             guard_workers=workers)
    loaded = _status()["VmRSS"]
    _reset_peak()
    generate(req, subject=subject, profile=profile, engine=engine, guard_workers=workers)
    s = _status()
    out: dict[str, Any] = {"loaded_mb": loaded, "peak_mb": s["VmHWM"], "after_mb": s["VmRSS"]}
    if workers:
        import multiprocessing

        out["worker_peaks_mb"] = [_status(str(p.pid))["VmHWM"] for p in multiprocessing.active_children()]
    return out


def measure(mode: str, size: int, n: int) -> dict[str, Any]:
    """Run one child process and read its JSON answer (its last stdout line)."""
    env = {**os.environ, **({"TASTEMAKER_FACE_NET": "dlib"} if mode == "workers" else {})}
    res = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--size", str(size), "-n", str(n)],
        capture_output=True, text=True, check=False, env=env,
    )
    if res.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", default=None)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("-n", type=int, default=4)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.n)))
        return
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("bench/memory.py reads Linux /proc; run it on Linux")

    imp = measure("import", args.size, args.n)
    eng = measure("engine", args.size, args.n)
    cold = measure("cold", args.size, args.n)
    wrk = measure("workers", args.size, args.n)
    out_mb = args.n * args.size * (args.size * 4 // 5) * 3 / 2**20
    rows = [
        ("import tastemaker (RSS)", imp["rss_mb"]),
        ("engine loaded: models + profile + selfie (RSS)", eng["loaded_mb"]),
        (f"one warm generate, n={args.n} at {args.size} px: peak RSS", eng["peak_mb"]),
        ("  rise above the loaded engine", eng["peak_mb"] - eng["loaded_mb"]),
        ("  RSS after the call", eng["after_mb"]),
        ("cold process, load + one generate: peak RSS", cold["peak_mb"]),
        ("same call, dlib's runner on 2 workers: main peak", wrk["peak_mb"]),
        *[(f"  guard worker {i + 1} peak RSS", v) for i, v in enumerate(wrk.get("worker_peaks_mb", []))],
        (f"for scale: the {args.n} output images as uint8", out_mb),
    ]
    print("Tastemaker memory, look engine, demo selfie + board (each row group in a fresh process)")
    print(f"{'measure':<56}{'MB':>9}")
    print("-" * 65)
    for name, v in rows:
        print(f"{name:<56}{v:>9.0f}")
    print(f"{'ratio: generate peak rise / output pixels':<56}{(eng['peak_mb'] - eng['loaded_mb']) / out_mb:>8.1f}x")
    workers = wrk.get("worker_peaks_mb", [])
    print(json.dumps({
        "generate_peak_rss_mb": round(eng["peak_mb"], 1),
        "engine_loaded_rss_mb": round(eng["loaded_mb"], 1),
        "generate_rise_mb": round(eng["peak_mb"] - eng["loaded_mb"], 1),
        "cold_generate_peak_rss_mb": round(cold["peak_mb"], 1),
        "import_rss_mb": round(imp["rss_mb"], 1),
        "guard_worker_peak_rss_mb": round(max(workers), 1) if workers else None,
    }))


if __name__ == "__main__":
    main()
