"""bench/diffusion.py --quick runs the tiny models end to end and ends with its summary JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import require

require()

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench" / "diffusion.py"


def test_bench_quick_smoke() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}  # this checkout's package
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--steps", "1"], capture_output=True, text=True,
                         timeout=300, check=True, env=env)
    lines = out.stdout.strip().splitlines()
    assert "batch s/img" in out.stdout
    summary = json.loads(lines[-1])
    assert summary["device"] == "cpu" and summary["model"] == "tiny" and summary["per_image_batch_s"] > 0
