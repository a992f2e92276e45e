"""The ``tastemaker`` command line (Typer + rich).

Errors are translated here and only here: a :class:`~tastemaker.errors.TastemakerError` prints
``ErrorName: message`` on stderr and exits with the error's ``exit_code``; nothing prints a traceback
for bad input. Every numeric option must be finite and in its range (exit 2 otherwise). Ctrl-C prints one
line and exits 130 (see :mod:`tastemaker._interrupt`).

Outputs (``-o``) are a regular file or a missing path (a folder or a missing path for ``generate``): a
symbolic link, a FIFO, a device or a socket there is refused (exit 73), never replaced or followed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__, _interrupt
from .cli_common import console, err_console, handle_errors, warn_skipped
from .config import load_settings
from .errors import InputError, RequestError, TastemakerError

app = typer.Typer(
    name="tastemaker",
    help="A selfie + your board -> you, in your aesthetic. Offline, on your machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
DEMO_DIR = Path(__file__).parent / "data" / "demo"


def _version(value: bool) -> None:
    if value:
        console.print(f"tastemaker {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Tastemaker: learn a portable taste profile from a board and draw you in it."""


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


def _progress() -> Progress:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and os.environ.get("TASTEMAKER_PROGRESS") != "1",
    )
    _interrupt.before_exit("progress", progress.stop)  # an interrupted run's last line is not a bar
    return progress


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
) -> Path:
    from .boards import load_board
    from .encoders.identity import embed_pool
    from .engines.base import GenerationRequest
    from .media import check_output_path, ensure_writable_dir
    from .pipeline import generate, save_result
    from .taste.profile import TasteProfile

    settings = load_settings()
    threshold = _identity_threshold(identity_threshold, settings.identity_threshold)
    request = GenerationRequest.create(**request_kwargs)
    if (board_dir is None) == (profile_path is None):
        raise RequestError("give exactly one of --board DIR or --profile FILE")
    check_output_path(out, folder=True)
    for name in ("manifest.json", "contact_sheet.png"):  # fail before any expensive work, not after it
        check_output_path(out / name)
    created = not out.exists()
    ensure_writable_dir(out)
    previous = _previous_outputs(out)
    board = profile = None
    if board_dir is not None:
        board = load_board(board_dir, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        warn_skipped(board)
    else:
        assert profile_path is not None
        profile = TasteProfile.load(profile_path)
    identity = None
    if identity_file is not None:
        from . import safejson
        from .encoders.identity import IdentityEmbedding
        from .errors import ProfileError
        from .media import read_text_file

        text = read_text_file(identity_file, what="identity file", error=ProfileError)
        try:
            identity = IdentityEmbedding.from_dict(safejson.loads(text, what=str(identity_file)))
        except RequestError as exc:
            raise ProfileError(f"cannot read identity file {identity_file}: {exc.message}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"cannot read identity file {identity_file}: {exc}") from exc
    if not selfies and identity is None:
        raise RequestError("give a selfie (--selfie PATH) or an identity file made on your device (--identity FILE)")
    with _interrupt.children_ignore_sigint():  # the guard's worker processes (if any): Ctrl-C is ours
        embed_pool(settings.guard_workers)
    with _progress() as progress:
        result = generate(
            request,
            selfies=selfies,
            identity=identity,
            board=board,
            profile=profile,
            engine=engine,
            face_index=face_index,
            identity_threshold=threshold,
            guard_workers=settings.guard_workers,
            progress=_Stages(progress),
        )
        manifest = save_result(result, out)
    _remove_stale_outputs(out, previous, manifest)
    _remember_outputs(settings.data_dir, manifest, created_dir=out if created else None)
    table = Table(title=f"{len(result.images)} image(s) in {out}")
    for col in ("file", "mode", "medium", "background", "identity dist.", "style score"):
        table.add_column(col)
    data = json.loads(manifest.read_text())
    for entry in data["images"]:
        medium = entry.get("medium") or {}
        kind = medium.get("kind", "")
        shown = f"{kind} ({medium['strength']:.2f})" if medium.get("applied") else (
            f"{kind}: grade only" if medium.get("fallback") else kind)
        table.add_row(
            entry["file"], entry["mode_name"], shown, entry["background"],
            _number(entry["identity_distance"]), _number(entry["style_score"]),
        )
    console.print(table)
    for note in data.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")
    if result.guard_threshold > threshold + 1e-9:
        console.print(f"[yellow]note:[/] identity threshold raised from {threshold:.2f} to "
                      f"{result.guard_threshold:.2f}: an output is never held closer to you than your own selfie "
                      "is to your identity, plus a margin", highlight=False)
    console.print(f"selfie's own style score: {result.selfie_style_score:.3f} · seed {result.request.seed}")
    return manifest


#: The identity guard's threshold range: from the guard's margin (it never holds an output closer to the person
#: than their own selfie is plus 0.05) to dlib's same-person line (0.6).
THRESHOLD_RANGE = (0.05, 0.6)


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
    from . import safejson
    from .media import read_text_file

    manifest = out / "manifest.json"
    try:
        if not manifest.is_file() or manifest.is_symlink():
            return set()
        doc = safejson.loads(read_text_file(manifest, what="manifest"), what=str(manifest))
    except (TastemakerError, OSError):
        return set()  # not one of ours: leave everything as it is
    if not isinstance(doc, dict) or "tastemaker_version" not in doc:
        return set()
    names = [e.get("file") for e in doc.get("images") or [] if isinstance(e, dict)]
    names.append(doc.get("contact_sheet"))
    return {n for n in names if isinstance(n, str) and n and n == Path(n).name and n not in (".", "..")}


def _remove_stale_outputs(out: Path, previous: set[str], manifest: Path) -> None:
    """After the new manifest is in place: delete what the previous run wrote that the new one does not list.

    The new images and manifest are written first (each atomically), the old files removed last, so at every
    moment ``manifest.json`` lists files that exist; only regular files named by the old manifest go."""
    import stat

    current = _previous_outputs(out) | {manifest.name}
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


def _remember_outputs(data_dir: Path, manifest: Path, *, created_dir: Path | None) -> None:
    """Record what ``generate`` wrote (images, contact sheet, manifest), so ``tastemaker forget`` finds it."""
    from .forget import remember

    doc = json.loads(manifest.read_text())
    names = [entry["file"] for entry in doc.get("images", [])]
    if doc.get("contact_sheet"):
        names.append(doc["contact_sheet"])
    remember(data_dir, [manifest.parent / n for n in names] + [manifest], kind="output", created_dir=created_dir)


SelfieOpt = Annotated[
    list[Path] | None,
    typer.Option("--selfie", "-s", help="Selfie image; repeat for several photos of the same person."),
]


@app.command()
@handle_errors
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
    aspect: Annotated[str, typer.Option(help="1:1, 4:5, 2:3, 9:16 or original.")] = "4:5",
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
) -> None:
    """Generate images of you in a board's (or profile's) aesthetic."""
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
    )


@app.command()
@handle_errors
def identity(
    selfie: Annotated[list[Path], typer.Argument(help="One or more selfies of the same person.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the identity JSON.")],
    face_index: Annotated[int | None, typer.Option(min=0, help="Pick a face when a photo has several.")] = None,
) -> None:
    """Encode your face on this machine into an identity file (an embedding; never the image)."""
    from .encoders.identity import IdentityEncoder
    from .media import check_output_path, ensure_writable_dir, load_image, write_atomic

    settings = load_settings()
    check_output_path(out)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    images = [load_image(p, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes) for p in selfie]
    emb, faces = IdentityEncoder(min_face_px=settings.min_face_px).encode(
        images, names=[p.name for p in selfie], face_index=face_index
    )
    write_atomic(out, (json.dumps(emb.to_dict(), indent=1, allow_nan=False) + "\n").encode())  # 0600: a face
    from .forget import remember

    remember(settings.data_dir, [out], kind="identity")
    console.print(f"wrote {out}: {emb.encoder} embedding from {emb.n_sources} photo(s); no image data stored")


@app.command()
@handle_errors
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
    console.print(f"[bold green]Contact sheet:[/] {(manifest.parent / 'contact_sheet.png').resolve()}")
    console.print(f"Manifest: {manifest.resolve()}")


@app.command()
@handle_errors
def verify(
    image: Annotated[Path, typer.Argument(help="An image to check (PNG, JPEG or WebP; metadata may be stripped).")],
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
    from .errors import ProofError
    from .media import check_output_path, read_image_bytes, read_text_file, write_atomic
    from .pipeline import default_provenance
    from .provenance.ledger import SignedTreeHead
    from .provenance.service import VERDICT_EXIT

    settings = load_settings()
    known = None
    if checkpoint is not None:
        check_output_path(checkpoint)  # it is rewritten below: a regular file or nothing yet
    if checkpoint is not None and checkpoint.exists():
        try:
            known = SignedTreeHead.from_note(read_text_file(checkpoint, what="checkpoint"))
        except (InputError, ProofError) as exc:
            raise InputError(f"{checkpoint} does not hold a tree head saved by `tastemaker verify`: {exc}") from None
    report = default_provenance().verify(read_image_bytes(image, max_bytes=settings.max_image_bytes),
                                         known_head=known)
    data = report.to_dict()
    consistent = report.consistency is None or report.consistency["ok"]
    if checkpoint is not None and report.tree_head is not None and consistent:
        write_atomic(checkpoint, report.tree_head.encode("utf-8"))
    if as_json:
        console.print_json(json.dumps(data))
    else:
        colour = {"verified": "green", "not_ours": "yellow"}.get(report.verdict, "red")
        table = Table(title=f"{image.name}: [bold {colour}]{report.verdict.replace('_', ' ')}[/]", show_header=False)
        table.add_row("C2PA manifest", f"{report.c2pa.state}" + (" (trusted signer)" if report.c2pa.trusted else ""))
        wid = data["watermark"]["id"]
        table.add_row("watermark", f"id {wid} (confidence {report.watermark_confidence:.2f})" if wid else "not found")
        if report.match is not None:
            table.add_row("picture", f"fingerprint z {report.match.z:.1f} over {report.match.cells} cells"
                          + (" (matches its record)" if report.match.same else ""))
        if report.record is not None:
            r = report.record
            table.add_row("record", f"{r.id_hex} · {r.created_at} · {r.engine} v{r.engine_version} · seed {r.seed}"
                          + (f" · found by its {report.matched_by}" if report.matched_by else ""))
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
        for problem in report.problems:
            table.add_row("[red]problem[/]", problem)
        console.print(table)
    raise typer.Exit(VERDICT_EXIT[report.verdict])


@app.command()
def engines() -> None:
    """List the available engines."""
    from .engines import list_engines

    for name in list_engines():
        console.print(name)


def _register_subcommands() -> None:
    """Command groups that live beside the code they drive."""
    from .api.cli import register as register_service
    from .engines.diffusion.cli import register as register_diffusion
    from .eval.cli import register as register_eval
    from .taste.cli import register as register_taste

    register_taste(app)
    register_eval(app)
    register_diffusion(app)
    register_service(app)


_register_subcommands()


def main() -> None:
    """Console-script entry point: the app, with Ctrl-C handled once (one line, exit 130, no finalisation
    under running threads; see :mod:`tastemaker._interrupt`)."""
    _interrupt.install()
    try:
        app()
    except BaseException:
        if _interrupt.interrupted():  # whatever ended the command after Ctrl-C (a cancelled task...) ends quietly
            _interrupt.exit_now()
        raise
    if _interrupt.interrupted():
        _interrupt.exit_now()


if __name__ == "__main__":  # pragma: no cover
    main()
