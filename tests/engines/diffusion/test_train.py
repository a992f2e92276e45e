"""train-styleembed on tiny data: the loss goes down, and a resumed run continues exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .helpers import require, tiny_paths

require()

from tastemaker.encoders.identity import IdentityEmbedding  # noqa: E402
from tastemaker.engines.diffusion import StyleEmbed, TrainConfig, train_styleembed  # noqa: E402
from tastemaker.errors import InputError  # noqa: E402
from tastemaker.media import encode_image  # noqa: E402


def _img(rng: np.random.Generator, tint: tuple[int, int, int], side: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    base = np.stack([(xx * 4 + c) % 256 for c in tint], axis=-1).astype(np.float32)
    return np.clip(base * 0.6 + rng.normal(0, 20, base.shape) + np.array(tint) * 0.4, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-data")
    rng = np.random.default_rng(0)
    rows = []
    for b, tint in enumerate([(220, 120, 40), (40, 90, 210)]):
        board = root / "boards" / f"b{b}"
        board.mkdir(parents=True)
        for i in range(3):
            (board / f"pin{i}.png").write_bytes(encode_image(_img(rng, tint), "png"))
        (board / "pins.csv").write_text("image,saves,clicks\npin0.png,3,1\npin1.png,0,2\npin2.png,1,0\n")
        ident = root / "ids" / f"p{b}.json"
        ident.parent.mkdir(exist_ok=True)
        vec = rng.normal(0, 0.1, 128)
        ident.write_text(json.dumps(IdentityEmbedding(vector=vec).to_dict()))
        target = root / "targets" / f"t{b}.png"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(encode_image(_img(rng, tint), "png"))
        rows.append({"board": f"boards/b{b}", "identity": f"ids/p{b}.json", "target": f"targets/t{b}.png",
                     "prompt": "a photo of a person"})
    (root / "examples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def _cfg(data: Path, out: Path, steps: int, **kw: object) -> TrainConfig:
    p = tiny_paths()
    return TrainConfig(base=p.base, image_encoder=p.image_encoder, data=data, out=out, steps=steps, batch_size=2,
                       lr=3e-3, checkpoint_every=2, device="cpu", drop_prob=0.2, style_tokens=2, identity_tokens=2,
                       **kw)


def test_training_lowers_the_loss_and_writes_a_loadable_adapter(data: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    res = train_styleembed(_cfg(data, tmp_path / "run", 8), progress=lambda s, total, loss: seen.append(s))
    assert res.step == 8 and len(res.losses) == 8 and seen[-1] == 8
    assert res.eval_after < res.eval_before
    se = StyleEmbed.load(tmp_path / "run")
    assert se.config.identity_tokens == 2 and (tmp_path / "run" / "train_log.json").is_file()


def test_resume_continues_identically(data: Path, tmp_path: Path) -> None:
    import torch

    straight = train_styleembed(_cfg(data, tmp_path / "a", 4))
    first = train_styleembed(_cfg(data, tmp_path / "b", 2))
    resumed = train_styleembed(_cfg(data, tmp_path / "b", 4), resume="latest")
    assert first.losses == straight.losses[:2]
    assert resumed.losses == straight.losses
    a, b = StyleEmbed.load(tmp_path / "a").state_dict(), StyleEmbed.load(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-000002", "checkpoint-000004"]


def test_bad_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"examples\.jsonl not found"):
        train_styleembed(_cfg(tmp_path, tmp_path / "out", 1))
    (tmp_path / "examples.jsonl").write_text('{"board": "b"}\n')
    with pytest.raises(InputError, match="line 1"):
        train_styleembed(_cfg(tmp_path, tmp_path / "out", 1))
