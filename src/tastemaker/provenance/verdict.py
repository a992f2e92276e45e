"""What ``Provenance.verify`` answers: the verdicts, their exit codes, the report, and the log checks behind them.

Separate from :mod:`.service` so that the answer's shape (what a CLI prints, what the API returns) and the
transparency log's proofs a verdict rests on (inclusion under the signed head, consistency with earlier
heads) read on their own; the store's ``verify`` decides the verdict and fills the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LedgerError, ProofError
from . import fingerprint as fpr
from .c2pa import ManifestReport
from .ledger import Ledger, SignedTreeHead, leaf_hash, verify_inclusion
from .record import ProvenanceRecord

Verdict = Literal["verified", "not_ours", "tampered", "forged", "untrusted"]
#: CLI exit codes of ``tastemaker verify``.
VERDICT_EXIT = {"verified": 0, "not_ours": 20, "tampered": 21, "forged": 22, "untrusted": 23}
#: how the record was found: its watermark, its C2PA manifest, or its picture (the fingerprint index)
MatchedBy = Literal["watermark", "c2pa", "fingerprint"]


@dataclass
class VerifyReport:
    """What ``verify`` found, and its verdict."""

    verdict: Verdict
    c2pa: ManifestReport
    watermark_id: int | None
    watermark_confidence: float
    record: ProvenanceRecord | None = None
    log_index: int | None = None
    tree_size: int | None = None
    tree_root: str | None = None
    tree_head: str | None = None
    inclusion_proof: list[str] = field(default_factory=list)
    proof_ok: bool = False
    consistency: dict[str, Any] | None = None
    matched_by: MatchedBy | None = None
    match: fpr.Match | None = None
    problems: list[str] = field(default_factory=list)
    #: what was checked when it was not one image: a clip's container, frames checked and frames whose mark decoded
    media: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"media": self.media} if self.media is not None else {}),
            "verdict": self.verdict,
            "c2pa": {
                "state": self.c2pa.state,
                "trusted": self.c2pa.trusted,
                "validation_state": self.c2pa.validation_state,
                "record": self.c2pa.record,
            },
            "watermark": {
                "id": None if self.watermark_id is None else f"{self.watermark_id:010x}",
                "confidence": round(self.watermark_confidence, 3),
            },
            "record": None if self.record is None else self.record.to_dict(),
            "match": {
                "by": self.matched_by,
                "fingerprint_z": None if self.match is None else round(self.match.z, 2),
                "cells": None if self.match is None else self.match.cells,
            },
            "log": {
                "index": self.log_index,
                "tree_size": self.tree_size,
                "root": self.tree_root,
                "tree_head": self.tree_head,
                "inclusion_proof": self.inclusion_proof,
                "proof_ok": self.proof_ok,
                "consistency": self.consistency,
            },
            "problems": self.problems,
        }



def check_log(
    ledger: Ledger, report: VerifyReport, record: ProvenanceRecord | None, index: int | None,
    known_head: SignedTreeHead | None,
) -> bool:
    """Inclusion of the record under the signed head, and consistency of the log's history; False on failure.

    History: the head signed when the record was added (and ``known_head``, a head the caller saved) must
    be prefixes of today's log. A log rewritten behind its signed heads cannot prove that. Public: the store's
    ``verify`` calls it for every verdict that names a record (and for ``known_head`` alone).
    """
    problems = report.problems
    try:
        head = ledger.tree_head()
        head.verify(ledger.public_key)
        report.tree_size, report.tree_root, report.tree_head = head.size, head.root.hex(), head.to_note()
    except (ProofError, LedgerError) as exc:
        problems.append(f"the log's signed tree head does not verify: {exc.message}")
        return False
    ok = True
    if record is not None and index is not None:
        try:
            proof = ledger.inclusion_proof(index, head.size)
            verify_inclusion(index, head.size, leaf_hash(record.canonical_json()), proof, head.root)
            report.proof_ok = True
            report.inclusion_proof = [p.hex() for p in proof]
        except (ProofError, LedgerError) as exc:
            problems.append(f"inclusion proof failed: {exc.message}")
            ok = False
    olds = []
    if known_head is not None:
        olds.append(("the tree head you saved", known_head))
    if index is not None:
        at_append = ledger.head_at(index + 1)
        if at_append is None:
            problems.append(f"the log has no signed head for size {index + 1}, when this record was added")
            ok = False
        else:
            olds.append(("the tree head signed when this record was added", at_append))
    for what, old in olds:
        try:
            proof = ledger.check_consistency(old, head)
            report.consistency = {
                "from_size": old.size, "from_root": old.root.hex(), "to_size": head.size,
                "proof": [p.hex() for p in proof], "ok": True,
            }
        except (ProofError, LedgerError) as exc:
            report.consistency = {"from_size": old.size, "from_root": old.root.hex(), "to_size": head.size,
                                  "proof": [], "ok": False}
            problems.append(f"the log is not consistent with {what} (size {old.size}): {exc.message}")
            ok = False
            break
    return ok
