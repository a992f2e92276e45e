"""Curation on a planted set: near-duplicate precision and recall, images per second, consent violations.

From ../shared/data/dev-eval: every board image (58) is an *original* (with engagement, in its board), and three
copies of each go to a board of copies — re-encoded as JPEG quality 75, resized to half, and cropped to 80 % of
each side at a random offset. Unrelated images: the face photos (a board whose rule records consent), and
probes of the consent rules: a board the rules refuse and three images whose C2PA manifest says
``ai_training: notAllowed``. The whole ``curate`` runs (local process pool on this machine's cores).

* ``dup_precision`` / ``dup_recall``: over pairs of images, "in one near-duplicate cluster" against "copies of
  one original" (every readable image takes part, whatever the other filters decided);
* ``images_per_s``: input images over the whole run's wall time (read, C2PA, faces, quality, hashes, dedup,
  shards, table);
* ``consent_violations``: kept images that a rule refused, whose C2PA manifest refuses training, or that show a
  face without a rule recording consent (must be 0). The run is made twice and the shards compared byte for byte.

Last line: ``{"dup_precision", "dup_recall", "images_per_s", "consent_violations"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tempfile
import time
from functools import partial
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from tastemaker.curate.dedup import clusters, duplicate_pairs
from tastemaker.curate.pipeline import CurateSettings, curate, run_local
from tastemaker.curate.rules import parse_rules

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev-eval"
RULES = """
version: 1
default: exclude
rules:
  - match: {board: private}
    allow: false
    reason: the account owner did not agree
  - match: {board: people}
    allow: true
    basis: public domain (NASA, LoC); consent assumed for the benchmark
    licence: public-domain
    faces_consented: true
  - match: {}
    allow: true
    basis: public domain or CC0 (dev-eval SOURCES.md)
    licence: CC0-1.0
"""


def sign_not_allowed(data: bytes) -> bytes:
    """``data`` (a JPEG) with a C2PA manifest saying ai_training: notAllowed."""
    import c2pa

    from tastemaker.provenance.c2pa import create_signing_identity

    ident, _ = create_signing_identity()
    manifest = {"claim_generator_info": [{"name": "bench", "version": "1"}], "title": "opt-out",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}},
                               {"label": "c2pa.training-mining", "data": {"entries": {
                    "c2pa.ai_training": {"use": "notAllowed"}, "c2pa.data_mining": {"use": "notAllowed"}}}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, ident.chain_pem, ident.key_pem,
                                                       None))
    builder = c2pa.Builder(manifest, context=c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    out = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(data), out)
    return out.getvalue()


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def planted(root: Path, data: Path, seed: int = 0) -> dict[str, str]:
    """Write the planted set; returns file path -> original id (unrelated images map to their own path)."""
    rng = np.random.default_rng(seed)
    group: dict[str, str] = {}
    copies = root / "copies"
    copies.mkdir(parents=True)
    for board in sorted(p for p in (data / "boards").iterdir() if p.is_dir()):
        dst = root / board.name
        dst.mkdir()
        rows = ["image,saves,clicks,title,tags"]
        for k, src in enumerate(sorted(board.iterdir())):
            if src.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            gid = f"{board.name}/{src.stem}"
            (dst / src.name).write_bytes(src.read_bytes())
            group[str(dst / src.name)] = gid
            rows.append(f"{src.name},{5 + k % 7},{k},{src.stem.replace('_', ' ')},{board.name}")
            img = Image.open(src)
            img.load()
            w, h = img.size
            variants = {
                "q75": jpeg(img, 75),
                "half": jpeg(img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS), 90),
            }
            cw, ch = round(w * 0.8), round(h * 0.8)
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            variants["crop"] = jpeg(img.crop((x0, y0, x0 + cw, y0 + ch)), 90)
            for tag, blob in variants.items():
                path = copies / f"{board.name}__{src.stem}__{tag}.jpg"
                path.write_bytes(blob)
                group[str(path)] = gid
        (dst / "pins.csv").write_text("\n".join(rows) + "\n")
    people = root / "people"
    people.mkdir()
    for src in sorted((data / "faces").rglob("*.jpg")):
        (people / src.name).write_bytes(src.read_bytes())
        group[str(people / src.name)] = str(people / src.name)
    private = root / "private"
    private.mkdir()
    c2pa_dir = root / "optout"
    c2pa_dir.mkdir()
    for i in range(6):
        r = np.random.default_rng(100 + i)
        arr = np.clip(r.normal(128, 60, (8, 8, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr).resize((640, 480), Image.Resampling.BICUBIC)
        target = private / f"private-{i}.jpg" if i < 3 else c2pa_dir / f"optout-{i}.jpg"
        blob = jpeg(img, 90)
        target.write_bytes(sign_not_allowed(blob) if i >= 3 else blob)
        group[str(target)] = str(target)
    return group


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if not (args.data / "boards").is_dir():
        raise SystemExit(f"dev-eval data not found at {args.data}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    group = planted(tmp / "in", args.data)
    rules = parse_rules(RULES, "bench-rules.yaml")
    cfg = CurateSettings(min_side=128)
    measure = partial(run_local, workers=args.workers)
    t0 = time.perf_counter()
    result = curate([tmp / "in"], tmp / "out", rules=rules, settings=cfg, measure=measure)
    wall = time.perf_counter() - t0
    rows = result.rows
    readable = [r for r in rows if not r.analysis.error]
    labels = clusters(len(readable), duplicate_pairs([r.analysis.hashes for r in readable], cfg.dup_max_distance))
    truth = [group[str(r.item.path)] for r in readable]
    tp = fp = fn = 0
    for i, j in combinations(range(len(readable)), 2):
        same, pred = truth[i] == truth[j], labels[i] == labels[j]
        tp += same and pred
        fp += pred and not same
        fn += same and not pred
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    violations = 0
    for r in result.kept:
        refused = {u for u, v in r.analysis.c2pa_uses.items() if v != "allowed"}
        violations += int(r.item.board == "private" or bool(refused) or r.analysis.c2pa_state == "unreadable"
                          or (r.analysis.faces > 0 and r.item.board != "people"))
    shards = sorted((tmp / "out" / "shards").glob("*.tar"))
    first = [hashlib.sha256(p.read_bytes()).hexdigest() for p in shards]
    again = curate([tmp / "in"], tmp / "out2", rules=rules, settings=cfg, measure=measure)
    second = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp / "out2" / "shards").glob("*.tar"))]
    identical = first == second and len(again.kept) == len(result.kept)
    excluded: dict[str, int] = {}
    for r in rows:
        if not r.kept:
            excluded[r.excluded_by] = excluded.get(r.excluded_by, 0) + 1
    print(f"planted set: {len(rows)} images ({sum(1 for g in set(truth) if truth.count(g) > 1)} originals with "
          f"3 copies each), {args.workers} worker process(es); {wall:.1f} s")
    print(f"{'measure':<34}{'value':>10}")
    print("-" * 44)
    for name, value in (("duplicate pairs: precision", f"{precision:.4f}"),
                        ("duplicate pairs: recall", f"{recall:.4f}"),
                        ("images per second", f"{len(rows) / wall:.2f}"), ("kept", str(len(result.kept))),
                        ("consent violations", str(violations)), ("shards byte-identical", str(identical))):
        print(f"{name:<34}{value:>10}")
    print("excluded by: " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())))
    print(json.dumps({"dup_precision": round(precision, 4), "dup_recall": round(recall, 4),
                      "images_per_s": round(len(rows) / wall, 2), "consent_violations": violations}))


if __name__ == "__main__":
    main()
