"""Index engines: where the style vectors live and how their nearest neighbours are found. One protocol, two engines.

* :class:`EmbeddedEngine` (default): faiss in this process, persisted as one file beside the index's item
  table. Below :data:`EXACT_LIMIT` vectors the search is exact (a flat L2 index); from there on it is an
  HNSW graph (``M`` = 32, built once when the index crosses the limit and then extended vector by vector).
  Updates are incremental: new vectors are added to the graph as it is; a removed or replaced vector becomes a
  tombstone that searches skip, and the graph is rebuilt from the item table once tombstones pass
  :data:`REBUILD_FRACTION` of it (HNSW cannot delete in place).
* :class:`MilvusEngine` (the ``[milvus]`` extra): a Milvus collection through ``pymilvus`` — a cluster by URL
  (``http://host:19530``) for catalogues too large for one machine, or ``milvus-lite`` embedded in a local
  file (``path/to/catalogue.db``: the same client, what the tests run). The vectors and their item kind are
  stored there; deletes are Milvus deletes.

Both return *squared* L2 distances with ids (``-1`` where fewer than ``k`` were found), as faiss and Milvus do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import MissingDependencyError, SearchIndexError

#: Up to this many vectors the embedded engine searches exactly.
EXACT_LIMIT = 10_000
#: HNSW: neighbours per node, construction and search breadth (recall@10 >= 0.95 on bench/search.py's data).
HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 64
#: Rebuild the graph when this share of its vectors are tombstones.
REBUILD_FRACTION = 0.2


class IndexEngine(Protocol):
    """Nearest neighbours by (squared) L2 over int64 ids. Every method is safe to call from one thread at a time."""

    name: str

    def add(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        """Add vectors under ``ids`` (new ids only; replace = :meth:`remove` then :meth:`add`)."""
        ...

    def remove(self, ids: Sequence[int]) -> None:
        """Forget these ids (unknown ids are ignored)."""
        ...

    def search(self, queries: np.ndarray, k: int, *, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, ids)``, each ``(len(queries), k)``, nearest first; ``kind`` keeps only that item kind."""
        ...

    def count(self) -> int:
        """Live vectors."""
        ...

    def needs_rebuild(self) -> bool:
        """True when the engine would be better rebuilt from the item table (too many tombstones)."""
        ...

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        """Replace everything with these vectors."""
        ...

    def save(self) -> None:
        """Persist (a no-op where the engine persists by itself)."""
        ...

    def close(self) -> None:
        ...


# ------------------------------------------------------------------------------------------ embedded (faiss)


class EmbeddedEngine:
    """faiss, in process: exact below :data:`EXACT_LIMIT` vectors, HNSW above; persisted to ``path``."""

    name = "embedded"

    def __init__(self, path: Path, dim: int, *, exact_limit: int = EXACT_LIMIT, ef_search: int = EF_SEARCH) -> None:
        import faiss

        self.path, self.dim, self.exact_limit, self.ef_search = Path(path), dim, exact_limit, ef_search
        self._faiss = faiss
        self._lock = threading.Lock()
        self.tombstones: set[int] = set()
        self.kinds: dict[int, str] = {}
        self.index: Any = None
        if self.path.exists():
            self._load()
        else:
            self.index = self._new(0)

    # the item kind of every id is kept beside the index (a few bytes per item) to filter by kind
    def _sidecar(self) -> Path:
        return self.path.with_suffix(".ids.npz")

    def _new(self, n: int) -> Any:
        faiss = self._faiss
        if n <= self.exact_limit:
            return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M)
        hnsw.hnsw.efConstruction = EF_CONSTRUCTION
        hnsw.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(hnsw)

    @property
    def exact(self) -> bool:
        return isinstance(self._faiss.downcast_index(self.index.index), self._faiss.IndexFlat)

    def _load(self) -> None:
        try:
            self.index = self._faiss.read_index(str(self.path))
            side = np.load(self._sidecar(), allow_pickle=False)
            ids, codes, names = side["ids"], side["kinds"], [str(x) for x in side["names"]]
            self.tombstones = {int(i) for i in side["tombstones"]}
        except Exception as exc:  # a damaged file: the index can be rebuilt from its item table
            raise SearchIndexError(f"{self.path}: the embedded index file cannot be read ({exc}); "
                                   "it will be rebuilt from the item table") from exc
        self.kinds = {int(i): names[int(c)] for i, c in zip(ids, codes, strict=True)}
        if self.index.d != self.dim:
            raise SearchIndexError(f"{self.path}: vectors of {self.index.d} numbers, expected {self.dim}")
        if not self.exact:
            self._set_ef(self.ef_search)

    def _set_ef(self, ef: int) -> None:
        hnsw: Any = self._faiss.downcast_index(self.index.index)
        hnsw.hnsw.efSearch = ef

    def add(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if not len(ids):
            return
        with self._lock:
            if self.exact and self.count() + len(ids) > self.exact_limit:
                raise NeedsRebuild
            self.index.add_with_ids(vecs, ids)
            self.kinds.update({int(i): k for i, k in zip(ids, kinds, strict=True)})

    def remove(self, ids: Sequence[int]) -> None:
        gone = [int(i) for i in ids if int(i) in self.kinds]
        if not gone:
            return
        with self._lock:
            if self.exact:
                self.index.remove_ids(np.asarray(gone, dtype=np.int64))
            else:
                self.tombstones.update(gone)
            for i in gone:
                self.kinds.pop(i, None)

    def count(self) -> int:
        return len(self.kinds)

    def needs_rebuild(self) -> bool:
        total = int(self.index.ntotal)
        return bool(total) and len(self.tombstones) > REBUILD_FRACTION * total

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            index = self._new(len(ids))
            if len(ids):
                index.add_with_ids(vecs, ids)
            self.index, self.tombstones = index, set()
            self.kinds = {int(i): k for i, k in zip(ids, kinds, strict=True)}

    def search(self, queries: np.ndarray, k: int, *, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        live = self.count()
        if live == 0 or k <= 0:
            return np.full((len(q), max(k, 0)), np.inf, np.float32), np.full((len(q), max(k, 0)), -1, np.int64)
        extra = len(self.tombstones)
        if kind is not None:  # filter after the search: fetch enough to fill k of that kind
            share = max(1, sum(1 for v in self.kinds.values() if v == kind))
            fetch = min(int(self.index.ntotal), int(k * live / share * 1.5) + extra + 10)
        else:
            fetch = min(int(self.index.ntotal), k + extra)
        with self._lock:
            if not self.exact:
                self._set_ef(max(self.ef_search, fetch))
            d, i = self.index.search(q, max(fetch, 1))
        if not extra and kind is None:
            return _pad(d[:, :k], i[:, :k], k)
        out_d = np.full((len(q), k), np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for r in range(len(q)):
            keep = [(dd, ii) for dd, ii in zip(d[r], i[r], strict=True)
                    if ii >= 0 and ii not in self.tombstones and (kind is None or self.kinds.get(int(ii)) == kind)][:k]
            for c, (dd, ii) in enumerate(keep):
                out_d[r, c], out_i[r, c] = dd, ii
        return out_d, out_i

    def save(self) -> None:
        with self._lock:
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            self._faiss.write_index(self.index, str(tmp))
            names = sorted(set(self.kinds.values())) or ["pin"]
            code = {n: c for c, n in enumerate(names)}
            ids = np.fromiter(self.kinds.keys(), dtype=np.int64, count=len(self.kinds))
            codes = np.fromiter((code[v] for v in self.kinds.values()), dtype=np.int8, count=len(self.kinds))
            side_tmp = self._sidecar().with_name(self._sidecar().name + f".tmp{os.getpid()}.npz")
            np.savez(side_tmp, ids=ids, kinds=codes, names=np.array(names),
                     tombstones=np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones)))
            os.replace(side_tmp, self._sidecar())
            os.replace(tmp, self.path)

    def close(self) -> None:
        pass


class NeedsRebuild(Exception):
    """The exact index is about to pass :data:`EXACT_LIMIT`: the caller rebuilds it (as HNSW) from the table."""


def _pad(d: np.ndarray, i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if d.shape[1] >= k:
        return d, i
    n, have = d.shape[0], d.shape[1]
    return (np.concatenate([d, np.full((n, k - have), np.inf, np.float32)], axis=1),
            np.concatenate([i, np.full((n, k - have), -1, np.int64)], axis=1))


# ------------------------------------------------------------------------------------------ Milvus


class MilvusEngine:
    """A Milvus collection (``pymilvus``): a cluster by URL, or ``milvus-lite`` in a local ``.db`` file."""

    name = "milvus"

    def __init__(self, uri: str, collection: str, dim: int, *, token: str = "") -> None:
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError:
            raise MissingDependencyError("the Milvus index engine", "milvus", "pymilvus") from None
        self.uri, self.collection, self.dim = uri, collection, dim
        try:
            self.client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        except Exception as exc:
            raise SearchIndexError(f"Milvus at {uri}: cannot connect ({exc})") from None
        if not self.client.has_collection(collection):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("kind", DataType.VARCHAR, max_length=16)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            params = self.client.prepare_index_params()
            params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
            self.client.create_collection(collection, schema=schema, index_params=params)
        else:
            info = self.client.describe_collection(collection)
            dims = [f.get("params", {}).get("dim") for f in info.get("fields", []) if f.get("name") == "vector"]
            if dims and int(dims[0]) != dim:
                raise SearchIndexError(f"Milvus collection {collection!r} holds vectors of {dims[0]} numbers, "
                                       f"expected {dim}; use another --collection")
        self.client.load_collection(collection)

    def add(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        vecs = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        rows = [{"id": int(i), "kind": k, "vector": v.tolist()} for i, k, v in zip(ids, kinds, vecs, strict=True)]
        for start in range(0, len(rows), 5000):
            self.client.insert(self.collection, rows[start:start + 5000])

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def search(self, queries: np.ndarray, k: int, *, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        out_d = np.full((len(q), k), np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        if not len(q) or k <= 0:
            return out_d, out_i
        filt = f'kind == "{kind}"' if kind in ("pin", "product") else ""
        for start in range(0, len(q), 1000):
            chunk = q[start:start + 1000]
            res = self.client.search(self.collection, data=chunk.tolist(), limit=min(k, 16384), filter=filt,
                                     output_fields=["id"], search_params={"metric_type": "L2"})
            for r, hits in enumerate(res):
                for c, hit in enumerate(list(hits)[:k]):
                    out_d[start + r, c] = float(hit["distance"])
                    out_i[start + r, c] = int(hit["id"])
        return out_d, out_i

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def needs_rebuild(self) -> bool:
        return False

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray, kinds: Sequence[str]) -> None:
        self.client.drop_collection(self.collection)
        self.__init__(self.uri, self.collection, self.dim)  # type: ignore[misc]
        self.add(ids, vectors, kinds)

    def save(self) -> None:
        self.client.flush(self.collection)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # already closed, server gone: nothing to release
            pass
