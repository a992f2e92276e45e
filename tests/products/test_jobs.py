"""A product job through the job machinery without a server: the admission marker survives the queue's sealing,
and a queue worker's render (``log=False``) leaves every image's record for the worker to log."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tastemaker.engines.base import GenerationRequest
from tastemaker.jobs.product_tasks import ProductSubject, prepare_product
from tastemaker.jobs.sealed import seal, unseal
from tastemaker.jobs.tasks import task_generate, unwrap
from tastemaker.products.samples import make_shot
from tastemaker.taste.profile import TasteProfile


def test_a_queued_product_job(tmp_path: Path, demo_profile: TasteProfile) -> None:
    buf = io.BytesIO()
    Image.fromarray(make_shot(6, size=256).image).save(buf, "PNG")
    photo = buf.getvalue()
    marker = prepare_product(photo, "p.png", 40_000_000, 50 * 2**20, False)
    assert isinstance(marker, ProductSubject) and marker.source == "grabcut"
    secret = "s" * 40
    assert unseal(secret, "job-1", seal(secret, "job-1", marker)) == marker
    request = GenerationRequest.create(n=1, size=256, seed=2).model_dump(mode="json")
    blobs = unwrap(task_generate("job-1", request, photo, "p.png", marker, None, demo_profile.to_json(), "look", 0.35,
                                 40_000_000, 50 * 2**20, sink=lambda *a: None, account_id="acct",
                                 data_dir=str(tmp_path / "prov"), log=False))
    (blob,) = blobs
    assert blob.record["subject"] == "product" and blob.record["fidelity"]["passed"]
    assert blob.pending is not None and '"engine":"look-product"' in blob.pending["record"]
