"""``tastemaker generate --remote URL --board-id ID --selfie me.jpg``: on-device mode from the command line.

The board's taste comes from the server (its differentially private release); the selfie is read, the identity
built and the images rendered on this machine (:meth:`tastemaker.client.Client.generate_local`); each output is
registered with the server, which marks, signs and logs it (``rendered_on: device``) and returns the file written
to ``-o``. Only the board id and the outputs leave this machine. The API key comes from ``--api-key`` or
``TASTEMAKER_API_KEY`` (read here, in the CLI layer, never by the library).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import __version__
from ..config import load_settings
from ..errors import RequestError
from ..forget import remember
from ..media import check_output_path, ensure_writable_dir, write_atomic
from .common import console, progress_bar

MANIFEST = "manifest.json"
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_LABELS = {"identity": "Reading your face (here)", "render": "Rendering (here)", "register": "Registering outputs"}


class _Stages:
    def __init__(self, progress: Any) -> None:
        self.progress, self.tasks = progress, {}  # type: ignore[var-annotated]

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.progress.add_task(_LABELS.get(stage, stage), total=total)
        self.progress.update(task, completed=done, total=total)


def run_remote(
    *,
    url: str,
    api_key: str | None,
    board_id: str | None,
    selfies: list[Path],
    out: Path,
    request_kwargs: dict[str, Any],
    engine: str,
    face_index: int | None,
    identity_threshold: float,
    local_only_options: list[str],
) -> Path:
    """Render on this machine from the server's board, register the outputs, write them and a manifest."""
    from ..client import Client

    if not api_key:
        raise RequestError("--api-key: give the server's API key (or set TASTEMAKER_API_KEY)")
    if not board_id:
        raise RequestError("--board-id: give the id of your board on the server (brd_...)")
    if local_only_options:
        raise RequestError(f"{', '.join(local_only_options)}: not with --remote (the taste comes from --board-id and "
                           "the person from --selfie)")
    if not selfies:
        raise RequestError("--selfie: give a photo of your face (it stays on this machine)")
    settings = load_settings()
    check_output_path(out, folder=True)
    check_output_path(out / MANIFEST)
    created = not out.exists()
    ensure_writable_dir(out)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Client(url, api_key) as tm, progress_bar(settings, *columns) as progress:
        result = tm.generate_local(board_id, selfies, engine=engine, identity_threshold=identity_threshold,
                                   face_index=face_index, progress=_Stages(progress), **request_kwargs)
    entries = []
    for im in result.images:
        name = f"variation-{im.index + 1}.{_EXT.get(im.media_type, 'bin')}"
        write_atomic(out / name, im.data)
        entries.append({"file": name, "record_id": im.record_id, "registered": im.registered,
                        "rendered_on": "device", "width": im.width, "height": im.height, "seed": im.seed,
                        "mode": im.mode, "identity_distance": round(im.identity_distance, 4),
                        "style_score": round(im.style_score, 4), **{k: v for k, v in im.info.items()
                                                                    if k in ("medium", "scene", "colour", "size")}})
    manifest = {
        "tastemaker_version": __version__, "server": url, "board_id": board_id, "rendered_on": "device",
        "engine": {"name": result.engine, "version": result.engine_version}, "request": result.request,
        "profile": {"hash": result.profile_hash, "source": "the server's differentially private release"},
        "images": entries, "notes": result.notes, "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1, allow_nan=False) + "\n").encode())
    remember(settings.data_dir, [out / e["file"] for e in entries] + [out / MANIFEST], kind="output",
             created_dir=out if created else None)
    table = Table(title=f"{len(entries)} image(s) in {out}, rendered on this machine")
    for col in ("file", "record", "mode", "identity dist.", "style score"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["file"], e["record_id"] + (" (registered)" if e["registered"] else " (local store)"),
                      e["mode"], f"{e['identity_distance']:.3f}", f"{e['style_score']:.3f}")
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print("only the board id and these outputs left this machine; the selfie and your identity did not")
    return out / MANIFEST
