"""Safe image decode and encode.

Everything that turns bytes into pixels goes through :func:`decode_image`, so every entry point
(board import, selfie, API upload) gets the same protections:

* size caps on bytes and on pixels, checked from the header *before* decoding (decompression bombs);
* clear errors for empty, truncated and non-image files, naming the file;
* correct conversion of CMYK, 16-bit, palette and alpha images to 8-bit sRGB (embedded ICC profiles
  are honoured), EXIF orientation applied, GIF/animated images reduced to their first frame;
* optional reduced-size JPEG decoding (``draft``), so thumbnails of large photos are cheap.

Encoding writes fresh files from pixels, so no input metadata (EXIF GPS, camera serials) ever leaks
into an output, and writes are atomic: a crash never leaves half a file behind.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import (
    ImageDecodeError,
    ImagePixelLimitError,
    ImageTooLargeError,
    InputError,
    OutputError,
    RequestError,
    UnsupportedImageError,
)

#: Container formats we decode (Pillow's names).
DECODE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "MPO"})
#: Output formats by the name users type.
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
#: File suffixes treated as images when scanning folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp"})

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000

_SRGB = ImageCms.createProfile("sRGB")


def read_image_bytes(path: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read an image file's bytes, refusing missing, empty and oversized files by name."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageDecodeError(f"{p}: file not found") from None
    except OSError as exc:
        raise ImageDecodeError(f"{p}: cannot read ({exc.strerror})") from exc
    if not p.is_file():
        raise ImageDecodeError(f"{p}: not a file")
    if size == 0:
        raise ImageDecodeError(f"{p.name}: file is empty (0 bytes); expected a JPEG, PNG, WebP or GIF image")
    if size > max_bytes:
        raise ImageTooLargeError(
            f"{p.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit per image"
        )
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{p}: cannot read ({exc.strerror})") from exc


#: Largest text input read whole (a profile, an identity file, a checkpoint): far above any real one.
MAX_TEXT_BYTES = 64 * 1024 * 1024


def stat_input(
    path: Path, error: type[InputError], *, missing: str, unreadable: str
) -> os.stat_result:
    """``path``'s stat, or ``error`` with ``missing`` (it is not there) or ``unreadable`` (plus the OS's reason):
    inputs are checked for what they are before anything opens them."""
    try:
        return path.stat()
    except FileNotFoundError:
        raise error(missing) from None
    except OSError as exc:
        raise error(f"{unreadable} ({exc.strerror})") from None


def read_bounded(path: Path, max_bytes: int, fail: Callable[[str], Exception], *, name: str | None = None) -> bytes:
    """``path``'s bytes: a regular file of at most ``max_bytes``, checked before and while reading, so neither a
    device, a FIFO nor a file that keeps growing can hold a command up. ``fail(message)`` builds the error;
    every message starts with ``name`` (the path unless given)."""
    label = str(path) if name is None else name
    try:
        st = path.stat()
    except FileNotFoundError:
        raise fail(f"{label} not found") from None
    except OSError as exc:
        raise fail(f"{label}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise fail(f"{label} is {kind_of(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise fail(f"{label} is over the {max_bytes / 1e6:g} MB limit ({st.st_size / 1e6:.1f} MB)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise fail(f"{label}: cannot read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise fail(f"{label} is over the {max_bytes / 1e6:g} MB limit (it grew while being read)")
    return data


def read_text_file(
    path: Path | str, *, what: str = "file", error: type[InputError] = InputError, max_bytes: int = MAX_TEXT_BYTES
) -> str:
    """A UTF-8 text input (a profile, an identity file): a regular file of at most ``max_bytes``, or ``error``
    naming it. A FIFO or a device is refused before it is opened, so it can never hang the command."""
    p = Path(path)
    data = read_bounded(p, max_bytes, error, name=f"{what} file {p}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} file {p} is not UTF-8 text ({exc.reason})") from None


def kind_of(mode: int) -> str:
    """What a file is, in words (for messages that refuse it)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def _open_checked(data: bytes, name: str, max_pixels: int, max_bytes: int) -> Image.Image:
    """Open (header only) and apply every check that needs no decoding: bytes, format, pixel count."""
    if not data:
        raise ImageDecodeError(f"{name}: file is empty (0 bytes); expected a JPEG, PNG, WebP or GIF image")
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (at twice its MAX_IMAGE_PIXELS) fired before ours could: quote our limit only
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "its pixel count"
        raise ImagePixelLimitError(
            f"{name}: {size} is over the {max_pixels:,}-pixel limit "
            "(a decompression bomb, or a photo that should be downscaled first)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"{name}: not a recognised image ({len(data)} bytes); expected JPEG, PNG, WebP or GIF"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: cannot read the image header ({exc})") from exc

    if img.format not in DECODE_FORMATS:
        raise UnsupportedImageError(
            f"{name}: {img.format} images are not supported; use JPEG, PNG, WebP or GIF"
        )
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImagePixelLimitError(
            f"{name}: {w}x{h} = {w * h:,} pixels is over the {max_pixels:,}-pixel limit "
            "(a decompression bomb, or a photo that should be downscaled first)"
        )
    return img


def check_image(
    data: bytes, *, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[int, int]:
    """The checks :func:`decode_image` makes before decoding, without decoding: ``(width, height)`` or the
    same error (empty, oversize, bomb, unsupported format, unreadable header)."""
    img = _open_checked(data, name, max_pixels, max_bytes)
    size = img.size
    img.close()
    return size


def decode_image(
    data: bytes,
    *,
    name: str = "image",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reduce_to: int | None = None,
    reduce_longest: int | None = None,
) -> np.ndarray:
    """Decode bytes to an ``(H, W, 3) uint8`` sRGB array, upright, first frame only.

    ``reduce_to`` lets JPEG decoding skip detail (DCT scaling) when only a thumbnail of about that
    longest side is needed; the result is at least that large, never upscaled. ``reduce_longest`` does the
    same keeping the *longest* side at least that long (the shorter one follows the aspect ratio), so a huge
    JPEG is decoded at 1/2, 1/4 or 1/8 of its size for checks that need no more (provenance).
    """
    img = _open_checked(data, name, max_pixels, max_bytes)
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)
        if reduce_longest and img.format == "JPEG":
            w, h = img.size
            f = min(1.0, reduce_longest / max(w, h))
            img.draft("RGB", (max(1, math.ceil(w * f)), max(1, math.ceil(h * f))))
        elif reduce_to and img.format == "JPEG":
            img.draft("RGB", (reduce_to, reduce_to))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
        upright = ImageOps.exif_transpose(img) or img
        arr = _to_rgb8(upright)
    except (ImageDecodeError, UnsupportedImageError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: image data is corrupt or truncated ({exc})") from exc
    return arr


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to 8-bit sRGB, honouring ICC profiles and compositing alpha on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        g = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        g = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))

    icc = img.info.get("icc_profile")
    if icc and mode in ("RGB", "RGBA", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if mode == "RGBA" else "RGB"
            img = ImageCms.profileToProfile(img, src, _SRGB, outputMode=out_mode) or img
            mode = img.mode
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to treating the pixels as sRGB

    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def has_jpeg_app11(data: bytes) -> bool:
    """Whether a JPEG carries an APP11 segment (JUMBF: where a C2PA manifest lives), from its markers alone."""
    if data[:2] != b"\xff\xd8":
        return False
    i, n = 2, len(data)
    for _ in range(4096):  # a JPEG has a few dozen header segments at most
        if i + 4 > n or data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):
            i += 2
            continue
        if marker == 0xDA:  # start of scan: no more header segments
            return False
        if marker == 0xEB:
            return True
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


def load_image(
    path: Path | str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reduce_to: int | None = None,
) -> np.ndarray:
    """Read and decode an image file; errors name the file."""
    p = Path(path)
    data = read_image_bytes(p, max_bytes=max_bytes)
    return decode_image(data, name=p.name, max_pixels=max_pixels, max_bytes=max_bytes, reduce_to=reduce_to)


def resize_max_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so the longest side is at most ``max_side`` (area filter)."""
    h, w = img.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return img
    f = max_side / s
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def normalize_format(fmt: str) -> str:
    """Map a user-typed format name to the canonical lower-case one (png, jpeg, webp)."""
    key = fmt.strip().lower()
    if key not in OUTPUT_FORMATS:
        raise RequestError(f"format {fmt!r} is not supported; choose one of png, jpeg, webp")
    return "jpeg" if key == "jpg" else key


def encode_image(img: np.ndarray, fmt: str = "png", *, quality: int = 92) -> bytes:
    """Encode pixels to a fresh file (no metadata carried over). PNG uses a fast zlib level."""
    fmt = normalize_format(fmt)
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        pil.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, optimize=False)
    else:
        pil.save(buf, "WEBP", quality=quality, method=2)
    return buf.getvalue()


def encode_many(images: list[np.ndarray], fmt: str = "png", *, quality: int = 92, workers: int = 2) -> list[bytes]:
    """Encode several images at once; Pillow's encoders release the GIL, so threads use every core."""
    if workers <= 1 or len(images) <= 1:
        return [encode_image(img, fmt, quality=quality) for img in images]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(images))) as pool:
        return list(pool.map(lambda im: encode_image(im, fmt, quality=quality), images))


def suffix_for(fmt: str) -> str:
    """File suffix for an output format."""
    return {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[normalize_format(fmt)]


#: Mode of files that may hold a face, a key or someone's taste (outputs, identity files, blobs, ledgers).
PRIVATE_FILE = 0o600
#: Mode of folders Tastemaker creates for such files.
PRIVATE_DIR = 0o700


def make_private_dirs(path: Path | str) -> Path:
    """Create ``path`` and any missing parents as 0700 folders (folders that already exist keep their mode).

    ``Path.mkdir(mode=...)`` applies the mode to the last folder only, and through the umask; this applies
    it to every folder it creates, exactly.
    """
    p = Path(path)
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made by someone else meanwhile: theirs, keep its mode
        os.chmod(d, PRIVATE_DIR)
    if not p.is_dir():
        raise NotADirectoryError(f"{p} is not a folder")
    return p


def ensure_writable_dir(path: Path | str) -> Path:
    """Create ``path`` if needed (0700: outputs hold faces) and prove we can write there, before any
    expensive work starts."""
    p = Path(path)
    try:
        make_private_dirs(p)
        fd, probe = tempfile.mkstemp(prefix=".tm-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {p}: {exc.strerror or exc}") from exc
    return p


def check_output_path(path: Path | str, *, folder: bool = False) -> Path:
    """Refuse an output path that is anything but a missing path or a regular file (a folder with
    ``folder=True``): never a symbolic link, a FIFO, a device or a socket, which writing would replace (or
    follow out of the output folder). Raises :class:`OutputError` naming what is there."""
    p = Path(path)
    try:
        st = p.lstat()
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    want = stat.S_ISDIR if folder else stat.S_ISREG
    if not want(st.st_mode):
        expected = "a folder or a path that does not exist yet" if folder else (
            "a regular file or a path that does not exist yet")
        raise OutputError(f"refusing to write to {p}: it is {kind_of(st.st_mode)}; give {expected}")
    return p


# Temporary files being written right now: an interrupted command (Ctrl-C) removes them before it exits, even
# when it exits without unwinding (see tastemaker.cli). Taking the lock stops new ones from being made.
TEMP_FILES_LOCK = threading.Lock()
_TEMP_FILES: set[str] = set()


def remove_temp_files() -> None:
    """Remove every temporary file :func:`write_atomic` has open (call with :data:`TEMP_FILES_LOCK` held)."""
    for tmp in list(_TEMP_FILES):
        try:
            os.unlink(tmp)
        except OSError:
            pass
    _TEMP_FILES.clear()


def write_atomic(path: Path | str, data: bytes, *, mode: int = PRIVATE_FILE) -> Path:
    """Write ``data`` to ``path`` via a temp file + rename, so readers never see half a file.

    The file gets ``mode`` (default 0600: most of what Tastemaker writes holds a face, a key or a taste),
    never more than an existing file at ``path`` had: rewriting a 0600 key never makes it readable.
    Only a regular file is ever replaced: a symbolic link, a FIFO, a device or a folder at ``path`` is an
    :class:`OutputError` (:func:`check_output_path`).
    """
    p = Path(path)
    check_output_path(p)
    try:
        try:
            mode &= stat.S_IMODE(p.lstat().st_mode)
        except FileNotFoundError:
            pass
        tmp = ""
        try:
            with TEMP_FILES_LOCK:
                fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
                _TEMP_FILES.add(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, mode)  # mkstemp made it 0600; the mode is applied exactly, not through the umask
            os.replace(tmp, p)
        except BaseException:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            if tmp:
                with TEMP_FILES_LOCK:
                    _TEMP_FILES.discard(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return p
