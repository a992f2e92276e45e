"""The store contract, run against every backend (SQLite, and PostgreSQL when available).

One class, parametrised through the ``store`` fixture: the same assertions must hold on both. Everything goes
through the :class:`~tastemaker.store.StoreSession` protocol, except where a test looks at the rows themselves
(``s.orm``: the SQL implementation's own session). An in-memory :class:`~tastemaker.store.BlobStore` at the end
shows that a blob backend needs the protocol's methods and nothing else.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from tastemaker.audit import AuditLog
from tastemaker.boards import Pin
from tastemaker.errors import BlobMissingError, NotFoundError, StoreConflictError, StoreError
from tastemaker.store import FilesystemBlobStore, SqlStore, sha256_hex
from tastemaker.store import records as r
from tastemaker.store.sql import head_revision
from tastemaker.store.sql.models import AuditEntry, Base, Job, PinRecord

from .conftest import Api, board_parts, demo_pins

SECRET = "s" * 40


def new_pin(name: str, data: bytes, **kw: object) -> r.StoredPin:
    return r.StoredPin(replace(Pin(image=name, **kw), sha256=sha256_hex(data)), len(data))  # type: ignore[arg-type]


def new_job(s: Any, account_id: str, board_id: str | None = None, **kw: Any) -> r.Job:
    fields: dict[str, Any] = dict(account_id=account_id, board_id=board_id, request={}, n_images=1, profile_hash="p",
                                  selfie_sha256="f", usage_period="2026-01")
    return s.create_job(**{**fields, **kw})  # type: ignore[no-any-return]


class TestStoreContract:
    # ------------------------------------------------------------------ migrations are code, and tested
    def test_migrated_schema_equals_the_models(self, store: SqlStore) -> None:
        assert store.schema_revision() == head_revision()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        tables = set(inspect(store.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

    def test_profile_versions_migration_steps(self, store: SqlStore) -> None:
        assert store.downgrade("0001") == "0001"
        assert "profile_versions" not in inspect(store.engine).get_table_names()
        assert "boards" in inspect(store.engine).get_table_names()
        assert store.upgrade() == head_revision() == "0006"
        assert "profile_versions" in inspect(store.engine).get_table_names()

    def test_web_sessions_migration_steps(self, store: SqlStore) -> None:
        assert store.downgrade("0003") == "0003"
        assert "web_sessions" not in inspect(store.engine).get_table_names()
        assert store.upgrade() == head_revision()
        assert "web_sessions" in inspect(store.engine).get_table_names()

    def test_existing_keys_keep_every_scope_through_the_scopes_migration(self, store: SqlStore) -> None:
        from sqlalchemy import text

        from tastemaker.api.keys import SCOPES

        assert store.downgrade("0002") == "0002"
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts (id, name, tier, created_at) VALUES ('acc_1', 'a', 'free', :t)"),
                         {"t": r.utcnow()})
            conn.execute(
                text("INSERT INTO api_keys (id, account_id, name, prefix, key_hash, created_at) "
                     "VALUES ('key_1', 'acc_1', 'old', 'tm_abcdefgh', :h, :t)"),
                {"h": "cd" * 32, "t": r.utcnow()},
            )
            conn.execute(text("INSERT INTO boards (id, account_id, name, revision, created_at, updated_at, "
                              "profile_revision, profile_hash, styleembed_json) VALUES ('brd_1', 'acc_1', 'b', 1, "
                              ":t, :t, 1, 'h', '{\"profile_hash\": \"exact\"}')"), {"t": r.utcnow()})
        assert store.upgrade() == head_revision()
        with store.session() as s:
            key = s.find_key("cd" * 32)
            assert key is not None and key.scopes.split() == list(SCOPES)
            assert s.read_board_profile("brd_1").styleembed_json is None  # type: ignore[union-attr]

    def test_downgrade_and_upgrade_round_trip(self, store: SqlStore) -> None:
        assert store.downgrade("base") is None
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert store.upgrade() == head_revision()
        store.check_schema()

    # ------------------------------------------------------------------ accounts and keys
    def test_keys_are_found_by_hash_only(self, store: SqlStore) -> None:
        with store.session() as s:
            acc = s.create_account("a", "free")
            key = s.add_key(acc.id, name="k", key_hash="ab" * 32, prefix="tm_abcdefgh", scopes="boards:read")
            s.commit()
            found = s.find_key("ab" * 32)
            assert found is not None and found.id == key.id and found.account.name == "a"
            assert s.find_key("cd" * 32) is None
            assert [k.id for k in s.list_keys()] == [key.id]
            s.revoke_key(found, r.utcnow())
            s.commit()
        with store.session() as s:
            again = s.find_key("ab" * 32)
            assert again is not None and again.revoked_at is not None and again.scopes == "boards:read"

    # ------------------------------------------------------------------ boards, pins, tenancy
    def test_board_pins_revision_and_tenancy(self, store: SqlStore) -> None:
        with store.session() as s:
            a, b = s.create_account("a", "free"), s.create_account("b", "free")
            board = s.create_board(a.id, "mine", [new_pin("x.jpg", b"x", saves=3, tags=("t",)), new_pin("y.jpg", b"y")])
            s.commit()
            assert board.pins is not None and [p.pin.image for p in board.pins] == ["x.jpg", "y.jpg"]
            assert board.revision == 1 and board.pins[0].pin.saves == 3 and board.pins[0].pin.tags == ("t",)
            assert board.pins[0] == new_pin("x.jpg", b"x", saves=3, tags=("t",))  # the core Pin, round-tripped
            with pytest.raises(NotFoundError):
                s.get_board(b.id, board.id)  # another account: not found, not forbidden
            assert s.owner_of("board", board.id) == a.id and s.owner_of("board", "brd_nope") is None
            now, added, skipped = s.add_pins(board, [new_pin("z.jpg", b"z"), new_pin("again.jpg", b"x")])
            s.commit()
            assert [p.pin.image for p in added] == ["z.jpg"] and [p.pin.image for p in skipped] == ["again.jpg"]
            assert now.revision == 2 and [p.pin.image for p in now.pins or []] == ["x.jpg", "y.jpg", "z.jpg"]
            fresh = s.get_board(a.id, board.id, with_pins=True)
            assert fresh.revision == 2 and fresh.pins == now.pins == s.board_pins(board.id)
            positions = s.orm.scalars(select(PinRecord.position).where(PinRecord.board_id == board.id))
            assert sorted(positions) == [0, 1, 2]
            # a profile built from revision 1 is not cached over revision 2
            assert not s.save_profile(fresh.id, revision=1, profile_json="{}", profile_hash="h", styleembed_json="{}")
            assert s.save_profile(fresh.id, revision=2, profile_json="{}", profile_hash="h", styleembed_json="{}")
            # a racing build of the same revision never overwrites it (it may have taken feedback since)
            assert not s.save_profile(fresh.id, revision=2, profile_json="{}", profile_hash="h2", styleembed_json="{}")
            assert s.set_board_profile(fresh.id, revision=2, profile_json="{}", profile_hash="h3", styleembed_json="")
            assert not s.set_board_profile(
                fresh.id, revision=1, profile_json="{}", profile_hash="h4", styleembed_json=""
            )
            assert s.read_board_profile(fresh.id) == r.BoardProfile(2, 2, "h3", "{}", "")
            assert s.get_board(a.id, board.id).profile_is_current

    def test_profile_versions_are_kept_in_order(self, store: SqlStore) -> None:
        with store.session() as s:
            a = s.create_account("a", "free")
            board = s.create_board(a.id, "b", [new_pin("x.jpg", b"x")])
            assert s.latest_profile_version(board.id) is None
            for v, h in ((1, "h1"), (2, "h2")):
                s.add_profile_version(r.ProfileVersion(a.id, board.id, 1, v, h, {"kind": "feedback"}, r.utcnow(),
                                                       profile_json=f'{{"v": {v}}}'))
            s.commit()
            latest = s.latest_profile_version(board.id)
            assert latest is not None and latest.version == 2 and latest.profile_json == '{"v": 2}'
            assert [(v.version, v.profile_json) for v in s.profile_versions(board.id)] == [(1, None), (2, None)]
            assert s.revision_hashes(board.id, 1) == {"h1", "h2"} and s.revision_hashes(board.id, 2) == set()

    def test_delete_board_cascades_and_reports_unreferenced_blobs(self, store: SqlStore) -> None:
        with store.session() as s:
            a, b = s.create_account("a", "free"), s.create_account("b", "free")
            mine = s.create_board(a.id, "mine", [new_pin("x.jpg", b"x"), new_pin("shared.jpg", b"shared")])
            s.create_board(b.id, "theirs", [new_pin("s.jpg", b"shared")])
            job = new_job(s, a.id, mine.id)
            s.commit()
            shas = s.delete_board(mine)
            s.commit()
            assert s.orm.scalars(select(PinRecord).where(PinRecord.board_id == mine.id)).all() == []
            assert s.orm.get(Job, job.id).board_id is None  # type: ignore[union-attr]
            assert s.unreferenced_blobs(shas) == [sha256_hex(b"x")]  # the shared image stays

    def test_a_row_naming_a_deleted_account_is_a_store_conflict(self, store: SqlStore) -> None:
        with store.session() as s:
            a = s.create_account("a", "free")
            s.commit()
            assert s.delete_account(a.id).counts["accounts"] == 1
            s.commit()
            with pytest.raises(StoreConflictError):
                new_job(s, a.id)
                s.commit()
            assert s.count_active_jobs(a.id) == 0  # nothing was kept, and the session goes on

    # ------------------------------------------------------------------ jobs
    def test_job_state_machine(self, store: SqlStore) -> None:
        with store.session() as s:
            a = s.create_account("a", "free")
            job = new_job(s, a.id, request={"n": 1})
            s.commit()
            assert job.status == r.QUEUED and [j.id for j in s.active_jobs()] == [job.id]
            with pytest.raises(StoreError):
                s.move_job(job, r.SUCCEEDED)  # queued -> succeeded skips running
            assert s.move_job(job, r.RUNNING, started_at=r.utcnow())
            s.commit()
            # a stale copy (another actor moved it) loses the race instead of overwriting
            with store.session() as s2:
                stale = s2.load_job(job.id)
                assert stale is not None
                assert s.move_job(job, r.FAILED, error_code="x", finished_at=r.utcnow())
                s.commit()
                assert not s2.move_job(stale, r.SUCCEEDED)
                assert stale.status == r.FAILED
            with pytest.raises(StoreError):
                s.move_job(job, r.RUNNING)  # terminal states are final
            assert s.count_active_jobs(a.id) == 0 and s.active_jobs() == []

    def test_job_images_and_progress(self, store: SqlStore) -> None:
        with store.session() as s:
            a, b = s.create_account("a", "free"), s.create_account("b", "free")
            job = new_job(s, a.id)
            s.commit()
            s.set_progress(job.id, {"stage": "render"})  # ignored: not running
            s.move_job(job, r.RUNNING)
            s.set_progress(job.id, {"stage": "render"})
            image = r.JobImage(0, "ab" * 32, "image/png", 4, 3, 10, {"mode": "m1"})
            s.add_job_image(job.id, image)
            s.move_job(job, r.SUCCEEDED)
            s.commit()
            got = s.get_job(a.id, job.id)
            assert got.images == [image] and got.progress == {"stage": "render"} and got.status == r.SUCCEEDED
            with pytest.raises(NotFoundError):
                s.get_job(b.id, job.id)
            found = s.find_job_image(a.id, "ab" * 32)
            assert found is not None and found[0].id == job.id and found[1] == image
            assert s.find_job_image(b.id, "ab" * 32) is None and s.owner_of("generation", job.id) == a.id

    # ------------------------------------------------------------------ quota
    def test_quota_reservation_is_atomic_under_concurrency(self, store: SqlStore) -> None:
        with store.session() as s:
            acc = s.create_account("a", "free")
            s.commit()
            account_id = acc.id
        results: list[bool] = []
        lock = threading.Lock()

        def reserve() -> None:
            with store.session() as s:
                ok = s.reserve_images(account_id, "2026-01", 1, quota=5)
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
            assert s.get_usage(account_id, "2026-01").images == 5
            s.release_images(account_id, "2026-01", 2)
            s.count_styleembed(account_id, "2026-01")
            s.commit()
            assert s.get_usage(account_id, "2026-01") == r.Usage(account_id, "2026-01", 3, 5, 1)
            s.release_images(account_id, "2026-01", 10)  # never below zero
            s.commit()
            assert s.get_usage(account_id, "2026-01").images == 0
            assert s.get_usage(account_id, "2026-02") == r.Usage(account_id, "2026-02")

    # ------------------------------------------------------------------ idempotency keys
    def test_idempotency_key_lifecycle(self, store: SqlStore) -> None:
        ttl = timedelta(hours=1)
        with store.session() as s:
            acc = s.create_account("a", "free")
            s.commit()
            kw: dict[str, Any] = dict(account_id=acc.id, key="k1", endpoint="POST /x", fingerprint="f1", ttl=ttl)
            assert s.claim_idempotency_key(**kw) is None
            again = s.claim_idempotency_key(**kw)
            assert again is not None and again.state == r.IN_PROGRESS
            s.finish_idempotency_key(acc.id, "k1", status=201, body={"id": 1}, resource_id="r1")
            s.commit()
            done = s.claim_idempotency_key(**kw)
            assert done is not None and done.state == r.DONE and done.response_body == {"id": 1}
            s.release_idempotency_key(acc.id, "k1")
            s.commit()
            assert s.claim_idempotency_key(**kw) is None  # released: claimable again
            s.finish_idempotency_key(acc.id, "k1", status=201, body=None, resource_id="r1")
            assert s.release_idempotency_for(acc.id, "r1") == 1
            expired = dict(kw, key="k2", ttl=timedelta(seconds=-1))
            assert s.claim_idempotency_key(**expired) is None
            assert s.purge_expired_idempotency() == 1
            assert s.claim_idempotency_key(**dict(kw, key="k2")) is None

    # ------------------------------------------------------------------ audit chain
    def test_concurrent_audit_appends_keep_one_chain(self, store: SqlStore) -> None:
        log = AuditLog(SECRET)

        def append(i: int) -> None:
            for j in range(5):
                with store.session() as s:
                    log.append(s, "test", account_id="acc_x" if i == 0 else None, objects={"i": i, "j": j})
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
            seqs = list(s.orm.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
            assert seqs == list(range(1, 21)) == [e.seq for e in s.audit_entries(batch=7)]
            assert s.count_audit_entries("acc_x") == 5


def test_blob_store_is_content_addressed(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path)
    sha = blobs.put(b"hello")
    assert sha == sha256_hex(b"hello") and blobs.get(sha) == b"hello"
    with blobs.open(sha) as fh:
        assert fh.read() == b"hello"
    assert blobs.put(b"hello") == sha and list(blobs.digests()) == [sha]
    assert blobs.path(sha).parent.parent.parent == tmp_path
    with pytest.raises(StoreError):
        blobs.path("../../etc/passwd")
    copy = pickle.loads(pickle.dumps(blobs))  # a worker process can be handed the store (its lock stays behind)
    assert copy.get(sha) == b"hello" and copy.lock is not blobs.lock
    assert blobs.delete(sha) and not blobs.exists(sha) and not blobs.delete(sha)
    with pytest.raises(BlobMissingError):
        blobs.get(sha)
    assert list(tmp_path.iterdir()) == []  # fan-out folders tidied


def test_period_bounds() -> None:
    assert r.period_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-12"
    start, end = r.period_bounds("2026-12")
    assert start == datetime(2026, 12, 1, tzinfo=UTC) and end == datetime(2027, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ another blob backend: the protocol's methods only


class InMemoryBlobStore:
    """A whole blob backend: the :class:`~tastemaker.store.BlobStore` protocol's members, nothing more."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        sha = sha256_hex(data)
        self.data.setdefault(sha, bytes(data))
        return sha

    def get(self, sha256: str) -> bytes:
        try:
            return self.data[sha256]
        except KeyError:
            raise BlobMissingError(f"blob {sha256[:12]} is missing") from None

    def open(self, sha256: str) -> BinaryIO:
        return io.BytesIO(self.get(sha256))

    def exists(self, sha256: str) -> bool:
        return sha256 in self.data

    def delete(self, sha256: str) -> bool:
        return self.data.pop(sha256, None) is not None


def test_the_api_runs_on_another_blob_backend(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Boards are uploaded, read, grown, deleted and the account forgotten with every image in memory: the
    service asks a blob store for the protocol's methods only (the class above has no others, and no files)."""
    import json

    import tastemaker.api.app as app_module

    memory = InMemoryBlobStore()
    monkeypatch.setattr(app_module, "open_store", lambda url, blob_dir: SqlStore(url, memory))
    api = make_api()
    c, h = api.client, api.key("free", "memory")
    pins = [p for p in demo_pins() if p["image"] in ("meadow.jpg", "cat-nap.jpg")]
    parts = board_parts(["meadow.jpg", "cat-nap.jpg"])
    r1 = c.post("/v1/boards", data={"name": "m", "pins": json.dumps(pins)}, files=parts, headers=h)
    assert r1.status_code == 201, r1.text
    board = r1.json()
    assert {p["sha256"] for p in board["pins"]} == set(memory.data)
    assert c.get(f"/v1/boards/{board['id']}", headers=h).json()["pins"] == board["pins"]
    more = c.post(f"/v1/boards/{board['id']}/pins", files=board_parts(["night-grass.jpg", "meadow.jpg"]), headers=h)
    assert more.status_code == 200 and len(memory.data) == 3
    assert [s["code"] for s in more.json()["skipped"]] == ["already_on_board"]
    second = c.post("/v1/boards", data={"name": "n"}, files=board_parts(["meadow.jpg"]), headers=h).json()
    assert c.delete(f"/v1/boards/{board['id']}", headers=h).status_code == 204
    assert set(memory.data) == {second["pins"][0]["sha256"]}  # the image the other board still shows stays
    assert c.delete("/v1/me", headers=h).json()["deleted"]["blobs"] == 1
    assert memory.data == {} and not (tmp_path / "data" / "blobs").exists()
