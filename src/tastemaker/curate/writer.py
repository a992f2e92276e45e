"""Writing a curated dataset: WebDataset shards, the Parquet table, the datasheet and the settings.

**Shards** (``shards/shard-000000.tar`` ...) follow the WebDataset convention: the files of one sample share a
key (the image's stable id) and sit next to each other — ``<id>.jpg|png|webp|...`` (the original bytes, so their
SHA-256 is the table's), ``<id>.txt`` (the caption) and ``<id>.json`` (id, caption, engagement, source, board,
consent basis, licence, duplicate cluster). Samples are in stable-id order and every tar header is fixed
(mtime 0, owner 0:0 with no names, mode 0644, ustar), so the same input gives byte-identical shards on any
machine. Any WebDataset reader (``webdataset.WebDataset``, ``tarfile``) reads them.

**metadata.parquet** has one row per *input* image, kept or not: stable id, SHA-256, kind, account, board,
source, path, format, size, caption, engagement (saves, clicks, dwell, score), consent basis and licence,
duplicate cluster, the shard it went to, and for every filter its decision and reason.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError
from ..media import read_image_bytes, write_atomic
from .records import FILTERS, Row

EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "tiff": "tif", "bmp": "bmp"}


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def sample_json(row: Row) -> dict[str, Any]:
    it = row.item
    return {
        "id": row.id, "sha256": row.analysis.sha256, "caption": row.caption, "kind": it.kind, "account": it.account,
        "board": it.board, "source": it.source, "title": it.title, "tags": list(it.tags),
        "engagement": {"saves": it.saves, "clicks": it.clicks, "dwell_seconds": it.dwell_seconds,
                       "score": it.engagement},
        "consent_basis": row.consent_basis, "licence": row.licence, "duplicate_cluster": row.cluster,
        "width": row.analysis.width, "height": row.analysis.height,
    }


def write_shards(out: Path, kept: Sequence[Row], shard_size: int) -> list[str]:
    """Write the kept rows (already in stable-id order) as tar shards; returns the shard names."""
    folder = out / "shards"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for start in range(0, len(kept), shard_size):
        name = f"shard-{start // shard_size:06d}.tar"
        tmp = folder / f".{name}.partial"
        with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for row in kept[start:start + shard_size]:
                ext = EXTENSIONS.get(row.analysis.format, "img")
                _member(tar, f"{row.id}.{ext}", read_image_bytes(row.item.path, max_bytes=1 << 40))
                _member(tar, f"{row.id}.txt", row.caption.encode("utf-8"))
                _member(tar, f"{row.id}.json", json.dumps(sample_json(row), sort_keys=True, ensure_ascii=False,
                                                          separators=(",", ":")).encode("utf-8"))
                row.shard = name
        tmp.chmod(0o644)
        os.replace(tmp, folder / name)
        names.append(name)
    return names


def write_table(path: Path, rows: Sequence[Row]) -> None:
    """``metadata.parquet``: one row per input image (see the module docstring)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("the dataset's Parquet table", "curate", "pyarrow") from None
    cols: dict[str, list[Any]] = {k: [] for k in (
        "id", "sha256", "kind", "account", "board", "source", "path", "format", "width", "height", "bytes",
        "title", "tags", "caption", "saves", "clicks", "dwell_seconds", "engagement", "consent_basis", "licence",
        "duplicate_cluster", "duplicate_of", "kept", "excluded_by", "shard", "faces", "c2pa", "sharpness",
        "luminance_std")}
    for f in FILTERS:
        cols[f"{f}_decision"] = []
        cols[f"{f}_reason"] = []
    for r in rows:
        it, a = r.item, r.analysis
        values = dict(id=r.id, sha256=a.sha256, kind=it.kind, account=it.account, board=it.board, source=it.source,
                      path=str(it.path), format=a.format, width=a.width, height=a.height, bytes=a.bytes,
                      title=it.title, tags=list(it.tags), caption=r.caption, saves=it.saves, clicks=it.clicks,
                      dwell_seconds=float(it.dwell_seconds), engagement=float(it.engagement),
                      consent_basis=r.consent_basis, licence=r.licence, duplicate_cluster=r.cluster,
                      duplicate_of=r.duplicate_of, kept=r.kept, excluded_by=r.excluded_by, shard=r.shard,
                      faces=a.faces, c2pa=a.c2pa_state, sharpness=round(a.sharpness, 3),
                      luminance_std=round(a.luminance_std, 3))
        for k, v in values.items():
            cols[k].append(v)
        for f in FILTERS:
            d = r.decisions.get(f)
            cols[f"{f}_decision"].append(d.decision if d else "skip")
            cols[f"{f}_reason"].append(d.reason if d else "")
    table = pa.table({k: pa.array(v, type=pa.list_(pa.string())) if k == "tags" else pa.array(v)
                      for k, v in cols.items()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    write_atomic(path, buf.getvalue().to_pybytes(), mode=0o644)


def datasheet(rows: Sequence[Row], settings_doc: dict[str, Any], shards: Sequence[str]) -> dict[str, Any]:
    """Counts per filter, per source and per board, and the consent and licence summary."""
    kept = [r for r in rows if r.kept]
    per_filter = {f: dict(Counter(r.decisions[f].decision for r in rows if f in r.decisions)) for f in FILTERS}
    excluded = dict(Counter(r.excluded_by for r in rows if not r.kept))
    reasons: dict[str, dict[str, int]] = {}
    for r in rows:
        for f in FILTERS:
            d = r.decisions.get(f)
            if d is not None and d.decision == "exclude":
                short = d.reason.split(":")[0] if f in ("quality", "duplicate", "consent") else d.reason
                reasons.setdefault(f, {})[short] = reasons.setdefault(f, {}).get(short, 0) + 1

    def by(key: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            k = getattr(r.item, key) or "(none)"
            entry = out.setdefault(k, {"images": 0, "kept": 0})
            entry["images"] += 1
            entry["kept"] += int(r.kept)
        return dict(sorted(out.items()))

    return {
        "images": len(rows), "kept": len(kept), "excluded": len(rows) - len(kept), "shards": list(shards),
        "per_filter": per_filter, "excluded_by": excluded, "exclusion_reasons": reasons,
        "per_source": by("source"), "per_board": by("board"), "per_account": by("account"),
        "consent_basis": dict(Counter(r.consent_basis for r in kept)),
        "licences": dict(Counter(r.licence or "(not stated)" for r in kept)),
        "faces_kept": sum(1 for r in kept if r.analysis.faces > 0),
        "duplicate_clusters": len({r.cluster for r in rows if r.cluster}),
        "with_caption": sum(1 for r in kept if r.caption),
        "rules": {"source": settings_doc["rules"]["source"], "default": settings_doc["rules"]["default"],
                  "n_rules": len(settings_doc["rules"]["rules"])},
    }


def _table(d: dict[str, Any]) -> list[str]:
    lines = ["| | images | kept |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['images']} | {v['kept']} |" for k, v in d.items()]
    return lines


def datasheet_markdown(sheet: dict[str, Any], settings_doc: dict[str, Any]) -> str:
    """The datasheet as a person reads it (after Gebru et al., *Datasheets for Datasets*)."""
    made = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# Datasheet", "",
        f"Made by Tastemaker {settings_doc['tastemaker']} (`tastemaker curate`) on {made} from "
        f"{', '.join(settings_doc['inputs'])}.", "",
        "## Composition", "",
        f"{sheet['kept']} of {sheet['images']} images kept, in {len(sheet['shards'])} WebDataset shard(s); "
        f"{sheet['with_caption']} kept images have a caption (from pin titles and tags); engagement (saves, clicks, "
        f"dwell, score) is kept as labels. {sheet['duplicate_clusters']} near-duplicate cluster(s) were found.", "",
        "## Decisions per filter", "", "| filter | pass | exclude | skip |", "|---|---:|---:|---:|",
    ]
    for f, counts in sheet["per_filter"].items():
        lines.append(f"| {f} | {counts.get('pass', 0)} | {counts.get('exclude', 0)} | {counts.get('skip', 0)} |")
    lines += ["", "Reasons for exclusion:", ""]
    for f, reasons in sheet["exclusion_reasons"].items():
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"- {f}: {why} ({n})")
    lines += ["", "## Per source", "", *_table(sheet["per_source"])]
    lines += ["", "## Per board", "", *_table(sheet["per_board"])]
    if any(k != "(none)" for k in sheet["per_account"]):
        lines += ["", "## Per account", "", *_table(sheet["per_account"])]
    lines += ["", "## Consent and licences", "",
              f"Consent rules: {sheet['rules']['source'] or '(none: nothing is allowed without rules)'}; "
              f"{sheet['rules']['n_rules']} rule(s), default {sheet['rules']['default']}. Images whose C2PA "
              "training-and-mining assertion refuses training or mining are never kept; images with faces only "
              f"where a rule records the people's consent ({sheet['faces_kept']} kept).", "",
              "| consent basis | images |", "|---|---:|"]
    lines += [f"| {k or '(none)'} | {v} |" for k, v in sorted(sheet["consent_basis"].items())]
    lines += ["", "| licence | images |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(sheet["licences"].items())]
    lines += ["", "## Settings", "", "The exact settings and rules are in `settings.json`; every image's decisions "
              "and reasons are in `metadata.parquet`.", ""]
    return "\n".join(lines)


def write_dataset(out: Path, rows: Sequence[Row], shard_size: int, settings_doc: dict[str, Any]) -> list[str]:
    """Shards, table, datasheet (Markdown and JSON) and settings into ``out`` (which exists)."""
    kept = [r for r in rows if r.kept]
    shards = write_shards(out, kept, shard_size)
    write_table(out / "metadata.parquet", rows)
    sheet = datasheet(rows, settings_doc, shards)
    write_atomic(out / "datasheet.json", (json.dumps(sheet, indent=1, ensure_ascii=False) + "\n").encode(), mode=0o644)
    write_atomic(out / "datasheet.md", datasheet_markdown(sheet, settings_doc).encode("utf-8"), mode=0o644)
    write_atomic(out / "settings.json", (json.dumps(settings_doc, indent=1, ensure_ascii=False, sort_keys=True)
                                         + "\n").encode(), mode=0o644)
    return shards
