"""Taste commands: ``profile`` (build, batch, export, import, history), ``feedback`` and ``forget``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from ..boards import load_board
from ..config import load_settings
from ..encoders.style import describe
from ..errors import ProfileError, RequestError
from ..forget import forget_local, is_server_store, remember
from ..media import check_output_path, ensure_writable_dir, load_image, read_image_bytes, read_text_file, write_atomic
from ..taste.batch import BoardResult, make_jobs, run_local, summary_document, write_result
from ..taste.feedback import apply_feedback, history, mode_from_manifest, save_version
from ..taste.portable import TrustStore, export_document, import_document, profile_key
from ..taste.privacy import Accountant, PrivacyConfig, private_profile
from ..taste.profile import ProfileConfig, TasteProfile, build_profile
from .common import console, err_console, handle_errors, modes_table, progress_bar, warn_skipped


class _ProfileGroup(TyperGroup):
    """``tastemaker profile BOARD -o F`` is short for ``tastemaker profile build BOARD -o F``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["build", *args]
        return super().resolve_command(ctx, args)


profile_app = typer.Typer(
    cls=_ProfileGroup, no_args_is_help=True, help="Build, export, import and inspect taste profiles."
)


def remember_profile(data_dir: Path, path: Path) -> None:
    """Note where a profile file was written, so ``forget`` can find it later."""
    remember(data_dir, [path], kind="profile")


@profile_app.command("build")
@handle_errors
def build(
    board: Annotated[Path, typer.Argument(help="Board folder (images + optional pins.csv / pins.jsonl).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the profile JSON.")],
    max_modes: Annotated[int, typer.Option(min=1, max=8, help="Most style modes to find (1-8).")] = 4,
) -> None:
    """Learn a taste profile from a board."""
    settings = load_settings()
    check_output_path(out)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    b = load_board(board, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
    warn_skipped(b)
    prof = build_profile(b, ProfileConfig(max_modes=max_modes))
    prof.save(out)
    remember_profile(settings.data_dir, out)
    console.print(modes_table(prof))
    flagged = [p for p in prof.pins if p.flags]
    for p in flagged:
        console.print(f"[yellow]down-weighted[/] {p.image}: {'; '.join(p.flags)}", highlight=False)
    console.print(f"wrote {out} ({len(prof.pins)} pins, {len(prof.modes)} mode(s), weights: {prof.weighting['kind']})")


@profile_app.command("batch")
@handle_errors
def batch(
    boards_dir: Annotated[Path, typer.Argument(help="A folder holding one board folder per board.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for <board>.json profiles and batch.json.")],
    ray_address: Annotated[
        str | None, typer.Option("--ray", metavar="ADDRESS", help="Run on the Ray cluster at ADDRESS (host:port).")
    ] = None,
    max_modes: Annotated[int, typer.Option(min=1, max=8, help="Most style modes to find (1-8).")] = 4,
    workers: Annotated[
        int | None, typer.Option(min=1, max=256, help="Local processes (without --ray); default: CPU count.")
    ] = None,
) -> None:
    """Build a profile for every board folder in BOARDS_DIR, here or on a Ray cluster (--ray).

    Writes OUT_DIR/<board>.json per board and OUT_DIR/batch.json (pins, modes and content hash of each board,
    or its error). A failed board does not stop the others; the exit code is 1 if any failed.
    """
    settings = load_settings()
    ensure_writable_dir(out_dir)
    jobs = make_jobs(boards_dir, max_modes=max_modes, max_pixels=settings.max_image_pixels,
                     max_bytes=settings.max_image_bytes)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with progress_bar(settings, *columns) as progress:
        task = progress.add_task("Building profiles", total=len(jobs))

        def on_done(res: BoardResult) -> None:
            write_result(out_dir, res)  # as each finishes: an interrupted batch keeps what it built
            progress.advance(task)

        if ray_address is not None:
            from ..taste.batch_ray import run_ray  # only here: without --ray nothing imports Ray

            results = run_ray(jobs, ray_address, on_done=on_done)
        else:
            results = run_local(jobs, workers=workers or os.cpu_count() or 1, on_done=on_done)
    doc = summary_document(results, runner="ray" if ray_address is not None else "local")
    write_atomic(out_dir / "batch.json", (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    remember(settings.data_dir, [out_dir / f"{r.name}.json" for r in results if r.ok], kind="profile")
    for res in sorted(results, key=lambda r: r.name):
        if not res.ok:
            err_console.print(f"[red]failed[/] {res.name}: {res.error}", highlight=False, soft_wrap=True)
    console.print(f"wrote {doc['n_ok']} profile(s) of {doc['n_boards']} board(s) to {out_dir} "
                  f"(summary: {out_dir / 'batch.json'})", highlight=False)
    if doc["n_failed"]:
        raise typer.Exit(1)


@profile_app.command("export")
@handle_errors
def export(
    profile: Annotated[Path, typer.Argument(help="Your profile JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the portable export.")],
    private: Annotated[bool, typer.Option("--private", help="Release a differentially private version.")] = False,
    epsilon: Annotated[float | None, typer.Option(help="Epsilon of this private release (default 1).")] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="Do not sign the export.")] = False,
) -> None:
    """Export a profile (signed; optionally differentially private) to move it elsewhere."""
    if epsilon is not None and not epsilon > 0:
        raise RequestError(f"--epsilon: must be a number above 0 (smaller is more private), got {epsilon}")
    settings = load_settings()
    check_output_path(out)
    prof = TasteProfile.load(profile)
    if private:
        if not prof.pins or not all(p.vector for p in prof.pins):
            raise ProfileError(f"{profile.name} has no per-pin data to release privately; rebuild it from the board")
        cfg = PrivacyConfig(
            epsilon=epsilon if epsilon is not None else settings.privacy_epsilon,
            budget_epsilon=settings.privacy_daily_epsilon,
            lifetime_epsilon=settings.privacy_lifetime_epsilon,
            modes=prof.config.max_modes,
        )
        acc = Accountant(settings.data_dir, prof.id or prof.content_hash()[:32], cfg)
        prof = private_profile(
            prof, np.array([p.vector for p in prof.pins]), np.array([p.engagement for p in prof.pins]),
            accountant=acc, cfg=cfg, purpose="export",
        )
        _, spent = acc.spent()
        console.print(f"private release: epsilon {cfg.epsilon:g} (delta {cfg.delta:g}); spent today "
                      f"{spent:.2f} of {cfg.budget_epsilon:g}")
    doc = export_document(prof, None if unsigned else profile_key(settings.data_dir))
    write_atomic(out, (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode())
    remember_profile(settings.data_dir, out)
    signer = doc.get("signature", {}).get("key_id", "unsigned")
    console.print(f"wrote {out}: {len(prof.modes)} mode(s), signed by key {signer}")


@profile_app.command("import")
@handle_errors
def import_(
    export_file: Annotated[Path, typer.Argument(help="A taste export (from `tastemaker profile export`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the imported profile.")],
    allow_unsigned: Annotated[bool, typer.Option("--allow-unsigned", help="Accept an unsigned export.")] = False,
    trust: Annotated[
        list[str] | None,
        typer.Option("--trust", help="Trust this signer (key id or public key) from now on; repeatable."),
    ] = None,
) -> None:
    """Import a portable profile; refuses tampered files, unknown signers and incompatible encoders.

    Trusted: this installation's own key, signers trusted before (the first one on first use), and those
    named with --trust.
    """
    settings = load_settings()
    check_output_path(out)
    text = read_text_file(export_file, what="taste export", error=ProfileError)
    store = TrustStore(settings.data_dir)
    before = store.signers()
    prof, signer = import_document(
        text, allow_unsigned=allow_unsigned, name=export_file.name, trust_store=store, trust=trust or []
    )
    prof.save(out)
    remember_profile(settings.data_dir, out)
    console.print(modes_table(prof))
    if signer is None:
        how = "(unsigned)"
    elif signer in before or signer == store.own_key_id():
        how = f"(signature valid, key {signer}, trusted)"
    elif signer in (trust or []):
        how = f"(signature valid, key {signer}, trusted from now on: --trust)"
    else:
        how = f"(signature valid, key {signer}, trusted on first use: later imports must be signed by it or --trust)"
    console.print(f"imported to {out} {how}", highlight=False, soft_wrap=True)


@profile_app.command("history")
@handle_errors
def history_cmd(profile: Annotated[Path, typer.Argument(help="Your profile JSON.")]) -> None:
    """How the profile changed with feedback: one row per version."""
    settings = load_settings()
    prof = TasteProfile.load(profile)
    table = Table(title=f"History of {profile.name}")
    table.add_column("version")
    table.add_column("last reaction")
    for m in prof.modes:
        table.add_column(f"{m.id} weight")
    for v in history(settings.data_dir, prof):
        last = v.feedback[-1] if v.feedback else None
        what = f"{last['action']} ({last['mode']}) {last['time'][:19]}" if last else "built from board"
        weights = {m.id: m.weight for m in v.modes}
        table.add_row(str(v.version), what, *[f"{weights.get(m.id, 0):.3f}" for m in prof.modes])
    console.print(table)


def feedback(
    profile: Annotated[Path, typer.Option("--profile", "-p", help="Your profile JSON (updated in place).")],
    image: Annotated[Path, typer.Option("--image", "-i", help="The generated image you reacted to.")],
    action: Annotated[str, typer.Option(help="save, like, skip or hide.")],
    dwell_seconds: Annotated[float, typer.Option(min=0, help="How long you looked at it, in seconds.")] = 0.0,
    mode: Annotated[str | None, typer.Option(help="Mode it was drawn in (default: from manifest.json).")] = None,
) -> None:
    """Tell your profile how you reacted to an image; it moves toward (or away from) that look."""
    settings = load_settings()
    prof = TasteProfile.load(profile)
    data = read_image_bytes(image, max_bytes=settings.max_image_bytes)
    desc = describe(load_image(image, max_pixels=settings.max_image_pixels))
    chosen = mode or mode_from_manifest(image)
    updated = apply_feedback(prof, image=desc, action=action, mode=chosen, dwell_seconds=dwell_seconds,
                             image_sha256=hashlib.sha256(data).hexdigest())
    save_version(settings.data_dir, prof)
    updated.save(profile)
    remember_profile(settings.data_dir, profile)  # rewritten by us: forget may remove it (its hash is new)
    before = {m.id: m.weight for m in prof.modes}
    console.print(f"{action} on {image.name} (mode {updated.feedback[-1]['mode']}); profile v{updated.version}:")
    for m in updated.modes:
        console.print(f"  {m.id} {m.name}: weight {before[m.id]:.3f} -> {m.weight:.3f}")


def forget(
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Remove every trace of you this CLI left: identity files, outputs and contact sheets, profiles, exports,
    history, keys. Refuses a server's data folder (accounts there are deleted with DELETE /v1/me)."""
    settings = load_settings()
    if not yes and not is_server_store(settings.data_dir) and not typer.confirm(
        f"Delete the identity files, outputs, contact sheets and profiles Tastemaker made for you, and your data "
        f"under {settings.data_dir}?"
    ):
        raise typer.Exit(1)
    report = forget_local(settings.data_dir)
    for item in report.removed:
        console.print(f"removed {item}", highlight=False, soft_wrap=True)
    for item, why in report.kept:
        console.print(f"[yellow]kept[/] {item}: {why}", highlight=False, soft_wrap=True)
    console.print(
        f"done: {len(report.removed)} item(s) removed, {len(report.kept)} kept; kept the hash-only provenance log"
    )


def register(app: typer.Typer) -> None:
    """Add the taste commands to the main app."""
    app.add_typer(profile_app, name="profile")
    app.command("feedback")(handle_errors(feedback))
    app.command("forget")(handle_errors(forget))
