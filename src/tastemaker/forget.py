"""``forget``: remove every trace this machine's Tastemaker CLI left of its user.

What the CLI writes outside its data dir — identity files, generated images, their manifests and contact
sheets (which show the selfie), profiles and exports — is recorded as it is written, with its SHA-256, in
``<data dir>/traces.json`` (:func:`remember`). ``forget`` deletes those files (a file changed since the CLI
wrote it is no longer the CLI's, and is kept and reported), the output folders it created if they end up
empty, and the person's part of the data dir: profiles, their version history, privacy ledgers, the
profile-signing key and trusted signers, cached outputs and boards.

Kept on purpose: the provenance transparency log, its record index and its keys, which hold only ids and
digests and must stay append-only for every other image to remain verifiable.

A server's store is refused (:class:`ServerStoreError`): it holds every account's blobs and ledgers, and
an account is deleted with ``DELETE /v1/me``, never by wiping folders.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ServerStoreError
from .media import make_private_dirs, write_atomic

#: data-dir entries that belong to the CLI's user (relative paths); never a server's ``blobs``
PERSONAL = ("profiles", "privacy", "keys", "outputs", "boards")
#: Written into a data dir by ``tastemaker serve``: a server's store holds many people's data.
SERVER_MARKER = ".tastemaker-server"
TRACES = "traces.json"



def mark_server_store(data_dir: Path | str) -> None:
    """Mark ``data_dir`` as a server's store, so ``forget`` refuses to touch it (idempotent)."""
    marker = Path(data_dir) / SERVER_MARKER
    if not marker.exists():
        make_private_dirs(marker.parent)
        write_atomic(marker, b"This folder is a Tastemaker server's store; delete accounts with DELETE /v1/me.\n")


def is_server_store(data_dir: Path | str) -> bool:
    """A server marked it, or it holds a server's database or blob store."""
    root = Path(data_dir)
    return (root / SERVER_MARKER).exists() or (root / "tastemaker.db").exists() or (root / "blobs").is_dir()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load(data_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((data_dir / TRACES).read_text())
        if isinstance(doc, dict):
            return {"files": list(doc.get("files", [])), "dirs": list(doc.get("dirs", []))}
    except (OSError, ValueError):
        pass
    return {"files": [], "dirs": []}


def remember(data_dir: Path | str, paths: Iterable[Path | str], *, kind: str, created_dir: Path | None = None) -> None:
    """Record files the CLI just wrote (with their SHA-256) so ``forget`` can find them; ``created_dir`` is an
    output folder this run made (removed by ``forget`` once it is empty)."""
    root = Path(data_dir)
    doc = _load(root)
    files = {f["path"]: f for f in doc["files"] if isinstance(f, dict) and "path" in f}
    for p in paths:
        path = Path(p).resolve()
        if path.is_file():
            files[str(path)] = {"path": str(path), "sha256": _sha256(path), "kind": kind}
    dirs = set(doc["dirs"])
    if created_dir is not None:
        dirs.add(str(Path(created_dir).resolve()))
    make_private_dirs(root)
    out = {"files": sorted(files.values(), key=lambda f: f["path"]), "dirs": sorted(dirs)}
    write_atomic(root / TRACES, json.dumps(out, indent=1).encode())


@dataclass
class ForgetReport:
    removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)


def forget_local(data_dir: Path | str) -> ForgetReport:
    """Delete the CLI user's traces (see the module docstring); refuses a server's store."""
    root = Path(data_dir)
    if is_server_store(root):
        raise ServerStoreError(
            f"{root} is a Tastemaker server's store: it holds every account's images, profiles and privacy "
            "ledgers. forget removes this machine's own CLI traces only; delete an account on a server with "
            "DELETE /v1/me"
        )
    report = ForgetReport()
    doc = _load(root)
    tracked = [(f["path"], f.get("sha256")) for f in doc["files"] if isinstance(f, dict) and "path" in f]
    legacy = root / "profiles" / "registry.json"  # profile paths recorded before traces.json existed
    try:
        tracked += [(str(p), None) for p in json.loads(legacy.read_text())]
    except (OSError, ValueError, TypeError):
        pass
    for name, digest in tracked:
        path = Path(name)
        if not path.is_file():
            continue
        if digest is not None and _sha256(path) != digest:
            report.kept.append((str(path), "changed since Tastemaker wrote it"))
            continue
        path.unlink()
        report.removed.append(str(path))
    for name in sorted(doc["dirs"], key=len, reverse=True):  # deepest first
        d = Path(name)
        try:
            d.rmdir()  # only if empty: anything else in it is not ours
            report.removed.append(str(d))
        except OSError:
            pass
    for name in PERSONAL:
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            report.removed.append(str(target))
        elif target.exists() or target.is_symlink():
            target.unlink()
            report.removed.append(str(target))
    traces = root / TRACES
    if traces.exists():
        traces.unlink()
    return report
