"""``GET /v1/search`` as a domain function: the server's search index, queried by text, by a stored board (one
query per taste mode) or by one of its pins, for the caller.

The index is the folder ``<data dir>/index`` that ``tastemaker index add`` fills (run it with the server's
``TASTEMAKER_DATA_DIR``): a catalogue, or pins the operator chose to index. It is opened once per app and
re-read when an ``index add`` changes it. Results carry file names, never server paths.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ...discovery.index import DB_NAME, SearchIndex, open_index
from ...discovery.search import Hit, search_board, search_image, search_text
from ...encoders.style import DIM, StyleDescriptor, vector_to_features
from ...errors import NotFoundError, SearchQueryError
from ...store import StoreSession
from ..deps import Services
from .common import Caller, owned_board
from .profiles import ensure_profile


class IndexHolder:
    """The app's open index (opened on first use; a missing index is a 404 until one is made)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: SearchIndex | None = None

    def get(self, svc: Services) -> SearchIndex:
        folder = svc.settings.data_dir / "index"
        if self.index is None:
            if not (folder / DB_NAME).is_file():
                raise NotFoundError("this server has no search index yet; its operator makes one with "
                                    "`tastemaker index add DIR|products.csv` (with the server's TASTEMAKER_DATA_DIR)")
            self.index = open_index(folder, read_only=True)
        return self.index


def hit_json(h: Hit) -> dict[str, Any]:
    """A result as the API returns it: a file name, never the server's path."""
    from pathlib import Path

    data = h.to_dict()
    data["file"] = Path(data.pop("path")).name
    return data


def search(
    svc: Services,
    s: StoreSession,
    caller: Caller,
    holder: IndexHolder,
    *,
    text: str | None,
    board_id: str | None,
    pin_id: str | None,
    mode: str | None,
    k: int,
    kind: str | None,
) -> dict[str, Any]:
    """Run one search; exactly one of ``text`` and ``board_id`` (``pin_id`` and ``mode`` go with a board)."""
    if (text is None) == (board_id is None):
        raise SearchQueryError("give exactly one of text and board_id" if text is None
                               else "give text or board_id, not both")
    if board_id is None and (pin_id is not None or mode is not None):
        raise SearchQueryError("pin_id and mode go with board_id")
    if pin_id is not None and mode is not None:
        raise SearchQueryError("give pin_id (more like this pin) or mode (more like this mode), not both")
    query: dict[str, Any] = {"text": text, "board_id": board_id, "pin_id": pin_id, "mode": mode, "k": k, "kind": kind}
    if board_id is not None:
        board = owned_board(svc, s, caller, board_id)
        profile = ensure_profile(svc, s, board).profile()
        s.commit()
        shas = [p.pin.sha256 for p in s.board_pins(board.id)]
    with holder.lock:
        index = holder.get(svc)
        if text is not None:
            hits = search_text(index, text, k, kind=kind)
        elif pin_id is not None:
            entry = next((p for p in profile.pins if p.id == pin_id), None)
            if entry is None or len(entry.vector) < DIM:
                raise NotFoundError(f"board {board_id} has no pin {pin_id!r}")
            desc = StyleDescriptor.from_features(vector_to_features(np.asarray(entry.vector[:DIM])),
                                                 np.zeros((0, 3)), np.zeros(0))
            hits = search_image(index, desc, k, kind=kind, exclude=index.rows_with_sha(shas))
        else:
            hits = search_board(index, profile, k, mode=mode, pin_shas=shas, kind=kind)
        return {"query": query, "index": {"items": index.count(), "engine": index.settings.engine,
                                          "text_encoder": index.settings.text_encoder},
                "results": [hit_json(h) for h in hits]}
