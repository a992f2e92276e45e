"""The store contract, run against every backend (SQLite, and PostgreSQL when available).

One class, parametrised through the ``store`` fixture: the same assertions must hold on both.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from tastemaker.audit import AuditLog
from tastemaker.boards import Pin
from tastemaker.errors import NotFoundError, StoreError
from tastemaker.store import BlobStore, Store, repo, sha256_hex
from tastemaker.store.migrate import current_revision, downgrade, head_revision, upgrade
from tastemaker.store.models import AuditEntry, Base, Job, PinRecord, utcnow

SECRET = "s" * 40


def new_pin(name: str, data: bytes, **kw: object) -> repo.NewPin:
    return repo.NewPin(pin=replace(Pin(image=name, **kw), sha256=sha256_hex(data)), byte_size=len(data))  # type: ignore[arg-type]


class TestStoreContract:
    # ------------------------------------------------------------------ migrations are code, and tested
    def test_migrated_schema_equals_the_models(self, store: Store) -> None:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        tables = set(inspect(store.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

    def test_profile_versions_migration_steps(self, store: Store) -> None:
        assert downgrade(store.engine, "0001") == "0001"
        assert "profile_versions" not in inspect(store.engine).get_table_names()
        assert "boards" in inspect(store.engine).get_table_names()
        assert upgrade(store.engine) == head_revision() == "0003"
        assert "profile_versions" in inspect(store.engine).get_table_names()

    def test_existing_keys_keep_every_scope_through_the_scopes_migration(self, store: Store) -> None:
        from sqlalchemy import text

        from tastemaker.api.keys import SCOPES

        assert downgrade(store.engine, "0002") == "0002"
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts (id, name, tier, created_at) VALUES ('acc_1', 'a', 'free', :t)"),
                         {"t": utcnow()})
            conn.execute(
                text("INSERT INTO api_keys (id, account_id, name, prefix, key_hash, created_at) "
                     "VALUES ('key_1', 'acc_1', 'old', 'tm_abcdefgh', :h, :t)"),
                {"h": "cd" * 32, "t": utcnow()},
            )
            conn.execute(text("INSERT INTO boards (id, account_id, name, revision, created_at, updated_at, "
                              "profile_revision, profile_hash, styleembed_json) VALUES ('brd_1', 'acc_1', 'b', 1, "
                              ":t, :t, 1, 'h', '{\"profile_hash\": \"exact\"}')"), {"t": utcnow()})
        assert upgrade(store.engine) == "0003"
        with store.session() as s:
            key = repo.find_key(s, "cd" * 32)
            assert key is not None and key.scopes.split() == list(SCOPES)
            assert repo.read_board_profile(s, "brd_1").styleembed_json is None  # type: ignore[union-attr]

    def test_downgrade_and_upgrade_round_trip(self, store: Store) -> None:
        assert downgrade(store.engine, "base") is None
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert upgrade(store.engine) == head_revision()
        store.check_schema()

    # ------------------------------------------------------------------ accounts and keys
    def test_keys_are_found_by_hash_only(self, store: Store) -> None:
        with store.session() as s:
            acc = repo.create_account(s, "a", "free")
            s.flush()
            key = repo.add_key(s, acc, name="k", key_hash="ab" * 32, prefix="tm_abcdefgh")
            s.commit()
            found = repo.find_key(s, "ab" * 32)
            assert found is not None and found.id == key.id and found.account.name == "a"
            assert repo.find_key(s, "cd" * 32) is None

    # ------------------------------------------------------------------ boards, pins, tenancy
    def test_board_pins_revision_and_tenancy(self, store: Store) -> None:
        with store.session() as s:
            a, b = repo.create_account(s, "a", "free"), repo.create_account(s, "b", "free")
            s.flush()
            board = repo.create_board(s, a.id, "mine", [new_pin("x.jpg", b"x", saves=3), new_pin("y.jpg", b"y")])
            s.commit()
            assert [p.image for p in board.pins] == ["x.jpg", "y.jpg"] and board.revision == 1
            assert board.pins[0].saves == 3
            with pytest.raises(NotFoundError):
                repo.get_board(s, b.id, board.id)  # another account: not found, not forbidden
            assert repo.owner_of(s, type(board), board.id) == a.id
            added, skipped = repo.add_pins(s, board, [new_pin("z.jpg", b"z"), new_pin("again.jpg", b"x")])
            s.commit()
            assert [p.image for p in added] == ["z.jpg"] and [p.pin.image for p in skipped] == ["again.jpg"]
            fresh = repo.get_board(s, a.id, board.id, with_pins=True)
            assert fresh.revision == 2 and [p.position for p in fresh.pins] == [0, 1, 2]
            # a profile built from revision 1 is not cached over revision 2
            assert not repo.save_profile(
                s, fresh, revision=1, profile_json="{}", profile_hash="h", styleembed_json="{}"
            )
            assert repo.save_profile(s, fresh, revision=2, profile_json="{}", profile_hash="h", styleembed_json="{}")
            # a racing build of the same revision never overwrites it (it may have taken feedback since)
            assert not repo.save_profile(
                s, fresh, revision=2, profile_json="{}", profile_hash="h2", styleembed_json="{}"
            )
            assert repo.set_board_profile(
                s, fresh.id, revision=2, profile_json="{}", profile_hash="h3", styleembed_json=""
            )
            assert not repo.set_board_profile(
                s, fresh.id, revision=1, profile_json="{}", profile_hash="h4", styleembed_json=""
            )
            assert repo.read_board_profile(s, fresh.id) == repo.BoardProfile(2, 2, "h3", "{}", "")

    def test_delete_board_cascades_and_reports_unreferenced_blobs(self, store: Store) -> None:
        with store.session() as s:
            a, b = repo.create_account(s, "a", "free"), repo.create_account(s, "b", "free")
            s.flush()
            mine = repo.create_board(s, a.id, "mine", [new_pin("x.jpg", b"x"), new_pin("shared.jpg", b"shared")])
            repo.create_board(s, b.id, "theirs", [new_pin("s.jpg", b"shared")])
            job = repo.create_job(
                s,
                account_id=a.id,
                board_id=mine.id,
                request={},
                n_images=1,
                profile_hash="p",
                selfie_sha256="f",
                usage_period="2026-01",
            )
            s.commit()
            shas = repo.delete_board(s, mine)
            s.commit()
            assert s.scalars(select(PinRecord).where(PinRecord.board_id == mine.id)).all() == []
            assert s.get(Job, job.id).board_id is None  # type: ignore[union-attr]
            assert repo.unreferenced(s, shas) == [sha256_hex(b"x")]  # the shared image stays

    # ------------------------------------------------------------------ jobs
    def test_job_state_machine(self, store: Store) -> None:
        with store.session() as s:
            a = repo.create_account(s, "a", "free")
            s.flush()
            job = repo.create_job(
                s,
                account_id=a.id,
                board_id=None,
                request={"n": 1},
                n_images=1,
                profile_hash="p",
                selfie_sha256="f",
                usage_period="2026-01",
            )
            s.commit()
            with pytest.raises(StoreError):
                repo.move_job(s, job, repo.SUCCEEDED)  # queued -> succeeded skips running
            assert repo.move_job(s, job, repo.RUNNING, started_at=utcnow())
            s.commit()
            # a stale copy (another actor moved it) loses the race instead of overwriting
            with store.session() as s2:
                stale = repo.load_job(s2, job.id)
                assert stale is not None
                assert repo.move_job(s, job, repo.FAILED, error_code="x", finished_at=utcnow())
                s.commit()
                stale.status = repo.RUNNING
                assert not repo.move_job(s2, stale, repo.SUCCEEDED)
                assert stale.status == repo.FAILED
            with pytest.raises(StoreError):
                repo.move_job(s, job, repo.RUNNING)  # terminal states are final
            assert repo.count_active_jobs(s, a.id) == 0

    # ------------------------------------------------------------------ quota
    def test_quota_reservation_is_atomic_under_concurrency(self, store: Store) -> None:
        with store.session() as s:
            acc = repo.create_account(s, "a", "free")
            s.commit()
            account_id = acc.id
        results: list[bool] = []
        lock = threading.Lock()

        def reserve() -> None:
            with store.session() as s:
                ok = repo.reserve_images(s, account_id, "2026-01", 1, quota=5)
                s.commit()
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=reserve) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 7 + [True] * 5
        with store.session() as s:
            assert repo.get_usage(s, account_id, "2026-01").images == 5
            repo.release_images(s, account_id, "2026-01", 2)
            s.commit()
            assert repo.get_usage(s, account_id, "2026-01").images == 3
            repo.release_images(s, account_id, "2026-01", 10)  # never below zero
            s.commit()
            assert repo.get_usage(s, account_id, "2026-01").images == 0

    # ------------------------------------------------------------------ idempotency keys
    def test_idempotency_key_lifecycle(self, store: Store) -> None:
        ttl = timedelta(hours=1)
        with store.session() as s:
            acc = repo.create_account(s, "a", "free")
            s.commit()
            kw = dict(account_id=acc.id, key="k1", endpoint="POST /x", fingerprint="f1", ttl=ttl)
            assert repo.claim_idempotency_key(s, **kw) is None  # type: ignore[arg-type]
            again = repo.claim_idempotency_key(s, **kw)  # type: ignore[arg-type]
            assert again is not None and again.state == repo.IN_PROGRESS
            repo.finish_idempotency_key(s, acc.id, "k1", status=201, body={"id": 1}, resource_id="r1")
            s.commit()
            done = repo.claim_idempotency_key(s, **kw)  # type: ignore[arg-type]
            assert done is not None and done.state == repo.DONE and done.response_body == {"id": 1}
            repo.release_idempotency_key(s, acc.id, "k1")
            s.commit()
            assert repo.claim_idempotency_key(s, **kw) is None  # released: claimable again
            expired = dict(kw, key="k2", ttl=timedelta(seconds=-1))
            assert repo.claim_idempotency_key(s, **expired) is None  # type: ignore[arg-type]
            assert repo.claim_idempotency_key(s, **dict(kw, key="k2")) is None  # type: ignore[arg-type]

    # ------------------------------------------------------------------ audit chain
    def test_concurrent_audit_appends_keep_one_chain(self, store: Store) -> None:
        log = AuditLog(SECRET)

        def append(i: int) -> None:
            for j in range(5):
                with store.session() as s:
                    log.append(s, "test", objects={"i": i, "j": j})
                    s.commit()

        threads = [threading.Thread(target=append, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with store.session() as s:
            report = log.verify(s)
            assert report.ok, report.problems
            assert report.entries == 20 and report.head_seq == 20
            seqs = list(s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
            assert seqs == list(range(1, 21))


def test_blob_store_is_content_addressed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put(b"hello")
    assert sha == sha256_hex(b"hello") and blobs.get(sha) == b"hello"
    assert blobs.put(b"hello") == sha and list(blobs.digests()) == [sha]
    assert blobs.path(sha).parent.parent.parent == tmp_path
    with pytest.raises(StoreError):
        blobs.path("../../etc/passwd")
    assert blobs.delete(sha) and not blobs.exists(sha) and not blobs.delete(sha)
    assert list(tmp_path.iterdir()) == []  # fan-out folders tidied


def test_period_bounds() -> None:
    assert repo.period_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-12"
    start, end = repo.period_bounds("2026-12")
    assert start == datetime(2026, 12, 1, tzinfo=UTC) and end == datetime(2027, 1, 1, tzinfo=UTC)
