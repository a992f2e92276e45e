"""Queries over a :class:`~.index.SearchIndex`: by image, by text, and by board — one query per taste mode.

**Board queries (PinnerSage-style).** A board is rarely one look; an average of its pins is often none of them
(Pal et al., *PinnerSage*, KDD 2020). The board's taste profile splits it into modes, each with a weight (the
engagement its pins earned) and medoid pins. The merge:

1. *One query per mode*: the mode's centre — the geometric median of its pins' style vectors, which the profile
   keeps (robust to a stray pin, and inside one look: never the average of two looks, which is the point of
   modes); an item's relevance to the mode is its style similarity ``1 / (1 + distance)``. PinnerSage queries
   with medoid pins instead (``representative="medoids"``); on the dev-eval boards the mode centres find the
   held-out pin more often (``bench/discovery.py``: 0.90 against 0.83 for medoids, 0.86 for one centroid
   of the whole board), so they are the default.
2. *Slots by weight*: the ``k`` results are shared among modes in proportion to their weights (largest
   remainder); a mode too light to earn a slot gets none, and slots a mode cannot fill pass to the others.
3. *Diversity (MMR)*: slots are filled in turn, the mode furthest below its share first (heaviest on ties),
   each with the candidate that maximises ``λ · relevance − (1 − λ) · max similarity to what is already
   chosen`` (maximal marginal relevance, Carbonell & Goldstein 1998; λ = :data:`MMR_LAMBDA`), so a mode
   does not fill its slots with near-copies of one image. An item is chosen once, for the mode it serves best.

The board's own pins are left out (by content hash): "more like my board" means images it does not have.
Every hit says why: the mode that found it, palette colours it shares with the query, and words in common.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..encoders.style import DIM, StyleDescriptor, describe, lab_to_rgb8
from ..encoders.text import TextEncoder, get_text_encoder, tokens
from ..errors import SearchQueryError
from ..taste.profile import TasteProfile
from .index import Item, SearchIndex

#: MMR's trade-off between relevance and novelty (1 = relevance only).
MMR_LAMBDA = 0.75
#: Two palette colours "match" below this CIE76 distance (about a just-visible difference for swatches).
PALETTE_MATCH_DE = 14.0
#: Shop the look: weight of palette agreement next to style similarity.
SHOP_PALETTE_WEIGHT = 0.35


@dataclass
class Reason:
    """Why an item was returned."""

    mode: dict[str, Any] | None = None  #: {"id", "name", "weight"} of the taste mode that found it
    palette: list[str] = field(default_factory=list)  #: the item's colours that match the query's (hex)
    words: list[str] = field(default_factory=list)  #: words the item shares with the query (or the mode)
    style_similarity: float | None = None
    text_similarity: float | None = None
    palette_similarity: float | None = None


@dataclass
class Hit:
    """One result."""

    rank: int
    key: str
    kind: str
    score: float
    title: str
    tags: list[str]
    path: str
    board: str
    url: str
    price: float | None
    currency: str
    brand: str
    palette: list[str]
    why: Reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModeQuery:
    """One taste mode as a query."""

    id: str
    name: str
    weight: float  #: normalised over the modes queried
    vectors: np.ndarray  #: (m, DIM) representatives
    palette: np.ndarray  #: (p, 3) Lab
    palette_weights: np.ndarray
    words: frozenset[str]


# ------------------------------------------------------------------------------------------ helpers


def palette_hex(palette: Sequence[Sequence[float]]) -> list[str]:
    """Lab palette rows (``[L, a, b, ...]``) as ``#rrggbb``."""
    if not len(palette):
        return []
    lab = np.asarray([row[:3] for row in palette], dtype=np.float32).reshape(1, -1, 3)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in lab_to_rgb8(lab).reshape(-1, 3).tolist()]


def shared_palette(query: np.ndarray, query_w: np.ndarray, item: Sequence[Sequence[float]]) -> tuple[list[str], float]:
    """The item's colours within :data:`PALETTE_MATCH_DE` of a query colour (hex), and a palette similarity in
    [0, 1]: the query-weighted share of its colours the item has a close match for."""
    if not len(item) or not len(query):
        return [], 0.0
    it = np.asarray([row[:3] for row in item], dtype=np.float64)
    d = np.linalg.norm(np.asarray(query, np.float64)[:, None, :] - it[None], axis=-1)  # (q, i)
    near = d.min(axis=1)
    qw = np.asarray(query_w, np.float64)
    qw = qw / qw.sum() if qw.sum() > 0 else np.full(len(qw), 1 / len(qw))
    sim = float(np.dot(qw, np.exp(-near / PALETTE_MATCH_DE)))
    hexes = palette_hex(item)
    matched = sorted({int(j) for j in np.flatnonzero(d.min(axis=0) < PALETTE_MATCH_DE)})
    return [hexes[j] for j in matched], sim


def _words(item: Item, query_words: frozenset[str]) -> list[str]:
    """The item's own words whose stems (or aesthetic synonyms) are among the query's."""
    if not query_words:
        return []
    return sorted({w for w in re.findall(r"[a-z0-9]+", item.text.lower()) if set(tokens(w)) & query_words})


def _hit(rank: int, item: Item, score: float, why: Reason) -> Hit:
    return Hit(rank=rank, key=item.key, kind=item.kind, score=round(float(score), 4), title=item.title,
               tags=item.tags, path=item.path, board=item.board, url=item.url, price=item.price,
               currency=item.currency, brand=item.brand, palette=palette_hex(item.palette), why=why)


def _sim(d: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.asarray(d))


# ------------------------------------------------------------------------------------------ image and text


def search_image(
    index: SearchIndex, image: np.ndarray | StyleDescriptor, k: int = 20, *, kind: str | None = None,
    exclude: set[int] | None = None, palette_weight: float = 0.0,
) -> list[Hit]:
    """The ``k`` items nearest in style to ``image`` (pixels or a descriptor)."""
    desc = image if isinstance(image, StyleDescriptor) else describe(image)
    exclude = exclude or set()
    fetch = k * 3 + len(exclude) if palette_weight else k + len(exclude)
    d, ids = index.search_vectors(desc.vector[None], fetch, kind=kind)
    items = index.items(ids[0])
    scored = []
    for dist, row in zip(d[0], ids[0], strict=True):
        if row < 0 or int(row) in exclude or int(row) not in items:
            continue
        item = items[int(row)]
        style = float(_sim(dist))
        pal, psim = shared_palette(desc.palette, desc.palette_weights, item.palette)
        score = (1 - palette_weight) * style + palette_weight * psim
        scored.append((score, item, Reason(palette=pal, style_similarity=round(style, 4),
                                           palette_similarity=round(psim, 4))))
    scored.sort(key=lambda t: (-t[0], t[1].key))
    return [_hit(i + 1, item, s, why) for i, (s, item, why) in enumerate(scored[:k])]


def search_text(
    index: SearchIndex, text: str, k: int = 20, *, kind: str | None = None, encoder: TextEncoder | None = None,
) -> list[Hit]:
    """Items whose title and tags match ``text``: MiniLM over stored vectors when the index has them (and the
    ``[text]`` extra is installed), else TF-IDF with aesthetic synonyms. Items without words are never found."""
    if not text.strip():
        raise SearchQueryError("--text: the query is empty")
    words = frozenset(tokens(text))
    enc = encoder
    if enc is None:
        enc = get_text_encoder("auto" if index.settings.text_encoder == "minilm" else "lexical")
    rows, sims = np.zeros(0, np.int64), np.zeros(0)
    if enc.name == "minilm" and index.settings.text_encoder == "minilm":
        rows, mat = index.text_matrix()
        embed = getattr(enc, "embed", None)
        if len(rows) and embed is not None:
            sims = np.clip(mat @ embed([text])[0], 0.0, 1.0)
    else:
        rows, docs = index.texts(kind)
        if len(rows):
            sims = enc.similarity(text, docs)
    keep = np.flatnonzero(sims >= enc.match_min)
    order = keep[np.lexsort((rows[keep], -sims[keep]))]
    items = index.items(rows[order[: k * 4]])
    hits: list[Hit] = []
    for j in order:
        item = items.get(int(rows[j]))
        if item is None or (kind is not None and item.kind != kind):
            continue
        hits.append(_hit(len(hits) + 1, item, float(sims[j]),
                         Reason(words=_words(item, words), text_similarity=round(float(sims[j]), 4))))
        if len(hits) == k:
            break
    return hits


# ------------------------------------------------------------------------------------------ boards


def mode_queries(profile: TasteProfile, *, mode: str | None = None, representative: str = "centroid",
                 max_medoids: int = 3) -> list[ModeQuery]:
    """One query per mode of ``profile`` (or just ``mode``): the mode's centre (``"centroid"``), its medoid pins
    (``"medoids"``; the centre when the profile has no per-pin vectors, as a portable export has not) or both."""
    modes = [profile.mode(mode)] if mode is not None else list(profile.modes)
    vectors = {p.id: np.asarray(p.vector[:DIM], np.float32) for p in profile.pins if len(p.vector) >= DIM}
    total = sum(m.weight for m in modes) or 1.0
    out = []
    for m in modes:
        reps = [vectors[i] for i in m.medoids[:max_medoids] if i in vectors] if representative != "centroid" else []
        if representative != "medoids" or not reps:
            reps.append(np.asarray(m.vector, np.float32))
        vecs = np.stack(reps)
        words = frozenset(tokens(" ".join([*m.tags.keys(), *m.titles])))
        out.append(ModeQuery(m.id, m.name, m.weight / total, vecs, np.asarray(m.look.palette, np.float64),
                             np.asarray(m.look.palette_weights, np.float64), words))
    return out


def centroid_query(profile: TasteProfile) -> list[ModeQuery]:
    """The whole board as one query: the engagement-weighted mean of its pins (the baseline PinnerSage beats)."""
    vecs = np.array([p.vector[:DIM] for p in profile.pins], dtype=np.float64)
    w = np.array([p.weight for p in profile.pins], dtype=np.float64)
    mean = (w[:, None] * vecs).sum(0) / max(w.sum(), 1e-12)
    m = max(profile.modes, key=lambda x: x.weight)
    return [ModeQuery("all", "whole board", 1.0, mean.astype(np.float32)[None], np.asarray(m.look.palette),
                      np.asarray(m.look.palette_weights), frozenset())]


def allocate_slots(weights: Sequence[float], k: int) -> list[int]:
    """Largest-remainder split of ``k`` slots by ``weights`` (ties to the heavier, then the earlier mode)."""
    w = np.asarray(weights, dtype=np.float64)
    if not len(w) or k <= 0:
        return [0] * len(w)
    share = w / w.sum() * k
    base = np.floor(share).astype(int)
    order = np.lexsort((np.arange(len(w)), -w, -(share - base)))
    base[order[: k - int(base.sum())]] += 1
    return [int(x) for x in base]


def search_modes(
    index: SearchIndex,
    queries: Sequence[ModeQuery],
    k: int = 20,
    *,
    kind: str | None = None,
    exclude: set[int] | None = None,
    mmr_lambda: float = MMR_LAMBDA,
    palette_weight: float = 0.0,
    fetch: int | None = None,
) -> list[Hit]:
    """The PinnerSage merge of per-mode results with MMR (see the module docstring)."""
    if not queries:
        raise SearchQueryError("the board has no taste modes to search with")
    exclude = exclude or set()
    fetch = fetch or max(3 * k, 30) + len(exclude)
    rel: list[dict[int, float]] = []  # per mode: row -> relevance
    for q in queries:
        d, ids = index.search_vectors(q.vectors, fetch, kind=kind)
        best: dict[int, float] = {}
        for row, dist in zip(ids.ravel(), d.ravel(), strict=True):
            r = int(row)
            if r < 0 or r in exclude:
                continue
            s = float(_sim(dist))
            if s > best.get(r, -1.0):
                best[r] = s
        rel.append(best)
    items = index.items({r for best in rel for r in best})
    pal_sim: list[dict[int, tuple[list[str], float]]] = [
        {r: shared_palette(q.palette, q.palette_weights, items[r].palette) for r in best if r in items}
        for q, best in zip(queries, rel, strict=True)
    ]

    def relevance(m: int, r: int) -> float:
        s = rel[m][r]
        return (1 - palette_weight) * s + palette_weight * pal_sim[m][r][1] if palette_weight else s

    slots = allocate_slots([q.weight for q in queries], k)
    filled = [0] * len(queries)
    chosen: list[tuple[int, int, float]] = []  # (row, mode, relevance)
    taken: set[int] = set()
    chosen_vecs: list[np.ndarray] = []
    while len(chosen) < k:
        open_modes = [m for m in range(len(queries)) if any(r not in taken and r in items for r in rel[m])]
        if not open_modes:
            break
        # the mode furthest below its share; a mode past its slots only takes what others cannot fill
        under = [m for m in open_modes if filled[m] < slots[m]] or open_modes
        m = min(under, key=lambda j: (filled[j] / max(slots[j], 1e-9), -queries[j].weight, j))
        best_row, best_val, best_rel = -1, -np.inf, 0.0
        cand = [r for r in rel[m] if r not in taken and r in items]
        if chosen_vecs:
            cv = np.stack([items[r].vector for r in cand])
            sv = np.stack(chosen_vecs)
            red = _sim(np.linalg.norm(cv[:, None, :] - sv[None], axis=-1)).max(axis=1)
        else:
            red = np.zeros(len(cand))
        for r, redundancy in zip(cand, red, strict=True):
            rv = relevance(m, r)
            val = mmr_lambda * rv - (1 - mmr_lambda) * float(redundancy)
            if val > best_val + 1e-12 or (abs(val - best_val) <= 1e-12 and items[r].key < items[best_row].key):
                best_row, best_val, best_rel = r, val, rv
        taken.add(best_row)
        chosen_vecs.append(items[best_row].vector)
        chosen.append((best_row, m, best_rel))
        filled[m] += 1
    hits = []
    for rank, (row, m, score) in enumerate(chosen, start=1):
        q, item = queries[m], items[row]
        pal, psim = pal_sim[m][row]
        why = Reason(mode={"id": q.id, "name": q.name, "weight": round(q.weight, 4)}, palette=pal,
                     words=_words(item, q.words), style_similarity=round(rel[m][row], 4),
                     palette_similarity=round(psim, 4))
        hits.append(_hit(rank, item, score, why))
    return hits


def board_exclusions(index: SearchIndex, shas: Sequence[str]) -> set[int]:
    """Rows of the index that are the board's own pins."""
    return index.rows_with_sha([s for s in shas if s])


def search_board(
    index: SearchIndex,
    profile: TasteProfile,
    k: int = 20,
    *,
    mode: str | None = None,
    pin_shas: Sequence[str] = (),
    kind: str | None = None,
    palette_weight: float = 0.0,
) -> list[Hit]:
    """"More like my board": multi-mode queries merged by mode weight with MMR, the board's own pins left out."""
    return search_modes(index, mode_queries(profile, mode=mode), k, kind=kind,
                        exclude=board_exclusions(index, pin_shas), palette_weight=palette_weight)


def shop_the_look(
    index: SearchIndex,
    k: int = 20,
    *,
    profile: TasteProfile | None = None,
    image: np.ndarray | None = None,
    mode: str | None = None,
    pin_shas: Sequence[str] = (),
) -> list[Hit]:
    """Catalogue items (``kind = product``) ranked for a taste (a board's profile) or a picture (a generated
    image): style similarity blended with palette agreement (:data:`SHOP_PALETTE_WEIGHT`), with reasons."""
    if (profile is None) == (image is None):
        raise SearchQueryError("shop the look needs a board (or profile) or an image, not both")
    if index.count("product") == 0:
        raise SearchQueryError(f"the index at {index.folder} has no catalogue items; add a products.csv with "
                               "`tastemaker index add products.csv --index ...`")
    if image is not None:
        return search_image(index, image, k, kind="product", palette_weight=SHOP_PALETTE_WEIGHT)
    assert profile is not None
    return search_modes(index, mode_queries(profile, mode=mode), k, kind="product",
                        exclude=board_exclusions(index, pin_shas), palette_weight=SHOP_PALETTE_WEIGHT)
