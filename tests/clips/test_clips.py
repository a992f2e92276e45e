"""Clips as a library: deterministic from the seed, parallax that moves, living grain, three containers, and
provenance that survives a half-size CRF 28 re-encode and a single extracted frame."""

from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tastemaker.clips import (
    ClipOptions,
    build_layers,
    decode,
    make_clip,
    plan_camera,
    prepare,
    render,
    sniff,
    verify_any,
    verify_clip,
)
from tastemaker.clips import make as clip_make
from tastemaker.clips.codec import encode
from tastemaker.encoders.style import texture_stats
from tastemaker.errors import ProvenanceInputError, RequestError
from tastemaker.media import encode_image
from tastemaker.provenance.c2pa import read_manifest
from tastemaker.provenance.record import ProvenanceRecord
from tastemaker.provenance.service import Provenance


def scene(w: int = 640, h: int = 360, *, grain: float = 0.0, seed: int = 0, flat: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    """A textured (or ``flat``: a smooth wall) backdrop with a red disc in front of it, and the disc's cut-out."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([80 + 30 * np.sin(xx / 23.0) * np.cos(yy / 31.0), 130 + 50 * np.sin((xx + yy) / 17.0),
                   150 + 40 * np.cos(xx / 41.0)], -1)  # no red in it: the disc is found by colour
    blobs = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 3) * 25
    bg = (np.full_like(bg, 128) + (xx / w * 40)[..., None]) if flat else bg + blobs[..., None]
    alpha = np.zeros((h, w), np.float32)
    cv2.circle(alpha, (w // 2, int(h * 0.55)), h // 4, 1.0, -1)
    alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), 1.2), np.float32)
    disc = np.stack([215 + 20 * np.sin(xx / 9.0), 30 + 15 * np.cos(yy / 7.0), 40 + 0 * xx], -1)
    img = alpha[..., None] * disc + (1 - alpha[..., None]) * bg
    if grain:
        img = img + rng.standard_normal((h, w)).astype(np.float32)[..., None] * grain
    return np.clip(img, 0, 255).astype(np.uint8), alpha


@pytest.fixture(scope="module")
def prov(tmp_path_factory: pytest.TempPathFactory) -> Provenance:
    return Provenance(tmp_path_factory.mktemp("clipstore"))


def _clip(prov: Provenance, img: np.ndarray, alpha: np.ndarray, fmt: str = "mp4", seconds: float = 2, seed: int = 5,
          **kw: object) -> clip_make.Clip:
    options = ClipOptions.create(seconds, 24, fmt)
    assert options is not None
    return make_clip(img, options, provenance=prov, seed=seed, profile_hash="0" * 16, engine="look",
                     engine_version="2", of="00000000aa", alpha=alpha, **kw)  # type: ignore[arg-type]


def _seed_for(move: str) -> int:
    return next(s for s in range(200) if plan_camera(s, 640, 360).move == move)


def test_same_seed_same_frames_other_seed_other_move() -> None:
    img, alpha = scene()
    options = ClipOptions.create(1, 24)
    assert options is not None
    layers = prepare(img, options, alpha=alpha)
    cam_a, frames_a = render(layers, options, 11)
    cam_b, frames_b = render(layers, options, 11)
    assert cam_a == cam_b
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
    cams = {plan_camera(s, 640, 360) for s in range(12)}
    assert len({c.move for c in cams}) >= 4  # the seed chooses among the moves


def test_parallax_moves_the_subject_against_the_background() -> None:
    img, alpha = scene()
    options = ClipOptions.create(2, 24)
    assert options is not None
    layers = prepare(img, options, alpha=alpha)
    seed = _seed_for("pan_left")
    _, it = render(layers, options, seed)
    frames = list(it)
    first, last = frames[0].astype(np.float32), frames[-1].astype(np.float32)

    def red_centre(f: np.ndarray) -> float:
        red = ((f[..., 0] > 150) & (f[..., 1] < 90)).astype(np.float32)
        return cv2.moments(red)["m10"] / cv2.moments(red)["m00"]

    # the background's shift, from a strip of backdrop well above the disc
    g0 = cv2.cvtColor(first[:60, 40:-40], cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(last[:60, 40:-40], cv2.COLOR_RGB2GRAY)
    (bg_dx, _), _ = cv2.phaseCorrelate(g0, g1)
    subject_dx = red_centre(last) - red_centre(first)
    assert abs(bg_dx) > 2  # the camera moved
    assert abs(subject_dx) > abs(bg_dx) * 1.3  # and the subject, nearer, moved further: parallax
    assert np.sign(subject_dx) == np.sign(bg_dx)


def test_grain_is_alive_at_the_pictures_level() -> None:
    img, alpha = scene(grain=9.0, flat=True)
    options = ClipOptions.create(1, 24)
    assert options is not None
    live = prepare(img, options, alpha=alpha)
    frozen = prepare(img, options, alpha=alpha, live_grain=False)
    assert live.grain > 0 and frozen.grain == 0
    seed = _seed_for("push_in")  # starts at rest: frames 0 and 1 show the same picture

    def fine(f: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return (g - cv2.GaussianBlur(g, (0, 0), 2))[:80, :200].ravel()

    def level(f: np.ndarray) -> float:
        th = cv2.resize(f, (256, 144), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        return float(np.expm1(texture_stats(cv2.cvtColor(th, cv2.COLOR_RGB2Lab)[..., 0])["grain"]))

    a, b = (f for _, f in zip(range(2), render(live, options, seed)[1], strict=False))
    c, d = (f for _, f in zip(range(2), render(frozen, options, seed)[1], strict=False))
    assert np.corrcoef(fine(a), fine(b))[0, 1] < 0.6  # fresh grain on every frame
    assert np.corrcoef(fine(c), fine(d))[0, 1] > 0.9  # without it the texture stands still
    assert level(a) == pytest.approx(level(img), rel=0.35)  # and at the picture's own level


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_each_format_is_written_and_readable(prov: Provenance, fmt: str) -> None:
    img, alpha = scene(320, 240)
    clip = _clip(prov, img, alpha, fmt, seconds=1)
    assert sniff(clip.data) == fmt
    frames = [f for _, f in decode(clip.data)]
    assert len(frames) == 24 and frames[0].shape == (240, 320, 3)
    manifest = read_manifest(clip.data, fmt, trust_anchor_pem=prov.identity.anchor_pem) if fmt != "webm" else None
    if manifest is not None:  # c2pa signs MP4 and GIF; WebM carries the mark only
        assert manifest.state == "valid" and manifest.trusted and manifest.record is not None
        assert manifest.record["clip"]["format"] == fmt
    assert clip.signed == (fmt != "webm")
    report = verify_any(prov, clip.data)
    assert report.verdict == "verified" and report.record is not None and report.record.clip is not None
    assert report.record.clip["frames"] == 24 and report.media is not None


def _reencode_half(data: bytes, crf: int = 28) -> bytes:
    buf = io.BytesIO()
    with av.open(io.BytesIO(data), "r") as inp, av.open(buf, "w", format="mp4") as out:
        src = inp.streams.video[0]
        w, h = src.codec_context.width // 2, src.codec_context.height // 2
        stream = out.add_stream("libx264", rate=24, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for frame in inp.decode(video=0):
            small = np.asarray(cv2.resize(frame.to_ndarray(format="rgb24"), (stream.width, stream.height),
                                          interpolation=cv2.INTER_AREA), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def test_verify_finds_the_clip_from_a_half_size_crf28_copy_and_from_one_frame(tmp_path: Path) -> None:
    # a repeatable store: the record id, hence the mark, comes from the picture, so this copy decodes the same way
    # every run (over random ids about 1 in 10 synthetic copies does not: bench/clips.py measures the rate)
    prov = Provenance(tmp_path, repeatable=True)
    img, alpha = scene(1280, 720, grain=4.0)  # 720p, as the bench: the copy is 640x360
    clip = _clip(prov, img, alpha, "mp4", seconds=1, seed=_seed_for("drift"))
    copy = _reencode_half(clip.data)
    report = verify_clip(prov, copy)
    assert report.verdict == "verified", report.problems
    assert report.c2pa.state == "absent" and report.record is not None
    assert report.record.record_id == clip.record.record_id and report.record.clip is not None
    assert report.media is not None and report.media["width"] == 640
    frame = [f for _, f in decode(clip.data)][15]
    single = prov.verify(encode_image(frame, "png"))
    assert single.verdict == "verified" and single.record is not None
    assert single.record.record_id == clip.record.record_id
    # the record says what it is: a clip of that still, at that rate
    assert single.record.clip == {"duration_ms": 1000, "fps": 24, "frames": 24, "width": 1280, "height": 720,
                                  "format": "mp4", "of": "00000000aa", "mark_scale": 2}


TENNIEL = Path(__file__).resolve().parents[3] / "shared/data/dev-eval/boards/engraving-tenniel"


@pytest.mark.skipif(not TENNIEL.is_dir(), reason="needs ../shared/data/dev-eval (the engraving board)")
def test_line_art_keeps_its_mark_through_a_half_size_crf28_copy(tmp_path: Path) -> None:
    """An engraving's mark lives in its hatching; at full size, H.264 at CRF 28 on a half-size copy quantised it
    away (both Tenniel pictures of bench/clips.py). The clip's mark is coarse (``mark_scale`` 2): it survives."""
    prov = Provenance(tmp_path)
    src = cv2.cvtColor(cv2.imread(str(sorted(TENNIEL.glob("*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    f = max(1280 / src.shape[1], 720 / src.shape[0])
    src = cv2.resize(src, (round(src.shape[1] * f), round(src.shape[0] * f)), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(src[:720, (src.shape[1] - 1280) // 2:][:, :1280])
    clip = _clip(prov, img, np.zeros(img.shape[:2], np.float32), "mp4", seconds=1, seed=_seed_for("drift"))
    assert clip.record.clip is not None and clip.record.clip["mark_scale"] == 2
    report = verify_clip(prov, _reencode_half(clip.data))
    assert report.verdict == "verified" and report.record is not None, report.problems
    assert report.record.record_id == clip.record.record_id
    frame = [f for _, f in decode(clip.data)][12]  # a full-size frame: the coarse mark is read at half size
    single = prov.verify(encode_image(frame, "png"))
    assert single.verdict == "verified" and single.record is not None
    assert single.record.record_id == clip.record.record_id


@pytest.mark.slow  # every frame searched at every scale and orientation (bench/clips.py measures FPR on 10 clips)
def test_a_clip_never_marked_is_not_ours(prov: Provenance) -> None:
    img, alpha = scene(640, 360, seed=3)
    options = ClipOptions.create(1, 24)
    assert options is not None
    layers = build_layers(img, alpha)
    _, it = render(layers, options, 4)
    data = encode(it, "mp4", 24, (640, 360))
    assert verify_clip(prov, data).verdict == "not_ours"


@pytest.mark.parametrize(("args", "field"), [
    ((0,), "clip"), ((60,), "clip"), ((float("nan"),), "clip"), (("soon",), "clip"), ((2, 25), "fps"),
    ((2, 24, "avi"), "clip_format"), ((None, 30), "fps"), ((None, None, "gif"), "clip_format"),
])
def test_bad_clip_options_name_the_field(args: tuple, field: str) -> None:
    with pytest.raises(RequestError, match=f"^{field}"):
        ClipOptions.create(*args)
    assert ClipOptions.create(None) is None
    opts = ClipOptions.create(6, 30, "GIF")
    assert opts is not None and opts.frames == 180 and opts.format == "gif"


def test_a_gif_over_the_limit_is_made_smaller_then_refused(prov: Provenance, monkeypatch: pytest.MonkeyPatch) -> None:
    img, alpha = scene(400, 300)
    full = _clip(prov, img, alpha, "gif", seconds=1)
    monkeypatch.setattr(clip_make, "GIF_MAX_BYTES", int(len(full.data) * 0.8))
    smaller = _clip(prov, img, alpha, "gif", seconds=1)
    assert smaller.width < full.width and len(smaller.data) <= len(full.data) * 0.8
    assert verify_any(prov, smaller.data).verdict == "verified"
    monkeypatch.setattr(clip_make, "GIF_MAX_BYTES", 1000)
    with pytest.raises(RequestError, match="20 MB limit for GIFs; ask for mp4 or webm"):
        _clip(prov, img, alpha, "gif", seconds=1)


def test_clip_records_are_checked(tmp_path: Path) -> None:
    base = dict(account="a", prompt_hmac="0" * 64, profile_hash="p", engine="look", engine_version="2", seed=1,
                pixels=np.zeros((4, 4, 3), np.uint8), fingerprint="fp1:AAAAAAAAAAAA", record_id=5)
    good = {"duration_ms": 3000, "fps": 24, "frames": 72, "width": 64, "height": 64, "format": "mp4", "of": "ab"}
    rec = ProvenanceRecord.create(**base, clip=good)  # type: ignore[arg-type]
    assert ProvenanceRecord.from_json(rec.canonical_json()) == rec
    coarse = ProvenanceRecord.create(**base, clip={**good, "mark_scale": 2})  # type: ignore[arg-type]
    assert ProvenanceRecord.from_json(coarse.canonical_json()) == coarse
    for bad in ({**good, "fps": 0}, {**good, "format": "avi"}, {**good, "extra": 1}, {**good, "fps": 23.9},
                {**good, "mark_scale": 3}, {**good, "mark_scale": "2"}, {**good, "mark_scale": True}):
        with pytest.raises(ProvenanceInputError, match="clip"):
            ProvenanceRecord.create(**base, clip=bad)  # type: ignore[arg-type]
