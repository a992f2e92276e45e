"""Robustness bench (issue 12): a hostile corpus replayed against the CLI and a real ``tastemaker serve``.

* **CLI** — every case of ``tests/robustness/corpus.py`` (far-future pin dates, hostile JSON lines, special
  files as ``-o``, unreadable or FIFO ``pins.csv``, Ctrl-C during renders, NaN and out-of-range options,
  misleading messages), each in a subprocess of its own session with a deadline, plus a board folder with an
  unreadable image (item 13: skipped and reported).
* **Server** — ``tastemaker serve`` on a free loopback port, fresh data dir and secret, the default process
  pools, read deadlines of 2 s (headers) and 4 s (body): a far-future pin (1), hostile JSON in bodies and form
  fields (2), HEAD / OPTIONS / 405 ``Allow`` and a client gone mid-body (9), 100 half-sent requests and a
  trickled body while others are served (10), a text part where a file goes and a two-face selfie (11),
  ``st run --checks all`` with content-aware positive acceptance (12), an upload with unreadable images (13),
  and ``kill -9`` of the server, twice, counting its worker processes still alive afterwards (4).

For each case: whether it ended as it must (the expected exit code or HTTP status with a clear message), a
traceback (CLI output or server log), a server error (any 5xx), a hang (its deadline passed), a special file
replaced, workers left after a kill.

Run: python bench/robustness.py [--quick] [--keep]   (--quick leaves out the CLI cases that render images)
Last line: {"cases", "clear_errors", "tracebacks", "server_errors", "hangs", "special_files_replaced",
"orphan_workers_after_kill"}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.robustness.live import (  # noqa: E402
    LiveServer,
    alive,
    end,
    issue_key,
    server_env,
    trickle_verify_body,
    wait_for,
)

DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"
PINS = sorted((DEMO / "board").glob("*.jpg"))
CRASH = ("Traceback (most recent call last)", "Fatal Python error", "panicked at")


@dataclass
class Result:
    item: int
    name: str
    where: str  # "cli" or "server"
    expected: str
    got: str
    ok: bool
    traceback: bool = False
    server_error: bool = False
    hang: bool = False
    special_replaced: bool = False
    orphans: int = 0


# ----------------------------------------------------------------------------------------------- CLI


def cli_cases(work: Path, quick: bool) -> tuple[list[Result], list[str]]:
    from tests.robustness.corpus import CASES, Case, CaseUnavailable, run

    def unreadable_image_in_board(d: Path) -> Case:
        board = d / "board"
        shutil.copytree(DEMO / "board", board)
        (board / "broken.jpg").write_bytes(b"not a picture at all")
        return Case("unreadable_image_in_board", 13, ["profile", "build", str(board), "-o", str(d / "p.json")], 0,
                    "skipped broken.jpg")

    results: list[Result] = []
    skipped: list[str] = []
    for make in [*CASES, unreadable_image_in_board]:
        d = work / "cli" / make.__name__
        d.mkdir(parents=True)
        try:
            case = make(d)
        except CaseUnavailable as why:
            skipped.append(f"{make.__name__} ({why})")
            continue
        if quick and "slow" in case.tags:
            skipped.append(f"{case.name} (--quick)")
            continue
        try:
            outcome = run(case)
        except CaseUnavailable as why:
            skipped.append(f"{case.name} ({why})")
            continue
        failures = outcome.failures(case)
        replaced = "special_file" in case.tags and any(
            w in p for p in outcome.problems for w in ("replaced", "overwritten", "removed")
        )
        got = "hung" if outcome.hung else f"exit {outcome.exit_code}"
        results.append(Result(case.item, case.name, "cli", f"exit {case.exit_code}",
                              got + (f" ({failures[0]})" if failures else ""), not failures,
                              traceback=outcome.traceback, hang=outcome.hung, special_replaced=replaced))
        print(f"  cli {case.name}: {'ok' if not failures else failures}", flush=True)
    return results, skipped


# ----------------------------------------------------------------------------------------------- server


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


class ServerBench:
    """The server cases; every response goes through :meth:`expect`, which records it."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.server, self.key = server, key
        self.c = httpx.Client(base_url=server.base, timeout=60, headers={"Authorization": f"Bearer {key}"})
        self.results: list[Result] = []

    def expect(self, item: int, name: str, call: Callable[[], httpx.Response], status: int,
               code: str | None = None, check: Callable[[httpx.Response], str] | None = None) -> httpx.Response | None:
        """Run ``call``; it must answer ``status`` (and error ``code``), and ``check`` must return ""."""
        try:
            r = call()
        except httpx.TimeoutException:
            self.results.append(Result(item, name, "server", f"{status} {code or ''}", "no answer", False, hang=True))
            return None
        except httpx.HTTPError as exc:
            self.results.append(Result(item, name, "server", f"{status} {code or ''}",
                                       f"connection: {type(exc).__name__}", False))
            return None
        try:
            body = r.json() if r.content else {}
        except ValueError:
            body = {}
        got_code = body.get("code") if isinstance(body, dict) else None
        problem = ""
        if r.status_code != status or (code is not None and got_code != code):
            problem = f"{r.status_code} {got_code}"
        elif check is not None:
            problem = check(r)
        got = f"{r.status_code} {got_code or ''}".strip() + (f" ({problem})" if problem and check else "")
        self.results.append(Result(item, name, "server", f"{status} {code or ''}".strip(), got, not problem,
                                   traceback="Traceback" in r.text, server_error=r.status_code >= 500))
        return r

    def note(self, item: int, name: str, expected: str, got: str, ok: bool, **flags: Any) -> None:
        self.results.append(Result(item, name, "server", expected, got, ok, **flags))

    # ------------------------------------------------------------------ 1, 2, 13: bodies
    def far_future_pin(self) -> None:
        pins = json.dumps([{"image": PINS[0].name, "pinned_at": "3024-05-02T09:10:00Z"}])
        r = self.expect(1, "far_future_pin_upload", lambda: self.c.post(
            "/v1/boards", data={"name": "future", "pins": pins}, files=parts(PINS[:3])), 422, "invalid_board",
            check=lambda r: "" if "future" in r.json()["message"] else "message does not say why")
        if r is not None and r.status_code == 201:  # accepted: then it must never make the board unusable
            self.expect(1, "far_future_pin_styleembed",
                        lambda: self.c.post("/v1/styleembed", json={"board_id": r.json()["id"]}), 200)

    def hostile_json(self) -> None:
        deep, deep_objects = b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000
        big = b'{"n": ' + b"9" * 5000 + b"}"
        json_ct = {"Content-Type": "application/json"}
        for path in ("/v1/verify", "/v1/feedback", "/v1/generations", "/v1/styleembed"):
            kinds = (("brackets", deep, "json_too_deep"), ("objects", deep_objects, "json_too_deep"),
                     ("5000_digits", big, "json_number_too_large"))
            for label, payload, code in kinds:
                self.expect(2, f"json_{label}{path.replace('/', '_')}",
                            lambda p=path, b=payload: self.c.post(p, content=b, headers=json_ct), 400, code)
        selfie = (DEMO / "selfie.jpg").read_bytes()
        for label, text, code in (("brackets", deep.decode(), "json_too_deep"),
                                  ("5000_digits", f'[{{"image": "{PINS[0].name}", "saves": {"9" * 5000}}}]',
                                   "json_number_too_large")):
            self.expect(2, f"pins_field_{label}", lambda t=text: self.c.post(
                "/v1/boards", data={"name": "b", "pins": t}, files=parts(PINS[:1])), 400, code)
            self.expect(2, f"profile_field_{label}", lambda t=text: self.c.post(
                "/v1/generations", data={"consent": "true", "profile": t},
                files={"selfie": ("me.jpg", selfie, "image/jpeg")}), 400, code)

    def bad_pins(self) -> None:
        noise = png(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        files = [*parts(PINS[:2]), ("images", ("notes.jpg", b"not an image", "image/jpeg")),
                 ("images", ("noise.png", noise, "image/png"))]

        def reported(r: httpx.Response) -> str:
            skipped = {s["image"]: s.get("code") for s in r.json().get("skipped", [])}
            n = r.json().get("n_pins")
            return "" if skipped.get("notes.jpg") == "image_unreadable" and n == 3 else f"skipped={skipped} n={n}"

        self.expect(13, "one_unreadable_image_skipped", lambda: self.c.post(
            "/v1/boards", data={"name": "mixed"}, files=files), 201, check=reported)
        self.expect(13, "no_usable_image", lambda: self.c.post(
            "/v1/boards", data={"name": "bad"}, files=[("images", ("a.jpg", b"x", "image/jpeg"))]),
            422, "board_empty", check=lambda r: "" if "a.jpg" in r.json()["message"] else "file not named")

    # ------------------------------------------------------------------ 9: HTTP semantics
    def http_semantics(self) -> None:
        board = self.c.post("/v1/boards", data={"name": "h"}, files=parts(PINS[:1])).json()["id"]
        self.expect(9, "head_healthz", lambda: httpx.head(self.server.base + "/healthz"), 200,
                    check=lambda r: "" if r.content == b"" else "HEAD answered with a body")
        self.expect(9, "head_board", lambda: self.c.head(f"/v1/boards/{board}"), 200)
        full = "GET, HEAD, DELETE, OPTIONS"
        self.expect(9, "options_board_allow", lambda: self.c.options(f"/v1/boards/{board}"), 204,
                    check=lambda r: "" if r.headers.get("allow") == full else f"Allow: {r.headers.get('allow')}")
        self.expect(9, "put_board_405_allow", lambda: self.c.put(f"/v1/boards/{board}"), 405, "method_not_allowed",
                    check=lambda r: "" if r.headers.get("allow") == full else f"Allow: {r.headers.get('allow')}")
        before = len(self.server.log())
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(f"POST /v1/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.key}\r\nContent-Type: "
                  "multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n".encode())
        s.close()
        try:
            wait_for(lambda: "disconnected" in self.server.log()[before:], 10)
            new = self.server.log()[before:]
            ok = "Traceback" not in new and "unhandled" not in new
            self.note(9, "client_gone_mid_body", "one info line", "traceback" if not ok else "one info line", ok,
                      traceback=not ok)
        except TimeoutError:
            self.note(9, "client_gone_mid_body", "one info line", "nothing logged", False)

    # ------------------------------------------------------------------ 10: slow clients
    def slow_clients(self, header_s: float, body_s: float) -> None:
        socks = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", self.server.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")
            socks.append(s)
        t0 = time.monotonic()
        served = [httpx.get(self.server.base + "/healthz", timeout=10).status_code for _ in range(5)]
        meanwhile = time.monotonic() - t0
        self.note(10, "others_served_meanwhile", "5 x 200 in < 2 s", f"{served.count(200)} x 200 in {meanwhile:.2f} s",
                  served.count(200) == 5 and meanwhile < 2)
        t0 = time.monotonic()
        cut = 0
        for s in socks:
            s.settimeout(max(0.1, header_s + 3 - (time.monotonic() - t0)))
            try:
                data = s.recv(4096)
                cut += data == b"" or data.startswith(b"HTTP/1.1 408")
            except (TimeoutError, OSError):
                pass
            s.close()
        elapsed = time.monotonic() - t0
        self.note(10, "100_half_sent_requests", f"all cut within {header_s + 3:g} s", f"{cut} cut in {elapsed:.1f} s",
                  cut == len(socks), hang=cut < len(socks))
        answer, elapsed = trickle_verify_body(self.server.port, self.key, body_s + 5)
        ok = elapsed < body_s + 3 and answer.startswith(b"HTTP/1.1 408")
        self.note(10, "trickled_body", f"408 within {body_s + 3:g} s", f"{answer[:12].decode() or 'nothing'} after "
                  f"{elapsed:.1f} s", ok, hang=elapsed >= body_s + 3)

    # ------------------------------------------------------------------ 11: messages
    def messages(self) -> None:
        boundary = "bench"
        for path, fields, field in (("/v1/boards", {"name": "b"}, "images"),
                                    ("/v1/generations", {"consent": "true", "board_id": "brd_x"}, "selfie"),
                                    ("/v1/verify", {}, "image"), ("/v1/feedback", {"action": "save", "board_id": "x"},
                                                                  "image")):
            body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                            for k, v in [*fields.items(), (field, "text, not a file")]) + f"--{boundary}--\r\n".encode()
            self.expect(11, f"text_part_for_{field}{path.replace('/', '_')}", lambda p=path, b=body: self.c.post(
                p, content=b, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}),
                400, "file_part_expected",
                check=lambda r, f=field: "" if f in r.json()["message"] and "UploadFile" not in r.text else "unclear")
        from tastemaker.media import decode_image

        one = decode_image((DEMO / "selfie.jpg").read_bytes())
        two = png(np.ascontiguousarray(np.hstack([one, one])))
        board = self.c.post("/v1/boards", data={"name": "faces"}, files=parts(PINS[:3])).json()["id"]
        self.expect(11, "two_faces_names_face_index", lambda: self.c.post(
            "/v1/generations", data={"consent": "true", "board_id": board},
            files={"selfie": ("two.png", two, "image/png")}), 422, "multiple_faces",
            check=lambda r: "" if "face_index" in r.text and "--face-index" not in r.text else "names --face-index")

    # ------------------------------------------------------------------ 12: schemathesis
    def conformance(self, examples: int, work: Path) -> None:
        st = Path(sys.executable).with_name("st")
        if not st.exists():
            self.note(12, "schemathesis_all_checks", "exit 0", "schemathesis not installed", False)
            return
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.robustness.conformance", "PYTHONPATH": str(ROOT)}
        t0 = time.monotonic()
        r = subprocess.run(
            [str(st), "run", self.server.base + "/openapi.json", "--checks", "all", "--exclude-checks",
             "positive_data_acceptance", "-H", f"Authorization: Bearer {self.key}", "--exclude-path", "/v1/me",
             "--max-examples", str(examples), "--workers", "1", "--request-timeout", "60",
             "--suppress-health-check", "all", "--seed", "12"],
            env=env, capture_output=True, text=True, timeout=1200, cwd=work,  # its .schemathesis/ cache goes there
        )
        summary = next((ln.strip() for ln in reversed(r.stdout.splitlines()) if " in " in ln and "=" in ln), "")
        self.note(12, "schemathesis_all_checks", "no failure", f"exit {r.returncode}: {summary.strip('= ')} "
                  f"({time.monotonic() - t0:.0f} s)", r.returncode == 0)


def parts(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def kill_rounds(env: dict[str, str], work: Path, key: str, rounds: int = 2) -> list[Result]:
    """Start, use every pool, ``kill -9``, count the children still alive after 20 s; ``rounds`` times."""
    results = []
    for i in range(rounds):
        server = LiveServer(env, work / f"server-kill-{i}.log").start()
        kids: list[int] = []
        try:
            httpx.post(server.base + "/v1/verify", files={"image": ("x.png", png(np.zeros((8, 8, 3), np.uint8)),
                                                                    "image/png")},
                       headers={"Authorization": f"Bearer {key}"}, timeout=60)
            try:
                kids = wait_for(lambda s=server: len(s.children()) >= 4 and s.children(), 60)
            except TimeoutError:
                kids = server.children()
            server.kill9()
            try:
                wait_for(lambda k=kids: not any(alive(p) for p in k), 20)
            except TimeoutError:
                pass
            left = [p for p in kids if alive(p)]
            results.append(Result(4, f"kill_9_round_{i + 1}", "server", f"0 of {len(kids)} workers left",
                                  f"{len(left)} of {len(kids)} left", not left and len(kids) >= 4, orphans=len(left)))
        finally:
            server.stop()
            end(kids)
    return results


def server_cases(work: Path, examples: int) -> list[Result]:
    header_s, body_s = 2.0, 4.0
    roomy = {"requests_per_minute": 100_000, "styleembed_per_minute": 100_000, "images_per_month": 100_000,
             "max_active_jobs": 50, "verify_per_minute": 100_000}
    env = server_env(work / "server-data", job_executor="process", request_header_timeout_seconds=header_s,
                     request_body_timeout_seconds=body_s, tiers=json.dumps({"free": roomy, "pro": roomy}))
    key = issue_key(env)
    server = LiveServer(env, work / "server.log").start()
    bench = ServerBench(server, key)
    try:
        for step, run in (("1 pin dates", bench.far_future_pin), ("2 hostile JSON", bench.hostile_json),
                          ("13 bad pins", bench.bad_pins), ("9 HTTP semantics", bench.http_semantics),
                          ("10 slow clients", lambda: bench.slow_clients(header_s, body_s)),
                          ("11 messages", bench.messages),
                          ("12 conformance", lambda: bench.conformance(examples, work))):
            t0 = time.monotonic()
            run()
            print(f"  server {step}: {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        server.stop()
    crashes = server.log().count("Traceback (most recent call last)")
    bench.note(0, "server_log", "no traceback", f"{crashes} traceback(s)", crashes == 0, traceback=crashes > 0)
    return bench.results + kill_rounds(env, work, key)


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="leave out the CLI cases that render images")
    ap.add_argument("--examples", type=int, default=25, help="schemathesis examples per operation and phase")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tm-robustness-"))
    t0 = time.monotonic()
    print("CLI corpus", flush=True)
    results, skipped = cli_cases(work, args.quick)
    print("server", flush=True)
    results += server_cases(work, args.examples)
    print()
    print(f"| {'item':>4} | {'where':<6} | {'case':<44} | {'expected':<28} | {'got':<44} | {'':<4} |")
    print(f"|{'-' * 6}|{'-' * 8}|{'-' * 46}|{'-' * 30}|{'-' * 46}|{'-' * 6}|")
    for r in sorted(results, key=lambda r: (r.item, r.where, r.name)):
        mark = "ok" if r.ok else "FAIL"
        print(f"| {r.item or '-':>4} | {r.where:<6} | {r.name[:44]:<44} | {r.expected[:28]:<28} | {r.got[:44]:<44} | "
              f"{mark:<4} |")
    if skipped:
        print(f"not run here: {', '.join(skipped)}")
    print(f"{time.monotonic() - t0:.0f} s; work folder: {work if args.keep else '(removed)'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    cases = [r for r in results if r.item]  # the server-log line is a check over all cases, not a case
    print(json.dumps({
        "cases": len(cases),
        "clear_errors": sum(r.ok for r in cases),
        "tracebacks": sum(r.traceback for r in results),
        "server_errors": sum(r.server_error for r in results),
        "hangs": sum(r.hang for r in results),
        "special_files_replaced": sum(r.special_replaced for r in results),
        "orphan_workers_after_kill": sum(r.orphans for r in results),
    }))


if __name__ == "__main__":
    main()
