"""The styleembed group commit: calls from many threads are counted and audited exactly once each, in a valid
chain, with fewer transactions than calls; a call that cannot be written fails alone."""

from __future__ import annotations

import threading

from tastemaker.api.groupcommit import GroupCommit
from tastemaker.audit import AuditLog
from tastemaker.store import SqlStore

SECRET = "g" * 40


def test_concurrent_calls_are_each_counted_and_audited_once_in_a_valid_chain(store: SqlStore) -> None:
    audit = AuditLog(SECRET)
    with store.session() as s:
        accounts = [s.create_account(f"a{i}", "free").id for i in range(3)]
        s.commit()
    writes = GroupCommit(store, audit)
    writes.start()
    calls, threads = 60, []
    start = threading.Barrier(calls)

    def call(i: int) -> None:
        start.wait()
        writes.styleembed(accounts[i % 3], "2026-12", f"brd_{i}", f"req_{i}", {"cache": "hit"})

    for i in range(calls):
        threads.append(threading.Thread(target=call, args=(i,)))
        threads[-1].start()
    for t in threads:
        t.join(30)
    writes.stop()
    assert writes.calls == calls and writes.batches < calls  # grouped
    with store.session() as s:
        assert [s.get_usage(a, "2026-12").styleembed for a in accounts] == [20, 20, 20]
        report = audit.verify(s)
        assert report.problems == [] and report.entries == calls
        requests = sorted(e.request_id or "" for e in s.audit_entries())
    assert requests == sorted(f"req_{i}" for i in range(calls))


def test_a_call_that_cannot_be_written_fails_alone(store: SqlStore) -> None:
    audit = AuditLog(SECRET)
    with store.session() as s:
        account = s.create_account("a", "free").id
        s.commit()
    writes = GroupCommit(store, audit)
    writes.start()
    bad = threading.Thread(target=lambda: errors.append(_call(writes, account, {"x": "y" * 300})))
    errors: list[BaseException | None] = []
    good = [threading.Thread(target=_call, args=(writes, account, {})) for _ in range(5)]
    for t in [bad, *good]:
        t.start()
    for t in [bad, *good]:
        t.join(30)
    writes.stop()
    assert isinstance(errors[0], ValueError)  # an entry the audit log refuses: that call fails, no other
    with store.session() as s:
        assert s.get_usage(account, "2026-12").styleembed == 5 and audit.verify(s).problems == []


def _call(writes: GroupCommit, account: str, detail: dict[str, str]) -> BaseException | None:
    try:
        writes.styleembed(account, "2026-12", "brd_1", None, detail)
    except BaseException as exc:
        return exc
    return None
