"""Metric building blocks: intervals, attribution, diversity, the random-Gram descriptor, memory."""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from tastemaker.eval import metrics as M
from tastemaker.eval.descriptors import board_distance, gram_descriptor

from ..conftest import neon_image
from .conftest import sepia_image


def test_mean_ci_matches_student_t() -> None:
    r = M.mean_ci([1.0, 2.0, 3.0, None, float("nan")])
    assert r["n"] == 3 and r["mean"] == pytest.approx(2.0) and r["std"] == pytest.approx(1.0)
    # t(0.975, 2) = 4.302653: half width 4.302653 * 1 / sqrt(3)
    assert r["ci95"] == pytest.approx([2 - 2.484138, 2 + 2.484138], abs=1e-5)
    assert M.mean_ci([]) == {"mean": None, "std": None, "ci95": None, "n": 0}
    assert M.mean_ci([0.5])["ci95"] is None


def test_rate_ci_is_wilson() -> None:
    r = M.rate_ci([True, True, False, None])
    assert (r["k"], r["n"]) == (2, 3) and r["rate"] == pytest.approx(2 / 3)
    assert r["ci95"] == pytest.approx([0.2077, 0.9385], abs=1e-3)
    all_ok = M.rate_ci([True] * 4)
    assert all_ok["rate"] == 1.0 and all_ok["ci95"][1] == 1.0 and all_ok["ci95"][0] == pytest.approx(0.5101, abs=1e-3)
    assert M.rate_ci([False] * 4)["ci95"][0] == 0.0


def test_attribution_and_margin() -> None:
    a = M.attribution({"x": 0.2, "y": 0.5, "z": 0.4}, own="x")
    assert a == {"attributed_board": "x", "attribution_correct": True, "attribution_margin": pytest.approx(0.2)}
    b = M.attribution({"x": 0.6, "y": 0.5}, own="x")
    assert not b["attribution_correct"] and b["attribution_margin"] == pytest.approx(-0.1)


def test_diversity_flags_near_duplicates_only() -> None:
    a, b = neon_image(1), neon_image(2)
    same = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)  # off by one level: a duplicate
    d = M.diversity([a, same, b])
    assert d["pairs"] == 3 and d["near_duplicate_pairs"] == [[0, 1]]
    assert d["diversity_delta_e"] > 2.0 and d["diversity_gram"] > 0
    assert M.diversity([a])["diversity_delta_e"] is None


def test_gram_descriptor_is_fixed_and_tells_boards_apart() -> None:
    img = neon_image(3)
    g = gram_descriptor(img)
    assert g.shape == (602,) and np.array_equal(g, gram_descriptor(img.copy()))
    neon = np.stack([gram_descriptor(neon_image(s)) for s in range(10, 16)])
    sepia = np.stack([gram_descriptor(sepia_image(s)) for s in range(10, 16)])
    # held-out images of each look are nearer their own board than the other one
    for s in range(20, 23):
        g_neon, g_sepia = gram_descriptor(neon_image(s)), gram_descriptor(sepia_image(s))
        assert board_distance(g_neon, neon) < board_distance(g_neon, sepia)
        assert board_distance(g_sepia, sepia) < board_distance(g_sepia, neon)
    # tiny and odd-shaped images work too
    assert np.isfinite(gram_descriptor(np.zeros((3, 40, 3), np.uint8))).all()


def test_peak_rss_can_be_reset_per_stage() -> None:
    if not M.reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs here")
    before = M.peak_rss_mb()
    # A fresh anonymous mapping, every page written: 48 MB that must become resident (a NumPy array could
    # be served from memory the allocator already holds). Small pages: Linux flushes a thread's cached RSS
    # count every 64 page faults, and with 2 MB transparent huge pages 48 MB is only 24 faults.
    size = 48 * 2**20
    big = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        big.madvise(mmap.MADV_NOHUGEPAGE)
    for off in range(0, size, mmap.PAGESIZE):
        big[off] = 1
    during = M.peak_rss_mb()
    big.close()
    assert during >= before + 30
    M.reset_peak_rss()
    assert M.peak_rss_mb() < during - 20
    assert M.rss_mb() > 10
