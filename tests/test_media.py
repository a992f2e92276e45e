"""Safe decoding: every kind of bad or unusual image input."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.errors import ImageDecodeError, ImageTooLargeError, OutputError, UnsupportedImageError
from tastemaker.media import (
    decode_image,
    encode_image,
    ensure_writable_dir,
    load_image,
    read_image_bytes,
    resize_max_side,
    write_atomic,
)


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return np.concatenate([x + 0 * y, y + 0 * x, np.full((h, w, 1), 128, np.float32)], axis=2).astype(np.uint8)


def test_zero_byte_file_is_named(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.jpg: file is empty \(0 bytes\)"):
        load_image(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="not found"):
        read_image_bytes(tmp_path / "nope.png")


def test_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture")
    with pytest.raises(ImageDecodeError, match=r"notes\.jpg: not a recognised image"):
        load_image(p)


def test_truncated_jpeg() -> None:
    data = _save(Image.fromarray(_gradient(256, 256)), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], name="cut.jpg")


def test_decompression_bomb_refused_before_decoding() -> None:
    bomb = _save(Image.new("L", (9000, 9000)), "PNG")  # 81 MP in a few hundred KB
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLargeError, match="81,000,000 pixels"):
        decode_image(bomb, name="bomb.png", max_pixels=40_000_000)


def test_oversized_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    p.write_bytes(_save(Image.fromarray(_gradient()), "PNG"))
    with pytest.raises(ImageTooLargeError, match="limit"):
        read_image_bytes(p, max_bytes=100)


def test_unsupported_format() -> None:
    data = _save(Image.fromarray(_gradient()), "TGA")
    with pytest.raises(UnsupportedImageError, match="TGA images are not supported"):
        decode_image(data, name="x.tga")


def test_cmyk_jpeg_converts() -> None:
    rgb = Image.fromarray(_gradient())
    out = decode_image(_save(rgb.convert("CMYK"), "JPEG", quality=95))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - np.asarray(rgb).astype(int)).mean() < 12


def test_16bit_png_scaled_not_clipped() -> None:
    a = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    img = Image.fromarray(a)  # uint16 -> mode I;16
    out = decode_image(_save(img, "PNG"))
    assert out.shape == (48, 64, 3)
    assert out.min() == 0 and out.max() == 255  # full range kept, not clipped to 255/65535
    assert abs(int(out[24, 32, 0]) - 128) < 4


def test_alpha_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:5, :, 3] = 255  # top half opaque red, bottom fully transparent
    out = decode_image(_save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[9, 9]) == (255, 255, 255)


def test_palette_with_transparency() -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    img.info["transparency"] = 1
    img.putpixel((0, 0), 1)
    out = decode_image(_save(img, "PNG", transparency=1))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[4, 4]) == (0, 0, 255)


def test_exif_rotation_is_applied() -> None:
    img = Image.fromarray(_gradient(64, 32))  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_save(img, "JPEG", exif=exif.tobytes()))
    assert out.shape[:2] == (64, 32)  # now portrait


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue())
    assert out[8, 8, 0] > 200 and out[8, 8, 2] < 50


def test_webp_roundtrip_and_reduced_jpeg_decode() -> None:
    img = _gradient(512, 384)
    assert decode_image(encode_image(img, "webp")).shape == (384, 512, 3)
    small = decode_image(encode_image(img, "jpeg"), reduce_to=128)
    assert 128 <= max(small.shape[:2]) <= 256  # JPEG DCT scaling: at least the size asked, never more than 2x
    assert resize_max_side(small, 100).shape[1] == 100


def test_output_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write to output directory"):
        ensure_writable_dir(blocker / "out")


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"123")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_encoded_output_carries_no_input_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    src = _save(Image.fromarray(_gradient()), "JPEG", exif=exif.tobytes())
    out = encode_image(decode_image(src), "jpeg")
    assert b"SecretCam" in src and b"SecretCam" not in out


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A typical 022 umask, under which a plain open() makes world-readable files."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_write_atomic_makes_private_files(tmp_path: Path, loose_umask: None) -> None:
    """Outputs, identity files and blobs hold faces: 0600, whatever the umask (issue 11, item 11)."""
    p = write_atomic(tmp_path / "face.png", b"123")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_write_atomic_never_widens_an_existing_files_mode(tmp_path: Path, loose_umask: None) -> None:
    p = tmp_path / "key.pem"
    p.write_bytes(b"old")
    p.chmod(0o400)
    write_atomic(p, b"new", mode=0o644)  # asked for wider: still no more than what the file had
    assert stat.S_IMODE(p.stat().st_mode) == 0o400 and p.read_bytes() == b"new"


def test_write_atomic_public_mode_is_opt_in(tmp_path: Path, loose_umask: None) -> None:
    p = write_atomic(tmp_path / "schema.json", b"{}", mode=0o644)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_new_output_folders_are_private(tmp_path: Path, loose_umask: None) -> None:
    out = ensure_writable_dir(tmp_path / "a" / "out")
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    existing = tmp_path / "mine"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    ensure_writable_dir(existing)  # a folder the user made keeps the mode they gave it
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
