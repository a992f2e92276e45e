"""The plugins' say over a request's outputs, after the identity guard and before anything is logged.

For every output, each ``check_output`` plugin judges the released (watermarked) pixels:

* **pass** / **annotate**: what the plugin measured goes into the output's record under ``plugins.<name>``;
  an annotation's reason is also a note the person reads (``plugin_notes``);
* **hold**: the output is held back and rendered again with the face held one step more
  (:data:`~.guard.HOLD_LEVELS`, the guard's own mechanism), marked and guarded again, and checked again —
  until no plugin asks or the face is fully held; what a plugin still objects to then is a note, never hidden;
* **veto**: the request fails with :class:`~tastemaker.errors.OutputVetoedError` naming the plugin and its
  reason; the caller discards every prepared output (nothing is released, nothing silently dropped).

Then ``describe_output`` gives each output its ``alt_text`` (the first plugin with an answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engines.base import GenerationRequest, Subject
from ..errors import OutputVetoedError
from ..plugins import OutputView, Plugins, Verdict
from ..taste.profile import TasteProfile
from .guard import HOLD_LEVELS
from .holding import Batch, GuardLoop


@dataclass
class OutputChecks:
    """One request's context for the checks (see the module docstring)."""

    plugins: Plugins
    subject: Subject | None
    profile: TasteProfile
    request: GenerationRequest

    def view(self, batch: Batch, k: int) -> OutputView:
        """Output ``k`` as plugins see it: its released pixels when prepared, else the render's."""
        r = batch.rendered[k]
        prepared = batch.prepared[k]
        return OutputView(pixels=prepared.pixels if prepared is not None else r.pixels, index=r.plan.index,
                          mode=self.profile.mode(r.plan.mode_id), plan=r.plan, hold=r.hold, face_box=r.face_box,
                          info=dict(r.info))

    def judge(self, view: OutputView, notes: list[str]) -> list[tuple[str, Verdict]]:
        """Every plugin's verdict on one output; a veto raises."""
        verdicts = []
        for name, verdict in self.plugins.calls("check_output", notes, output=view, subject=self.subject,
                                                profile=self.profile, request=self.request):
            if not isinstance(verdict, Verdict):
                verdict = Verdict.annotate(str(verdict))
            if verdict.kind == "veto":
                raise OutputVetoedError(f"variation {view.index} refused by plugin {name!r}: {verdict.reason}")
            verdicts.append((name, verdict))
        return verdicts

    def run(self, loop: GuardLoop, batch: Batch) -> None:
        """Check, hold and re-render, then describe every output of ``batch`` (in place)."""
        notes: list[str] = []
        todo = list(range(len(batch.rendered)))
        held: dict[int, int] = {}
        askers: dict[int, set[str]] = {}
        first: dict[int, list[tuple[str, Verdict]]] = {}
        verdicts: dict[int, list[tuple[str, Verdict]]] = {}
        while todo:
            for k in todo:
                verdicts[k] = self.judge(self.view(batch, k), notes)
                first.setdefault(k, verdicts[k])
            again = [k for k in todo if any(v.kind == "hold" for _, v in verdicts[k])
                     and batch.level[k] + 1 < len(HOLD_LEVELS)]
            if not again:
                break
            for k in again:
                batch.level[k] += 1
                held[k] = held.get(k, 0) + 1
                askers.setdefault(k, set()).update(n for n, v in verdicts[k] if v.kind == "hold")
            batch.discard(loop.provenance, again)
            fresh = loop.draw([batch.rendered[k].plan for k in again], [HOLD_LEVELS[batch.level[k]] for k in again])
            for k, r in zip(again, fresh, strict=True):
                if "redrawn" in batch.rendered[k].info:
                    r.info["redrawn"] = batch.rendered[k].info["redrawn"]
                batch.rendered[k] = r
            loop.mark_and_check(batch, again)
            todo = again
        loop.refuse_drift(batch)  # a held re-render is guarded like any other
        for k, r in enumerate(batch.rendered):
            self.record(r.info, verdicts.get(k, []), held.get(k, 0), askers.get(k, set()), notes,
                        dict(first.get(k, [])))
            texts = self.plugins.calls("describe_output", r.info.setdefault("plugin_notes", []),
                                       output=self.view(batch, k), subject=self.subject, profile=self.profile,
                                       request=self.request)
            text = next((str(t).strip() for _, t in texts if str(t).strip()), None)
            if text:
                r.info["alt_text"] = text
            if not r.info["plugin_notes"]:
                del r.info["plugin_notes"]

    @staticmethod
    def record(info: dict[str, Any], verdicts: list[tuple[str, Verdict]], held: int, askers: set[str],
               notes: list[str], first: dict[str, Verdict]) -> None:
        """Put the verdicts' measurements and reasons into an output's info (manifest, API record)."""
        out: dict[str, Any] = {}
        said: list[str] = list(notes)
        for name, v in verdicts:
            out[name] = {"verdict": v.kind, **({"reason": v.reason} if v.reason else {}), **v.data}
            if v.kind == "annotate":
                said.append(f"{name}: {v.reason}")
            elif v.kind == "hold":  # still objecting with the face fully held
                said.append(f"{name}: {v.reason} (even with the face fully held)")
            if name in askers:  # what it measured of the first render, before the face was held more
                out[name]["held_back"] = held
                out[name]["first"] = {"verdict": first[name].kind, **first[name].data} if name in first else None
        if held:
            info["plugin_held"] = held
        if out:
            info["plugins"] = out
        info["plugin_notes"] = list(dict.fromkeys(said))


__all__ = ["OutputChecks"]
