"""Transparency log: RFC 6962/9162 vectors, proofs, signed heads, tamper detection, durability.

The vectors are the ones Certificate Transparency implementations test against, from
transparency-dev/merkle (Apache-2.0): leaf inputs, subtree and root hashes from
``testonly/constants.go``; inclusion and consistency proofs and the corruption probes from
``proof/verify_test.go`` (https://github.com/transparency-dev/merkle).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker.errors import LedgerError, ProofError
from tastemaker.provenance import ledger as lg
from tastemaker.provenance.sqlite_schema import migrate_sqlite

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]  # ROOTS[n - 1] is the root of the first n leaves
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]
H = bytes.fromhex
# (leaf index 1-based, tree size, proof) as in verify_test.go's inclusionProofs
INCLUSION = [
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture
def log8(tmp_path: Path) -> lg.Ledger:
    ledger = lg.Ledger(tmp_path / "log")
    for leaf in LEAVES:
        ledger.append(leaf)
    yield ledger
    ledger.close()


def test_hashing_vectors() -> None:
    assert [lg.leaf_hash(x) for x in LEAVES] == LEAF_HASHES
    assert lg.root_from_leaf_hashes([]) == lg.EMPTY_ROOT
    assert lg.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert lg.root_from_leaf_hashes(LEAF_HASHES[:n]) == ROOTS[n - 1]


def test_log_roots_and_proofs_match_vectors(log8: lg.Ledger) -> None:
    for n in range(1, 9):
        assert log8.root(n) == ROOTS[n - 1]
    for leaf, size, proof in INCLUSION:
        assert log8.inclusion_proof(leaf - 1, size) == proof
        lg.verify_inclusion(leaf - 1, size, LEAF_HASHES[leaf - 1], proof, ROOTS[size - 1])
    for size1, size2, proof in CONSISTENCY:
        assert log8.consistency_proof(size1, size2) == proof
        lg.verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], proof)


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_corrupted_inclusion_proofs_fail(leaf: int, size: int, proof: list[bytes]) -> None:
    idx, root, lh = leaf - 1, ROOTS[size - 1], LEAF_HASHES[leaf - 1]
    probes = [
        (idx - 1, size, lh, proof, root),
        (idx + 1, size, lh, proof, root),
        (idx ^ 2, size, lh, proof, root),
        (idx, size * 2, lh, proof, root),
        (idx, size // 2, lh, proof, root),
        (idx, size, b"WrongLeaf", proof, root),
        (idx, size, lh, proof, lg.EMPTY_ROOT),
        (idx, size, lh, proof, SOME_HASH),
        (idx, size, lh, [*proof, b""], root),
        (idx, size, lh, [*proof, root], root),
        (idx, size, lh, [b"", *proof], root),
        (idx, size, lh, [root, *proof], root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((idx, size, lh, bad, root))
    if proof:
        probes.append((idx, size, lh, proof[:-1], root))
    if len(proof) > 1:
        probes.append((idx, size, lh, [proof[0], SOME_HASH, *proof[1:]], root))
    for i, n, h, p, r in probes:
        with pytest.raises(ProofError):
            lg.verify_inclusion(i, n, h, p, r)


@pytest.mark.parametrize(("size1", "size2", "proof"), [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_fail(size1: int, size2: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[size1 - 1], ROOTS[size2 - 1]
    probes = [
        (size1 - 1, size2, r1, r2, proof),
        (size1 + 1, size2, r1, r2, proof),
        (size1 ^ 2, size2, r1, r2, proof),
        (size1, size2 * 2, r1, r2, proof),
        (size1, size2 // 2, r1, r2, proof),
        (size1, size2, b"WrongRoot", r2, proof),
        (size1, size2, r1, b"WrongRoot", proof),
        (size1, size2, r2, r1, proof),
        (size1, size2, r1, r2, []),
        (size1, size2, r1, r2, [*proof, b""]),
        (size1, size2, r1, r2, [*proof, r1]),
        (size1, size2, r1, r2, [*proof, r2]),
        (size1, size2, r1, r2, [b"", *proof]),
        (size1, size2, r1, r2, [r1, *proof]),
        (size1, size2, r1, r2, [r2, *proof]),
        (size1, size2, r1, r2, [proof[0], *proof]),
        (size1, size2, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((size1, size2, r1, r2, bad))
    for s1, s2, a, b, p in probes:
        with pytest.raises(ProofError):
            lg.verify_consistency(s1, s2, a, b, p)


def test_trivial_consistency_cases() -> None:
    lg.verify_consistency(0, 0, b"x", b"x", [])
    lg.verify_consistency(0, 1, b"x", b"y", [])
    lg.verify_consistency(1, 1, ROOTS[0], ROOTS[0], [])
    for args in [
        (1, 1, ROOTS[0], ROOTS[1], []),
        (1, 0, ROOTS[0], ROOTS[0], []),
        (2, 1, ROOTS[1], ROOTS[0], []),
        (1, 2, ROOTS[0], ROOTS[1], []),
        (0, 1, lg.EMPTY_ROOT, lg.EMPTY_ROOT, [lg.EMPTY_ROOT]),
        (1, 1, ROOTS[0], ROOTS[0], [lg.EMPTY_ROOT]),
    ]:
        with pytest.raises(ProofError):
            lg.verify_consistency(*args)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_every_proof_verifies(tmp_path_factory: pytest.TempPathFactory, n: int, data: st.DataObject) -> None:
    with lg.Ledger(tmp_path_factory.mktemp("prop")) as ledger:
        for i in range(n):
            ledger.append(i.to_bytes(4, "big"))
        m = data.draw(st.integers(0, n - 1))
        old = data.draw(st.integers(0, n))
        lg.verify_inclusion(
            m, n, lg.leaf_hash(m.to_bytes(4, "big")), ledger.inclusion_proof(m), ledger.root()
        )
        lg.verify_consistency(old, n, ledger.root(old), ledger.root(), ledger.consistency_proof(old))
        assert ledger.root() == lg.root_from_leaf_hashes(
            [lg.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
        )


def test_signed_tree_head_round_trip_and_tamper(log8: lg.Ledger) -> None:
    head = log8.tree_head()
    assert (head.size, head.root) == (8, ROOTS[7])
    parsed = lg.SignedTreeHead.from_note(head.to_note())
    parsed.verify(log8.public_key)
    forged = lg.SignedTreeHead(head.origin, head.size, SOME_HASH, head.timestamp_ms, head.signature)
    with pytest.raises(ProofError, match="does not verify"):
        forged.verify(log8.public_key)
    other = lg.sign_tree_head(lg.Ed25519PrivateKey.generate(), head.origin, head.size, head.root)
    with pytest.raises(ProofError, match="different key"):
        other.verify(log8.public_key)


def test_persists_and_keeps_key_across_reopen(tmp_path: Path) -> None:
    with lg.Ledger(tmp_path) as a:
        a.append(b"one")
        a.append(b"two")
        head = a.tree_head()
    assert (tmp_path / "ledger-ed25519.pem").stat().st_mode & 0o777 == 0o600
    with lg.Ledger(tmp_path) as b:
        assert b.size == 2 and b.entry(1) == b"two"
        head.verify(b.public_key)
        e = b.append(b"three")
        lg.verify_consistency(2, 3, head.root, e.tree_head.root, b.consistency_proof(2))
        assert b.audit().size == 3


def test_append_only_enforced_by_database(log8: lg.Ledger) -> None:
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        log8._db.execute("UPDATE entries SET data = x'00' WHERE idx = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        log8._db.execute("DELETE FROM entries WHERE idx = 7")


def _bypass_triggers(ledger: lg.Ledger) -> None:
    for name in ("entries_no_update", "entries_no_delete", "nodes_no_update", "nodes_no_delete",
                 "heads_no_update", "heads_no_delete"):
        ledger._db.execute(f"DROP TRIGGER {name}")


def test_signed_heads_cannot_be_edited_or_deleted(log8: lg.Ledger) -> None:
    """Issue 11 #12: the heads table had no triggers, so a published head could be quietly swapped."""
    for sql in ("DELETE FROM heads WHERE size = 8", "UPDATE heads SET root = zeroblob(32) WHERE size = 3"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            log8._db.execute(sql)
    assert log8.tree_head().size == 8 and log8.head_at(3) is not None and log8.head_at(3).size == 3


def test_consistency_with_an_older_signed_head(log8: lg.Ledger) -> None:
    old = log8.head_at(5)
    assert old is not None
    proof = log8.check_consistency(old)
    lg.verify_consistency(5, 8, old.root, log8.tree_head().root, proof)
    assert log8.prove_extends(8, log8.tree_head().root) == []
    with pytest.raises(ProofError, match="not an append-only extension|different roots"):
        log8.prove_extends(5, bytes(32))  # a root that log never had: a rewritten history
    with pytest.raises(ProofError, match="shrank"):
        log8.prove_extends(9, bytes(32))
    stranger = lg.sign_tree_head(Ed25519PrivateKey.generate(), old.origin, old.size, old.root)
    with pytest.raises(ProofError, match="different key"):
        log8.check_consistency(stranger)


def test_forged_entry_is_detected(log8: lg.Ledger) -> None:
    published = log8.tree_head()
    _bypass_triggers(log8)
    forged = b"forged record"
    log8._db.execute("UPDATE entries SET data = ?, leaf = ? WHERE idx = 3", (forged, lg.leaf_hash(forged)))
    with pytest.raises(ProofError):  # the forged entry cannot be proven against the published head
        lg.verify_inclusion(3, 8, lg.leaf_hash(forged), log8.inclusion_proof(3), published.root)
    with pytest.raises(ProofError):
        log8.audit()


def test_removed_entry_is_detected(log8: lg.Ledger) -> None:
    published = log8.tree_head()
    _bypass_triggers(log8)
    log8._db.execute("DELETE FROM entries WHERE idx = 7")
    for level, idx in ((1, 3), (2, 1), (3, 0)):  # the subtree hashes that covered it
        log8._db.execute("DELETE FROM nodes WHERE level = ? AND idx = ?", (level, idx))
    with pytest.raises((ProofError, LedgerError)):
        log8.audit()
    # a log rebuilt without the entry cannot prove it extends what was published
    log8._db.execute("DELETE FROM heads")
    log8.append(b"replacement")
    with pytest.raises((ProofError, LedgerError)):
        lg.verify_consistency(8, log8.size, published.root, log8.root(), log8.consistency_proof(8))


def test_bad_arguments(log8: lg.Ledger) -> None:
    with pytest.raises(LedgerError):
        log8.inclusion_proof(8)
    with pytest.raises(LedgerError):
        log8.consistency_proof(5, 9)
    with pytest.raises(LedgerError):
        log8.entry(99)


# ----------------------------------------------------------------------------- schema versions


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_log_from_before_schema_versions_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file written before the log was versioned (user_version 0, the step-1 tables and triggers) opens,
    is stamped with the current version, and keeps every entry, head and proof."""
    path = tmp_path / lg.Ledger.FILENAME
    # the tables Tastemaker wrote before versioning, verbatim, with two of its six triggers (step 1 adds the rest)
    with sqlite3.connect(path) as db:
        db.executescript("""
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, leaf BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
                                  PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
""")
        key = Ed25519PrivateKey.generate()
        for i, data in enumerate([b"a", b"b", b"c"]):  # entries as the old code appended them
            db.execute("INSERT INTO entries (idx, data, leaf) VALUES (?, ?, ?)", (i, data, lg.leaf_hash(data)))
        nodes = [lg.node_hash(lg.leaf_hash(b"a"), lg.leaf_hash(b"b"))]
        db.execute("INSERT INTO nodes (level, idx, hash) VALUES (1, 0, ?)", (nodes[0],))
        root = lg.root_from_leaf_hashes([lg.leaf_hash(d) for d in (b"a", b"b", b"c")])
        head = lg.sign_tree_head(key, lg.DEFAULT_ORIGIN, 3, root)
        db.execute("INSERT INTO heads (size, root, note) VALUES (3, ?, ?)", (root, head.to_note()))
    assert _user_version(path) == 0
    with lg.Ledger(tmp_path, signing_key=key) as log:
        assert _user_version(path) == lg.SCHEMA_VERSION
        assert log.size == 3 and log.entry(1) == b"b" and log.audit() == head
        log.append(b"d")  # and it goes on growing, with the triggers the old file lacked
        with pytest.raises(sqlite3.IntegrityError):
            log._db.execute("DELETE FROM heads")
        lg.verify_consistency(3, 4, root, log.root(), log.consistency_proof(3))
    with lg.Ledger(tmp_path, signing_key=key) as log:  # a second open finds nothing to do
        assert log.size == 4 and _user_version(path) == lg.SCHEMA_VERSION


def test_a_log_from_a_newer_tastemaker_is_refused_untouched(tmp_path: Path) -> None:
    lg.Ledger(tmp_path).close()
    path = tmp_path / lg.Ledger.FILENAME
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {lg.SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer than .* this Tastemaker knows"):
        lg.Ledger(tmp_path)
    assert _user_version(path) == lg.SCHEMA_VERSION + 1 and path.read_bytes() == before


def test_migration_steps_run_in_order_once(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    steps: list[tuple[str, ...]] = [("CREATE TABLE t (a INTEGER)",), ("ALTER TABLE t ADD COLUMN b TEXT",)]
    assert migrate_sqlite(db, steps[:1], what="x") == 1
    assert migrate_sqlite(db, steps, what="x") == 2  # only the new step runs (ALTER twice would fail)
    assert migrate_sqlite(db, steps, what="x") == 2
    assert [r[1] for r in db.execute("PRAGMA table_info(t)")] == ["a", "b"]
    with pytest.raises(sqlite3.OperationalError):  # a failing step leaves the old version, nothing half-done
        migrate_sqlite(db, [*steps, ("CREATE TABLE u (x)", "NOT SQL")], what="x")
    assert int(db.execute("PRAGMA user_version").fetchone()[0]) == 2
    assert "u" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()
