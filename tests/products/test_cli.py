"""``tastemaker generate --product`` and ``tastemaker catalogue render``, end to end on small sizes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.products.samples import make_shot

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def _verified(path: Path) -> None:
    code, text = run("verify", str(path), "--json")
    assert code == 0, text
    assert json.loads(text)["verdict"] == "verified"


def test_generate_product(tmp_path: Path, product_png: Path, demo_dir: Path) -> None:
    out = tmp_path / "out"
    code, text = run("generate", "--product", str(product_png), "--board", str(demo_dir / "board"), "-o", str(out),
                     "-n", "2", "--size", "256", "--seed", "3")
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["subject"] == "product" and manifest["engine"]["name"] == "look-product"
    assert (out / "contact_sheet.png").is_file()
    assert len(manifest["images"]) == 2
    for entry in manifest["images"]:
        fid = entry["fidelity"]
        assert fid["passed"] and fid["delta_e"] <= 3 and fid["shape_ssim"] >= 0.9
        _verified(out / entry["file"])


def test_generate_product_with_clips(tmp_path: Path, product_png: Path, demo_dir: Path) -> None:
    out = tmp_path / "out"
    code, text = run("generate", "--product", str(product_png), "--board", str(demo_dir / "board"), "-o", str(out),
                     "-n", "1", "--size", "256", "--seed", "4", "--clip", "1", "--clip-format", "gif")
    assert code == 0, text
    (entry,) = json.loads((out / "manifest.json").read_text())["images"]
    clip = entry["clip"]
    assert clip["file"] == Path(entry["file"]).stem + ".gif" and clip["frames"] == 24
    _verified(out / clip["file"])


def test_a_product_clip_moves_the_product_by_its_own_matte(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's matte as placed is what the clip's layers separate (a product is never segmented as a
    person: the segmenter would find no one and the product would not move against its background)."""
    from tastemaker.clips import ClipOptions, clips_for_result
    from tastemaker.clips import make as clip_make

    seen: list[object] = []
    monkeypatch.setattr(clip_make, "make_clip", lambda *a, **kw: seen.append(kw["alpha"]))
    alpha = np.zeros((8, 8), np.float32)
    alpha[2:6, 2:6] = 1
    img = SimpleNamespace(render=np.zeros((8, 8, 3), np.uint8), alpha=alpha, seed=1, record_id="ab", info={})
    result = SimpleNamespace(images=[img], profile=SimpleNamespace(content_hash=lambda: "h"), engine="e",
                             engine_version="1", request=SimpleNamespace(prompt=""))
    clips_for_result(result, ClipOptions.create(1, None, None), provenance=None)  # type: ignore[arg-type]
    assert seen and seen[0] is alpha


def test_generate_product_refusals(tmp_path: Path, demo_dir: Path, selfie_path: Path, product_png: Path) -> None:
    board = str(demo_dir / "board")
    line = tmp_path / "line.png"
    img = np.full((300, 300, 3), 240, np.uint8)
    img[40:260, 150] = (10, 10, 10)
    Image.fromarray(img).save(line)
    code, text = run("generate", "--product", str(line), "--board", board, "-o", str(tmp_path / "a"))
    assert code == 2 and "px wide" in text
    code, text = run("generate", "--product", str(selfie_path), "--board", board, "-o", str(tmp_path / "b"))
    assert code == 2 and "--subject product" in text
    code, text = run("generate", "--product", str(product_png), "--selfie", str(selfie_path), "--board", board,
                     "-o", str(tmp_path / "c"))
    assert code == 2 and "not both" in text
    code, text = run("generate", "--subject", "product", "--board", board, "-o", str(tmp_path / "d"))
    assert code == 2 and "--product PHOTO" in text
    assert not (tmp_path / "a").exists()


def test_catalogue_render(tmp_path: Path, demo_dir: Path) -> None:
    Image.fromarray(make_shot(2, size=320).image).save(tmp_path / "mug.jpg")
    shot = make_shot(5, size=320, kind="ball")
    Image.fromarray(np.dstack([shot.image, (shot.mask * 255).astype(np.uint8)])).save(tmp_path / "ball.png")
    csv = tmp_path / "products.csv"
    csv.write_text("id,image,name\nmug-1,mug.jpg,Blue mug\nball_2,ball.png,\n")
    out = tmp_path / "out"
    code, text = run("catalogue", "render", str(csv), "--board", str(demo_dir / "board"), "-o", str(out),
                     "--size", "256")
    assert code == 0, text
    index = json.loads((out / "index.json").read_text())
    assert [p["id"] for p in index["products"]] == ["mug-1", "ball_2"]
    modes = index["modes"]
    for product in index["products"]:
        assert (out / product["contact_sheet"]).is_file()
        assert sorted(im["mode"] for im in product["images"]) == sorted(modes)  # each product in each mode
        for im in product["images"]:
            _verified(out / im["file"])
    manifest = json.loads((out / "ball_2" / "manifest.json").read_text())
    assert manifest["product"]["source"] == "alpha"


def test_catalogue_bad_rows(tmp_path: Path, demo_dir: Path) -> None:
    board = str(demo_dir / "board")
    Image.fromarray(make_shot(2, size=200).image).save(tmp_path / "a.jpg")
    cases = {
        "name,picture\nx,a.jpg\n": "must name the columns id and image",
        "id,image\nx,a.jpg\nx,a.jpg\n": "line 3: id 'x' appears twice",
        "id,image\nx y,a.jpg\n": "line 2: id 'x y'",
        "id,image\nx,missing.jpg\n": "line 2: image 'missing.jpg'",
        "id,image,colour\nx,a.jpg,red\n": "unknown column(s) colour",
        "id,image\n": "no products",
    }
    for k, (text_csv, message) in enumerate(cases.items()):
        csv = tmp_path / f"c{k}.csv"
        csv.write_text(text_csv)
        code, text = run("catalogue", "render", str(csv), "--board", board, "-o", str(tmp_path / f"o{k}"))
        assert code == 2, text
        assert message in " ".join(text.split()), text
