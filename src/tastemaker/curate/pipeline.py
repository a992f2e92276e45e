"""``curate``: a consented training dataset from boards, a catalogue or a search index, with every decision kept.

Per image, in this order (every filter is evaluated for every readable image, so the table says all of it):

1. **read** — the file is an image Tastemaker decodes;
2. **consent** — the first matching rule of the consent rules allows it (no rule: the rules' default, which is
   *exclude*; no rules file: nothing is allowed, see :mod:`.rules`);
3. **c2pa** — no C2PA training-and-mining assertion says ``notAllowed`` (or ``constrained``) for training or
   data mining (:mod:`.analyse`);
4. **faces** — no face is found, unless the matching rule says the people shown consented (faces are only looked
   for where they decide something);
5. **quality** — the shorter side, sharpness and luminance spread reach the settings' minimums;
6. **duplicate** — among the images that passed 1-5, near-duplicates (:mod:`.dedup`) are clustered and the most
   engaged copy is kept (then the larger, then the smaller stable id).

The measuring (step 0: :func:`.analyse.analyse` per image) runs here, in a process pool, or on a Ray cluster
(:mod:`.ray_runner`); deciding and writing run in this process from the measurements alone, so the output does not
depend on where the measuring ran. Kept images are written, in stable-id order, to WebDataset tar shards whose
bytes depend only on the input (fixed member order, times, owners and modes), beside a Parquet table with one
row per input image, a datasheet and the exact settings. If nothing is kept, nothing is written: the error
counts the reasons.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._version import __version__
from ..discovery.sources import SourceImage, read_sources
from ..errors import EmptyDatasetError, OutputError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, read_image_bytes
from .analyse import TRAINING_USES, Analysis, ImageJob, analyse
from .dedup import MAX_DISTANCE, clusters, duplicate_pairs
from .records import DATASET_SCHEMA, FILTERS, Decision, Row
from .rules import ConsentRules
from .writer import write_dataset


class CurateSettings(BaseModel):
    """Thresholds and output layout; written to ``settings.json`` with the rules."""

    model_config = ConfigDict(extra="forbid")

    min_side: int = Field(256, ge=1, description="shorter side in pixels")
    min_sharpness: float = Field(15.0, ge=0, description="variance of the Laplacian at 512 px (blur lowers it)")
    min_luminance_std: float = Field(3.0, ge=0, description="standard deviation of L* (near-blank images are below)")
    dup_max_distance: int = Field(MAX_DISTANCE, ge=0, le=32, description="Hamming bits of 64 for near-duplicates")
    shard_size: int = Field(1000, ge=1, le=1_000_000, description="images per WebDataset shard")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1)


@dataclass
class CurateResult:
    rows: list[Row]
    out_dir: Path
    shards: list[str]

    @property
    def kept(self) -> list[Row]:
        return [r for r in self.rows if r.kept]


def stable_id(item: SourceImage, sha256: str) -> str:
    """An id that stays the same for the same image in the same place: 16 hex digits."""
    name = item.key.removeprefix("product:") if item.kind == "product" else item.path.name
    text = "\0".join([item.kind, item.account, item.board, name, sha256])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def caption_of(item: SourceImage) -> str:
    """The caption from the title and tags ("" when there are none)."""
    title = item.title.strip()
    tags = ", ".join(t for t in item.tags if t)
    if title and tags:
        return f"{title}. {tags}"
    return title or tags


def collect(inputs: Sequence[Path]) -> list[SourceImage]:
    """The images of every input: board folders (trees), ``products.csv`` catalogues or search-index folders."""
    from ..discovery.index import DB_NAME, open_index

    items: list[SourceImage] = []
    for p in inputs:
        if (Path(p) / DB_NAME).is_file():
            idx = open_index(p)
            try:
                for it in idx.iter_items():
                    items.append(SourceImage(key=it.key, kind="product" if it.kind == "product" else "pin",
                                             path=Path(it.path), title=it.title, tags=tuple(it.tags), board=it.board,
                                             account=it.account, source=it.source, url=it.url, price=it.price,
                                             currency=it.currency, brand=it.brand, engagement=it.engagement))
            finally:
                idx.close()
        else:
            items.extend(read_sources(p))
    return sorted(items, key=lambda it: (str(it.path), it.key))


def run_local(jobs: Sequence[ImageJob], *, workers: int = 1,
              on_done: Callable[[Analysis], None] | None = None) -> list[Analysis]:
    """Measure every job here (``workers`` processes; spawn, as :mod:`tastemaker.taste.batch` does)."""
    out: list[Analysis] = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            res = analyse(job)
            out.append(res)
            if on_done is not None:
                on_done(res)
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        for res in pool.map(analyse, jobs, chunksize=4):
            out.append(res)
            if on_done is not None:
                on_done(res)
    return out


def consent_facts(item: SourceImage) -> dict[str, str]:
    """What the consent rules match on (:data:`.rules.MATCH_KEYS`)."""
    name = item.key.removeprefix("product:") if item.kind == "product" else item.path.name
    return {"account": item.account, "board": item.board, "source": item.source, "kind": item.kind,
            "path": str(item.path), "id": name}


def faces_matter(item: SourceImage, rules: ConsentRules) -> bool:
    """Whether finding a face could change this image's fate (allowed, and no recorded consent of the people)."""
    rule, allowed, _ = rules.decide(consent_facts(item))
    return allowed and not (rule is not None and rule.faces_consented)


def _decide(item: SourceImage, a: Analysis, rules: ConsentRules, cfg: CurateSettings) -> Row:
    row = Row(id=stable_id(item, a.sha256 or "unreadable"), item=item, analysis=a, caption=caption_of(item))
    if a.error:
        row.decisions = {"read": Decision("exclude", a.error),
                         **{f: Decision("skip", "the image could not be read") for f in FILTERS[1:]}}
        return row
    d: dict[str, Decision] = {"read": Decision("pass")}
    rule, allowed, why = rules.decide(consent_facts(item))
    d["consent"] = Decision("pass" if allowed else "exclude", why)
    if rule is not None and allowed:
        row.consent_basis = rule.basis or why
        row.licence = rule.licence
    elif allowed:
        row.consent_basis = why
    refused = {u: v for u, v in a.c2pa_uses.items() if u in TRAINING_USES and v != "allowed"}
    if a.c2pa_state == "unreadable":
        d["c2pa"] = Decision("exclude", "a C2PA manifest is present but cannot be read: consent cannot be confirmed")
    elif refused:
        words = ", ".join(f"{u}: {v}" for u, v in sorted(refused.items()))
        d["c2pa"] = Decision("exclude", f"the C2PA training-and-mining assertion says {words}"
                                        f" (manifest {a.c2pa_state})")
    elif a.c2pa_state == "absent":
        d["c2pa"] = Decision("pass", "no C2PA manifest")
    else:
        d["c2pa"] = Decision("pass", f"C2PA manifest ({a.c2pa_state}) does not refuse training or mining")
    if a.faces < 0:
        if rule is not None and rule.faces_consented:
            d["faces"] = Decision("pass", f"not looked for: the {rule.describe()} says the people shown consented")
        else:
            d["faces"] = Decision("skip", "not looked for: the consent rules already exclude the image")
    elif a.faces > 0:
        d["faces"] = Decision("exclude", f"{a.faces} face(s) found and no rule says the people shown consented")
    else:
        d["faces"] = Decision("pass", "no face found")
    problems = []
    if min(a.width, a.height) < cfg.min_side:
        problems.append(f"too small: {a.width}x{a.height}, the shorter side is under {cfg.min_side} px")
    if a.luminance_std < cfg.min_luminance_std:
        problems.append(f"near blank: luminance spread {a.luminance_std:.1f} < {cfg.min_luminance_std}")
    elif a.sharpness < cfg.min_sharpness:
        problems.append(f"blurred: sharpness {a.sharpness:.1f} < {cfg.min_sharpness}")
    d["quality"] = Decision("exclude", "; ".join(problems)) if problems else Decision(
        "pass", f"{a.width}x{a.height}, sharpness {a.sharpness:.0f}, luminance spread {a.luminance_std:.1f}")
    row.decisions = d
    return row


def _dedup(rows: list[Row], cfg: CurateSettings) -> None:
    """Cluster near-duplicates among readable images; keep the most engaged copy of those that passed so far."""
    pairs = duplicate_pairs([r.analysis.hashes for r in rows], cfg.dup_max_distance)
    labels = clusters(len(rows), pairs)
    members: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        members.setdefault(lab, []).append(i)
    for group in members.values():
        ids = sorted(rows[i].id for i in group)
        passed = [i for i in group if all(d.decision == "pass" for d in rows[i].decisions.values())]
        keep = min(passed, key=lambda i: (-rows[i].item.engagement, -(rows[i].analysis.width * rows[i].analysis.height),
                                          rows[i].id)) if passed else None
        for i in group:
            r = rows[i]
            r.cluster = ids[0] if len(group) > 1 else ""
            if r.analysis.error:
                continue
            if len(group) == 1:
                r.decisions["duplicate"] = Decision("pass", "no near-duplicate")
            elif i == keep:
                r.decisions["duplicate"] = Decision("pass", f"kept: the most engaged of {len(group)} near-duplicates")
            elif i in passed and keep is not None:
                r.duplicate_of = rows[keep].id
                r.decisions["duplicate"] = Decision("exclude", f"near-duplicate of {rows[keep].id}, which is more "
                                                               "engaged (or larger)")
            else:
                r.decisions["duplicate"] = Decision("skip", f"in a cluster of {len(group)} near-duplicates; "
                                                            "already excluded")


def decide(items: Sequence[SourceImage], analyses: Sequence[Analysis], rules: ConsentRules,
           cfg: CurateSettings) -> list[Row]:
    """Every decision for every image, from the measurements alone."""
    rows = [_decide(it, a, rules, cfg) for it, a in zip(items, analyses, strict=True)]
    _dedup(rows, cfg)
    return sorted(rows, key=lambda r: (r.id, str(r.item.path)))


def exclusion_summary(rows: Sequence[Row]) -> str:
    counts = Counter(r.excluded_by for r in rows if not r.kept)
    return ", ".join(f"{n} by {f}" for f, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def prepare_output(out: Path) -> None:
    """``out`` must be new, empty, or an earlier dataset (whose files are replaced)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"{out} exists and is not a folder; give a new or empty folder for the dataset")
    if out.is_dir() and any(out.iterdir()):
        settings = out / "settings.json"
        try:
            earlier = json.loads(settings.read_text()).get("schema") == DATASET_SCHEMA
        except (OSError, ValueError, AttributeError):
            earlier = False
        if not earlier:
            raise OutputError(f"{out} is a folder with other files in it; give a new or empty folder (an earlier "
                              "dataset written by `tastemaker curate` is replaced)")
        shutil.rmtree(out / "shards", ignore_errors=True)
        for name in ("metadata.parquet", "datasheet.md", "datasheet.json", "settings.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def curate(
    inputs: Sequence[Path],
    out: Path,
    *,
    rules: ConsentRules,
    settings: CurateSettings | None = None,
    measure: Callable[[Sequence[ImageJob]], list[Analysis]] | None = None,
    runner: str = "local",
) -> CurateResult:
    """Run the whole curation: collect, measure (``measure``: default here, one process), decide, write."""
    cfg = settings or CurateSettings()
    items = collect(inputs)
    if not items:
        raise EmptyDatasetError("the input holds no images")
    # faces are looked for only where they decide something: not where the rules already exclude the image, nor
    # where they record the people's consent (the slowest measurement, so this matters for large inputs)
    jobs = [ImageJob(i, str(it.path), it.path.name, faces_matter(it, rules), cfg.max_pixels, cfg.max_bytes)
            for i, it in enumerate(items)]
    analyses = sorted((measure or run_local)(jobs), key=lambda a: a.index)
    if [a.index for a in analyses] != list(range(len(jobs))):
        raise RuntimeError("the measuring step lost or duplicated images")
    rows = decide(items, analyses, rules, cfg)
    kept = [r for r in rows if r.kept]
    if not kept:
        raise EmptyDatasetError(
            f"every one of the {len(rows)} images was excluded ({exclusion_summary(rows)}); nothing was written. "
            "Check the consent rules (--consent): without a rule that allows a board or source, nothing is exported")
    for r in kept:  # the bytes written are the bytes measured
        data = read_image_bytes(r.item.path, max_bytes=cfg.max_bytes)
        if hashlib.sha256(data).hexdigest() != r.analysis.sha256:
            raise OutputError(f"{r.item.path} changed while the dataset was being made; run curate again")
    prepare_output(out)
    settings_doc: dict[str, Any] = {
        "schema": DATASET_SCHEMA,
        "tastemaker": __version__,
        "inputs": [str(p) for p in inputs],
        "settings": cfg.model_dump(),
        "rules": rules.to_dict(),
        "hashes": "imagehash.phash 64-bit of the whole image and five 80 % crops (centre, corners) at 512 px",
        "filters": list(FILTERS),
        "runner": runner,
    }
    shards = write_dataset(out, rows, cfg.shard_size, settings_doc)
    return CurateResult(rows, out, shards)
