"""The decisions curation records: one :class:`Row` per input image, one :class:`Decision` per filter."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..discovery.sources import SourceImage
from .analyse import Analysis

FILTERS = ("read", "consent", "c2pa", "faces", "quality", "duplicate")
DATASET_SCHEMA = "tastemaker.dataset"


@dataclass
class Decision:
    decision: str  #: pass | exclude | skip (not checked: an earlier step could not run)
    reason: str = ""


@dataclass
class Row:
    """One input image and everything decided about it (a row of ``metadata.parquet``)."""

    id: str
    item: SourceImage
    analysis: Analysis
    caption: str
    consent_basis: str = ""
    licence: str = ""
    decisions: dict[str, Decision] = field(default_factory=dict)
    cluster: str = ""
    duplicate_of: str = ""
    shard: str = ""

    @property
    def kept(self) -> bool:
        return all(d.decision == "pass" for d in self.decisions.values())

    @property
    def excluded_by(self) -> str:
        return next((f for f in FILTERS if self.decisions.get(f, Decision("pass")).decision == "exclude"), "")
