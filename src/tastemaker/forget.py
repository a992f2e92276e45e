"""``forget``: remove every stored trace of a person from this installation.

Removed: profile files Tastemaker wrote (tracked in ``profiles/registry.json``), their version
history, privacy ledgers, the profile-signing key, cached outputs and boards. Kept on purpose: the
provenance transparency log and its record index, which hold only ids and SHA-256 digests and must
stay append-only for everyone else's images to remain verifiable (and the service's hash-chained
audit log, for the same reason).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: data-dir entries that belong to the person (relative paths)
PERSONAL = ("profiles", "privacy", "keys", "outputs", "boards", "blobs")
#: Written into a data dir by ``tastemaker serve``: a server's store holds many people's data.
SERVER_MARKER = ".tastemaker-server"


def mark_server_store(data_dir: Path | str) -> None:
    """Mark ``data_dir`` as a server's store, so ``forget`` refuses to touch it (idempotent)."""
    marker = Path(data_dir) / SERVER_MARKER
    if not marker.exists():
        marker.write_text("This folder is a Tastemaker server's store; delete accounts with DELETE /v1/me.\n")


def forget_local(data_dir: Path | str) -> list[str]:
    """Delete the person's data under ``data_dir``; returns what was removed."""
    root = Path(data_dir)
    removed: list[str] = []
    registry = root / "profiles" / "registry.json"
    try:
        tracked = [Path(p) for p in json.loads(registry.read_text())]
    except (OSError, ValueError):
        tracked = []
    for path in tracked:
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    for name in PERSONAL:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(str(target))
        elif target.exists():
            target.unlink()
            removed.append(str(target))
    return removed
