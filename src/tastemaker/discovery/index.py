"""A search index on disk: a folder with an item table (SQLite), the engine's vectors, and the text side.

Layout of an index folder (by default ``<data dir>/index``, beside the store)::

    index.sqlite      items (key, kind, words, engagement, catalogue fields, style vector, palette, text vector)
                      and settings (descriptor, dimension, engine, text encoder); the table is the truth
    style.faiss       the embedded engine's index (+ style.ids.npz), rebuilt from the table if it is lost
    index.lock        held while an ``add`` writes

Adding is incremental. An item is known by its key (``pin:<content hash>`` or ``product:<catalogue id>``): the
same key with the same image bytes updates the words and catalogue fields in place; with new bytes its old
vector is removed and the new one added. Images in which a face is found are skipped and counted
(``allow_faces`` indexes them). Readers (the API) see a consistent table; they reopen the engine when the
index's generation (bumped by every add) changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.style import DIM, ENCODER_NAME, ENCODER_VERSION
from ..errors import ImageError, SearchIndexError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, read_image_bytes
from .analyse import analyse_image
from .engines import EmbeddedEngine, IndexEngine, MilvusEngine, NeedsRebuild
from .sources import SourceImage, with_sha256

SCHEMA = "tastemaker.search-index"
SCHEMA_VERSION = 1
DB_NAME = "index.sqlite"
ENGINE_FILE = "style.faiss"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    board TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    price REAL,
    currency TEXT NOT NULL DEFAULT '',
    brand TEXT NOT NULL DEFAULT '',
    engagement REAL NOT NULL DEFAULT 0,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    palette TEXT NOT NULL DEFAULT '[]',
    vector BLOB NOT NULL,
    text_vector BLOB,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
"""


@dataclass
class Item:
    """One indexed image as search returns it."""

    row: int
    key: str
    kind: str
    path: str
    sha256: str
    title: str
    tags: list[str]
    board: str
    account: str
    source: str
    url: str
    price: float | None
    currency: str
    brand: str
    engagement: float
    width: int
    height: int
    palette: list[list[float]]
    vector: np.ndarray = field(repr=False)

    @property
    def text(self) -> str:
        return " ".join([self.title, *self.tags]).strip()


@dataclass
class AddReport:
    """What one ``index add`` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    replaced: int = 0
    skipped_faces: int = 0
    #: (file, reason) for every image that could not be read
    skipped: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0


@dataclass(frozen=True)
class IndexSettings:
    """How an index was made: written once, when it is created; later opens must agree."""

    engine: str = "embedded"  #: "embedded" or "milvus"
    milvus_uri: str = ""
    milvus_collection: str = "tastemaker"
    text_encoder: str = "lexical"  #: "minilm" when text vectors are stored

    def to_meta(self) -> dict[str, str]:
        return {"engine": self.engine, "milvus_uri": self.milvus_uri, "milvus_collection": self.milvus_collection,
                "text_encoder": self.text_encoder}


_COLUMNS = ("row, key, kind, path, sha256, title, tags, board, account, source, url, price, currency, brand, "
            "engagement, width, height, palette, vector")


def _item(r: Sequence[Any]) -> Item:
    return Item(row=r[0], key=r[1], kind=r[2], path=r[3], sha256=r[4], title=r[5], tags=json.loads(r[6]),
                board=r[7], account=r[8], source=r[9], url=r[10], price=r[11], currency=r[12], brand=r[13],
                engagement=r[14], width=r[15], height=r[16], palette=json.loads(r[17]),
                vector=np.frombuffer(r[18], dtype=np.float32).copy())


class SearchIndex:
    """An index folder, open. Use :func:`open_index` (read) or :func:`create_or_open` (write)."""

    def __init__(self, folder: Path, settings: IndexSettings, *, read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.settings = settings
        self.read_only = read_only
        self._db_lock = threading.RLock()
        self.db = sqlite3.connect(self.folder / DB_NAME, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self._engine: IndexEngine | None = None
        self._generation = self.generation()
        self._text_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ meta
    def meta(self) -> dict[str, str]:
        with self._db_lock:
            return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def generation(self) -> int:
        return int(self.meta().get("generation", "0"))

    def count(self, kind: str | None = None) -> int:
        with self._db_lock:
            if kind is None:
                return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])
            return int(self.db.execute("SELECT count(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0])

    # ------------------------------------------------------------------ engine
    @property
    def engine(self) -> IndexEngine:
        """The engine, reopened when another process added to the index since."""
        gen = self.generation()
        if self._engine is None or gen != self._generation:
            if self._engine is not None:
                self._engine.close()
            self._engine = self._open_engine()
            self._generation = gen
            self._text_cache = None
        return self._engine

    def _open_engine(self) -> IndexEngine:
        s = self.settings
        if s.engine == "milvus":
            uri = s.milvus_uri
            if uri and "://" not in uri and not Path(uri).is_absolute():
                uri = str(self.folder / uri)
            return MilvusEngine(uri, s.milvus_collection, DIM)
        path = self.folder / ENGINE_FILE
        try:
            engine = EmbeddedEngine(path, DIM)
        except SearchIndexError:
            path.unlink(missing_ok=True)
            engine = EmbeddedEngine(path, DIM)
        if engine.count() != self.count():  # lost, damaged or behind the table: rebuild from it
            self._rebuild(engine)
        return engine

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        with self._db_lock:
            rows = self.db.execute("SELECT row, kind, vector FROM items ORDER BY row").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vecs = (np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows]) if rows
                else np.zeros((0, DIM), np.float32))
        return ids, vecs, [r[1] for r in rows]

    def _rebuild(self, engine: IndexEngine) -> None:
        engine.rebuild(*self._all_vectors())
        if not self.read_only:
            engine.save()

    # ------------------------------------------------------------------ reading
    def items(self, rows: Iterable[int]) -> dict[int, Item]:
        """Items by row id (rows that are gone are left out)."""
        wanted = [int(r) for r in rows if int(r) >= 0]
        out: dict[int, Item] = {}
        with self._db_lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for r in self.db.execute(f"SELECT {_COLUMNS} FROM items WHERE row IN ({marks})", chunk):
                    out[r[0]] = _item(r)
        return out

    def iter_items(self, kind: str | None = None) -> Iterator[Item]:
        with self._db_lock:
            sql = f"SELECT {_COLUMNS} FROM items" + (" WHERE kind = ?" if kind else "") + " ORDER BY key"
            rows = self.db.execute(sql, (kind,) if kind else ()).fetchall()
        for r in rows:
            yield _item(r)

    def rows_with_sha(self, shas: Iterable[str]) -> set[int]:
        """Rows whose image has one of these content hashes (to leave a board's own pins out of its results)."""
        found: set[int] = set()
        sha_list = list(shas)
        with self._db_lock:
            for start in range(0, len(sha_list), 500):
                chunk = sha_list[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found |= {r[0] for r in self.db.execute(f"SELECT row FROM items WHERE sha256 IN ({marks})", chunk)}
        return found

    def search_vectors(self, queries: np.ndarray, k: int, *, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and row ids of the ``k`` nearest items to each query."""
        d2, ids = self.engine.search(np.asarray(queries, np.float32).reshape(-1, DIM), k, kind=kind)
        return np.sqrt(np.maximum(d2, 0)), ids

    def text_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, vectors)`` of every item's stored text embedding (MiniLM indexes only)."""
        gen = self.generation()
        if self._text_cache is None or self._text_cache[0] != gen:
            with self._db_lock:
                rows = self.db.execute(
                    "SELECT row, text_vector FROM items WHERE text_vector IS NOT NULL ORDER BY row").fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            mat = (np.stack([np.frombuffer(r[1], dtype=np.float16).astype(np.float32) for r in rows]) if rows
                   else np.zeros((0, 384), np.float32))
            self._text_cache = (gen, ids, mat)
        return self._text_cache[1], self._text_cache[2]

    def texts(self, kind: str | None = None) -> tuple[np.ndarray, list[str]]:
        """``(rows, text)`` of every item with words."""
        with self._db_lock:
            sql = "SELECT row, title, tags FROM items" + (" WHERE kind = ?" if kind else "") + " ORDER BY row"
            rows = self.db.execute(sql, (kind,) if kind else ()).fetchall()
        out = [(r[0], " ".join([r[1], *json.loads(r[2])]).strip()) for r in rows]
        out = [(r, t) for r, t in out if t]
        return np.array([r for r, _ in out], dtype=np.int64), [t for _, t in out]

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """An exclusive lock on the folder for the length of an ``add`` (another writer waits)."""
        if self.read_only:
            raise SearchIndexError(f"{self.folder}: opened read-only")
        with open(self.folder / "index.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add(
        self,
        images: Iterable[SourceImage],
        *,
        allow_faces: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        text_embed: Callable[[list[str]], np.ndarray] | None = None,
        on_image: Callable[[], None] | None = None,
    ) -> AddReport:
        """Index ``images`` incrementally (see the module docstring). ``text_embed`` stores text vectors."""
        report = AddReport()
        with self.writing():
            engine = self.engine
            new_rows: list[tuple[int, np.ndarray, str]] = []
            removed: list[int] = []
            now = datetime.now(UTC).isoformat(timespec="seconds")
            pending_text: list[tuple[str, str]] = []
            for item in images:
                report.total += 1
                try:
                    data = read_image_bytes(item.path, max_bytes=max_bytes)
                    item = with_sha256(item, data)
                    with self._db_lock:
                        old = self.db.execute("SELECT row, sha256 FROM items WHERE key = ?", (item.key,)).fetchone()
                    if old is not None and old[1] == item.sha256:
                        changed = self._update_fields(item)
                        report.updated += int(changed)
                        report.unchanged += int(not changed)
                        if changed and item.text:
                            pending_text.append((item.key, item.text))
                        continue
                    facts = analyse_image(data, item.path.name, look_for_faces=not allow_faces,
                                          max_pixels=max_pixels, max_bytes=max_bytes)
                except ImageError as exc:
                    report.skipped.append((str(item.path), exc.message))
                    continue
                finally:
                    if on_image is not None:
                        on_image()
                if facts.faces > 0:
                    report.skipped_faces += 1
                    continue
                with self._db_lock:
                    if old is not None:
                        self.db.execute("DELETE FROM items WHERE row = ?", (old[0],))
                        removed.append(int(old[0]))
                        report.replaced += 1
                    cur = self.db.execute(
                        "INSERT INTO items (key, kind, path, sha256, title, tags, board, account, source, url, price, "
                        "currency, brand, engagement, width, height, palette, vector, added_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (item.key, item.kind, str(item.path.resolve()), item.sha256, item.title,
                         json.dumps(list(item.tags), ensure_ascii=False), item.board, item.account, item.source,
                         item.url, item.price, item.currency, item.brand, item.engagement, facts.width,
                         facts.height, json.dumps(facts.palette), facts.vector.astype(np.float32).tobytes(), now),
                    )
                new_rows.append((int(cur.lastrowid or 0), facts.vector, item.kind))
                if item.text:
                    pending_text.append((item.key, item.text))
                report.added += int(old is None)
            if text_embed is not None and pending_text:
                vecs = text_embed([t for _, t in pending_text])
                with self._db_lock:
                    self.db.executemany("UPDATE items SET text_vector = ? WHERE key = ?",
                                        [(v.astype(np.float16).tobytes(), k) for (k, _), v in
                                         zip(pending_text, vecs, strict=True)])
            engine.remove(removed)
            ids = np.array([r for r, _, _ in new_rows], dtype=np.int64)
            vecs = np.stack([v for _, v, _ in new_rows]) if new_rows else np.zeros((0, DIM), np.float32)
            try:
                engine.add(ids, vecs, [k for _, _, k in new_rows])
            except NeedsRebuild:
                self.db.commit()
                engine.rebuild(*self._all_vectors())
            if engine.needs_rebuild():
                self.db.commit()
                engine.rebuild(*self._all_vectors())
            engine.save()
            with self._db_lock:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(self._generation + 1),))
                self.db.commit()
            self._generation += 1
            self._text_cache = None
        return report

    def _update_fields(self, item: SourceImage) -> bool:
        values = (item.title, json.dumps(list(item.tags), ensure_ascii=False), item.board, item.account,
                  item.source, item.url, item.price, item.currency, item.brand, item.engagement,
                  str(item.path.resolve()))
        with self._db_lock:
            cur = self.db.execute(
                "SELECT title, tags, board, account, source, url, price, currency, brand, engagement, path "
                "FROM items WHERE key = ?", (item.key,)).fetchone()
            if cur is not None and tuple(cur) == values:
                return False
            self.db.execute(
                "UPDATE items SET title=?, tags=?, board=?, account=?, source=?, url=?, price=?, currency=?, "
                "brand=?, engagement=?, path=? WHERE key=?", (*values, item.key))
        return True

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        with self._db_lock:
            self.db.close()


def _read_settings(db: sqlite3.Connection, folder: Path) -> IndexSettings:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("schema") != SCHEMA:
        raise SearchIndexError(f"{folder} is not a Tastemaker search index")
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        raise SearchIndexError(f"{folder}: index version {meta.get('schema_version')} is not the "
                               f"{SCHEMA_VERSION} this Tastemaker reads; index the images again into a new folder")
    if meta.get("descriptor") != f"{ENCODER_NAME}/{ENCODER_VERSION}" or meta.get("dim") != str(DIM):
        raise SearchIndexError(f"{folder} was made with style descriptor {meta.get('descriptor')} "
                               f"({meta.get('dim')} numbers); this Tastemaker uses {ENCODER_NAME}/{ENCODER_VERSION} "
                               f"({DIM}); index the images again into a new folder")
    return IndexSettings(engine=meta.get("engine", "embedded"), milvus_uri=meta.get("milvus_uri", ""),
                         milvus_collection=meta.get("milvus_collection", "tastemaker"),
                         text_encoder=meta.get("text_encoder", "lexical"))


def open_index(folder: Path | str, *, read_only: bool = True) -> SearchIndex:
    """Open an existing index folder; :class:`SearchIndexError` if there is none or it is not one."""
    p = Path(folder)
    db_path = p / DB_NAME
    if not db_path.is_file():
        raise SearchIndexError(f"no search index at {p}; make one with `tastemaker index add DIR|CSV --index {p}`")
    try:
        db = sqlite3.connect(db_path)
        try:
            settings = _read_settings(db, p)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise SearchIndexError(f"{db_path}: not a readable index ({exc})") from None
    return SearchIndex(p, settings, read_only=read_only)


def create_or_open(folder: Path | str, settings: IndexSettings | None = None) -> SearchIndex:
    """Open ``folder``'s index for writing, creating it with ``settings`` if it does not exist yet.

    An existing index keeps the settings it was made with; asking for another engine is an error.
    """
    p = Path(folder)
    if (p / DB_NAME).is_file():
        idx = open_index(p, read_only=False)
        if settings is not None and settings.engine != idx.settings.engine:
            idx.close()
            raise SearchIndexError(f"{p} is an index on the {idx.settings.engine} engine; it cannot become "
                                   f"{settings.engine}: use another --index folder")
        return idx
    if p.exists() and not p.is_dir():
        raise SearchIndexError(f"{p} is a file; an index is a folder")
    if p.is_dir() and any(p.iterdir()):
        raise SearchIndexError(f"{p} is a folder with other files in it; give an empty or new folder for the index")
    p.mkdir(parents=True, exist_ok=True)
    s = settings or IndexSettings()
    db = sqlite3.connect(p / DB_NAME)
    try:
        db.executescript(_TABLES)
        meta = {"schema": SCHEMA, "schema_version": str(SCHEMA_VERSION),
                "descriptor": f"{ENCODER_NAME}/{ENCODER_VERSION}", "dim": str(DIM), "generation": "0",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **s.to_meta()}
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        db.commit()
    finally:
        db.close()
    return SearchIndex(p, s)
