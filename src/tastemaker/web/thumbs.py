"""Thumbnails for the pages: pins on a board, outputs in the gallery. A page of 100 pins or 12 generations
must not ship full-size images (a 1024² PNG is a megabyte or two), so pages show JPEGs at most a few hundred
pixels a side, made on first request and kept in a small per-app cache.

Only ever served after the page's owner check: the cache is keyed by image hash, so an entry shared between
two accounts that hold the same image shows nobody anything new.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from fastapi import Request, Response

from ..api.settings import ServerSettings
from ..media import decode_image, encode_image, resize_max_side
from ..store import BlobStore


class ThumbCache:
    """Recently made thumbnails by (image hash, side), bounded; a removed pin's are forgotten with it."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str, side: int) -> bytes | None:
        with self._lock:
            data = self._items.get((sha256, side))
            if data is not None:
                self._items.move_to_end((sha256, side))
            return data

    def put(self, sha256: str, side: int, data: bytes) -> None:
        with self._lock:
            self._items[(sha256, side)] = data
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, shas: Iterable[str]) -> None:
        gone = set(shas)
        with self._lock:
            for key in [k for k in self._items if k[0] in gone]:
                del self._items[key]


def thumbs(request: Request) -> ThumbCache:
    """The app's thumbnail cache (one per app, made on first use)."""
    cache: ThumbCache | None = getattr(request.app.state, "thumbs", None)
    if cache is None:
        cache = request.app.state.thumbs = ThumbCache()
    return cache


def thumbnail_response(
    request: Request, blobs: BlobStore, settings: ServerSettings, sha256: str, side: int
) -> Response:
    """The image ``sha256`` as a JPEG at most ``side`` px a side. The URL names the image by its hash, so the
    browser may keep it (privately) for a day, and asks again with its ETag only after that."""
    etag = f'"{sha256[:32]}-{side}"'
    headers = {"Cache-Control": "private, max-age=86400", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    cache = thumbs(request)
    data = cache.get(sha256, side)
    if data is None:
        img = decode_image(blobs.get(sha256), name=sha256[:16], max_pixels=settings.max_image_pixels,
                           max_bytes=settings.max_image_bytes, reduce_to=side)
        data = encode_image(resize_max_side(img, side), "jpeg", quality=82)
        cache.put(sha256, side, data)
    return Response(data, media_type="image/jpeg", headers=headers)
