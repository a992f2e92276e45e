"""Commands of the diffusion engine, added to the ``tastemaker`` app by :func:`register`.

* ``tastemaker train-styleembed --base DIR --data DIR -o OUT`` — train the StyleEmbed adapter (frozen base);
* ``tastemaker clip-embed BOARD --image-encoder DIR -o board.clip.json`` — pin embeddings for profile-only runs;
* ``tastemaker diffusion-tiny DIR`` — tiny random models in the real layouts, to try the path offline.

Generation itself is ``tastemaker generate --engine diffusion`` with ``TASTEMAKER_DIFFUSION_*`` settings.
The ``[diffusion]`` extra (torch) may be missing: the engine package's names used here load on first use,
after ``require_diffusion()`` said which extra to install (``tastemaker.engines.diffusion.__getattr__``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..boards import load_board
from ..engines import diffusion
from ..errors import RequestError
from .common import console, err_console, handle_errors


def train_styleembed_cmd(
    base: Annotated[Path, typer.Option(help="Base diffusers pipeline folder (SD 1.x/2.x, SD-Turbo).")],
    data: Annotated[Path, typer.Option(help="Folder with examples.jsonl: board / identity or selfie / target.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the adapter and checkpoints go.")],
    image_encoder: Annotated[
        Path | None, typer.Option(help="CLIP vision folder (default: BASE/image_encoder).")
    ] = None,
    init: Annotated[Path | None, typer.Option(help="Start from a StyleEmbed folder or IP-Adapter file.")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 4,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-4,
    resolution: Annotated[int | None, typer.Option(help="Training side in px (default: the base's).")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = 250,
    resume: Annotated[
        str | None, typer.Option(help="Resume from a checkpoint folder, or 'latest' under --out.")
    ] = None,
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16 (half precision on CUDA).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1...")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of batches, timesteps and noise.")] = 0,
) -> None:
    """Train the StyleEmbed adapter on (board, selfie, target) triples; the base model stays frozen."""
    diffusion.require_diffusion()
    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise RequestError(f"--precision must be auto, fp32, fp16 or bf16 (got {precision!r})")
    cfg = diffusion.TrainConfig(
        base=base, data=data, out=out, image_encoder=image_encoder, init=init, steps=steps,
        batch_size=batch_size, lr=lr, resolution=resolution, checkpoint_every=checkpoint_every,
        precision=precision, device=device, seed=seed,
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total} · loss {task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
    ) as bar:
        task = bar.add_task("Training StyleEmbed", total=steps, loss="-")

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.4f}")

        res = diffusion.train_styleembed(cfg, resume=resume, progress=progress)
    console.print(
        f"wrote {res.out} after {res.step} steps · eval loss {res.eval_before:.4f} -> {res.eval_after:.4f}"
    )


def clip_embed_cmd(
    board: Annotated[Path, typer.Argument(help="Board folder.")],
    image_encoder: Annotated[Path, typer.Option(help="CLIP vision folder (CLIPVisionModelWithProjection).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the embeddings JSON.")],
) -> None:
    """Embed a board's pins with CLIP, for diffusion runs from a taste profile alone."""
    diffusion.require_diffusion()
    b = load_board(board)
    emb = diffusion.PinEmbeddings.from_board(b, diffusion.ClipStyleEncoder(image_encoder))
    emb.save(out)
    console.print(f"wrote {out}: {len(emb.vectors)} pin embedding(s), {emb.dim}-d, encoder {emb.encoder}")


def diffusion_tiny_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for the tiny base, image encoder and adapter.")],
) -> None:
    """Write tiny random models in the real layouts (noise pictures; for trying the path offline)."""
    diffusion.require_diffusion()
    p = diffusion.build_tiny_models(out)
    console.print(f"TASTEMAKER_DIFFUSION_BASE={p.base}")
    console.print(f"TASTEMAKER_DIFFUSION_IMAGE_ENCODER={p.image_encoder}")
    console.print(f"TASTEMAKER_DIFFUSION_STYLEEMBED={p.styleembed}")


def register(app: typer.Typer) -> None:
    """Add the diffusion commands to ``app``."""
    app.command("train-styleembed")(handle_errors(train_styleembed_cmd))
    app.command("clip-embed")(handle_errors(clip_embed_cmd))
    app.command("diffusion-tiny")(handle_errors(diffusion_tiny_cmd))
