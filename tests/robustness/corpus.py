"""Hostile and clumsy input for the command line (issue 12), one plain function per case.

Each case function takes a directory, builds the bad file or folder in it, and returns a :class:`Case`: the
``tastemaker`` arguments to run, what must happen (exit code and a piece of the message), what must not
appear (a traceback above all), and how to run it (in a subprocess, without root's permission override,
interrupted with Ctrl-C when a progress line appears). ``tests/robustness/`` runs these same functions;
``bench/robustness.py`` imports :data:`CASES` and replays them all through :func:`run`::

    from tests.robustness.corpus import CASES, CaseUnavailable, run
    for make in CASES:
        try:
            case = make(tmp_dir / make.__name__)
        except CaseUnavailable as why:
            ...  # e.g. a device node needs root
        outcome = run(case)  # Outcome(exit_code, output, hung, problems, ...)
        outcome.ok, outcome.traceback, outcome.hung, case.tags

Tags: ``special_file`` (an ``-o`` that must not be replaced), ``hang`` (used to block forever),
``signal`` (Ctrl-C), ``unprivileged`` (file permissions; root runs it with ``setpriv`` dropping
CAP_DAC_OVERRIDE), ``slow`` (renders images).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tastemaker

from .live import TASTEMAKER

DEMO = Path(tastemaker.__file__).parent / "data" / "demo"
BOARD = DEMO / "board"
SELFIE = DEMO / "selfie.jpg"
#: What must never be printed, whatever the input.
CRASH_MARKS = ("Traceback (most recent call last)", "Fatal Python error", "panicked at", "Segmentation fault")
#: How to start the CLI in a subprocess (``python -m tastemaker.cli`` would import the module twice).
CLI = tuple(TASTEMAKER)
#: Run a command as root without the permission override, so file modes apply as they would to anyone else.
UNPRIVILEGED = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


class CaseUnavailable(Exception):
    """This machine cannot build the case (e.g. a device node without root)."""


@dataclass
class Case:
    """One hostile input and the outcome it must have."""

    name: str
    #: the issue 12 item it comes from
    item: int
    #: arguments after ``tastemaker``
    argv: list[str]
    exit_code: int
    #: a piece of the output (stdout + stderr) that must be there
    message: str
    #: pieces that must not be there
    absent: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    #: extra environment variables
    env: dict[str, str] = field(default_factory=dict)
    #: commands (argv after ``tastemaker``) run first, each must exit 0
    before: list[list[str]] = field(default_factory=list)
    #: send SIGINT to the process group when this text appears in the output
    interrupt_on: str | None = None
    #: seconds before the run counts as a hang
    timeout_s: float = 60.0
    #: after the run: a list of problems (files replaced, partial files...), empty when all is well
    check: Callable[[], list[str]] | None = None
    cwd: Path | None = None

    @property
    def subprocess_only(self) -> bool:
        """Cases that could hang, need other privileges or a signal: never run inside a test process."""
        return bool(self.tags & {"hang", "unprivileged", "signal"})


@dataclass
class Outcome:
    exit_code: int | None
    output: str
    hung: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def traceback(self) -> bool:
        return any(mark in self.output for mark in CRASH_MARKS)

    def failures(self, case: Case) -> list[str]:
        """Everything about this outcome that the case does not allow (empty: the case passed)."""
        out = list(self.problems)
        if self.hung:
            out.append(f"no exit within {case.timeout_s:.0f} s")
        elif self.exit_code != case.exit_code:
            out.append(f"exit code {self.exit_code}, expected {case.exit_code}")
        flat = " ".join(self.output.split())
        if case.message not in flat:
            out.append(f"message {case.message!r} not in the output")
        for bad in (*CRASH_MARKS, *case.absent):
            if bad in self.output:
                out.append(f"{bad!r} in the output")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems and not self.hung and not self.traceback


# ----------------------------------------------------------------------------------------------- helpers


def _board(d: Path, name: str = "board") -> Path:
    b = d / name
    shutil.copytree(BOARD, b)
    return b


def _csv_rows(board: Path, rows: Sequence[dict[str, str]], header: Sequence[str] = ("image", "pinned_at")) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = board / "pins.csv"
    path.write_text(buf.getvalue())
    return path


def _jsonl(board: Path, lines: Sequence[str]) -> Path:
    (board / "pins.csv").unlink()
    path = board / "pins.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _profile_build(board: Path, out: Path) -> list[str]:
    return ["profile", "build", str(board), "-o", str(out)]


def _generate(d: Path, *extra: str, out: Path | None = None) -> list[str]:
    return ["generate", "-s", str(SELFIE), "-b", str(BOARD), "-o", str(out or d / "out"), *extra]


def strict_json(text: str) -> object:
    """Parse standard JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are errors."""

    def refuse(name: str) -> object:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _unchanged(path: Path, kind: Callable[[int], bool], content: bytes | None = None) -> Callable[[], list[str]]:
    """A check: ``path`` is still what it was (its type, and its content when given), never replaced."""

    def check() -> list[str]:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return [f"{path.name} was removed"]
        if not kind(st.st_mode):
            return [f"{path.name} was replaced by another kind of file"]
        if content is not None and path.resolve().read_bytes() != content:
            return [f"{path.name}'s target was overwritten"]
        return []

    return check


def _clean_output(out: Path) -> Callable[[], list[str]]:
    """A check for an interrupted generate: no temporary files, and a manifest (if any) lists only files that
    exist."""

    def check() -> list[str]:
        if not out.exists():
            return []
        problems = [f"partial file {p.name}" for p in out.iterdir() if p.name.endswith(".tmp")]
        manifest = out / "manifest.json"
        if manifest.exists():
            doc = json.loads(manifest.read_text())
            problems += [f"manifest lists missing {e['file']}" for e in doc["images"] if not (out / e["file"]).exists()]
        return problems

    return check


# ------------------------------------------------------------------------------- 1: dates of pins


def far_future_pin_date(d: Path) -> Case:
    """A pins.csv row dated 3024: refused with the file and line (not a traceback in the profile build)."""
    b = _board(d)
    _csv_rows(b, [{"image": "meadow.jpg", "pinned_at": "2024-05-01T10:00:00Z"},
                  {"image": "cafe-morning.jpg", "pinned_at": "3024-05-02T09:10:00Z"}])
    return Case("far_future_pin_date", 1, _profile_build(b, d / "p.json"), 2,
                "pins.csv, line 3: pinned_at 3024-05-02T09:10:00+00:00 is in the future")


def far_future_pin_date_generate(d: Path) -> Case:
    """The same board given to ``generate``: the same error, before any face work."""
    b = _board(d)
    _csv_rows(b, [{"image": "cafe-morning.jpg", "pinned_at": "3024-05-02T09:10:00Z"}])
    return Case("far_future_pin_date_generate", 1,
                ["generate", "-s", str(SELFIE), "-b", str(b), "-o", str(d / "out")], 2,
                "pins.csv, line 2: pinned_at 3024-05-02T09:10:00+00:00 is in the future")


def pin_date_out_of_range(d: Path) -> Case:
    """Year 1 with a +05:00 offset cannot be expressed in UTC (an OverflowError before)."""
    b = _board(d)
    _csv_rows(b, [{"image": "meadow.jpg", "pinned_at": "0001-01-01T00:00:00+05:00"}])
    return Case("pin_date_out_of_range", 1, _profile_build(b, d / "p.json"), 2,
                "pins.csv, line 2: pinned_at 0001-01-01T00:00:00+05:00 is out of range")


def ancient_and_recent_pins(d: Path) -> Case:
    """Most pins dated 1024 (a typo for 2024), one 2024: every recency weight but one underflowed to 0, the
    median cap made them all 0 and the profile NaN (``negative dimensions`` in the build). It builds."""
    b = _board(d)
    names = sorted(p.name for p in b.glob("*.jpg"))
    _csv_rows(b, [{"image": n, "pinned_at": "2024-05-01T10:00:00Z" if i == 0 else "1024-05-01T10:00:00Z"}
                  for i, n in enumerate(names)])
    out = d / "p.json"

    def check() -> list[str]:
        doc = strict_json(out.read_text())
        return [] if abs(sum(p["weight"] for p in doc["pins"]) - 1) < 1e-3 else ["pin weights do not sum to 1"]

    return Case("ancient_and_recent_pins", 1, _profile_build(b, out), 0, "wrote", check=check)


# ------------------------------------------------------------------------------- 2: hostile JSON lines


def jsonl_deep_nesting(d: Path) -> Case:
    b = _board(d)
    _jsonl(b, ['{"image": "meadow.jpg"}', "[" * 100_000 + "]" * 100_000])
    return Case("jsonl_deep_nesting", 2, _profile_build(b, d / "p.json"), 2,
                "pins.jsonl, line 2: the line is nested more than 64 levels deep", absent=("RecursionError",))


def jsonl_huge_integer(d: Path) -> Case:
    b = _board(d)
    _jsonl(b, ['{"image": "meadow.jpg", "saves": ' + "9" * 5000 + "}"])
    return Case("jsonl_huge_integer", 2, _profile_build(b, d / "p.json"), 2,
                "pins.jsonl, line 1: a number in the JSON has 5000 digits", absent=("ValueError",))


def profile_deep_nesting(d: Path) -> Case:
    """A ``--profile`` file of 100k nested brackets."""
    p = d / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    return Case("profile_deep_nesting", 2, ["generate", "-s", str(SELFIE), "-p", str(p), "-o", str(d / "out")], 2,
                "ProfileError: deep.json is nested more than 64 levels deep", absent=("RecursionError",))


def identity_file_huge_integer(d: Path) -> Case:
    p = d / "me.json"
    p.write_text('{"vector": [' + "9" * 5000 + "]}")
    return Case("identity_file_huge_integer", 2,
                ["generate", "--identity", str(p), "-b", str(BOARD), "-o", str(d / "out")], 2,
                "a number in the JSON has 5000 digits", absent=("ValueError:",))


# ------------------------------------------------------------------------------- 3: -o special files


def output_fifo(d: Path) -> Case:
    fifo = d / "out.json"
    os.mkfifo(fifo)
    return Case("output_fifo", 3, _profile_build(BOARD, fifo), 73, "it is a named pipe (FIFO)",
                tags=frozenset({"special_file"}), check=_unchanged(fifo, stat.S_ISFIFO))


def output_symlink(d: Path) -> Case:
    """``-o`` names a link to a file elsewhere: neither the link nor its target is written."""
    target = d / "elsewhere" / "victim.json"
    target.parent.mkdir()
    target.write_bytes(b"precious\n")
    link = d / "out" / "p.json"
    link.parent.mkdir()
    link.symlink_to(target)

    def check() -> list[str]:
        return _unchanged(link, stat.S_ISLNK)() + _same_bytes_of(target, b"precious\n")

    return Case("output_symlink", 3, _profile_build(BOARD, link), 73, "it is a symbolic link",
                tags=frozenset({"special_file"}), check=check)


def _same_bytes_of(path: Path, content: bytes) -> list[str]:
    return [] if path.read_bytes() == content else [f"{path} was overwritten"]


def output_device(d: Path) -> Case:
    """A character device as ``-o`` (as root this replaced the device node)."""
    dev = d / "null2"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        raise CaseUnavailable(f"cannot make a device node here ({exc.strerror})") from exc
    return Case("output_device", 3, ["identity", str(SELFIE), "-o", str(dev)], 73, "it is a device",
                tags=frozenset({"special_file"}), check=_unchanged(dev, stat.S_ISCHR))


def output_dir_symlink_inside(d: Path) -> Case:
    """A ``generate -o`` folder whose manifest.json is a link out of the folder: refused before any work."""
    out = d / "out"
    out.mkdir()
    victim = d / "victim.txt"
    victim.write_bytes(b"keep me\n")
    (out / "manifest.json").symlink_to(victim)

    def check() -> list[str]:
        orphans = [p.name for p in out.iterdir() if p.name != "manifest.json"]  # refused before any image is made
        return (_unchanged(out / "manifest.json", stat.S_ISLNK)() + _same_bytes_of(victim, b"keep me\n")
                + [f"written anyway: {orphans}"] * bool(orphans))

    return Case("output_dir_symlink_inside", 3, _generate(d, "-n", "1", "--size", "256", out=out), 73,
                "manifest.json: it is a symbolic link", tags=frozenset({"special_file"}), check=check)


def output_folder_is_symlink(d: Path) -> Case:
    """``generate -o LINK`` where the link points to a folder elsewhere."""
    real = d / "real"
    real.mkdir()
    link = d / "out"
    link.symlink_to(real, target_is_directory=True)
    return Case("output_folder_is_symlink", 3, _generate(d, out=link), 73, "it is a symbolic link",
                tags=frozenset({"special_file"}), check=_unchanged(link, stat.S_ISLNK))


# ------------------------------------------------------------------------------- 5, 6: unreadable boards


def board_without_execute_permission(d: Path) -> Case:
    b = _board(d)
    b.chmod(0o600)
    return Case("board_without_execute_permission", 5, _profile_build(b, d / "p.json"), 2,
                "BoardError: board folder", absent=("PermissionError",), tags=frozenset({"unprivileged"}))


def unreadable_pins_csv(d: Path) -> Case:
    b = _board(d)
    (b / "pins.csv").chmod(0o000)
    return Case("unreadable_pins_csv", 5, _profile_build(b, d / "p.json"), 2,
                "pins.csv: cannot read (Permission denied)", absent=("PermissionError",),
                tags=frozenset({"unprivileged"}))


def pins_csv_is_a_directory(d: Path) -> Case:
    b = _board(d)
    (b / "pins.csv").unlink()
    (b / "pins.csv").mkdir()
    return Case("pins_csv_is_a_directory", 5, _profile_build(b, d / "p.json"), 2,
                "pins.csv is a folder, not a regular file", absent=("IsADirectoryError",))


def pins_csv_fifo(d: Path) -> Case:
    """A FIFO as pins.csv: refused at once (it blocked ``profile build`` forever)."""
    b = _board(d)
    (b / "pins.csv").unlink()
    os.mkfifo(b / "pins.csv")
    return Case("pins_csv_fifo", 6, _profile_build(b, d / "p.json"), 2,
                "pins.csv is a named pipe (FIFO), not a regular file",
                tags=frozenset({"hang"}), timeout_s=30)


def profile_fifo(d: Path) -> Case:
    """A FIFO as ``--profile``: refused, not read forever."""
    fifo = d / "profile.json"
    os.mkfifo(fifo)
    return Case("profile_fifo", 6, ["generate", "-s", str(SELFIE), "-p", str(fifo), "-o", str(d / "out")], 2,
                "is a named pipe (FIFO), not a regular file", tags=frozenset({"hang"}), timeout_s=30)


# ------------------------------------------------------------------------------- 7: Ctrl-C


def sigint_during_render(d: Path) -> Case:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while 8 images of 2048 px render."""
    out = d / "out"
    return Case("sigint_during_render", 7, _generate(d, "-n", "8", "--size", "2048", out=out), 130, "Interrupted",
                absent=("MissingDependencyError", "CancelledError", "KeyboardInterrupt"),
                tags=frozenset({"signal", "slow"}), interrupt_on="Rendering", timeout_s=120,
                check=_clean_output(out))


def sigint_with_guard_workers(d: Path) -> Case:
    """The same with dlib's runner and two guard worker processes (which must not print or outlive us)."""
    case = sigint_during_render(d)
    case.name = "sigint_with_guard_workers"
    case.env = {"TASTEMAKER_FACE_NET": "dlib", "TASTEMAKER_GUARD_WORKERS": "2"}
    return case


# ------------------------------------------------------------------------------- 8: numeric options


def identity_threshold_nan(d: Path) -> Case:
    return Case("identity_threshold_nan", 8, _generate(d, "--identity-threshold", "nan"), 2,
                "--identity-threshold: nan is not a finite number")


def identity_threshold_negative(d: Path) -> Case:
    return Case("identity_threshold_negative", 8, _generate(d, "--identity-threshold", "-1"), 2,
                "--identity-threshold: must be a number from 0.05 to 0.6")


def identity_threshold_env_nan(d: Path) -> Case:
    return Case("identity_threshold_env_nan", 8, _generate(d), 2,
                "TASTEMAKER_IDENTITY_THRESHOLD: must be a number from 0.05",
                env={"TASTEMAKER_IDENTITY_THRESHOLD": "nan"})


def strength_infinite(d: Path) -> Case:
    return Case("strength_infinite", 8, _generate(d, "--strength", "inf"), 2, "--strength: inf is not a finite number")


def face_index_negative(d: Path) -> Case:
    return Case("face_index_negative", 8, _generate(d, "--face-index", "-1"), 2,
                "Invalid value for '--face-index': Input should be greater than or equal to 0")


def max_modes_zero(d: Path) -> Case:
    return Case("max_modes_zero", 8, _profile_build(BOARD, d / "p.json") + ["--max-modes", "0"], 2,
                "Invalid value for '--max-modes': Input should be greater than or equal to 1")


def epsilon_zero(d: Path) -> Case:
    p = d / "p.json"
    p.write_text("{}")
    return Case("epsilon_zero", 8, ["profile", "export", str(p), "-o", str(d / "e.json"), "--private",
                                    "--epsilon", "0"], 2, "--epsilon: must be a number above 0")


def guard_workers_env_garbage(d: Path) -> Case:
    return Case("guard_workers_env_garbage", 8, _generate(d), 2, "InputError: guard_workers",
                env={"TASTEMAKER_GUARD_WORKERS": "lots"})


# ------------------------------------------------------------------------------- 11: messages


def decompression_bomb(d: Path) -> Case:
    """A PNG whose header claims 20000 x 20000 pixels: one limit quoted, the configured one."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    bomb = d / "bomb.png"
    bomb.write_bytes(png)
    return Case("decompression_bomb", 11, ["identity", str(bomb), "-o", str(d / "me.json")], 2,
                "bomb.png: 400,000,000 pixels is over the 40,000,000-pixel limit",
                absent=("178956970", "178,956,970", "89478485"))


def old_profile_schema(d: Path) -> Case:
    p = d / "old.json"
    p.write_text(json.dumps({"schema": "tastemaker.profile", "schema_version": 99}))
    return Case("old_profile_schema", 11, ["generate", "-s", str(SELFIE), "-p", str(p), "-o", str(d / "out")], 2,
                "rebuild the profile with `tastemaker profile build BOARD -o FILE`",
                absent=("`tastemaker profile BOARD`",))


def csv_field_of_a_megabyte(d: Path) -> Case:
    b = _board(d)
    (b / "pins.csv").write_text("image,title\nmeadow.jpg," + "x" * 1_000_000 + "\n")
    return Case("csv_field_of_a_megabyte", 11, _profile_build(b, d / "p.json"), 2,
                "pins.csv, line 2: malformed CSV (a field is longer than 131,072 characters)")


def jsonl_image_not_a_string(d: Path) -> Case:
    b = _board(d)
    _jsonl(b, ['{"image": 123}'])
    return Case("jsonl_image_not_a_string", 11, _profile_build(b, d / "p.json"), 2,
                "pins.jsonl, line 1: 'image' must be a string (the image's file name), got 123",
                absent=("missing the 'image' field",))


def unsupported_files_in_board(d: Path) -> Case:
    """A .heic photo, notes and a sub-folder beside the pins: each reported as skipped, the board still built."""
    b = _board(d)
    (b / "holiday.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 64)
    (b / "notes.txt").write_text("my board\n")
    (b / "more").mkdir()
    return Case("unsupported_files_in_board", 11, _profile_build(b, d / "p.json"), 0,
                "skipped holiday.heic: not read: .heic is not a supported image format")


def reused_output_folder(d: Path) -> Case:
    """Two runs into one ``-o`` folder: afterwards it holds the second run's images only."""
    out = d / "out"
    first = _generate(d, "-n", "2", "--size", "256", "--seed", "1", out=out)

    def check() -> list[str]:
        doc = json.loads((out / "manifest.json").read_text())
        listed = {e["file"] for e in doc["images"]} | {doc["contact_sheet"], "manifest.json"}
        extra = sorted({p.name for p in out.iterdir()} - listed)
        missing = sorted(n for n in listed if not (out / n).exists())
        return [f"left from the first run: {extra}"] * bool(extra) + [f"missing: {missing}"] * bool(missing)

    return Case("reused_output_folder", 11, _generate(d, "-n", "1", "--size", "256", "--seed", "2", out=out), 0,
                "1 image(s) in", before=[first], tags=frozenset({"slow"}), timeout_s=180, check=check)


#: Every case, in the issue's order.
CASES: list[Callable[[Path], Case]] = [
    far_future_pin_date, far_future_pin_date_generate, pin_date_out_of_range, ancient_and_recent_pins,
    jsonl_deep_nesting, jsonl_huge_integer, profile_deep_nesting, identity_file_huge_integer,
    output_fifo, output_symlink, output_device, output_dir_symlink_inside, output_folder_is_symlink,
    board_without_execute_permission, unreadable_pins_csv, pins_csv_is_a_directory,
    pins_csv_fifo, profile_fifo,
    sigint_during_render, sigint_with_guard_workers,
    identity_threshold_nan, identity_threshold_negative, identity_threshold_env_nan, strength_infinite,
    face_index_negative, max_modes_zero, epsilon_zero, guard_workers_env_garbage,
    decompression_bomb, old_profile_schema, csv_field_of_a_megabyte, jsonl_image_not_a_string,
    unsupported_files_in_board, reused_output_folder,
]


# ----------------------------------------------------------------------------------------------- running


def command(case: Case, cli: Sequence[str] = CLI) -> list[str]:
    """The full command line of ``case`` (root runs unprivileged cases through ``setpriv``)."""
    prefix: list[str] = []
    if "unprivileged" in case.tags and os.geteuid() == 0:
        if shutil.which(UNPRIVILEGED[0]) is None:
            raise CaseUnavailable("running as root without setpriv: file permissions would not apply")
        prefix = list(UNPRIVILEGED)
    return [*prefix, *cli, *case.argv]


def run(case: Case, *, cli: Sequence[str] = CLI, env: dict[str, str] | None = None) -> Outcome:
    """Run ``case`` in a subprocess of its own session (stdin/stdout/stderr on a pseudo-terminal when it is
    to be interrupted: progress bars draw as in a terminal), with its ``before`` commands first; ``check`` and
    processes left in its session become :attr:`Outcome.problems`."""
    base = {**os.environ, **(env or {}), **case.env, "COLUMNS": "120"}
    for argv in case.before:
        done = subprocess.run([*cli, *argv], env=base, cwd=case.cwd, capture_output=True, text=True,
                              timeout=case.timeout_s)
        if done.returncode != 0:
            return Outcome(done.returncode, done.stdout + done.stderr, problems=[f"setup {argv[:2]} failed"])
    t0 = time.monotonic()
    if case.interrupt_on is None:
        proc = subprocess.Popen(command(case, cli), env=base, cwd=case.cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            data, _ = proc.communicate(timeout=case.timeout_s)
            hung = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            data, _ = proc.communicate()
            hung = True
        text = data.decode(errors="replace")
    else:
        proc, text, hung = _run_interrupted(case, command(case, cli), base)
    outcome = Outcome(None if hung else proc.returncode, text, hung=hung, seconds=time.monotonic() - t0)
    left = _wait_group_gone(proc.pid)
    if left:
        outcome.problems.append(f"{left} process(es) of the command still running after it exited")
        _kill_group(proc.pid)
    if case.check is not None:
        outcome.problems += case.check()
    return outcome


def _run_interrupted(case: Case, cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, bool]:
    import pty

    assert case.interrupt_on is not None
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, cwd=case.cwd, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    buf, sent, deadline = b"", False, time.monotonic() + case.timeout_s
    want = case.interrupt_on.encode()
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: every process on it is gone
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            elif proc.poll() is not None:
                break
            if not sent and want in buf:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
                sent = True
        hung = proc.poll() is None and time.monotonic() >= deadline
        if hung:
            _kill_group(proc.pid)
        proc.wait()
    finally:
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", buf.decode(errors="replace"))
    if not sent:
        text += f"\n[corpus: {case.interrupt_on!r} never appeared, no SIGINT sent]"
    return proc, text, hung


def _group_members(pgid: int) -> int:
    """Live (non-zombie) processes in process group ``pgid``."""
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            n += 1
    return n


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> int:
    """Wait (polling, up to ``timeout``) until no process of the group is left; how many are left."""
    if not Path("/proc").is_dir():
        return 0
    end = time.monotonic() + timeout
    while True:
        left = _group_members(pgid)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


__all__ = ["CASES", "CLI", "CRASH_MARKS", "Case", "CaseUnavailable", "Outcome", "command", "run"]
