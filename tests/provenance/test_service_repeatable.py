"""A real store's record ids are random (unguessable from the picture); only a throwaway ``repeatable`` one
derives them from the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastemaker.errors import WatermarkTooSmallError
from tastemaker.media import load_image, resize_max_side
from tastemaker.provenance.batch import prepare_many
from tastemaker.provenance.service import Prepared, Provenance

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


def test_prepare_many_gives_every_preparation_back_when_one_fails(tmp_path: Path) -> None:
    """A failed round leaves nothing reserved: in a repeatable store the same pictures get the same ids again
    (a reservation left behind would push them to other ids)."""
    img = resize_max_side(load_image(DEMO / "selfie.jpg"), 256)
    other = np.ascontiguousarray(img[:, ::-1])
    prov = Provenance(tmp_path, secret="x" * 40, repeatable=True)
    first = prepare_many(prov, [img, other], **KW)  # type: ignore[arg-type]
    ids = [p.record.record_id for p in first]
    for p in first:
        prov.discard(p)
    seen: list[int] = []
    with pytest.raises(WatermarkTooSmallError):  # the middle one cannot carry a mark
        prepare_many(prov, [img, np.zeros((16, 16, 3), np.uint8), other], each=lambda i, p: seen.append(i),
                     **KW)  # type: ignore[arg-type]
    assert seen == [0]  # the caller saw the first while the rest were marked, and no more after the failure

    def refuse(i: int, p: Prepared) -> None:
        if i == 1:
            raise RuntimeError("the guard's check failed")

    with pytest.raises(RuntimeError, match="guard"):
        prepare_many(prov, [img, other], each=refuse, **KW)  # type: ignore[arg-type]
    again = prepare_many(prov, [img, other], **KW)  # type: ignore[arg-type]
    assert [p.record.record_id for p in again] == ids
