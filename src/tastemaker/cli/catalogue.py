"""Products on the command line: ``generate --product PHOTO`` (called from :mod:`.generate`) and
``catalogue render products.csv --board DIR -o OUT/``.

The catalogue CSV has a header row and these columns (UTF-8, comma-separated):

``id``
    required; the product's id: letters, digits, ``-`` and ``_`` (at most 64), unique in the file. It names the
    product's output folder ``OUT/<id>/``.
``image``
    required; the product photo (JPEG, PNG, WebP; a transparent PNG's alpha is the cut-out), relative to the
    CSV's folder or absolute.
``name``
    optional; a display name for the contact sheet.
``subject``
    optional; ``product`` to confirm a photo in which a face is found is a product all the same.

Each product is rendered once in every mode of the board (``OUT/<id>/<id>_<seed>_<k>.png``, one per mode), with a
``contact_sheet.png`` and ``manifest.json`` per product and an ``index.json`` over all of them; every image is
marked, signed and logged. With ``--background auto`` the modes alternate between a studio backdrop and one of the
board's scenes. A bad row is refused before anything renders, naming the row and the problem.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..boards import load_board
from ..clips import ClipOptions, save_clips
from ..config import Settings, load_settings
from ..engines.assets import load_assets
from ..engines.base import GenerationRequest
from ..errors import RequestError, TastemakerError
from ..forget import remember
from ..media import check_output_path, ensure_writable_dir, read_image_bytes, read_text_file, write_atomic
from ..pipeline import default_provenance
from ..products import ProductPipeline, ProductResult, cut_out, decode_product, save_product_result
from ..products.errors import ProductCatalogueError
from ..products.output import CONTACT_SHEET, MANIFEST, file_names
from ..taste.profile import ProfileConfig, TasteProfile, build_profile
from ..taste.weights import WeightConfig
from .common import console, handle_errors, progress_bar, warn_skipped

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
COLUMNS = ("id", "image", "name", "subject")
MAX_ROWS = 10_000
#: ``--background auto``: the first mode on a studio backdrop (a shop's clean shot), the next in a board scene...
CATALOGUE_BACKGROUNDS = ("backdrop", "scene")


def _pipeline(settings: Settings) -> ProductPipeline:
    return ProductPipeline(
        default_provenance(settings),
        profile_config=ProfileConfig(max_modes=settings.max_modes,
                                     weights=WeightConfig(half_life_days=settings.recency_half_life_days)))


def _load_cutout(path: Path, settings: Settings, *, subject: str | None, name: str | None = None) -> Any:
    if subject not in (None, "product"):
        raise RequestError(f"--subject {subject}: with --product the subject is a product; for a person give the "
                           "photo with --selfie")
    data = read_image_bytes(path, max_bytes=settings.max_image_bytes)
    img = decode_product(data, name=path.name, max_pixels=settings.max_image_pixels,
                         max_bytes=settings.max_image_bytes)
    return cut_out(img, name=name or path.name, allow_face=subject == "product")


def run_product_generate(product: Path, *, board_dir: Path | None, profile_path: Path | None, out: Path,
                         request_kwargs: dict[str, Any], subject: str | None, clip: ClipOptions | None = None) -> Path:
    """``generate --product``: cut out, render in the board's look, guard, stamp, write (with ``clip``: a clip of
    each image too), print."""
    settings = load_settings()
    request = GenerationRequest.create(**request_kwargs)
    if (board_dir is None) == (profile_path is None):
        raise RequestError("give exactly one of --board DIR or --profile FILE")
    check_output_path(out, folder=True)
    for name in (MANIFEST, CONTACT_SHEET):
        check_output_path(out / name)
    board = profile = None
    if board_dir is not None:
        board = load_board(board_dir, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        warn_skipped(board)
    else:
        assert profile_path is not None
        profile = TasteProfile.load(profile_path)
    cut = _load_cutout(product, settings, subject=subject)
    created = not out.exists()
    ensure_writable_dir(out)
    with progress_bar(settings, TextColumn("[progress.description]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task({"render": "Rendering the product"}.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        pipe = _pipeline(settings)
        result = pipe(request, cut, board=board, profile=profile, progress=report)
        clip_files = []
        if clip is not None:
            task = bar.add_task("Making clips", total=len(result.images))
            clip_files = save_clips(result, file_names(result), clip, provenance=pipe.provenance, out=out,
                                    advance=lambda: bar.advance(task))
        manifest = save_product_result(result, out)
    assert manifest is not None
    written = [*file_names(result), *clip_files, CONTACT_SHEET]
    remember(settings.data_dir, [out / n for n in written] + [manifest], kind="output",
             created_dir=out if created else None)
    _print(result, out)
    return manifest


def _print(result: ProductResult, out: Path) -> None:
    table = Table(title=f"{len(result.images)} product image(s) in {out}")
    for col in ("file", "mode", "background", "hold", "ΔE2000", "shape SSIM"):
        table.add_column(col)
    for name, im in zip(file_names(result), result.images, strict=True):
        table.add_row(name, im.mode_name, im.background, f"{im.hold:g}", f"{im.delta_e:.2f}", f"{im.shape_ssim:.3f}")
    console.print(table)
    for note in result.notes():
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"cut-out: {result.cutout.source} · seed {result.request.seed}")


# ------------------------------------------------------------------------------------------ catalogue
def read_catalogue(path: Path) -> list[dict[str, str]]:
    """The catalogue's rows, checked (see the module docstring); a bad one is refused naming its line."""
    text = read_text_file(path, what="catalogue")
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "id" not in fields or "image" not in fields:
        raise ProductCatalogueError(f"{path}: the header must name the columns id and image (optional: name, subject); "
                             f"got {', '.join(fields) or 'no header'}")
    unknown = [f for f in fields if f not in COLUMNS]
    if unknown:
        raise ProductCatalogueError(f"{path}: unknown column(s) {', '.join(unknown)}; "
                                    f"the columns are {', '.join(COLUMNS)}")
    rows, seen = [], set()
    for k, raw in enumerate(reader, start=2):
        row = {(key or "").strip().lower(): (v or "").strip() for key, v in raw.items() if key is not None}
        if None in raw:
            raise ProductCatalogueError(f"{path} line {k}: more values than columns")
        if not any(row.values()):
            continue
        pid, image = row.get("id", ""), row.get("image", "")
        if not _ID.match(pid):
            raise ProductCatalogueError(f"{path} line {k}: id {pid!r} must be 1-64 letters, digits, '-' or '_'")
        if pid in seen:
            raise ProductCatalogueError(f"{path} line {k}: id {pid!r} appears twice")
        if not image:
            raise ProductCatalogueError(f"{path} line {k}: product {pid!r} has no image")
        img_path = Path(image) if Path(image).is_absolute() else path.parent / image
        if not img_path.is_file():
            raise ProductCatalogueError(f"{path} line {k}: image {image!r} of product {pid!r} is not a file")
        subject = row.get("subject", "")
        if subject not in ("", "product"):
            raise ProductCatalogueError(f"{path} line {k}: subject must be empty or 'product', got {subject!r}")
        seen.add(pid)
        rows.append({"id": pid, "image": str(img_path), "name": row.get("name", "") or pid, "subject": subject})
        if len(rows) > MAX_ROWS:
            raise ProductCatalogueError(f"{path}: more than {MAX_ROWS} products; split the catalogue")
    if not rows:
        raise ProductCatalogueError(f"{path}: no products (a header and at least one row with id and image)")
    return rows


catalogue_app = typer.Typer(help="Render a catalogue of products in a board's look.", no_args_is_help=True)


def render(
    catalogue: Annotated[Path, typer.Argument(help="CSV with columns id,image[,name][,subject].")],
    board: Annotated[Path, typer.Option("--board", "-b", help="Board folder (images + pins.csv).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one sub-folder per product).")],
    size: Annotated[int, typer.Option(help="Longest side in pixels (256-2048).")] = 1024,
    aspect: Annotated[str, typer.Option(help="1:1, 4:5, 2:3, 9:16, 3:2 or original.")] = "4:5",
    format: Annotated[str, typer.Option("--format", "-f", help="png, jpeg or webp.")] = "png",
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same images.")] = 1,
    strength: Annotated[float, typer.Option(help="0 = untouched, 1 = all the way to the board's look.")] = 0.8,
    prompt: Annotated[str, typer.Option(help="Free text: place words pick scenes; 'recolour' restyles.")] = "",
    background: Annotated[
        str, typer.Option(help="auto (a backdrop and the board's scenes, mode by mode), backdrop, scene, keep or blur.")
    ] = "auto",
) -> None:
    """Render each product of the CSV in each mode of the board, with a contact sheet per product."""
    settings = load_settings()
    rows = read_catalogue(catalogue)
    check_output_path(out, folder=True)
    GenerationRequest.create(size=size, aspect=aspect, format=format, seed=seed, strength=strength, prompt=prompt,
                             background=background)
    brd = load_board(board, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
    warn_skipped(brd)
    profile = build_profile(brd, ProfileConfig(max_modes=settings.max_modes,
                                               weights=WeightConfig(half_life_days=settings.recency_half_life_days)))
    cuts = {}
    for row in rows:  # every photo checked before anything renders
        try:
            cuts[row["id"]] = _load_cutout(Path(row["image"]), settings, subject=row["subject"] or None,
                                           name=row["name"])
        except TastemakerError as exc:
            raise ProductCatalogueError(f"{catalogue}: product {row['id']!r}: {exc.message}") from None
    created = not out.exists()
    ensure_writable_dir(out)
    pipe = _pipeline(settings)
    modes = profile.modes
    assets = load_assets(brd, profile)
    index: list[dict[str, Any]] = []
    written: list[Path] = []
    with progress_bar(settings, TextColumn("[progress.description]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("Rendering the catalogue", total=len(rows) * len(modes))
        for row in rows:
            pid = row["id"]
            bar.update(task, description=f"Rendering {pid}")
            parts = []
            for k, mode in enumerate(modes):  # one image per mode, each forced to its mode
                bg = CATALOGUE_BACKGROUNDS[k % len(CATALOGUE_BACKGROUNDS)] if background == "auto" else background
                request = GenerationRequest.create(n=1, size=size, aspect=aspect, format=format, seed=seed,
                                                   strength=strength, prompt=prompt, mode=mode.id, background=bg)
                parts.append(pipe(request, cuts[pid], profile=profile, assets=assets))
                bar.advance(task)
            result = _merge(parts)
            folder = out / pid
            check_output_path(folder, folder=True)
            manifest = save_product_result(result, folder, stem=pid)
            assert manifest is not None
            names = file_names(result, pid)
            written += [folder / n for n in names] + [folder / CONTACT_SHEET, manifest]
            index.append({"id": pid, "name": row["name"], "folder": pid, "contact_sheet": f"{pid}/{CONTACT_SHEET}",
                          "images": [{"file": f"{pid}/{n}", "mode": im.mode_id, "record_id": im.record_id,
                                      "delta_e": round(im.delta_e, 3), "shape_ssim": round(im.shape_ssim, 4)}
                                     for n, im in zip(names, result.images, strict=True)]})
    idx = write_atomic(out / "index.json", (json.dumps({"catalogue": str(catalogue), "board": str(board),
                                                        "modes": [m.id for m in modes], "products": index},
                                                       indent=2) + "\n").encode())
    remember(settings.data_dir, [*written, idx], kind="output", created_dir=out if created else None)
    console.print(f"{len(rows)} product(s) x {len(modes)} mode(s) in {out} · contact sheets in each product folder")


def _merge(parts: list[ProductResult]) -> ProductResult:
    """One result per product from its one-mode renders (images numbered in mode order)."""
    first = parts[0]
    images = []
    for k, part in enumerate(parts):
        for im in part.images:
            im.index = k
            images.append(im)
    return ProductResult(images=images, request=first.request.model_copy(update={"mode": None, "n": len(images)}),
                         profile=first.profile, cutout=first.cutout, engine=first.engine,
                         engine_version=first.engine_version, timings=first.timings, restyle=first.restyle,
                         assets_source=first.assets_source)


def register(app: typer.Typer) -> None:
    """Add ``catalogue render`` to ``app``."""
    catalogue_app.command("render")(handle_errors(render))
    app.add_typer(catalogue_app, name="catalogue")


def generate_product(product: Path | None, selfies: list[Path] | None, identity: Path | None, board: Path | None,
                     profile: Path | None, out: Path, subject: str | None, request_kwargs: dict[str, Any],
                     clip: ClipOptions | None = None) -> None:
    """``generate --product PHOTO``: the options checked against each other, then :func:`run_product_generate`."""
    if product is None:
        raise RequestError(f"--subject {subject}: goes with --product PHOTO (a person is given with --selfie)")
    if selfies or identity is not None:
        raise RequestError("give either --product PHOTO or --selfie/--identity, not both")
    run_product_generate(product, board_dir=board, profile_path=profile, out=out, request_kwargs=request_kwargs,
                         subject=subject, clip=clip)
