"""A real store's record ids are random (unguessable from the picture); only a throwaway ``repeatable`` one
derives them from the pixels."""

from __future__ import annotations

from pathlib import Path

from tastemaker.media import load_image, resize_max_side
from tastemaker.provenance.service import Provenance

from ..api.conftest import DEMO

KW = dict(fmt="png", prompt="", profile_hash="0" * 64, engine="look", engine_version="2", seed=1)


def _ids(tmp_path: Path, repeatable: bool) -> list[int]:
    img = resize_max_side(load_image(DEMO / "selfie.jpg"), 256)
    out = []
    for i in range(2):
        prov = Provenance(tmp_path / f"{repeatable}-{i}", secret="x" * 40, repeatable=repeatable)
        prepared = prov.prepare(img, **KW)  # type: ignore[arg-type]
        out.append(prepared.record.record_id)
        prov.discard(prepared)
        prov.close()
    return out


def test_a_real_store_draws_record_ids_at_random(tmp_path: Path) -> None:
    a, b = _ids(tmp_path, repeatable=False)
    assert a != b


def test_a_repeatable_store_derives_them_from_the_pixels(tmp_path: Path) -> None:
    a, b = _ids(tmp_path, repeatable=True)
    assert a == b
