"""The search index: incremental adds, faces skipped, catalogue errors, image/text/board search, shop the look,
the embedded engine's exact/HNSW switch and rebuild, and the Milvus engine on milvus-lite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.boards import load_board
from tastemaker.cli.app import app
from tastemaker.discovery.engines import EmbeddedEngine
from tastemaker.discovery.index import IndexSettings, create_or_open, open_index
from tastemaker.discovery.search import search_board, search_image, search_text, shop_the_look
from tastemaker.discovery.sources import board_images, read_catalogue
from tastemaker.encoders.style import DIM
from tastemaker.errors import CatalogueError, SearchIndexError, SearchQueryError
from tastemaker.media import encode_image
from tastemaker.taste.profile import build_profile

from ..conftest import DEMO, neon_image


def _warm(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((96, 128, 3), np.float32)
    img[:] = (200, 120, 60)
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _cool(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((96, 128, 3), np.float32)
    img[:] = (40, 70, 150)
    img[::8] = 230
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def boards(tmp_path: Path) -> Path:
    root = tmp_path / "boards"
    for name, make, title in (("warm", _warm, "sunset amber"), ("cool", _cool, "winter sea")):
        folder = root / name
        folder.mkdir(parents=True)
        rows = ["image,saves,title,tags"]
        for i in range(5):
            (folder / f"{name}{i}.png").write_bytes(encode_image(make(i), "png"))
            rows.append(f"{name}{i}.png,{i},{title} {i},{name};mood")
        (folder / "pins.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    rows = ["id,title,image,url,price,currency,brand,tags"]
    for i in range(4):
        (folder / f"w{i}.png").write_bytes(encode_image(_warm(50 + i), "png"))
        (folder / f"c{i}.png").write_bytes(encode_image(_cool(50 + i), "png"))
        rows.append(f"w{i},Amber scarf {i},w{i}.png,https://shop.example/w{i},{20 + i},EUR,Sol,warm;knit")
        rows.append(f"c{i},Navy coat {i},c{i}.png,https://shop.example/c{i},{90 + i},EUR,Mar,cool;wool")
    (folder / "products.csv").write_text("\n".join(rows) + "\n")
    return folder / "products.csv"


def test_index_add_is_incremental_and_search_explains(tmp_path: Path, boards: Path, catalogue: Path) -> None:
    idx = create_or_open(tmp_path / "index")
    rep = idx.add(board_images(boards))
    assert (rep.added, rep.skipped_faces, rep.skipped) == (10, 0, [])
    again = idx.add(board_images(boards))
    assert (again.added, again.unchanged) == (0, 10)  # same bytes, same words: nothing to do
    (boards / "warm" / "pins.csv").write_text("image,title\nwarm0.png,golden hour\n")
    changed = idx.add(board_images(boards))
    assert changed.updated >= 1 and changed.added == 0
    (boards / "cool" / "cool0.png").write_bytes(encode_image(_cool(99), "png"))  # new bytes: a new pin
    assert idx.add(board_images(boards)).added == 1
    idx.add(read_catalogue(catalogue))
    assert idx.count("product") == 8 and idx.engine.count() == idx.count()

    hits = search_image(idx, _warm(7), k=5)
    assert [h.board for h in hits[:4]] == ["warm"] * 4 or all(h.key.startswith(("pin:", "product:w")) for h in hits)
    assert hits[0].why.style_similarity and hits[0].score >= hits[-1].score
    text = search_text(idx, "winter", k=5)
    assert text and all("winter" in h.why.words for h in text)
    with pytest.raises(SearchQueryError):
        search_text(idx, "   ")

    board = load_board(boards / "warm")
    prof = build_profile(board)
    more = search_board(idx, prof, k=6, pin_shas=[p.sha256 for p in board.pins])
    own = {f"pin:{p.sha256[:16]}" for p in board.pins}
    assert more and not own & {h.key for h in more}  # the board's own pins are never recommended
    assert more[0].why.mode is not None and more[0].why.mode["id"] == "m1"
    shop = shop_the_look(idx, 4, profile=prof, pin_shas=[p.sha256 for p in board.pins])
    assert [h.kind for h in shop] == ["product"] * 4
    assert sum(h.brand == "Sol" for h in shop) >= 3 and shop[0].price is not None
    assert shop[0].why.palette_similarity is not None
    img = shop_the_look(idx, 2, image=_cool(3))
    assert all(h.brand == "Mar" for h in img)
    idx.close()
    reopened = open_index(tmp_path / "index")
    assert reopened.count() == 19 and search_image(reopened, _cool(3), 1)
    reopened.close()


def test_faces_are_skipped_unless_allowed(tmp_path: Path) -> None:
    idx = create_or_open(tmp_path / "index")
    faces = list(board_images(DEMO))  # the demo folder holds the selfie (a face) beside the board folder
    selfie = [f for f in faces if f.path.name == "selfie.jpg"]
    assert selfie
    assert idx.add(selfie).skipped_faces == 1 and idx.count() == 0
    assert idx.add(selfie, allow_faces=True).added == 1


@pytest.mark.parametrize(("text", "problem"), [
    ("id,image\n,a.png\n", "line 2: missing the 'id'"),
    ("id,image\nx,https://cdn.example/a.png\n", "line 2: image 'https://cdn.example/a.png' is a URL"),
    ("id,image\nx,missing.png\n", "line 2: image 'missing.png' not found"),
    ("id,image,price\nx,a.png,-3\n", "line 2: price must be a number >= 0"),
    ("id,image\nx,a.png\nx,a.png\n", "line 3: id 'x' is listed twice (first on line 2)"),
    ("id,image,colour\nx,a.png,red\n", "line 1: unknown column(s) colour"),
    ("id,image\n", "no products"),
])
def test_catalogue_errors_name_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "a.png").write_bytes(encode_image(neon_image(1, 64), "png"))
    path = tmp_path / "products.csv"
    path.write_text(text)
    with pytest.raises(CatalogueError) as err:
        read_catalogue(path)
    assert "products.csv" in err.value.message and problem in err.value.message


def test_embedded_engine_goes_hnsw_and_rebuilds_after_deletes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, DIM)).astype(np.float32)
    eng = EmbeddedEngine(tmp_path / "e.faiss", DIM, exact_limit=100)
    eng.rebuild(np.arange(600), x, ["pin"] * 300 + ["product"] * 300)
    assert not eng.exact
    d, ids = eng.search(x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
    _, prod = eng.search(x[:5], 3, kind="product")
    assert (prod >= 300).all()
    eng.remove(list(range(200)))
    assert eng.needs_rebuild() and eng.count() == 400
    _, ids = eng.search(x[:5], 5)
    assert not set(ids.ravel()) & set(range(200))
    eng.save()
    back = EmbeddedEngine(tmp_path / "e.faiss", DIM, exact_limit=100)
    assert back.count() == 400 and back.tombstones == eng.tombstones


def test_milvus_engine_on_milvus_lite(tmp_path: Path, boards: Path) -> None:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    idx = create_or_open(tmp_path / "index", IndexSettings(engine="milvus", milvus_uri="m.db"))
    idx.add(board_images(boards))
    hits = search_image(idx, _cool(1), 3)
    assert [h.board for h in hits] == ["cool"] * 3
    idx.close()
    with pytest.raises(SearchIndexError, match="cannot become embedded"):
        create_or_open(tmp_path / "index", IndexSettings(engine="embedded"))


def test_cli_index_search_shop(tmp_path: Path, boards: Path, catalogue: Path) -> None:
    runner = CliRunner()
    index = str(tmp_path / "index")
    r = runner.invoke(app, ["index", "add", str(boards), str(catalogue), "--index", index, "--text", "lexical"])
    assert r.exit_code == 0, r.output
    assert "10 added" not in r.output and "18 added" in r.output
    r = runner.invoke(app, ["search", "--text", "amber", "--index", index, "-k", "3", "--json"])
    assert r.exit_code == 0 and '"amber"' in r.output
    r = runner.invoke(app, ["search", "--board", str(boards / "cool"), "--index", index, "-k", "4"])
    assert r.exit_code == 0 and "More like cool" in r.output
    r = runner.invoke(app, ["shop", "--board", str(boards / "warm"), "--catalogue", index, "-k", "3", "--json"])
    assert r.exit_code == 0 and r.output.count('"product"') == 3
    r = runner.invoke(app, ["search", "--index", index])
    assert r.exit_code == 2 and "exactly one of" in r.output
    r = runner.invoke(app, ["search", "--text", "x", "--index", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no search index" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,image\nx,https://example.com/a.jpg\n")
    r = runner.invoke(app, ["index", "add", str(bad), "--index", index])
    assert r.exit_code == 2 and "bad.csv, line 2" in r.output and "URL" in r.output
