"""Measuring outputs: every image against its selfie and every board (:class:`Scorer`), and the aggregates.

:class:`BoardData` is one board as it is measured against (profile, the pins' Gram and texture descriptors,
colours, CLIP centroid); :func:`quality_measures` are one image's colour and artefact measures;
:func:`aggregate` turns the per-image and per-request records into means with intervals and rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encoders.identity import IdentityEncoder
from ..encoders.style import describe
from ..engines.base import BoardAssets
from ..taste.profile import TasteProfile
from . import artefacts as Q
from . import metrics as M
from .config import EvalConfig
from .datasets import BoardEntry, Photo
from .descriptors import board_distance, gram_descriptor
from .texture import texture_descriptor

IMAGE_MEANS = (
    "identity_to_selfie", "identity_to_others", "style_score", "attribution_margin", "texture_attribution_margin",
    "mean_chroma", "mirror_score", "blockiness",
    "clip_image_similarity", "clip_text_similarity", "arcface_cos_selfie", "arcface_cos_others",
)
LATENCY_STAGES = ("decode", "identity", "profile", "engine", "encode", "total")


def aggregate(
    images: Sequence[dict[str, Any]],
    requests: Sequence[dict[str, Any]],
    *,
    method: str,
    board: str | None = None,
    person: str | None = None,
) -> dict[str, Any]:
    """Means with 95 % CIs and rates with Wilson intervals over one method (and board / person)."""

    def keep(r: dict[str, Any]) -> bool:
        return r["method"] == method and (board is None or r["board"] == board) and (
            person is None or r["person"] == person
        )

    imgs = [r for r in images if keep(r)]
    reqs = [r for r in requests if keep(r)]
    ok = [r for r in reqs if r["ok"]]
    out: dict[str, Any] = {
        "kind": reqs[0]["kind"] if reqs else None,
        "n_images": len(imgs),
        "n_requests": len(reqs),
        "n_failed_requests": len(reqs) - len(ok),
        "n_no_face": sum(1 for r in imgs if not r["face_found"]),
        "verification_rate": M.rate_ci(r["verified"] for r in imgs),
        "verification_rate_others": M.rate_ci(r["verified_others"] for r in imgs),
        "attribution_accuracy": M.rate_ci(r["attribution_correct"] for r in imgs),
        "texture_attribution_accuracy": M.rate_ci(r["attribution_texture"] for r in imgs),
        "monochrome_faithful_rate": M.rate_ci(r["monochrome_faithful"] for r in imgs),
        "mirrored_rate": M.rate_ci(r["mirrored"] for r in imgs),
        "blocky_rate": M.rate_ci(r["blocky"] for r in imgs),
        "n_mirrored": sum(1 for r in imgs if r["mirrored"]),
        "n_blocky": sum(1 for r in imgs if r["blocky"]),
        "n_artefacts": sum(1 for r in imgs if r["mirrored"] or r["blocky"]),
        "clip_attribution_accuracy": M.rate_ci(r["clip_attribution_correct"] for r in imgs),
        "near_duplicate_pairs": sum(len(r["near_duplicate_pairs"]) for r in ok),
        "variation_pairs": sum(r["pairs"] for r in ok),
        "diversity_gram": M.mean_ci(r["diversity_gram"] for r in ok),
        "diversity_delta_e": M.mean_ci(r["diversity_delta_e"] for r in ok),
        "latency_ms": {s: M.mean_ci(r["latency_ms"].get(s) for r in ok) for s in LATENCY_STAGES},
        "peak_rss_mb": max((r["peak_rss_mb"] for r in ok if r["peak_rss_mb"] is not None), default=None),
    }
    for key in IMAGE_MEANS:
        out[key] = M.mean_ci(r[key] for r in imgs)
    return out


@dataclass
class BoardData:
    """One board as every method is measured against it: its profile, its pins' descriptors, its colours."""

    entry: BoardEntry
    profile: TasteProfile
    profile_s: float
    grams: np.ndarray
    textures: np.ndarray
    chroma: Q.BoardChroma
    #: what the engine loads from the pins (medium exemplars, scenes): made once per board, as a board
    #: folder gives it to ``tastemaker generate --board``; its time is charged to each request's profile stage
    assets: BoardAssets | None = None
    assets_s: float = 0.0
    clip_centroid: np.ndarray | None = None
    clip_text: str | None = None
    clip_text_vec: np.ndarray | None = None


class Scorer:
    """Measures one selfie's outputs against every board (identity, style, attribution, models)."""

    def __init__(
        self,
        cfg: EvalConfig,
        enc: IdentityEncoder,
        bdata: dict[str, BoardData],
        photo: Photo,
        others: list[Photo],
        clip: Any,
        arcface: Any,
    ) -> None:
        self.cfg, self.enc, self.bdata, self.photo, self.others = cfg, enc, bdata, photo, others
        self.clip, self.arcface = clip, arcface
        self.arc_ref = self.arc_others = None
        if arcface is not None:
            self.arc_ref = arcface.embed(photo.image, photo.face.landmarks)
            self.arc_others = [arcface.embed(o.image, o.face.landmarks) for o in others]

    def score(
        self,
        method: str,
        kind: str,
        common: dict[str, Any],
        pixels: Sequence[np.ndarray],
        seeds: Sequence[int],
        extra: Sequence[dict[str, Any]],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The request record (diversity) and one record per image."""
        cfg = self.cfg
        board = common["board"]
        profile = self.bdata[board].profile
        grams = [gram_descriptor(p) for p in pixels]
        textures = [texture_descriptor(p) for p in pixels]
        div = M.diversity(pixels, grams, cfg.near_duplicate_delta_e)
        dup_members = {i for pair in div["near_duplicate_pairs"] for i in pair}
        clip_vecs = self.clip.embed_images(pixels) if self.clip is not None else None
        recs = []
        for i, (img, g, tx) in enumerate(zip(pixels, grams, textures, strict=True)):
            fm = M.measure_face(self.enc, img)
            ident = M.identity_metrics(fm, self.photo.embedding, [o.embedding for o in self.others],
                                       cfg.verify_threshold)
            dists = {b: board_distance(g, d.grams, cfg.attribution_k) for b, d in self.bdata.items()}
            tdists = {b: board_distance(tx, d.textures, cfg.attribution_k) for b, d in self.bdata.items()}
            tatt = M.attribution(tdists, board)
            rec: dict[str, Any] = {
                "method": method, "kind": kind, **common, "index": i, "variation_seed": int(seeds[i]),
                **extra[i], **ident,
                "style_score": profile.style_score(describe(img, palette=False)),
                **M.attribution(dists, board),
                "board_distances": dists,
                "texture_attributed_board": tatt["attributed_board"],
                "attribution_texture": tatt["attribution_correct"],
                "texture_attribution_margin": tatt["attribution_margin"],
                "texture_board_distances": tdists,
                **quality_measures(img, None if fm.face is None else fm.face.box, self.bdata[board].chroma),
                "near_duplicate": i in dup_members,
                "clip_image_similarity": None, "clip_text_similarity": None,
                "clip_attributed_board": None, "clip_attribution_correct": None,
                "arcface_cos_selfie": None, "arcface_cos_others": None,
            }
            if clip_vecs is not None:
                sims = {b: float(clip_vecs[i] @ d.clip_centroid) for b, d in self.bdata.items()
                        if d.clip_centroid is not None}
                rec["clip_image_similarity"] = sims[board]
                rec["clip_attributed_board"] = max(sims, key=lambda b: (sims[b], b))
                rec["clip_attribution_correct"] = rec["clip_attributed_board"] == board
                tv = self.bdata[board].clip_text_vec
                rec["clip_text_similarity"] = None if tv is None else float(clip_vecs[i] @ tv)
            if self.arcface is not None and fm.face is not None and self.arc_ref is not None:
                from .models import cosine

                v = self.arcface.embed(img, fm.face.landmarks)
                rec["arcface_cos_selfie"] = cosine(v, self.arc_ref)
                if self.arc_others:
                    rec["arcface_cos_others"] = float(np.mean([cosine(v, o) for o in self.arc_others]))
            recs.append(rec)
        req = {"method": method, "kind": kind, **common, "n": len(pixels), "ok": True, **div}
        return req, recs


def quality_measures(
    img: np.ndarray, face_box: tuple[int, int, int, int] | None, board: Q.BoardChroma
) -> dict[str, Any]:
    """One output's colour faithfulness and artefacts (:mod:`.artefacts`): the image record's fields.

    Blockiness is measured inside the face box only (a face magnified past its detail); with no face
    found it is None, and the image does not count as blocky.
    """
    mirror = Q.mirrored_content(img)
    block = None if face_box is None else Q.blockiness(img, face_box)
    return {
        "mean_chroma": Q.mean_chroma(img),
        "monochrome_faithful": Q.monochrome_faithful(img, board),
        "mirror_score": mirror,
        "mirrored": mirror > Q.MIRROR_THRESHOLD,
        "blockiness": block,
        "blocky": block is not None and block > Q.BLOCKY_THRESHOLD,
    }
