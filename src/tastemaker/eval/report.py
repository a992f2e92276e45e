"""The evaluation's outputs: ``results.json`` (every number) and a self-contained ``report.html``.

The HTML holds everything inline (CSS, and plots and contact sheets as base64 PNG), so it can be
mailed or attached to an issue as one file:

* a summary table, engine vs every baseline (means with 95 % intervals);
* identity vs style scatter (each output: distance to the selfie against the style score, with
  dlib's 0.6 same-person line), per-board bars (Gram and texture attribution against chance, style score),
  and a latency breakdown per method (decode, identity, profile, engine, encode);
* a contact sheet per selfie x board (JPEG): the selfie, the board's heaviest pins, then one row per method;
* every skipped input and every failed request, with its reason.

Plots use matplotlib's object API on an Agg canvas (no pyplot, so the caller's backend is left
alone). matplotlib is the ``[eval]`` extra; without it :func:`write_report` raises
:class:`~tastemaker.errors.MissingDependencyError` — call :func:`check_report_dependencies` first
to fail before a long run.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import MissingDependencyError
from ..media import encode_image, ensure_writable_dir, write_atomic
from ..pipeline.output import fit_tile, label_font
from .results import EvalRun

COLORS = ["#d1495b", "#2e4057", "#66a182", "#edae49", "#00798c", "#8d6a9f", "#a0a0a0", "#5c4d7d"]
TILE = 150


def check_report_dependencies() -> None:
    """Raise :class:`MissingDependencyError` now if the HTML report cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("the evaluation report's plots", "eval", "matplotlib") from exc


# ------------------------------------------------------------------------------------------ table
def _fmt_mean(m: dict[str, Any] | None, digits: int = 3) -> str:
    if not m or m.get("mean") is None:
        return "–"
    ci = m.get("ci95")
    s = f"{m['mean']:.{digits}f}"
    return s + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _fmt_rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    ci = r.get("ci95")
    s = f"{100 * r['rate']:.0f} % ({r['k']}/{r['n']})"
    return s + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}]" if ci else "")


def summary_table(results: dict[str, Any], *, intervals: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the engine-vs-baselines table, from ``results.json`` data."""
    summ = results["summary"]
    chance = results["dataset"]["chance_attribution"]
    has_others = any(s["identity_to_others"]["n"] for s in summ.values())
    has_clip = "clip" in results.get("models", {})
    has_arc = "arcface" in results.get("models", {})

    def mean(m: dict[str, Any], digits: int = 3) -> str:
        return _fmt_mean(m, digits) if intervals else ("–" if m["mean"] is None else f"{m['mean']:.{digits}f}")

    def rate(r: dict[str, Any]) -> str:
        if intervals:
            return _fmt_rate(r)
        return "–" if r["rate"] is None else f"{100 * r['rate']:.0f} % ({r['k']}/{r['n']})"

    head = ["method", "images (failed req.)", "identity → selfie ↓", "verified @0.6 ↑"]
    if has_others:
        head += ["identity → other photos ↓", "verified others ↑"]
    head += ["style score ↑", f"attribution ↑ (chance {100 * chance:.0f} %)", "texture attribution ↑",
             "colour faithful ↑", "artefacts ↓ (mirrored, blocky)", "diversity ΔE", "near-dup pairs", "latency ms"]
    if has_clip:
        head += ["CLIP image sim.", "CLIP text sim.", "CLIP attribution"]
    if has_arc:
        head += ["ArcFace cos → selfie"]
    rows = []
    for name, s in summ.items():
        label = f"{name} ({s['kind']})" if s["kind"] == "engine" else name
        row = [label, f"{s['n_images']} ({s['n_failed_requests']})", mean(s["identity_to_selfie"]),
               rate(s["verification_rate"])]
        if has_others:
            row += [mean(s["identity_to_others"]), rate(s["verification_rate_others"])]
        lat = s["latency_ms"]["total"]["mean"]
        row += [mean(s["style_score"]), rate(s["attribution_accuracy"]), rate(s["texture_attribution_accuracy"]),
                rate(s["monochrome_faithful_rate"]), f"{s['n_artefacts']} ({s['n_mirrored']}, {s['n_blocky']})",
                mean(s["diversity_delta_e"], 1),
                f"{s['near_duplicate_pairs']}/{s['variation_pairs']}", "–" if lat is None else f"{lat:.0f}"]
        if has_clip:
            row += [mean(s["clip_image_similarity"]), mean(s["clip_text_similarity"]),
                    rate(s["clip_attribution_accuracy"])]
        if has_arc:
            row += [mean(s["arcface_cos_selfie"])]
        if s["n_no_face"]:
            row[2] += f" · {s['n_no_face']} without a face"
        rows.append(row)
    return head, rows


def markdown_table(results: dict[str, Any], *, intervals: bool = False) -> str:
    """The summary as a GitHub-flavoured markdown table (for notes and issues)."""
    head, rows = summary_table(results, intervals=intervals)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ plots
def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def plot_identity_vs_style(results: dict[str, Any]) -> str:
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()
    found = [r["identity_to_selfie"] for r in results["images"] if r["identity_to_selfie"] is not None]
    nofx = max([0.7, *found]) + 0.08
    for k, name in enumerate(results["summary"]):
        rs = [r for r in results["images"] if r["method"] == name]
        xs = [r["identity_to_selfie"] if r["identity_to_selfie"] is not None else nofx for r in rs]
        ys = [r["style_score"] for r in rs]
        marker = "o" if results["summary"][name]["kind"] == "engine" else "s"
        ax.scatter(xs, ys, s=28, alpha=0.8, c=COLORS[k % len(COLORS)], marker=marker, label=name, edgecolors="none")
    ax.axvline(results["config"]["verify_threshold"], color="#444", ls="--", lw=1)
    ax.text(results["config"]["verify_threshold"], ax.get_ylim()[1], " same person < 0.6", va="top", fontsize=8)
    if any(r["identity_to_selfie"] is None for r in results["images"]):
        ax.axvline(nofx, color="#bbb", lw=6, alpha=0.3)
        ax.text(nofx, ax.get_ylim()[0], "no face", rotation=90, va="bottom", ha="right", fontsize=8)
    ax.set_xlabel("identity distance to the selfie (dlib, lower = more the same person)")
    ax.set_ylabel("style score to the board (higher = closer)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.25)
    return _png(fig)


def plot_per_board(results: dict[str, Any]) -> str:
    methods = list(results["per_board"])
    boards = [b["name"] for b in results["dataset"]["boards"]]
    fig = _figure(max(11.0, 2.4 * len(boards) * len(methods) / 2.5), 4.2)
    ax1, ax3, ax2 = fig.subplots(1, 3)
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(boards))
    for k, m in enumerate(methods):
        acc = [results["per_board"][m][b]["attribution_accuracy"]["rate"] or 0.0 for b in boards]
        tacc = [results["per_board"][m][b]["texture_attribution_accuracy"]["rate"] or 0.0 for b in boards]
        sty = [results["per_board"][m][b]["style_score"] for b in boards]
        means = [s["mean"] or 0.0 for s in sty]
        err = np.array([[s["mean"] - s["ci95"][0], s["ci95"][1] - s["mean"]] if s["ci95"] else [0, 0]
                        for s in sty]).T
        c = COLORS[k % len(COLORS)]
        ax1.bar(x + k * width, acc, width, label=m, color=c)
        ax3.bar(x + k * width, tacc, width, label=m, color=c)
        ax2.bar(x + k * width, means, width, yerr=err, label=m, color=c, capsize=2)
    for ax in (ax1, ax3):
        ax.axhline(results["dataset"]["chance_attribution"], color="#444", ls="--", lw=1)
        ax.text(x[-1] + 0.8, results["dataset"]["chance_attribution"], "chance", va="bottom", ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
    for ax, title in ((ax1, "board attribution (random-Gram)"), (ax3, "texture attribution (grey marks only)"),
                      (ax2, "style score (95 % CI)")):
        ax.set_xticks(x + width * (len(methods) - 1) / 2, boards, fontsize=7, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.25)
    ax2.set_ylim(0, 1.0)  # the score lives in (0, 1]; a t-interval from 2 requests can reach past it
    ax2.legend(fontsize=7)
    return _png(fig)


def plot_latency(results: dict[str, Any]) -> str:
    stages = ["decode", "identity", "profile", "engine", "encode"]
    methods = list(results["summary"])
    fig = _figure(7.5, 0.5 * len(methods) + 1.4)
    ax = fig.add_subplot()
    left = np.zeros(len(methods))
    for k, st in enumerate(stages):
        vals = np.array([results["summary"][m]["latency_ms"][st]["mean"] or 0.0 for m in methods])
        ax.barh(methods, vals, left=left, color=COLORS[k % len(COLORS)], label=st)
        left += vals
    ax.invert_yaxis()
    ax.set_xlabel("mean latency per request (ms), n variations")
    ax.legend(fontsize=8, ncols=len(stages), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.grid(axis="x", alpha=0.25)
    return _png(fig)


# ---------------------------------------------------------------------------------- contact sheets
def contact_sheet(run: EvalRun, person: str, selfie: str, board: str, images: list[dict[str, Any]]) -> np.ndarray:
    """Selfie + board sample on top, then one row per method with each output's measurements."""
    rows = run.thumbs.get((person, selfie, board), {})
    n = max([len(v) for v in rows.values()] + [1])
    label_w, cap = 120, 56
    W = max(label_w + n * (TILE + 6) + 6, label_w + 2 * TILE + 18)
    H = (TILE + cap + 6) * (len(run.methods) + 1) + 6
    sheet = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = label_font(13), label_font(11)
    y = 6
    draw.text((6, y + 4), "selfie | board", fill="black", font=font)
    sheet.paste(fit_tile(run.selfie_thumbs[(person, selfie)], TILE, TILE), (label_w, y))
    bd = next(b for b in run.boards.boards if b.name == board)
    weights = {p.id: p.weight for p in run.profiles[board].pins}
    order = sorted(range(len(bd.board)), key=lambda i: -weights.get(bd.board.pins[i].id, 0.0))[:9]
    cell = TILE // 3
    mosaic = Image.new("RGB", (TILE, TILE), (245, 244, 240))
    for k, i in enumerate(order):
        mosaic.paste(fit_tile(bd.board.thumbs[i], cell - 2, cell - 2), ((k % 3) * cell, (k // 3) * cell))
    sheet.paste(mosaic, (label_w + TILE + 6, y))
    draw.text((label_w, y + TILE + 2), f"{person}/{selfie}"[:26], fill=(80, 80, 80), font=small)
    draw.text((label_w + TILE + 6, y + TILE + 2), f"board {board}"[:26], fill=(80, 80, 80), font=small)
    y += TILE + cap + 6
    for m in run.method_names:
        draw.text((6, y + 4), m, fill="black", font=font)
        recs = {r["index"]: r for r in images
                if r["method"] == m and r["person"] == person and r["selfie"] == selfie and r["board"] == board}
        outs = rows.get(m)
        if outs is None:
            draw.text((label_w, y + 20), "failed - see the errors table", fill=(180, 30, 30), font=font)
        else:
            for i, img in enumerate(outs):
                x = label_w + i * (TILE + 6)
                sheet.paste(fit_tile(img, TILE, TILE), (x, y))
                r = recs.get(i)
                if r is None:
                    continue
                idt = "no face" if r["identity_to_selfie"] is None else f"id {r['identity_to_selfie']:.2f}"
                ok = r["attribution_correct"]
                att = "gram: own board" if ok else f"gram -> {r['attributed_board']}"[:24]
                tok = r["attribution_texture"]
                tatt = "texture: own board" if tok else f"texture -> {r['texture_attributed_board']}"[:24]
                flags = [f for f, on in (("MIRRORED", r["mirrored"]), ("BLOCKY", r["blocky"]),
                                         ("colour off", not r["monochrome_faithful"]),
                                         ("near-dup", r["near_duplicate"])) if on]
                draw.text((x, y + TILE + 2), f"{idt} | style {r['style_score']:.2f}", fill=(60, 60, 60), font=small)
                draw.text((x, y + TILE + 15), att, fill=(60, 60, 60) if ok else (180, 30, 30), font=small)
                draw.text((x, y + TILE + 28), tatt, fill=(60, 60, 60) if tok else (180, 30, 30), font=small)
                if flags:
                    draw.text((x, y + TILE + 41), " ".join(flags)[:26], fill=(180, 30, 30), font=small)
        y += TILE + cap + 6
    return np.asarray(sheet)


# ------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f0}tr.engine td{font-weight:600;background:#fbfaf5}
img{max-width:100%}.muted{color:#777}.warn{color:#b02020}code{background:#f4f4f0;padding:0 3px}
"""


def _table(head: list[str], rows: list[list[str]], engine_rows: set[int] | None = None) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = []
    for i, r in enumerate(rows):
        cls = ' class="engine"' if engine_rows and i in engine_rows else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return f"<table><tr>{h}</tr>{''.join(body)}</table>"


def render_html(run: EvalRun, results: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    cfg = results["config"]
    art = results["descriptors"]["artefacts"]
    head, rows = summary_table(results)
    engine_rows = {i for i, s in enumerate(results["summary"].values()) if s["kind"] == "engine"}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Tastemaker evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Tastemaker evaluation</h1>",
        f"<p class='muted'>{html.escape(results['created_at'])}"
        f" · tastemaker {html.escape(results['tastemaker_version'])}"
        f" · engine {html.escape(run.engine)} v{html.escape(run.engine_version)} · n={cfg['n']} · size {cfg['size']}"
        f" · aspect {html.escape(cfg['aspect'])} · strength {cfg['strength']} · seed {cfg['seed']}"
        f" · {len(run.selfies.people)} people ({html.escape(run.selfies.layout)}) × {len(run.boards.boards)} boards"
        f" · {results['duration_s']:.1f} s · peak RSS {results['resources']['peak_rss_mb']:.0f} MB</p>",
        "<h2>Summary: engine vs baselines</h2>",
        _table(head, rows, engine_rows),
        "<p class='muted'>Means with 95 % Student-t intervals; rates with 95 % Wilson intervals, over images "
        "(the variations of one request are correlated, so with few requests the intervals are optimistic). "
        "↓ lower is better, ↑ higher is better. Attribution uses a random-filter Gram descriptor the engine "
        "never sees; the style score is the project's own descriptor, which the engine optimises.</p>",
    ]
    if results["errors"]:
        parts.append(f"<p class='warn'>{len(results['errors'])} request(s) failed — see <a href='#errors'>errors</a>."
                     "</p>")
    if results["skipped"]:
        parts.append(f"<p class='warn'>{len(results['skipped'])} input(s) skipped — see <a href='#skipped'>"
                     "skipped inputs</a>.</p>")
    parts += [
        "<h2>Identity vs style</h2>",
        f"<img alt='identity vs style' src='data:image/png;base64,{plot_identity_vs_style(results)}'>",
        "<h2>Per board</h2>",
        f"<img alt='per board' src='data:image/png;base64,{plot_per_board(results)}'>",
    ]
    pb_head = ["method", "board", "images", "verified", "style score", "attribution", "texture attribution",
               "colour faithful", "mirrored", "blocky", "diversity ΔE"]
    pb_rows = [[m, b, str(s["n_images"]), _fmt_rate(s["verification_rate"]), _fmt_mean(s["style_score"]),
                _fmt_rate(s["attribution_accuracy"]), _fmt_rate(s["texture_attribution_accuracy"]),
                _fmt_rate(s["monochrome_faithful_rate"]), str(s["n_mirrored"]), str(s["n_blocky"]),
                _fmt_mean(s["diversity_delta_e"], 1)]
               for m, per in results["per_board"].items() for b, s in per.items()]
    parts.append(_table(pb_head, pb_rows))
    if len(results["per_person"].get(run.engine, {})) > 1 or run.selfies.layout == "per-person":
        pp_head = ["method", "person", "images", "identity → selfie", "identity → others", "verified", "style"]
        pp_rows = [[m, p, str(s["n_images"]), _fmt_mean(s["identity_to_selfie"]), _fmt_mean(s["identity_to_others"]),
                    _fmt_rate(s["verification_rate"]), _fmt_mean(s["style_score"])]
                   for m, per in results["per_person"].items() for p, s in per.items()]
        parts += ["<h2>Per person</h2>", _table(pp_head, pp_rows)]
    parts += [
        "<h2>Latency</h2>",
        f"<img alt='latency' src='data:image/png;base64,{plot_latency(results)}'>",
    ]
    lat_head = ["method", "decode", "identity", "profile", "engine", "encode", "total", "peak RSS MB"]
    lat_rows = []
    for m, s in results["summary"].items():
        lat = s["latency_ms"]
        lat_rows.append([m] + ["–" if lat[k]["mean"] is None else f"{lat[k]['mean']:.0f}"
                               for k in ("decode", "identity", "profile", "engine", "encode", "total")]
                        + ["–" if s["peak_rss_mb"] is None else f"{s['peak_rss_mb']:.0f}"])
    parts.append(_table(lat_head, lat_rows))
    stages = [r["engine_stages_ms"] for r in results["requests"] if r["kind"] == "engine" and r["engine_stages_ms"]]
    if stages:
        keys = sorted({k for s in stages for k in s})
        parts.append("<p class='muted'>engine call split (mean ms): " + ", ".join(
            f"{html.escape(k)} {np.mean([s.get(k, 0.0) for s in stages]):.0f}" for k in keys) + "</p>")
    parts.append("<h2>Contact sheets</h2>")
    for p in run.selfies.people:
        for ph in p.photos[: run.config.selfies_per_person]:
            key = f"{p.name}/{ph.name}"
            for b in run.boards.boards:
                sheet = contact_sheet(run, p.name, ph.name, b.name, results["images"])
                jpg = base64.b64encode(encode_image(sheet, "jpeg", quality=88))  # photos: a fifth of a PNG's size
                parts.append(f"<h3>{html.escape(key)} × {html.escape(b.name)}</h3>"
                             f"<img alt='contact sheet' src='data:image/jpeg;base64,{jpg.decode('ascii')}'>")
    parts.append("<h2 id='errors'>Failed requests</h2>")
    parts.append(_table(["method", "person", "selfie", "board", "error", "message"],
                        [[e["method"], e["person"], e["selfie"], e["board"], e["error"], e["message"]]
                         for e in results["errors"]]) if results["errors"] else "<p class='muted'>none</p>")
    parts.append("<h2 id='skipped'>Skipped inputs</h2>")
    parts.append(_table(["kind", "where", "reason"], [[s["kind"], s["where"], s["reason"]] for s in results["skipped"]])
                 if results["skipped"] else "<p class='muted'>none</p>")
    parts += [
        "<h2>Methods and metrics</h2><ul>",
        *[f"<li><b>{html.escape(m['name'])}</b> ({m['kind']}): {html.escape(m['description'])}</li>"
          for m in results["methods"]],
        "</ul><ul>",
        "<li><b>identity → selfie / other photos</b>: dlib 128-d distance from a full face detection on each "
        "output; the other photos are held out from the engine. Verified: distance &lt; 0.6; "
        "no face = not verified.</li>",
        "<li><b>style score</b>: the project's style similarity to the closest mode of the board's profile.</li>",
        "<li><b>attribution</b>: the output's own board is the nearest of the run's boards by a fixed random-filter "
        "conv net's Gram statistics (mean distance to the 3 nearest pins) — a descriptor the engine never "
        "optimises.</li>",
        "<li><b>texture attribution</b>: the same nearest-board test with a texture-only descriptor on the grey "
        "luminance, normalised (local binary patterns at 3 radii, gradient orientation and coherence, octave "
        "band energies): the board's marks and medium, blind to colour, brightness and contrast.</li>",
        "<li><b>colour faithful</b>: on a black-and-white or toned board (every pin grey or of one hue) the "
        f"output's mean Lab chroma is at most the most colourful pin's + {art['chroma_margin']} "
        f"and its hue spread no wider than the pins' (+ {art['hue_margin_deg']}°), its mean hue within "
        f"{art['hue_mean_tol_deg']}° of theirs; on a colour board its chroma lies within the pins' range ± the "
        "margin.</li>",
        "<li><b>artefacts</b>: <i>mirrored</i> — a border strip is a reflected copy of what lies next to it "
        f"(score &gt; {art['mirror_threshold']}: the ghost a mirrored fill leaves); <i>blocky</i> — a grid of "
        f"block edges inside the face box (magnified JPEG blocks, score &gt; {art['blocky_threshold']}).</li>",
        "<li><b>diversity</b>: mean pairwise ΔE76 of 64 px Lab thumbnails among a request's variations; "
        f"a pair under ΔE {cfg['near_duplicate_delta_e']} is a near-duplicate.</li>",
        "</ul><p class='muted'>Every number is in results.json beside this file.</p></body></html>",
    ]
    return "\n".join(parts)


def write_report(
    run: EvalRun, out_dir: Path | str, *, results: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.html`` into ``out_dir``; returns both paths.

    ``results``: ``run.to_dict()`` when the caller already made it (it also prints from it)."""
    check_report_dependencies()
    out = ensure_writable_dir(out_dir)
    results = run.to_dict() if results is None else results
    page = render_html(run, results)
    rj = write_atomic(out / "results.json", (json.dumps(results, indent=1, ensure_ascii=False) + "\n").encode())
    rh = write_atomic(out / "report.html", page.encode("utf-8"))
    return rj, rh
