"""Shared fixtures: isolated environment, the demo data, a control board, and helpers."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.boards import Board, Pin, build_board, load_board
from tastemaker.media import encode_image, load_image
from tastemaker.taste.profile import TasteProfile, build_profile

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"
DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real home or data dir, or sees the developer's TASTEMAKER_* env."""
    import os

    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("TASTEMAKER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("TASTEMAKER_GUARD_WORKERS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def selfie_path() -> Path:
    return DEMO / "selfie.jpg"


@pytest.fixture(scope="session")
def selfie(selfie_path: Path) -> np.ndarray:
    return load_image(selfie_path)


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    return load_image(DATA / "grace_hopper.jpg")


@pytest.fixture(scope="session")
def demo_board() -> Board:
    return load_board(DEMO / "board")


@pytest.fixture(scope="session")
def demo_profile(demo_board: Board) -> TasteProfile:
    return build_profile(demo_board)


def neon_image(seed: int, size: int = 256) -> np.ndarray:
    """A synthetic 'neon pop' picture: saturated magenta/cyan shapes, hard edges, bright, no grain."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    img[:] = rng.choice([[250, 40, 200], [30, 230, 240], [255, 240, 40]])
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(6):
        c = rng.choice([[250, 40, 200], [30, 230, 240], [255, 240, 40], [255, 255, 255]])
        cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 10, size / 3)]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c
    return img.astype(np.uint8)


def make_board(name: str, images: list[np.ndarray], pins: list[Pin] | None = None) -> Board:
    items = []
    for i, img in enumerate(images):
        pin = pins[i] if pins else Pin(image=f"{name}-{i:03d}.png")
        items.append((pin, encode_image(img, "png")))
    return build_board(name, items)


@pytest.fixture(scope="session")
def control_board() -> Board:
    """A board with a look nothing like the demo board's."""
    return make_board("neon", [neon_image(s) for s in range(8)])


@pytest.fixture(scope="session")
def control_profile(control_board: Board) -> TasteProfile:
    return build_profile(control_board)


def jpeg_bytes(img: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **kw)
    return buf.getvalue()


# ---------------------------------------------------------------------- a real Ray cluster on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> list[str]:
    return [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node (2 CPUs) and a worker node process (1 CPU) on 127.0.0.1; yields the address.

    Each node is a ``ray start --block`` process of this fixture, stopped at the end by its own id (SIGTERM
    makes it stop what it started), never with ``ray stop``, which would also stop any other Ray cluster of
    this user on the machine (another test process's). Session-wide: the batch and eval tests share one."""
    pytest.importorskip("ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("ray-nodes")
    ray = _ray_cli()
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
    nodes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            nodes.append(subprocess.Popen([*ray, "start", *args, *common], stdout=log, stderr=subprocess.STDOUT))

    def wait_for(what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 120
        while not ready():
            dead = [n.args for n in nodes if n.poll() is not None]
            assert not dead and time.monotonic() < deadline, (
                f"Ray {what} not ready: " + " ".join((logs / f).read_text()[-600:] for f in ("head.log", "worker.log")
                                                      if (logs / f).exists()))
            time.sleep(0.2)  # polling a port: there is no event to await

    try:
        start("head", "--head", "--num-cpus", "2", "--port", str(port), "--include-dashboard=false")
        wait_for("head", lambda: _answers(port))
        start("worker", "--address", address, "--num-cpus", "1")

        def both_nodes() -> bool:  # ready when the cluster counts both nodes' CPUs
            st = subprocess.run([*ray, "status", "--address", address], capture_output=True, text=True, timeout=60)
            return st.returncode == 0 and "/3.0 CPU" in st.stdout

        wait_for("worker node", both_nodes)
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(timeout=30)
