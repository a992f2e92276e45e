"""bench/watermark.py --quick runs end to end and ends with the summary JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "watermark.py"


def test_bench_quick_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) == {
        "min_tpr", "max_fpr", "psnr_db", "embed_detect_ms_1024", "thumbnail_tpr",
        "forgeries_accepted", "forgeries_tried", "laundered_found", "verified_min_tpr",
    }
    assert summary["min_tpr"] == 1.0 and summary["max_fpr"] == 0.0 and summary["psnr_db"] >= 38.0
    assert summary["forgeries_accepted"] == 0 and summary["forgeries_tried"] > 0
    assert summary["laundered_found"] == 1.0 and summary["verified_min_tpr"] == 1.0
    assert "| tastemaker |" in out and "| rotate5" in out
