"""Curation: a consented, de-duplicated, captioned training dataset from boards, catalogues or an index.

See ``docs/discovery.md`` (curation) and :mod:`.pipeline` for the order of the filters; :mod:`.rules` is the
consent rules format, :mod:`.analyse` what is measured per image, :mod:`.dedup` the near-duplicate clusters,
:mod:`.writer` the WebDataset shards, Parquet table, datasheet and settings.
"""

from .pipeline import CurateResult, CurateSettings, collect, curate, decide, run_local
from .records import FILTERS, Decision, Row
from .rules import ConsentRules, Rule, load_rules, parse_rules

__all__ = [
    "FILTERS",
    "ConsentRules",
    "CurateResult",
    "CurateSettings",
    "Decision",
    "Row",
    "Rule",
    "collect",
    "curate",
    "decide",
    "load_rules",
    "parse_rules",
    "run_local",
]
