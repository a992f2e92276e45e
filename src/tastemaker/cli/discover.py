"""Discovery and curation commands: ``index add|info``, ``search``, ``shop`` and ``curate``.

The index lives in ``<data dir>/index`` unless ``--index`` names another folder (``TASTEMAKER_DATA_DIR`` moves the
data dir; ``tastemaker serve`` searches the same default folder). Nothing here fetches from the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import Settings, load_settings
from ..errors import ProfileError, SearchQueryError
from .common import console, err_console, handle_errors, progress_bar

index_app = typer.Typer(no_args_is_help=True, help="Build and inspect the search index (pins and catalogues).")

IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder (default: <data dir>/index).")]
KOpt = Annotated[int, typer.Option("-k", min=1, max=500, help="How many results (1-500).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of a table.")]


def index_folder(settings: Settings, given: Path | None) -> Path:
    """The index folder: ``--index`` or ``<data dir>/index``."""
    return given if given is not None else settings.data_dir / "index"


def _bar(settings: Settings) -> Any:
    return progress_bar(settings, TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn())


@index_app.command("add")
@handle_errors
def add(
    sources: Annotated[list[Path], typer.Argument(help="Board folders (or folders of boards) and products.csv files.")],
    index: IndexOpt = None,
    allow_faces: Annotated[bool, typer.Option("--allow-faces", help="Index images in which a face is found too.")]
    = False,
    engine: Annotated[str, typer.Option(help="For a new index: embedded (faiss, default) or milvus.")] = "embedded",
    milvus_uri: Annotated[str, typer.Option(help="Milvus: http://host:19530, or a local milvus-lite .db file.")]
    = "milvus.db",
    collection: Annotated[str, typer.Option(help="Milvus collection name.")] = "tastemaker",
    text: Annotated[str, typer.Option(help="Text vectors: auto (MiniLM when [text] is installed), minilm, "
                                           "lexical (none stored).")] = "auto",
) -> None:
    """Index images by style and words, incrementally. Images with a face are skipped and counted."""
    from ..discovery.index import IndexSettings, create_or_open
    from ..discovery.sources import read_sources
    from ..encoders.text import get_text_encoder, minilm_available

    if engine not in ("embedded", "milvus"):
        raise SearchQueryError(f"--engine: use embedded or milvus, got {engine!r}")
    if text not in ("auto", "minilm", "lexical"):
        raise SearchQueryError(f"--text: use auto, minilm or lexical, got {text!r}")
    settings = load_settings()
    folder = index_folder(settings, index)
    items = [it for src in sources for it in read_sources(src)]
    use_minilm = text == "minilm" or (text == "auto" and minilm_available())
    wanted = IndexSettings(engine=engine, milvus_uri=milvus_uri if engine == "milvus" else "",
                           milvus_collection=collection, text_encoder="minilm" if use_minilm else "lexical")
    idx = create_or_open(folder, wanted)
    try:
        embed = None
        if idx.settings.text_encoder == "minilm":
            enc = get_text_encoder("minilm")
            embed = getattr(enc, "embed", None)
        with _bar(settings) as progress:
            task = progress.add_task("Indexing", total=len(items))
            report = idx.add(items, allow_faces=allow_faces, max_pixels=settings.max_image_pixels,
                             max_bytes=settings.max_image_bytes, text_embed=embed,
                             on_image=lambda: progress.advance(task))
        for name, reason in report.skipped:
            err_console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False, soft_wrap=True)
        faces = (f"; {report.skipped_faces} skipped: a face was found (--allow-faces indexes them)"
                 if report.skipped_faces else "")
        console.print(
            f"{folder}: {report.added} added, {report.replaced} replaced, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.skipped)} unreadable{faces}; "
            f"{idx.count()} items ({idx.count('product')} products) on the {idx.settings.engine} engine",
            highlight=False, soft_wrap=True)
    finally:
        idx.close()


@index_app.command("info")
@handle_errors
def info(index: IndexOpt = None) -> None:
    """What an index holds and how it was made."""
    from ..discovery.index import open_index

    settings = load_settings()
    folder = index_folder(settings, index)
    idx = open_index(folder)
    try:
        meta = idx.meta()
        console.print(json.dumps({"folder": str(folder), "items": idx.count(), "pins": idx.count("pin"),
                                  "products": idx.count("product"), "engine": idx.settings.engine,
                                  "text_encoder": idx.settings.text_encoder, "descriptor": meta.get("descriptor"),
                                  "created_at": meta.get("created_at"), "generation": idx.generation()}, indent=1),
                      highlight=False)
    finally:
        idx.close()


def _hits_table(title: str, hits: list[Any]) -> Table:
    table = Table(title=title)
    for col in ("#", "score", "item", "where", "mode", "palette", "words"):
        table.add_column(col)
    for h in hits:
        name = h.title or Path(h.path).name
        where = h.board if h.kind == "pin" else " ".join(
            x for x in (h.brand, f"{h.price:g} {h.currency}" if h.price is not None else "") if x)
        mode = h.why.mode["id"] if h.why.mode else ""
        swatches = " ".join(f"[on {c}]  [/]" for c in h.why.palette[:5])
        table.add_row(str(h.rank), f"{h.score:.3f}", name, where, mode, swatches, ", ".join(h.why.words[:6]))
    return table


def _print_hits(title: str, hits: list[Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        err_console.print("no results: nothing in the index matches this query", highlight=False)
        return
    console.print(_hits_table(title, hits))


def _taste(board: Path | None, profile: Path | None) -> tuple[Any, list[str]]:
    """A taste profile and the board's pin hashes (to leave its own pins out), from --board or --profile."""
    from ..boards import load_board
    from ..taste.profile import TasteProfile, build_profile
    from .common import warn_skipped

    if board is not None:
        settings = load_settings()
        b = load_board(board, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        warn_skipped(b)
        return build_profile(b), [p.sha256 for p in b.pins]
    assert profile is not None
    prof = TasteProfile.load(profile)
    if not prof.modes:
        raise ProfileError(f"{profile}: the profile has no modes")
    return prof, []


@handle_errors
def search(
    image: Annotated[Path | None, typer.Option("--image", help="Find images in this one's style.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Find images whose title and tags match.")] = None,
    board: Annotated[Path | None, typer.Option("--board", help="More like this board (one query per mode).")] = None,
    profile: Annotated[Path | None, typer.Option("--profile", help="More like this taste profile.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Only this mode of the board (m1, m2...).")] = None,
    k: KOpt = 20,
    kind: Annotated[str | None, typer.Option("--kind", help="Only pins or only products.")] = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Nearest items by image, text or board, with their scores and why."""
    from ..discovery.index import open_index
    from ..discovery.search import search_board, search_image, search_text
    from ..media import load_image

    given = [n for n, v in (("--image", image), ("--text", text), ("--board", board), ("--profile", profile))
             if v is not None]
    if len(given) != 1:
        raise SearchQueryError("give exactly one of --image, --text, --board or --profile"
                               + (f" (got {', '.join(given)})" if given else ""))
    if mode is not None and board is None and profile is None:
        raise SearchQueryError("--mode picks a mode of --board or --profile")
    if kind not in (None, "pin", "product"):
        raise SearchQueryError(f"--kind: use pin or product, got {kind!r}")
    settings = load_settings()
    idx = open_index(index_folder(settings, index))
    try:
        if image is not None:
            hits = search_image(idx, load_image(image, max_pixels=settings.max_image_pixels), k, kind=kind)
            title = f"In the style of {image.name}"
        elif text is not None:
            hits = search_text(idx, text, k, kind=kind)
            title = f"Matching {text!r}"
        else:
            prof, shas = _taste(board, profile)
            hits = search_board(idx, prof, k, mode=mode, pin_shas=shas, kind=kind)
            title = f"More like {(board or profile).name}"  # type: ignore[union-attr]
        _print_hits(title, hits, as_json)
    finally:
        idx.close()


@handle_errors
def shop(
    catalogue: Annotated[Path, typer.Option("--catalogue", help="The index folder holding the catalogue.")],
    board: Annotated[Path | None, typer.Option("--board", help="Rank the catalogue for this board's taste.")] = None,
    profile: Annotated[Path | None, typer.Option("--profile", help="... or for this taste profile.")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="... or for this picture (a generated image).")]
    = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Only this mode of the board.")] = None,
    k: KOpt = 20,
    as_json: JsonOpt = False,
) -> None:
    """Shop the look: catalogue items ranked for a taste or a picture, with the reasons."""
    from ..discovery.index import open_index
    from ..discovery.search import shop_the_look
    from ..media import load_image

    given = [n for n, v in (("--board", board), ("--profile", profile), ("--image", image)) if v is not None]
    if len(given) != 1:
        raise SearchQueryError("give exactly one of --board, --profile or --image"
                               + (f" (got {', '.join(given)})" if given else ""))
    settings = load_settings()
    idx = open_index(catalogue)
    try:
        if image is not None:
            hits = shop_the_look(idx, k, image=load_image(image, max_pixels=settings.max_image_pixels))
        else:
            prof, shas = _taste(board, profile)
            hits = shop_the_look(idx, k, profile=prof, mode=mode, pin_shas=shas)
        _print_hits(f"Shop the look of {given[0].lstrip('-')} {(board or profile or image).name}",  # type: ignore
                    hits, as_json)
    finally:
        idx.close()


@handle_errors
def curate_command(
    inputs: Annotated[list[Path], typer.Argument(help="Board folders (trees), products.csv files or index folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The dataset folder (new, empty, or an earlier dataset).")],
    consent: Annotated[Path | None, typer.Option("--consent", help="Consent rules (YAML); without it nothing "
                                                                  "is exported.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray", metavar="ADDRESS",
                                                    help="Measure on the Ray cluster at ADDRESS.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=256, help="Local processes (default: CPU count).")]
    = None,
    min_side: Annotated[int, typer.Option(min=1, help="Shorter side at least this many pixels.")] = 256,
    min_sharpness: Annotated[float, typer.Option(min=0, help="Variance of the Laplacian at 512 px.")] = 15.0,
    min_luminance_std: Annotated[float, typer.Option(min=0, help="Luminance spread below this is near blank.")]
    = 3.0,
    dup_distance: Annotated[int, typer.Option(min=0, max=32, help="Near-duplicate radius in hash bits.")] = 12,
    shard_size: Annotated[int, typer.Option(min=1, help="Images per WebDataset shard.")] = 1000,
) -> None:
    """A consented training dataset: WebDataset shards, a Parquet table of every decision, a datasheet."""
    from functools import partial

    from ..curate.pipeline import CurateSettings, curate, run_local
    from ..curate.rules import ConsentRules, load_rules
    from ..media import check_output_path

    settings = load_settings()
    check_output_path(out, folder=True)
    rules = load_rules(consent) if consent is not None else ConsentRules()
    cfg = CurateSettings(min_side=min_side, min_sharpness=min_sharpness, min_luminance_std=min_luminance_std,
                         dup_max_distance=dup_distance, shard_size=shard_size, max_pixels=settings.max_image_pixels,
                         max_bytes=settings.max_image_bytes)
    with _bar(settings) as progress:
        task = progress.add_task("Measuring images", total=None)

        def advance(_: Any) -> None:
            progress.advance(task)

        if ray_address is not None:
            from ..curate.ray_runner import run_ray  # only here: without --ray nothing imports Ray

            def measure(jobs: Any) -> Any:
                progress.update(task, total=len(jobs))
                return run_ray(jobs, ray_address, on_done=advance)
        else:
            def measure(jobs: Any) -> Any:
                progress.update(task, total=len(jobs))
                return partial(run_local, workers=workers or os.cpu_count() or 1, on_done=advance)(jobs)

        result = curate(inputs, out, rules=rules, settings=cfg, measure=measure,
                        runner="ray" if ray_address is not None else "local")
    kept = len(result.kept)
    from ..curate.pipeline import exclusion_summary

    excluded = len(result.rows) - kept
    console.print(f"wrote {kept} of {len(result.rows)} images to {out} in {len(result.shards)} shard(s)"
                  + (f"; excluded {excluded}: {exclusion_summary(result.rows)}" if excluded else "")
                  + f" (every decision: {out / 'metadata.parquet'}; summary: {out / 'datasheet.md'})",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search)
    app.command("shop")(shop)
    app.command("curate")(curate_command)
