"""A clip job through the job machinery without a server: a queue worker's render (``log=False``) leaves the clip's
record for the worker to log, next to the image's, and logging it makes the clip verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tastemaker.clips import verify_clip
from tastemaker.engines.base import GenerationRequest
from tastemaker.jobs.tasks import task_generate, unwrap
from tastemaker.pipeline import prepare_subject, provenance_for
from tastemaker.provenance.record import ProvenanceRecord
from tastemaker.taste.profile import TasteProfile


def test_a_queued_clip_job_leaves_its_record_to_the_worker(
    tmp_path: Path, selfie_path: Path, demo_profile: TasteProfile
) -> None:
    subject = prepare_subject([selfie_path])
    request = {**GenerationRequest.create(n=1, size=256, seed=4).model_dump(mode="json"),
               "clip": {"seconds": 1.0, "fps": 24, "format": "mp4"}}
    data_dir = str(tmp_path / "prov")
    (blob,) = unwrap(task_generate("job-1", request, selfie_path.read_bytes(), "me.jpg", subject.face,
                                   subject.identity, demo_profile.to_json(), "look", 0.35, 40_000_000, 50 * 2**20,
                                   sink=lambda *a: None, account_id="acct", data_dir=data_dir, log=False))
    assert blob.clip is not None and blob.clip["entry"]["frames"] == 24 and blob.clip["entry"]["log_index"] == -1
    pending = blob.clip["pending"]
    record = ProvenanceRecord.from_json(pending["record"])
    assert record.clip is not None and record.clip["of"] == blob.record["record_id"]
    prov = provenance_for(data_dir)
    assert verify_clip(prov, blob.clip["data"]).verdict == "not_ours"  # nothing is logged until the worker logs it
    prov.commit_once(record, np.asarray(pending["glob"], np.int8))
    assert verify_clip(prov, blob.clip["data"]).verdict == "verified"
