"""Evaluation: how well does Tastemaker keep the person and take on the board's look, against baselines?

::

    from tastemaker.eval import EvalConfig, run_eval, write_report

    run = run_eval("selfies/", "boards/", EvalConfig(n=4, size=512))
    write_report(run, "eval-report/")        # results.json + report.html

or ``tastemaker eval --selfies DIR --boards DIR -o REPORT_DIR``.

Modules: :mod:`.datasets` (selfie and board folders, skips on record), :mod:`.baselines` (``none``,
``reinhard``, ``histmatch``, ``single-pin``, ``stylize``, ``oilpaint``; same seeds and framing as the
engine), :mod:`.descriptors` (the random-filter Gram descriptor the engine never sees, and why it is not
circular), :mod:`.texture` (a texture-only descriptor: the medium, blind to colour),
:mod:`.artefacts` (colour faithfulness, mirrored fills, magnified JPEG blocks),
:mod:`.metrics` (identity, style, attribution, diversity, intervals, memory),
:mod:`.models` (optional CLIP and ArcFace, loaded lazily from local files), :mod:`.config` (how to run),
:mod:`.runner` (the run), :mod:`.cells` (one selfie x board, in this process or as a Ray task:
:mod:`.ray_runner`), :mod:`.scoring` (measuring each output, and the aggregation), :mod:`.results`
(what a run measured), :mod:`.report` (``results.json`` + ``report.html``). None of it is imported by the
core: ``import tastemaker`` does not load this package.
"""

from .baselines import (
    BUILTIN as BUILTIN_BASELINES,
)
from .baselines import (
    Baseline,
    BaselineContext,
    create_baseline,
    list_baselines,
    register_baseline,
    unregister_baseline,
)
from .config import EvalConfig
from .datasets import BoardSet, Person, SelfieSet, Skip, load_boards, load_selfies
from .descriptors import gram_descriptor
from .report import check_report_dependencies, markdown_table, summary_table, write_report
from .results import EvalRun
from .runner import run_eval
from .scoring import aggregate

__all__ = [
    "BUILTIN_BASELINES",
    "Baseline",
    "BaselineContext",
    "BoardSet",
    "EvalConfig",
    "EvalRun",
    "Person",
    "SelfieSet",
    "Skip",
    "aggregate",
    "check_report_dependencies",
    "create_baseline",
    "gram_descriptor",
    "list_baselines",
    "load_boards",
    "load_selfies",
    "markdown_table",
    "register_baseline",
    "run_eval",
    "summary_table",
    "unregister_baseline",
    "write_report",
]
