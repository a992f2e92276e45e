"""Optional model metrics through the real loading paths, with tiny models built here.

ArcFace: a 1x3x112x112 -> 512 ONNX graph made with ``onnx.helper`` (random weights), loaded by
onnxruntime through ``--arcface-model``. CLIP: a randomly initialised ``CLIPModel`` with tiny dims,
its tokenizer and image processor, saved with ``save_pretrained`` and loaded through ``--clip-model``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.errors import InputError, MissingDependencyError
from tastemaker.eval.models import ArcFaceScorer, ClipScorer, align_face, five_points

from ..conftest import DEMO, neon_image
from .conftest import make_app, sepia_image, write_board

runner = CliRunner()


def tiny_arcface(path: Path, *, normalise_in_graph: bool = False) -> Path:
    """Conv(3->8, s2) -> ReLU -> AvgPool(4) -> Flatten -> Gemm(1568->512): ArcFace's interface, random weights."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "conv_w"),
        numpy_helper.from_array((rng.standard_normal((8 * 14 * 14, 512)) * 0.05).astype(np.float32), "fc_w"),
    ]
    nodes = []
    src = "data"
    if normalise_in_graph:
        inits += [numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
                  numpy_helper.from_array(np.array(1 / 128, np.float32), "scale")]
        nodes += [helper.make_node("Sub", ["data", "mean"], ["centred"]),
                  helper.make_node("Mul", ["centred", "scale"], ["scaled"])]
        src = "scaled"
    nodes += [
        helper.make_node("Conv", [src, "conv_w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 512])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, Path]:
    selfies = tmp_path / "selfies"
    selfies.mkdir()
    (selfies / "astronaut.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    boards = tmp_path / "boards"
    write_board(boards / "neon", [neon_image(s) for s in range(3)], "neon")
    write_board(boards / "sepia", [sepia_image(s) for s in range(3)], "sepia")
    (boards / "neon" / "pins.csv").write_text("image,saves,tags\nneon-00.png,3,neon;pop;vivid\n")
    (boards / "sepia" / "pins.csv").write_text("image,saves,title\nsepia-00.png,2,old film photo\n")
    return {"selfies": selfies, "boards": boards, "out": tmp_path / "report"}


def run_cli(data: dict[str, Path], *extra: str) -> dict:  # type: ignore[type-arg]
    res = runner.invoke(make_app(), ["eval", "--selfies", str(data["selfies"]), "--boards", str(data["boards"]),
                                     "-o", str(data["out"]), "-n", "1", "--size", "256", "--baselines", "none",
                                     *extra])
    assert res.exit_code == 0, res.output
    return json.loads((data["out"] / "results.json").read_text())


# ---------------------------------------------------------------------------------------- ArcFace
def test_arcface_onnx_through_the_cli(tmp_path: Path, data: dict[str, Path]) -> None:
    model = tiny_arcface(tmp_path / "arcface.onnx")
    scorer = ArcFaceScorer(model)
    assert (scorer.size, scorer.nchw, scorer.fixed_batch) == (112, True, True)
    assert (scorer.input_mean, scorer.input_std) == (127.5, 127.5)
    res = run_cli(data, "--arcface-model", str(model))
    assert res["models"]["arcface"]["input_size"] == 112
    for rec in res["images"]:
        assert rec["face_found"] and -1.0 <= rec["arcface_cos_selfie"] <= 1.0
        assert rec["arcface_cos_others"] is None  # flat layout: no other photos
    none = [r["arcface_cos_selfie"] for r in res["images"] if r["method"] == "none"]
    assert min(none) > 0.9  # the same face, aligned from a re-framed copy of the selfie
    assert res["summary"]["look"]["arcface_cos_selfie"]["n"] == 2
    assert "ArcFace cos" in (data["out"] / "report.html").read_text()


def test_arcface_alignment_and_in_graph_normalisation(tmp_path: Path, selfie: np.ndarray) -> None:
    from tastemaker.encoders.identity import IdentityEncoder

    face = IdentityEncoder().choose_face(selfie)
    crop = align_face(selfie, face.landmarks)
    assert crop.shape == (112, 112, 3) and crop.mean() > 20
    pts = five_points(face.landmarks)
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0] and pts[0, 1] < pts[2, 1] < pts[3, 1]
    # the same face twice gives the same unit vector; the graph-normalised variant is detected as such
    scorer = ArcFaceScorer(tiny_arcface(tmp_path / "norm.onnx", normalise_in_graph=True))
    assert (scorer.input_mean, scorer.input_std) == (0.0, 1.0)
    v = scorer.embed(selfie, face.landmarks)
    assert v.shape == (512,) and np.linalg.norm(v) == pytest.approx(1.0)
    assert np.allclose(v, scorer.embed(selfie.copy(), face.landmarks))


def test_arcface_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="file not found"):
        ArcFaceScorer(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load it as an ONNX model"):
        ArcFaceScorer(junk)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'tastemaker\[eval\]'"):
        ArcFaceScorer(junk)


# ------------------------------------------------------------------------------------------- CLIP
def tiny_clip(path: Path, *, tokenizer: bool = True) -> Path:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                           num_attention_heads=4, num_hidden_layers=2),
        projection_dim=16,
    )
    torch.manual_seed(0)
    transformers.utils.logging.disable_progress_bar()
    CLIPModel(cfg).save_pretrained(str(path))
    if tokenizer:
        try:  # transformers 5 takes the vocabulary itself
            tok = CLIPTokenizer(vocab=vocab, merges=[])
        except TypeError:  # transformers 4 wants files
            (path / "vocab.json").write_text(json.dumps(vocab))
            (path / "merges.txt").write_text("#version: 0.2\n")
            tok = CLIPTokenizer(vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"))
        tok.save_pretrained(str(path))
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor  # type: ignore[assignment]
    Processor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(path))
    return path


@pytest.mark.text
@pytest.mark.slow
def test_clip_through_the_cli(tmp_path: Path, data: dict[str, Path]) -> None:
    model = tiny_clip(tmp_path / "clip")
    res = run_cli(data, "--clip-model", str(model))
    assert res["models"]["clip"] == {"path": str(model), "text": True}
    for rec in res["images"]:
        assert -1.0 <= rec["clip_image_similarity"] <= 1.0
        assert -1.0 <= rec["clip_text_similarity"] <= 1.0  # both boards have tags or titles
        assert rec["clip_attributed_board"] in {"neon", "sepia"}
    s = res["summary"]["look"]
    assert s["clip_image_similarity"]["n"] == 2 and s["clip_attribution_accuracy"]["n"] == 2
    assert "CLIP image sim." in (data["out"] / "report.html").read_text()


@pytest.mark.text
def test_clip_without_tokenizer_measures_images_only(tmp_path: Path) -> None:
    scorer = ClipScorer(tiny_clip(tmp_path / "clip", tokenizer=False))
    assert scorer.tokenizer is None and scorer.embed_texts(["warm film"]) is None
    v = scorer.embed_images([neon_image(1), sepia_image(1)])
    assert v.shape == (2, 16) and np.allclose(np.linalg.norm(v, axis=1), 1.0)
    assert np.allclose(v, scorer.embed_images([neon_image(1), sepia_image(1)]))


def test_clip_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="CLIPModel.save_pretrained"):
        ClipScorer(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'tastemaker\[clip\]'"):
        ClipScorer(tmp_path)


def test_core_import_does_not_pull_torch_or_model_runtimes() -> None:
    import subprocess

    code = ("import sys, tastemaker, tastemaker.eval, tastemaker.cli.eval; "
            "bad = [m for m in ('torch', 'transformers', 'onnxruntime', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    src = str(Path(__file__).resolve().parents[2] / "src")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stdout + res.stderr
