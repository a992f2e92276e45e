"""The flow as one object: selfie(s) + board or profile + request -> images with their measurements.

A :class:`Pipeline` holds what is per deployment (the engine, the identity guard's threshold and workers,
the identity and text encoders, how profiles are built, the provenance store) and is built once, usually
with :meth:`Pipeline.from_settings`. Calling it runs one request through short steps:

1. **subject**: decode and encode the selfie(s), or take the subject or identity given;
2. **board**: build the profile when given a board, and let the engine load what it draws from;
3. **plan** and **render**: read the prompt, ask the engine for a plan, render every variation;
4. **guard** (:mod:`.guard`, :mod:`.holding`): mark every output and measure the marked picture's face;
   re-render the variations that drift with a stronger hold on the face, and draw afresh (another crop,
   exemplar, scene) those that fail even fully held. An output that still drifts is an error, never a
   silent return;
5. **stamp**: every output gets its provenance (``provenance/service.py``): a record, the invisible
   watermark carrying its id, a signed C2PA manifest and an entry in the transparency log. This is not
   optional and fails closed: if any step fails, the call raises and returns no image at all;
6. **result** (:mod:`.output`): each output is scored against the profile with the style encoder.

``generate(request, **kw)`` is the one-line convenience: a pipeline for ``kw``'s options, called once.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..boards import Board
from ..config import Settings
from ..encoders.identity import IdentityEmbedding, IdentityEncoder, embed_pool
from ..encoders.style import describe
from ..encoders.text import get_text_encoder, register_text_encoder
from ..engines import Engine, get_engine, register_engine
from ..engines.base import BoardAssets, GenerationRequest, IdentitySubject, Rendered, Subject, VariationPlan
from ..errors import NoFaceError, RequestError
from ..media import load_image
from ..plugins import Plugins
from ..prompt import parse_prompt
from ..provenance.batch import prepare_many
from ..provenance.service import Provenance, Stamped
from ..taste.profile import ProfileConfig, TasteProfile, build_profile
from ..taste.weights import WeightConfig
from .checks import OutputChecks
from .guard import HOLD_LEVELS, IdentityGuard
from .holding import Batch, GuardLoop
from .output import GeneratedImage, GenerationResult

Progress = Callable[[str, int, int], None]

_DEFAULT_PROVENANCE: dict[tuple[str, str | None], Provenance] = {}
_PROVENANCE_LOCK = threading.Lock()


def provenance_for(data_dir: Path | str, secret: str | None = None, *, settings: Settings | None = None) -> Provenance:
    """The provenance store under ``data_dir``, opened once per process (certificates from ``settings``).

    ``secret`` (a deployment's secret key) derives the store's keys, watermark key included; without it the
    store keeps its own random key file (the CLI's local store). A store is always opened with the secret it
    was made with: another one is refused (:class:`LedgerError`), so marks never silently stop resolving.
    """
    key = (str(Path(data_dir).resolve()), secret)
    # one opening at a time: two threads opening a fresh store each made a C2PA signing identity, and the images
    # signed by the one that lost then verified as untrusted
    with _PROVENANCE_LOCK:
        prov = _DEFAULT_PROVENANCE.get(key)
        if prov is None:
            s = settings or Settings()
            prov = Provenance(data_dir, chain_pem=s.c2pa_chain_pem, key_pem=s.c2pa_key_pem,
                              anchor_pem=s.c2pa_anchor_pem, secret=secret)
            _DEFAULT_PROVENANCE[key] = prov
    return prov


def default_provenance(settings: Settings | None = None) -> Provenance:
    """The provenance store in the configured data dir (``TASTEMAKER_DATA_DIR``)."""
    s = settings or Settings()
    return provenance_for(s.data_dir, settings=s)


def _as_image(item: np.ndarray | str | Path, max_pixels: int) -> tuple[np.ndarray, str]:
    if isinstance(item, np.ndarray):
        return item, "selfie"
    p = Path(item)
    return load_image(p, max_pixels=max_pixels), p.name


def prepare_subject(
    selfies: Sequence[np.ndarray | str | Path],
    *,
    encoder: IdentityEncoder | None = None,
    identity: IdentityEmbedding | None = None,
    face_index: int | None = None,
    max_pixels: int = 40_000_000,
) -> Subject:
    """Decode the selfies, find the face in each, and combine them into one identity.

    The first selfie is the one the look engine re-draws; the others only sharpen the identity.
    """
    if not selfies:
        raise NoFaceError("no selfie given; pass at least one photo of your face")
    enc = encoder or IdentityEncoder()
    decoded = [_as_image(s, max_pixels) for s in selfies]
    combined, faces = enc.encode([d[0] for d in decoded], names=[d[1] for d in decoded], face_index=face_index)
    return Subject(image=decoded[0][0], face=faces[0], identity=identity or combined, name=decoded[0][1])


@dataclass
class _Run:
    """One call once its inputs are resolved: what the steps after planning share, and their timings."""

    request: GenerationRequest
    person: Subject
    profile: TasteProfile
    assets: BoardAssets | None
    report: Progress
    timings: dict[str, float] = field(default_factory=dict)

    @functools.cached_property
    def profile_hash(self) -> str:
        return self.profile.content_hash()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall-clock time to ``timings[stage]``."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t


class Pipeline:
    """Selfie(s) + board or profile + request -> :class:`GenerationResult`, with the identity guard and provenance.

    Built once per deployment; :meth:`__call__` takes what changes per request. ``provenance`` is the store
    every output is stamped into; without one, the configured data dir's store is opened on first use.
    """

    def __init__(
        self,
        engine: str | Engine = "look",
        *,
        identity_threshold: float = 0.35,
        guard_workers: int = 0,
        encoder: IdentityEncoder | None = None,
        text_encoder: Any = None,
        profile_config: ProfileConfig | None = None,
        provenance: Provenance | None = None,
        settings: Settings | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        # plugins: all installed unless given (Plugins.none() for a clean run); they may add engines and encoders
        self.plugins = plugins if plugins is not None else Plugins.load()
        self.plugins.register_engines(register_engine)
        self.plugins.register_encoders(register_text_encoder)
        self.engine = get_engine(engine) if isinstance(engine, str) else engine
        self.identity_threshold = identity_threshold
        self.guard_workers = guard_workers
        self.encoder = encoder or IdentityEncoder()
        self.text_encoder = get_text_encoder(text_encoder) if isinstance(text_encoder, str) else text_encoder
        self.profile_config = profile_config
        self._provenance = provenance
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Pipeline:
        """The pipeline ``settings`` describe (engine, guard, face size, profile building, provenance store);
        ``overrides`` (any :meth:`__init__` keyword, e.g. a command line's ``engine``) win."""
        options: dict[str, Any] = dict(
            engine=settings.engine,
            identity_threshold=settings.identity_threshold,
            guard_workers=settings.guard_workers,
            encoder=IdentityEncoder(min_face_px=settings.min_face_px),
            profile_config=ProfileConfig(max_modes=settings.max_modes,
                                         weights=WeightConfig(half_life_days=settings.recency_half_life_days)),
            settings=settings,
            plugins=Plugins.load(settings.plugins, on_error=settings.plugin_errors),
        )
        return cls(**{**options, **overrides})

    @property
    def provenance(self) -> Provenance:
        """The store outputs are stamped into: the one given, else the configured data dir's."""
        return self._provenance or default_provenance(self._settings)

    def __call__(
        self,
        request: GenerationRequest,
        *,
        selfies: Sequence[np.ndarray | str | Path] | None = None,
        subject: Subject | IdentitySubject | None = None,
        identity: IdentityEmbedding | None = None,
        face_index: int | None = None,
        board: Board | None = None,
        profile: TasteProfile | None = None,
        assets: BoardAssets | None = None,
        account: str = "local",
        include_prompt: bool = False,
        progress: Progress | None = None,
        log: bool = True,
    ) -> GenerationResult:
        """Make ``request.n`` images of the person in the board's (or profile's) aesthetic.

        With ``identity`` and no selfies (or an :class:`IdentitySubject`), the person is known only by an
        embedding made on their device; engines that can draw from it alone (``accepts_identity_only``) do,
        others refuse. With a board the engine's ``prepare_board`` loads what it draws from (the look engine:
        the modes' medoid pins, for medium transfer and scenes; the diffusion engine embeds pins with CLIP).
        With a profile alone there are no pins, unless the caller passes ``assets`` it loaded (the server
        does, from its stored board); an engine that needed them falls back and says so in each image's record.

        ``log=False`` stops short of the provenance log: every output is marked and signed, but its record is
        left in ``result.unlogged`` for the caller to log (a queue worker stages the outputs first, so a worker
        that takes the job over after a crash logs the same records, never new ones). Nothing unlogged may be
        released.
        """
        if (board is None) == (profile is None):
            raise RequestError("give exactly one of a board or a taste profile")
        if request.seed is None:
            request = request.with_seed(secrets.randbelow(2**31))
        report = progress or _silent
        timings: dict[str, float] = {}
        embed_pool(self.guard_workers)  # with dlib's runner, start its worker processes early (models load meanwhile)

        t = time.perf_counter()
        subject = self._subject(selfies, subject, identity, face_index, report)
        timings["identity"] = time.perf_counter() - t
        t = time.perf_counter()
        profile = self._profile(board, profile, report)
        profile = self.plugins.chain("adjust_profile", "profile", profile, board=board)
        request = self.plugins.chain("adjust_request", "request", request, profile=profile)
        timings["profile"] = time.perf_counter() - t
        if board is not None:
            t = time.perf_counter()
            assets = self.engine.prepare_board(board, profile)
            timings["board"] = time.perf_counter() - t

        # an IdentitySubject only reaches engines that accept one (checked in _subject)
        run = _Run(request, cast(Subject, subject), profile, assets, report, timings)
        plans = self._plan(run)
        guard = IdentityGuard.for_subject(self.encoder, subject, self.identity_threshold, workers=self.guard_workers)
        batch = self._render(run, plans)
        stamped = self._guard_and_stamp(run, batch, guard, account=account, include_prompt=include_prompt, log=log)
        result = self._result(run, subject, batch, stamped, guard.threshold, board)
        if not log:
            result.unlogged = [p for p in batch.prepared if p is not None]
            batch.discard(self.provenance)  # their ids are the caller's now (reserved only in this process)
        return result

    # ------------------------------------------------------------------------------------------ steps
    def _subject(
        self,
        selfies: Sequence[np.ndarray | str | Path] | None,
        subject: Subject | IdentitySubject | None,
        identity: IdentityEmbedding | None,
        face_index: int | None,
        report: Progress,
    ) -> Subject | IdentitySubject:
        """The person: the subject given, an identity alone, or the selfies decoded and encoded."""
        if subject is None and not selfies and identity is not None:
            subject = IdentitySubject(identity=identity)
        if isinstance(subject, IdentitySubject) and not getattr(self.engine, "accepts_identity_only", False):
            raise NoFaceError(
                f"the {self.engine.name} engine redraws a selfie; give a selfie photo, not only an identity file"
            )
        if subject is None:
            report("identity", 0, 1)
            subject = prepare_subject(selfies or [], encoder=self.encoder, identity=identity, face_index=face_index)
            report("identity", 1, 1)
        return subject

    def _profile(self, board: Board | None, profile: TasteProfile | None, report: Progress) -> TasteProfile:
        """The profile given, or the board's, built now."""
        if profile is not None:
            return profile
        assert board is not None
        report("profile", 0, 1)
        built = build_profile(board, self.profile_config)
        report("profile", 1, 1)
        return built

    def _plan(self, run: _Run, *, seed: int | None = None) -> list[VariationPlan]:
        """Read the prompt against the profile's modes and let the engine plan the variations (for another
        request seed when ``seed`` is given: a redraw)."""
        modes = [(m.id, m.text, m.weight) for m in run.profile.modes]
        intent = parse_prompt(run.request.prompt, modes, self.text_encoder)
        request = run.request if seed is None else run.request.with_seed(seed)
        return self.engine.plan(request, run.person, run.profile, intent, assets=run.assets)

    def _render(self, run: _Run, plans: Sequence[VariationPlan]) -> Batch:
        """Render every variation with no hold on the face."""
        run.report("render", 0, len(plans))
        return Batch(self._draw(run, list(plans), [HOLD_LEVELS[0]] * len(plans)))

    def _draw(self, run: _Run, plans: list[VariationPlan], hold: list[float]) -> list[Rendered]:
        """Render ``plans`` at their face holds (the guard loop's re-renders come through here too)."""
        with run.timed("render"):
            return self.engine.render(plans, run.person, run.profile, run.request, hold=hold, assets=run.assets)

    def _guard_and_stamp(
        self, run: _Run, batch: Batch, guard: IdentityGuard, *, account: str, include_prompt: bool, log: bool = True
    ) -> list[Stamped]:
        """Mark every output and guard the marked pictures (:class:`~.holding.GuardLoop`: hold, redraw, refuse),
        then log them all; on any failure, nothing prepared is kept and nothing more is logged."""
        prov = self.provenance
        meta: dict[str, Any] = dict(
            fmt=run.request.format, prompt=run.request.prompt, profile_hash=run.profile_hash,
            engine=self.engine.name, engine_version=self.engine.version, seed=run.request.seed, account=account,
            include_prompt=include_prompt,
        )
        loop = GuardLoop(
            guard, prov, meta, timed=run.timed, draw=functools.partial(self._draw, run),
            replan=lambda seed: self._plan(run, seed=seed), seed=run.request.seed or 0,
            configured_threshold=self.identity_threshold,
        )
        try:
            loop.run(batch)
            OutputChecks(self.plugins, run.person, run.profile, run.request).run(loop, batch)
            run.report("render", len(batch.rendered), len(batch.rendered))
            return self._stamp(run, batch, prov, meta, log=log)
        except BaseException:
            batch.discard(prov)
            raise

    def _stamp(
        self, run: _Run, batch: Batch, prov: Provenance, meta: dict[str, Any], *, log: bool = True
    ) -> list[Stamped]:
        """Prepare what the guard's re-renders left unprepared, then log every output (the point of no return;
        with ``log=False`` the caller logs them, see :meth:`__call__`)."""
        n = len(batch.rendered)
        with run.timed("provenance"):
            missing = [k for k, pr in enumerate(batch.prepared) if pr is None]
            fresh = prepare_many(prov, [batch.rendered[k].pixels for k in missing], **meta)
            for k, new in zip(missing, fresh, strict=True):
                batch.prepared[k] = new
            if not log:
                return [Stamped(data=pr.data, pixels=pr.pixels, record=pr.record, log_index=-1)
                        for pr in batch.prepared if pr is not None]
            run.report("provenance", 0, n)
            stamped = [prov.commit(pr) for pr in batch.prepared if pr is not None]
            run.report("provenance", len(stamped), n)
        return stamped

    def _result(
        self,
        run: _Run,
        subject: Subject | IdentitySubject,
        batch: Batch,
        stamped: Sequence[Stamped],
        threshold: float,
        board: Board | None,
    ) -> GenerationResult:
        """Every output with what was measured of it, each scored against the profile."""
        profile = run.profile
        with run.timed("score"):
            images = [_image(r, dist, st, profile)
                      for r, dist, st in zip(batch.rendered, batch.distances, stamped, strict=True)]
            selfie_score = _selfie_score(subject, profile, run.profile_hash)
        return GenerationResult(
            images=images,
            request=run.request,
            profile=profile,
            identity=subject.identity,
            engine=self.engine.name,
            engine_version=self.engine.version,
            selfie=subject.image,
            face=subject.face,
            selfie_style_score=selfie_score,
            guard_threshold=threshold,
            board=board,
            timings=run.timings,
            assets_source=run.assets.source if run.assets is not None else None,
        )


def _silent(stage: str, done: int, total: int) -> None:
    """The progress callback of a call that asked for none."""


def _image(r: Rendered, dist: float, st: Stamped, profile: TasteProfile) -> GeneratedImage:
    mode = profile.mode(r.plan.mode_id)
    return GeneratedImage(
        pixels=st.pixels,
        index=r.plan.index,
        seed=r.plan.seed,
        mode_id=mode.id,
        mode_name=mode.name,
        background=r.plan.background,
        framing=r.plan.framing,
        strength=r.plan.strength,
        hold=r.hold,
        identity_distance=dist,
        style_score=profile.style_score(describe(st.pixels, palette=False)),
        data=st.data,
        record_id=st.record.id_hex,
        log_index=st.log_index,
        timings=r.timings,
        info=r.info,
        render=r.pixels,
    )


def _selfie_score(subject: Subject | IdentitySubject, profile: TasteProfile, profile_hash: str) -> float:
    """The selfie's own style score against the profile (NaN with no selfie pixels); described once per subject."""
    if subject.image is None:
        return float("nan")
    key = f"selfie_score:{profile_hash}"
    if key not in subject.cache:
        subject.cache[key] = profile.style_score(describe(subject.image, palette=False))
    return float(subject.cache[key])


def generate(request: GenerationRequest, **kw: Any) -> GenerationResult:
    """One request through a :class:`Pipeline` made for it: ``kw`` holds both the pipeline's options (``engine``,
    ``identity_threshold``, ``guard_workers``, ``encoder``, ``text_encoder``, ``profile_config``, ``provenance``)
    and the call's (``selfies``, ``subject``, ``board``, ``profile``, ``assets``, ``identity``...)."""
    return Pipeline(**{k: kw.pop(k) for k in PIPELINE_OPTIONS if k in kw})(request, **kw)


#: The keywords of :func:`generate` that configure the pipeline rather than the call.
PIPELINE_OPTIONS = ("engine", "identity_threshold", "guard_workers", "encoder", "text_encoder", "profile_config",
                    "provenance", "settings", "plugins")
