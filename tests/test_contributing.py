"""CONTRIBUTING.md's examples run as written: the ten-line engine generates through the whole pipeline, and
the in-memory blob store does what the BlobStore protocol says and plugs into the SQL store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEMO, ROOT


def snippet(heading: str) -> str:
    """The first python block under ``## heading`` in CONTRIBUTING.md."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, f"no python block under '## {heading}'"
    return block.group(1)


def test_the_engine_example_generates_through_the_pipeline(tmp_path: Path) -> None:
    from tastemaker import GenerationRequest, build_profile, create_engine, generate, list_engines, load_board
    from tastemaker.pipeline import provenance_for

    scope: dict[str, Any] = {}
    exec(snippet("Add an engine"), scope)  # noqa: S102 - the documentation's own code
    assert "sepia" in list_engines()
    engine = create_engine("sepia")
    profile = build_profile(load_board(DEMO / "board"))
    result = generate(GenerationRequest(n=2, size=256, seed=3), selfies=[DEMO / "selfie.jpg"], profile=profile,
                      engine=engine, provenance=provenance_for(tmp_path))
    assert len(result.images) == 2
    for img in result.images:
        r, g, b = (img.pixels[..., c].astype(float) for c in range(3))
        assert r.mean() > g.mean() > b.mean() + 10  # sepia (the watermark moves single pixels a level or two)
        assert img.identity_distance is not None and img.identity_distance < 0.6  # the guard checked it


def test_the_blob_store_example_keeps_the_protocol(tmp_path: Path) -> None:
    from tastemaker.errors import BlobMissingError

    scope: dict[str, Any] = {}
    exec(snippet("Add a store"), scope)  # noqa: S102 - the documentation's own code
    blobs = scope["MemoryBlobStore"]()
    sha = blobs.put(b"pin bytes")
    assert blobs.put(b"pin bytes") == sha and blobs.exists(sha)
    assert blobs.get(sha) == b"pin bytes" and blobs.open(sha).read() == b"pin bytes"
    with blobs.lock:
        assert blobs.delete(sha) and not blobs.delete(sha)
    with pytest.raises(BlobMissingError):
        blobs.get(sha)
    pytest.importorskip("sqlalchemy")
    from tastemaker.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'tm.db'}", blobs)
    try:
        assert store.blobs is blobs
    finally:
        store.dispose()
