"""The audit chain detects an edited, a deleted and an inserted entry — on every backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from tastemaker.audit import GENESIS, AuditLog, Checkpoint, parse_anchor, parse_checkpoints
from tastemaker.store import SqlStore as Store
from tastemaker.store import open_store
from tastemaker.store.sql.models import AuditEntry, AuditHead

SECRET = "audit-test-secret-" + "y" * 30


@pytest.fixture
def chain(store: Store) -> AuditLog:
    log = AuditLog(SECRET)
    with store.session() as s:
        for i in range(1, 7):
            log.append(
                s,
                "board.created",
                account_id="acc_a",
                objects={"board": f"brd_{i}"},
                request_id=f"req_{i}",
                detail={"pins": i},
            )
            s.commit()
        assert log.verify(s).ok
    return log


def problems(store: Store, log: AuditLog, **kw: object) -> list[tuple[int, str]]:
    with store.session() as s:
        report = log.verify(s, **kw)  # type: ignore[arg-type]
    return [(p.seq, p.what) for p in report.problems]


def test_intact_chain_verifies(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        report = chain.verify(s)
        head = s.orm.get(AuditHead, 1)
    assert report.ok and report.entries == 6 and report.head_seq == 6
    assert head is not None and report.head_hash == head.hash != GENESIS


def test_edited_entry_is_detected(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        s.orm.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(outcome="denied"))
        s.commit()
    found = problems(store, chain)
    assert [seq for seq, _ in found] == [3] and "does not match its hash" in found[0][1]


def test_edit_with_a_recomputed_plain_hash_is_still_detected(store: Store, chain: AuditLog) -> None:
    """Without the server secret, a forger cannot produce a valid entry hash."""
    with store.session() as s:
        e = s.orm.get(AuditEntry, 2)
        assert e is not None
        e.account_id = "acc_mallory"
        payload = [e.seq, e.at, e.account_id, e.action, e.objects, e.request_id, e.outcome, e.detail, e.prev_hash]
        e.hash = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        s.commit()
    seqs = {seq for seq, _ in problems(store, chain)}
    assert {2, 3} <= seqs  # entry 2's hash is wrong, and entry 3 no longer chains to it


def test_deleted_middle_entry_is_detected(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        s.orm.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
        s.commit()
    found = problems(store, chain)
    assert any(seq == 5 and "missing" in what for seq, what in found)
    assert any(seq == 5 and "prev_hash" in what for seq, what in found)


def test_deleted_last_entry_is_detected(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        s.orm.execute(delete(AuditEntry).where(AuditEntry.seq == 6))
        s.commit()
    found = problems(store, chain)
    assert any("deleted from the end" in what for _, what in found)


def test_truncation_with_a_rewound_head_is_detected(store: Store, chain: AuditLog) -> None:
    """Deleting the tail and pointing the head at the new last entry needs the head's MAC: detected."""
    with store.session() as s:
        last = s.orm.get(AuditEntry, 5)
        assert last is not None
        s.orm.execute(delete(AuditEntry).where(AuditEntry.seq == 6))
        s.orm.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=5, hash=last.hash))
        s.commit()
    assert any("head's MAC" in what for _, what in problems(store, chain))


def test_inserted_entry_is_detected(store: Store, chain: AuditLog) -> None:
    """Insert a forged entry between 3 and 4 by shifting the later ones up: every shift breaks a hash."""
    with store.session() as s:
        for seq in range(6, 3, -1):
            s.orm.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
        prev = s.orm.get(AuditEntry, 3)
        assert prev is not None
        s.orm.add(
            AuditEntry(
                seq=4,
                at=prev.at,
                account_id="acc_mallory",
                action="key.revoked",
                objects={},
                request_id=None,
                outcome="ok",
                detail={},
                prev_hash=prev.hash,
                hash="f" * 64,
            )
        )
        s.commit()
    seqs = {seq for seq, _ in problems(store, chain)}
    assert 4 in seqs and 5 in seqs


def test_appended_forgery_is_detected(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        last = s.orm.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None
        s.orm.add(
            AuditEntry(
                seq=7,
                at=last.at,
                account_id=None,
                action="key.created",
                objects={},
                request_id=None,
                outcome="ok",
                detail={},
                prev_hash=last.hash,
                hash="e" * 64,
            )
        )
        s.commit()
    found = problems(store, chain)
    assert any(seq == 7 for seq, _ in found) and any("without updating the head" in what for _, what in found)


def test_another_secret_verifies_nothing(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        report = AuditLog("another-secret-" + "z" * 30).verify(s)
    assert not report.ok and len(report.problems) >= 6


def test_anchor_catches_a_rewritten_history(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        e2 = s.orm.get(AuditEntry, 2)
        assert e2 is not None
        anchor = (2, e2.hash)
    assert problems(store, chain, anchor=anchor) == []
    assert problems(store, chain, anchor=(2, "0" * 64)) == [(2, "hash differs from the recorded anchor")]
    assert parse_anchor(f"2:{e2.hash}") == anchor
    with pytest.raises(ValueError):
        parse_anchor("two:abc")


def test_audit_refuses_image_bytes_and_long_text(store: Store) -> None:
    log = AuditLog(SECRET)
    with store.session() as s:
        with pytest.raises(ValueError, match="bytes"):
            log.append(s, "x", detail={"selfie": b"\xff\xd8"})
        with pytest.raises(ValueError, match="ids and hashes"):
            log.append(s, "x", detail={"blob": "A" * 5000})


def _truncate_to(store: Store, log: AuditLog, seq: int) -> None:
    """The attack of issue 11 #7: delete the newest entries and restore the head row as it was at ``seq``
    (an old head row's MAC is still valid, so the chain alone looks perfect)."""
    with store.session() as s:
        kept = s.orm.get(AuditEntry, seq)
        assert kept is not None
        s.orm.execute(delete(AuditEntry).where(AuditEntry.seq > seq))
        s.orm.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=kept.hash,
                                                                     mac=log.head_mac(seq, kept.hash)))
        s.commit()


def test_a_checkpoint_catches_a_truncated_tail(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        cp = chain.checkpoint(s)
    assert cp.seq == 6 and parse_checkpoints(cp.to_json() + "\n\n" + cp.to_json()) == [cp, cp]
    _truncate_to(store, chain, 4)
    assert problems(store, chain) == []  # the chain by itself cannot see it
    found = problems(store, chain, checkpoints=[cp])
    assert found and found[0][0] == 5 and "cut off the end" in found[0][1]


def test_checkpoints_are_signed_and_pin_their_entry(store: Store, chain: AuditLog) -> None:
    with store.session() as s:
        cp = chain.checkpoint(s)
        e3 = s.orm.get(AuditEntry, 3)
        assert e3 is not None
        early = Checkpoint(3, e3.hash, cp.at, "")
    forged = Checkpoint(cp.seq + 5, cp.hash, cp.at, cp.mac)  # a stranger cannot move the count
    assert any("not signed" in what for _, what in problems(store, chain, checkpoints=[forged]))
    assert any("not signed" in what for _, what in problems(store, chain, checkpoints=[early]))
    assert AuditLog("another-secret-" + "z" * 30).verify(store.session(), checkpoints=[cp]).problems
    with store.session() as s:
        s.orm.execute(update(AuditEntry).where(AuditEntry.seq == 6).values(hash="0" * 64))
        s.commit()
    assert any("differs from the checkpoint" in what for _, what in problems(store, chain, checkpoints=[cp]))
    for bad in ("", "{}", '{"format": "tastemaker.audit.checkpoint/v1", "seq": -1, "hash": "", "at": "", "mac": ""}',
                "not json"):
        with pytest.raises(ValueError):
            parse_checkpoints(bad)


def test_audit_cli_exports_checkpoints_and_verify_detects_truncation(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tastemaker audit checkpoint -o FILE`` then ``audit verify --checkpoint FILE`` after the attack: exit 5."""
    import typer
    from typer.testing import CliRunner

    from tastemaker.cli.serve import register

    data = tmp_path / "svc"
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data))
    monkeypatch.setenv("TASTEMAKER_SECRET_KEY", SECRET)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    for name in ("a", "b", "c", "d"):
        assert runner.invoke(app, ["keys", "create", "--name", name]).exit_code == 0
    file = tmp_path / "elsewhere" / "audit-checkpoints.jsonl"
    file.parent.mkdir()
    res = runner.invoke(app, ["audit", "checkpoint", "-o", str(file)])
    assert res.exit_code == 0 and file.read_text().count("\n") == 1, res.output
    res = runner.invoke(app, ["audit", "verify", "--checkpoint", str(file)])
    assert res.exit_code == 0 and "1 checkpoint(s)" in res.stdout, res.output
    svc = open_store(f"sqlite:///{data / 'tastemaker.db'}", data / "blobs")
    try:
        _truncate_to(svc, AuditLog(SECRET), 2)
    finally:
        svc.dispose()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0  # without the checkpoint it passes
    res = runner.invoke(app, ["audit", "verify", "--checkpoint", str(file)])
    assert res.exit_code == 5 and "cut off the end" in res.stdout, res.output
    assert runner.invoke(app, ["audit", "checkpoint"]).exit_code == 0  # the shortened log itself is a valid chain
    (tmp_path / "junk.jsonl").write_text("junk\n")
    assert runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "junk.jsonl")]).exit_code == 2
