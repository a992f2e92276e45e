"""The pieces queue mode stands on, on both database backends: a job's lease (claim, renewal, takeover only after
it runs out, fenced moves), its sealed input, staged outputs, and provenance records logged once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tastemaker.audit import AuditLog
from tastemaker.errors import StoreError
from tastemaker.jobs.sealed import seal, unseal
from tastemaker.jobs.state import JobStates
from tastemaker.provenance.service import Provenance
from tastemaker.store import SqlStore
from tastemaker.store import records as r

SECRET = "s" * 40


def new_job(store: SqlStore) -> r.Job:
    with store.session() as s:
        account = s.create_account("a", "free")
        job = s.create_job(account_id=account.id, board_id=None, request={"n": 1}, n_images=1, profile_hash="p" * 64,
                           selfie_sha256="0" * 64, usage_period="2026-12")
        s.put_job_input(job.id, seal(SECRET, job.id, {"selfie": b"face"}))
        s.commit()
    return job


def load(store: SqlStore, job_id: str) -> r.Job:
    with store.session() as s:
        job = s.load_job(job_id)
    assert job is not None
    return job


def test_a_lease_is_taken_once_renewed_by_its_holder_and_taken_over_only_when_it_ran_out(store: SqlStore) -> None:
    job = new_job(store)
    now = r.utcnow()
    with store.session() as s:
        first, second = load(store, job.id), load(store, job.id)
        assert s.lease_job(first, "w1", now=now, until=now + timedelta(seconds=30))
        assert first.status == r.RUNNING and first.lease_owner == "w1" and first.attempts == 1
        assert not s.lease_job(second, "w2", now=now, until=now + timedelta(seconds=30))  # w1 won the race
        s.commit()
    live = load(store, job.id)
    with store.session() as s:
        assert not s.lease_job(live, "w2", now=now + timedelta(seconds=10), until=now + timedelta(seconds=40))
        assert s.renew_lease(job.id, "w1", now + timedelta(seconds=60))
        assert not s.renew_lease(job.id, "w2", now + timedelta(seconds=60))
        s.commit()
    later = now + timedelta(seconds=61)
    with store.session() as s:
        stale = load(store, job.id)
        assert s.unattended_jobs(queued_before=now, lease_ended_by=later) == [job.id]
        assert s.lease_job(stale, "w2", now=later, until=later + timedelta(seconds=30))  # w1 died: taken over
        assert stale.attempts == 2 and stale.lease_owner == "w2"
        s.commit()
    with store.session() as s:  # the old holder's moves are fenced off now
        assert not s.renew_lease(job.id, "w1", later + timedelta(seconds=60))
        assert not s.stage_outputs(job.id, "w1", [{"k": 0}])
        assert not s.move_job(load(store, job.id), r.FAILED, held_by="w1", finished_at=later)
        assert s.stage_outputs(job.id, "w2", [{"k": 0}])
        s.commit()
    assert load(store, job.id).staged == [{"k": 0}]


def test_ending_a_job_drops_its_sealed_input_and_frees_its_quota_once(store: SqlStore) -> None:
    job = new_job(store)
    states = JobStates(store, AuditLog(SECRET))
    with store.session() as s:
        assert s.reserve_images(job.account_id, "2026-12", 1, 10)
        sealed = s.job_input(job.id)
        s.commit()
    assert sealed is not None and b"face" not in sealed  # encrypted at rest
    assert unseal(SECRET, job.id, sealed) == {"selfie": b"face"}
    with pytest.raises(StoreError):
        unseal(SECRET, "gen_other", sealed)  # bound to its job
    with pytest.raises(StoreError):
        unseal("t" * 40, job.id, sealed)  # and to the deployment's secret
    now = r.utcnow()
    with store.session() as s:
        assert s.lease_job(load(store, job.id), "w1", now=now, until=now + timedelta(seconds=30))
        s.commit()
    states.fail(job.id, "worker_crashed", "x", held_by="w2")  # not its holder: nothing happens
    assert load(store, job.id).status == r.RUNNING
    states.fail(job.id, "worker_crashed", "x", held_by="w1")
    states.fail(job.id, "worker_crashed", "x", held_by="w1")
    with store.session() as s:
        assert s.job_input(job.id) is None and s.get_usage(job.account_id, "2026-12").images == 0
    assert not states.succeed_staged(job.id, [], held_by="w1")  # ended: a late success changes nothing
    assert load(store, job.id).status == r.FAILED


def test_a_record_logged_once_is_not_logged_again(tmp_path: Path) -> None:
    prov = Provenance(tmp_path, secret=SECRET)
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (256, 256, 3)), 0, 255).astype(np.uint8)
    prepared = prov.prepare(pixels, fmt="png", prompt="", profile_hash="p" * 64, engine="look", engine_version="1",
                            seed=1)
    first = prov.commit_once(prepared.record, prepared.glob)
    assert prov.commit_once(prepared.record, prepared.glob) == first  # the takeover after a crash
    assert prov.ledger.size == 1
