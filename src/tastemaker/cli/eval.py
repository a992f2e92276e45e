"""``tastemaker eval``: the evaluation harness on the command line (:mod:`tastemaker.eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import load_settings
from ..encoders.identity import IdentityEncoder
from ..eval.report import check_report_dependencies, summary_table, write_report
from ..eval.runner import EvalConfig, run_eval
from ..media import ensure_writable_dir
from .common import console, err_console, handle_errors, progress_bar


def eval_command(
    selfies: Annotated[
        Path, typer.Option("--selfies", help="Selfie images, or one sub-folder of photos per person.")
    ],
    boards: Annotated[Path, typer.Option("--boards", help="One sub-folder per board (images + optional pins.csv).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (results.json + report.html).")],
    n: Annotated[int, typer.Option("-n", help="Variations per selfie x board (1-8).")] = 4,
    size: Annotated[int, typer.Option(help="Longest side of each output (256-2048).")] = 512,
    aspect: Annotated[str, typer.Option(help="1:1, 4:5, 2:3, 9:16, 3:2 (landscape) or original.")] = "4:5",
    seed: Annotated[int, typer.Option(help="Seed for every request (engine and baselines alike).")] = 0,
    strength: Annotated[float, typer.Option(help="Strength for the engine and the baselines.")] = 0.8,
    prompt: Annotated[str, typer.Option(help="Prompt given to the engine.")] = "",
    engine: Annotated[str, typer.Option(help="Engine to evaluate (see `tastemaker engines`).")] = "look",
    baselines: Annotated[
        str,
        typer.Option(help="'all', or a comma list of none, reinhard, histmatch, single-pin, stylize, oilpaint "
                          "('' for none)."),
    ] = "all",
    clip_model: Annotated[
        Path | None, typer.Option(help="Local CLIP folder (transformers save_pretrained) for CLIP metrics.")
    ] = None,
    arcface_model: Annotated[Path | None, typer.Option(help="ArcFace .onnx file for ArcFace cosine metrics.")] = None,
    selfies_per_person: Annotated[
        int, typer.Option(help="With person folders: how many photos take turns as the selfie.")
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS",
                     help="Run each selfie x board as a task on the Ray cluster at ADDRESS (host:port; needs "
                          "'tastemaker[ray]'): the same results, a task whose worker dies retried."),
    ] = None,
) -> None:
    """Evaluate the engine against baselines on your selfies and boards; writes an HTML report."""
    settings = load_settings()
    config = EvalConfig.create(
        n=n, size=size, aspect=aspect, seed=seed, strength=strength, prompt=prompt, engine=engine,
        baselines=baselines, clip_model=clip_model, arcface_model=arcface_model,
        selfies_per_person=selfies_per_person, identity_threshold=settings.identity_threshold,
        guard_workers=settings.guard_workers, max_image_pixels=settings.max_image_pixels,
        max_image_bytes=settings.max_image_bytes,
    )
    check_report_dependencies()  # fail before the long part, not after it
    ensure_writable_dir(out)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with progress_bar(settings, *columns) as progress:
        task = progress.add_task("Evaluating", total=None)

        def on_progress(what: str, done: int, total: int) -> None:
            progress.update(task, description=what[:60], completed=done, total=total)

        run = run_eval(
            selfies, boards, config, progress=on_progress, encoder=IdentityEncoder(min_face_px=settings.min_face_px),
            ray_address=ray,
        )
    for s in run.skipped:
        err_console.print(f"[yellow]skipped[/] {s.kind} {s.where}: {s.reason}", highlight=False, soft_wrap=True)
    for e in run.errors:
        err_console.print(
            f"[red]failed[/] {e['method']} on {e['person']}/{e['selfie']} × {e['board']}: {e['error']}: "
            f"{e['message']}", highlight=False, soft_wrap=True,
        )
    results = run.to_dict()
    results_path, html_path = write_report(run, out, results=results)
    head, rows = summary_table(results, intervals=False)
    people, nboards = len(run.selfies.people), len(run.boards.boards)
    table = Table(title=f"{run.engine} vs baselines · {people} people × {nboards} boards · n={config.n}")
    for i, h in enumerate(head):
        table.add_column(h, no_wrap=i == 0)  # the method's name whole; the numbers fold in a narrow terminal
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(f"report: {html_path.resolve()}\nresults: {results_path.resolve()}")


def register(app: typer.Typer) -> None:
    """Add ``tastemaker eval`` to ``app`` (errors translated by the common handler)."""
    app.command("eval")(handle_errors(eval_command))
