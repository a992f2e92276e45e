"""The flow's commands: ``generate``, ``identity``, ``demo``, ``verify`` and ``engines``.

Outputs (``-o``) are a regular file or a missing path (a folder or a missing path for ``generate``): a
symbolic link, a FIFO, a device or a socket there is refused (exit 73), never replaced or followed.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import _interrupt, safejson
from ..boards import Board, load_board
from ..clips import CLIP_MAX_BYTES, ClipOptions, save_clips, verify_any
from ..config import Settings, load_settings
from ..encoders.identity import IdentityEmbedding, IdentityEncoder, embed_pool
from ..engines import list_engines
from ..engines.base import GenerationRequest
from ..errors import InputError, ProfileError, ProofError, RequestError, TastemakerError
from ..forget import remember
from ..media import check_output_path, ensure_writable_dir, load_image, read_image_bytes, read_text_file, write_atomic
from ..pipeline import GenerationResult, Pipeline, default_provenance, save_result
from ..pipeline.output import file_names, image_entries
from ..provenance.ledger import SignedTreeHead
from ..provenance.service import VERDICT_EXIT, VerifyReport
from ..taste.profile import TasteProfile
from .common import console, handle_errors, progress_bar, warn_skipped

DEMO_DIR = Path(__file__).parent.parent / "data" / "demo"
#: What ``generate`` writes besides the images.
MANIFEST, CONTACT_SHEET = "manifest.json", "contact_sheet.png"
#: The identity guard's threshold range: from the guard's margin (it never holds an output closer to the person
#: than their own selfie is plus 0.05) to dlib's same-person line (0.6).
THRESHOLD_RANGE = (0.05, 0.6)


class _Stages:
    """A rich progress bar fed by the pipeline's ``progress(stage, done, total)`` callback."""

    LABELS = {"identity": "Reading your face", "profile": "Learning the board's taste", "render": "Rendering"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.progress.add_task(self.LABELS.get(stage, stage), total=total)
            self.tasks[stage] = task
        self.progress.update(task, completed=done, total=total)


def _run_generate(
    selfies: list[Path],
    identity_file: Path | None = None,
    *,
    board_dir: Path | None,
    profile_path: Path | None,
    out: Path,
    request_kwargs: dict[str, Any],
    engine: str,
    face_index: int | None,
    identity_threshold: float | None,
    clip: ClipOptions | None = None,
) -> Path:
    """``generate`` and ``demo``: check everything cheap first, run the pipeline, write and print the outputs."""
    settings = load_settings()
    threshold = _identity_threshold(identity_threshold, settings.identity_threshold)
    request = GenerationRequest.create(**request_kwargs)
    if (board_dir is None) == (profile_path is None):
        raise RequestError("give exactly one of --board DIR or --profile FILE")
    created, previous = _prepare_output_dir(out)
    board, profile = _board_or_profile(board_dir, profile_path, settings)
    identity = _read_identity(identity_file) if identity_file is not None else None
    if not selfies and identity is None:
        raise RequestError("give a selfie (--selfie PATH) or an identity file made on your device (--identity FILE)")
    with _interrupt.children_ignore_sigint():  # the guard's worker processes (if any): Ctrl-C is ours
        embed_pool(settings.guard_workers)
    pipeline = Pipeline.from_settings(settings, engine=engine, identity_threshold=threshold)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with progress_bar(settings, *columns) as progress:
        result = pipeline(request, selfies=selfies, identity=identity, board=board, profile=profile,
                          face_index=face_index, progress=_Stages(progress))
        clip_files = _write_clips(result, clip, pipeline, out, progress) if clip is not None else []
        manifest = save_result(result, out)
    written = [*file_names(result), *clip_files, CONTACT_SHEET]
    _remove_stale_outputs(out, previous, {*written, MANIFEST})
    remember(settings.data_dir, [out / n for n in written] + [manifest], kind="output",
             created_dir=out if created else None)  # so that `tastemaker forget` finds them
    _print_result(result, out, threshold)
    return manifest


def _write_clips(result: GenerationResult, clip: ClipOptions, pipeline: Pipeline, out: Path,
                 progress: Progress) -> list[str]:
    """A clip of each output next to it (``--clip``), each with its own record; the manifest entry says which."""
    task = progress.add_task("Making clips", total=len(result.images))
    return save_clips(result, file_names(result), clip, provenance=pipeline.provenance, out=out,
                      advance=lambda: progress.advance(task))


def _prepare_output_dir(out: Path) -> tuple[bool, set[str]]:
    """Refuse an unusable output folder before any expensive work, not after it; make it. Returns whether it was
    made now, and what a previous ``generate`` into it wrote."""
    check_output_path(out, folder=True)
    for name in (MANIFEST, CONTACT_SHEET):
        check_output_path(out / name)
    created = not out.exists()
    ensure_writable_dir(out)
    return created, _previous_outputs(out)


def _board_or_profile(
    board_dir: Path | None, profile_path: Path | None, settings: Settings
) -> tuple[Board | None, TasteProfile | None]:
    if board_dir is not None:
        board = load_board(board_dir, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        warn_skipped(board)
        return board, None
    assert profile_path is not None
    return None, TasteProfile.load(profile_path)


def _read_identity(identity_file: Path) -> IdentityEmbedding:
    """An identity file written by ``tastemaker identity``."""
    text = read_text_file(identity_file, what="identity file", error=ProfileError)
    try:
        return IdentityEmbedding.from_dict(safejson.loads(text, what=str(identity_file)))
    except RequestError as exc:
        raise ProfileError(f"cannot read identity file {identity_file}: {exc.message}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"cannot read identity file {identity_file}: {exc}") from exc


def _print_result(result: GenerationResult, out: Path, threshold: float) -> None:
    """The images as a table (the manifest's numbers, from memory), the notes, and the selfie's own score."""
    table = Table(title=f"{len(result.images)} image(s) in {out}")
    for col in ("file", "mode", "medium", "background", "identity dist.", "style score"):
        table.add_column(col)
    for entry in image_entries(result):
        medium = entry.get("medium") or {}
        kind = medium.get("kind", "")
        shown = f"{kind} ({medium['strength']:.2f})" if medium.get("applied") else (
            f"{kind}: grade only" if medium.get("fallback") else kind)
        table.add_row(
            entry["file"], entry["mode_name"], shown, entry["background"],
            _number(entry["identity_distance"]), _number(entry["style_score"]),
        )
    console.print(table)
    for note in result.notes():
        console.print(f"[yellow]note:[/] {note}")
    if result.guard_threshold > threshold + 1e-9:
        console.print(f"[yellow]note:[/] identity threshold raised from {threshold:.2f} to "
                      f"{result.guard_threshold:.2f}: an output is never held closer to you than your own selfie "
                      "is to your identity, plus a margin", highlight=False)
    console.print(f"selfie's own style score: {result.selfie_style_score:.3f} · seed {result.request.seed}")


def _identity_threshold(option: float | None, configured: float) -> float:
    """The guard's threshold: ``--identity-threshold`` or the setting, finite and in :data:`THRESHOLD_RANGE`."""
    value, name = (option, "--identity-threshold") if option is not None else (
        configured, "TASTEMAKER_IDENTITY_THRESHOLD")
    lo, hi = THRESHOLD_RANGE
    if not math.isfinite(value) or not lo <= value <= hi:
        raise RequestError(
            f"{name}: must be a number from {lo:g} to {hi:g} (an identity distance: lower holds the face closer; "
            f"0.6 is dlib's same-person line, the default is 0.35), got {value}"
        )
    return value


def _previous_outputs(out: Path) -> set[str]:
    """The files a previous ``generate`` into ``out`` wrote, from its manifest (empty if there is none)."""
    manifest = out / MANIFEST
    try:
        if not manifest.is_file() or manifest.is_symlink():
            return set()
        doc = safejson.loads(read_text_file(manifest, what="manifest"), what=str(manifest))
    except (TastemakerError, OSError):
        return set()  # not one of ours: leave everything as it is
    if not isinstance(doc, dict) or "tastemaker_version" not in doc:
        return set()
    names = [e.get("file") for e in doc.get("images") or [] if isinstance(e, dict)]
    names += [e["clip"].get("file") for e in doc.get("images") or [] if isinstance(e, dict)
              and isinstance(e.get("clip"), dict)]
    names.append(doc.get("contact_sheet"))
    return {n for n in names if isinstance(n, str) and n and n == Path(n).name and n not in (".", "..")}


def _remove_stale_outputs(out: Path, previous: set[str], current: set[str]) -> None:
    """After the new manifest is in place: delete what the previous run wrote that the new one does not list.

    The new images and manifest are written first (each atomically), the old files removed last, so at every
    moment ``manifest.json`` lists files that exist; only regular files named by the old manifest go."""
    for name in sorted(previous - current):
        path = out / name
        try:
            if stat.S_ISREG(path.lstat().st_mode):
                path.unlink()
        except OSError:
            continue


def _number(value: Any) -> str:
    """A manifest number for the table (the manifest holds null where there is no finite value)."""
    return "-" if value is None else f"{value:.3f}"


SelfieOpt = Annotated[
    list[Path] | None,
    typer.Option("--selfie", "-s", help="Selfie image; repeat for several photos of the same person."),
]


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    selfie: SelfieOpt = None,
    identity: Annotated[
        Path | None,
        typer.Option(help="Identity file from `tastemaker identity` (engines that draw from it need no selfie)."),
    ] = None,
    board: Annotated[Path | None, typer.Option("--board", "-b", help="Board folder (images + pins.csv).")] = None,
    profile: Annotated[Path | None, typer.Option("--profile", "-p", help="Taste profile JSON.")] = None,
    prompt: Annotated[str, typer.Option(help="Free text: mode hints, 'close-up', 'blurred background'...")] = "",
    n: Annotated[int, typer.Option("-n", help="Number of variations (1-8).")] = 4,
    size: Annotated[int, typer.Option(help="Longest side in pixels (256-2048).")] = 1024,
    aspect: Annotated[str, typer.Option(help="1:1, 4:5, 2:3, 9:16, 3:2 (landscape) or original.")] = "4:5",
    format: Annotated[str, typer.Option("--format", "-f", help="png, jpeg or webp.")] = "png",
    seed: Annotated[int | None, typer.Option(help="Same seed, same images.")] = None,
    strength: Annotated[float, typer.Option(help="0 = untouched, 1 = all the way to the board's look.")] = 0.8,
    background: Annotated[
        str, typer.Option(help="auto, keep, blur, backdrop or scene (one of the board's pictures).")
    ] = "auto",
    framing: Annotated[str, typer.Option(help="auto, closeup, portrait, half or full.")] = "auto",
    mode: Annotated[str | None, typer.Option(help="Use one taste mode only (e.g. m2).")] = None,
    engine: Annotated[str, typer.Option(help="Engine name (see `tastemaker engines`).")] = "look",
    face_index: Annotated[
        int | None, typer.Option(min=0, help="Pick a face when a selfie has several (0 = largest).")
    ] = None,
    identity_threshold: Annotated[
        float | None, typer.Option(help="Identity guard threshold, 0.05-0.6 (default 0.35; lower is closer).")
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(help="On-device mode: a Tastemaker server's URL. The board's taste comes from it; the selfie "
                     "stays here, the images are rendered here and registered with it (marked, signed, logged)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TASTEMAKER_API_KEY", show_envvar=True, help="The server's API key (--remote).")
    ] = None,
    board_id: Annotated[str | None, typer.Option(help="Your board on the server, brd_... (--remote).")] = None,
    product: Annotated[
        Path | None, typer.Option(help="A product photo (or transparent PNG) to show in the board's look, no face "
                                  "needed; instead of --selfie (see README, Products).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="product: confirm a --product photo in which a face is found is a product.")
    ] = None,
    clip: Annotated[
        float | None, typer.Option(help="Also make a clip of each output, this many seconds long (1-6).")
    ] = None,
    clip_format: Annotated[str | None, typer.Option(help="The clip's file: mp4 (H.264, default), webm or gif.")] = None,
    fps: Annotated[int | None, typer.Option(help="The clip's frames per second: 24 (default) or 30.")] = None,
) -> None:
    """Generate images of you in a board's (or profile's) aesthetic — here, or with --remote from a server's board
    (rendered here all the same: only the board id and the outputs leave this machine)."""
    clip_options = ClipOptions.create(clip, fps, clip_format, prefix="--")
    if clip_options is not None and remote is not None:
        raise RequestError("--clip: not offered with --remote yet; make the images here (--board), or ask the "
                           "server for clips (POST /v1/generations with clip=SECONDS)")
    if remote is not None:
        from .remote import run_remote

        local_only = [name for name, value in (("--board", board), ("--profile", profile), ("--identity", identity),
                                               ("--product", product)) if value is not None]
        settings = load_settings()
        run_remote(
            url=remote, api_key=api_key, board_id=board_id, selfies=selfie or [], out=out,
            request_kwargs=dict(prompt=prompt, n=n, size=size, aspect=aspect, format=format, seed=seed,
                                strength=strength, background=background, framing=framing, mode=mode),
            engine=engine, face_index=face_index, local_only_options=local_only,
            identity_threshold=_identity_threshold(identity_threshold, settings.identity_threshold),
        )
        return
    if board_id is not None:
        raise RequestError("--board-id goes with --remote URL (a board on a server); a folder here is --board DIR")
    if product is not None or subject is not None:
        from .catalogue import generate_product

        generate_product(product, selfie, identity, board, profile, out, subject, dict(
            prompt=prompt, n=n, size=size, aspect=aspect, format=format, seed=seed, strength=strength,
            background=background, framing=framing, mode=mode), clip=clip_options)
        return
    _run_generate(
        selfie or [],
        identity,
        board_dir=board,
        profile_path=profile,
        out=out,
        request_kwargs=dict(
            prompt=prompt, n=n, size=size, aspect=aspect, format=format, seed=seed, strength=strength,
            background=background, framing=framing, mode=mode,
        ),
        engine=engine,
        face_index=face_index,
        identity_threshold=identity_threshold,
        clip=clip_options,
    )


def identity(
    selfie: Annotated[list[Path], typer.Argument(help="One or more selfies of the same person.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the identity JSON.")],
    face_index: Annotated[int | None, typer.Option(min=0, help="Pick a face when a photo has several.")] = None,
) -> None:
    """Encode your face on this machine into an identity file (an embedding; never the image)."""
    settings = load_settings()
    check_output_path(out)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    images = [load_image(p, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes) for p in selfie]
    emb, faces = IdentityEncoder(min_face_px=settings.min_face_px).encode(
        images, names=[p.name for p in selfie], face_index=face_index
    )
    write_atomic(out, (json.dumps(emb.to_dict(), indent=1, allow_nan=False) + "\n").encode())  # 0600: a face
    remember(settings.data_dir, [out], kind="identity")
    console.print(f"wrote {out}: {emb.encoder} embedding from {emb.n_sources} photo(s); no image data stored")


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
    n: Annotated[int, typer.Option("-n", help="Number of variations (1-8).")] = 4,
    size: Annotated[int, typer.Option(help="Longest side in pixels (256-2048).")] = 1024,
    seed: Annotated[int, typer.Option(min=0, help="Seed.")] = 7,
) -> None:
    """Run the whole flow on the bundled sample selfie and board."""
    board_dir = DEMO_DIR / "board"
    selfie_path = DEMO_DIR / "selfie.jpg"
    console.print(
        f"Demo: selfie {selfie_path.name} (NASA portrait, public domain) + board '{board_dir.name}' "
        f"({len(list(board_dir.glob('*.jpg')))} pins)"
    )
    manifest = _run_generate(
        [selfie_path],
        board_dir=board_dir,
        profile_path=None,
        out=out,
        request_kwargs=dict(n=n, size=size, seed=seed),
        engine="look",
        face_index=None,
        identity_threshold=None,
    )
    console.print(f"[bold green]Contact sheet:[/] {(manifest.parent / CONTACT_SHEET).resolve()}")
    console.print(f"Manifest: {manifest.resolve()}")


def verify(
    image: Annotated[Path, typer.Argument(
        help="An image (PNG, JPEG or WebP) or a clip (MP4, WebM, GIF) to check; metadata may be stripped.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A file holding a log tree head you saw before: the log must prove it still extends it "
            "(a rewritten history is reported as tampered). Made on first use; updated to today's head."
        ),
    ] = None,
) -> None:
    """Check an image's provenance: C2PA manifest, watermark, picture fingerprint, record, and the
    transparency log's inclusion and consistency proofs.

    Exit codes: 0 verified (made here, untampered), 20 not ours (no mark, manifest or fingerprint resolves to
    a record), 21 tampered (a manifest that does not validate, a record that differs, a failed proof, a
    replaced mark), 22 forged (the mark names a record but the picture is another one: a copied mark),
    23 untrusted (a manifest claiming to be ours, signed by a certificate outside the trust list).
    """
    settings = load_settings()
    known = None
    if checkpoint is not None:
        check_output_path(checkpoint)  # it is rewritten below: a regular file or nothing yet
    if checkpoint is not None and checkpoint.exists():
        try:
            known = SignedTreeHead.from_note(read_text_file(checkpoint, what="checkpoint"))
        except (InputError, ProofError) as exc:
            raise InputError(f"{checkpoint} does not hold a tree head saved by `tastemaker verify`: {exc}") from None
    report = verify_any(default_provenance(settings),
                        read_image_bytes(image, max_bytes=max(settings.max_image_bytes, CLIP_MAX_BYTES)),
                        known_head=known)
    consistent = report.consistency is None or report.consistency["ok"]
    if checkpoint is not None and report.tree_head is not None and consistent:
        write_atomic(checkpoint, report.tree_head.encode("utf-8"))
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        console.print(_verify_table(image, report))
    raise typer.Exit(VERDICT_EXIT[report.verdict])


def _verify_table(image: Path, report: VerifyReport) -> Table:
    colour = {"verified": "green", "not_ours": "yellow"}.get(report.verdict, "red")
    table = Table(title=f"{image.name}: [bold {colour}]{report.verdict.replace('_', ' ')}[/]", show_header=False)
    table.add_row("C2PA manifest", f"{report.c2pa.state}" + (" (trusted signer)" if report.c2pa.trusted else ""))
    wid = report.to_dict()["watermark"]["id"]
    table.add_row("watermark", f"id {wid} (confidence {report.watermark_confidence:.2f})" if wid else "not found")
    if report.match is not None:
        table.add_row("picture", f"fingerprint z {report.match.z:.1f} over {report.match.cells} cells"
                      + (" (matches its record)" if report.match.same else ""))
    if report.record is not None:
        r = report.record
        table.add_row("record", f"{r.id_hex} · {r.created_at} · {r.engine} v{r.engine_version} · seed {r.seed}"
                      + (f" · found by its {report.matched_by}" if report.matched_by else ""))
        if r.clip is not None:
            c = r.clip
            table.add_row("clip", f"{c['duration_ms'] / 1000:g} s · {c['fps']} fps · {c['frames']} frames · "
                          f"{c['width']}x{c['height']} {c['format']} · made from output {c['of']}")
        if r.rendered_on == "device":
            table.add_row("rendered", "on the person's own device, then registered with this store, which marked, "
                          "signed and logged it (it did not watch it being made)")
        table.add_row("account", r.account)
        table.add_row("profile hash", r.profile_hash[:16] + "…")
        table.add_row(
            "log inclusion",
            f"entry {report.log_index} of {report.tree_size}: "
            + ("proof verified against the signed tree head" if report.proof_ok else "PROOF FAILED"),
        )
    if report.consistency is not None:
        c = report.consistency
        table.add_row("log history", f"size {c['from_size']} -> {c['to_size']}: "
                      + ("consistency proof verified" if c["ok"] else "NOT CONSISTENT"))
    if report.tree_root is not None:
        table.add_row("tree head", f"size {report.tree_size}, root {report.tree_root[:16]}…")
    if report.media is not None:
        m = report.media
        table.add_row("frames", f"mark found in {m['frames_marked']} of {m['frames_checked']} frames checked "
                      f"({m['container']}, {m['width']}x{m['height']})")
    for problem in report.problems:
        table.add_row("[red]problem[/]", problem)
    return table


def engines() -> None:
    """List the available engines."""
    for name in list_engines():
        console.print(name)


def register(app: typer.Typer) -> None:
    """Add the flow's commands to ``app``."""
    for command in (generate, identity, demo, verify):
        app.command()(handle_errors(command))
    app.command()(engines)
