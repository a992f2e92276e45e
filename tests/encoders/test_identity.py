"""Identity encoder: dominant face, errors for none / several / tiny faces, combining selfies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tastemaker.encoders.identity import (
    SAME_PERSON_THRESHOLD,
    IdentityEmbedding,
    IdentityEncoder,
    _numpy_net,
    embed_chips,
    embed_pool,
    identity_distance,
)
from tastemaker.errors import (
    FaceTooSmallError,
    IdentityMismatchError,
    MultipleFacesError,
    NoFaceError,
    ProfileError,
)


@pytest.fixture(scope="module")
def enc() -> IdentityEncoder:
    return IdentityEncoder()


def test_demo_selfie_has_one_usable_face(enc: IdentityEncoder, selfie: np.ndarray) -> None:
    face, vec = enc.embed(selfie)
    assert face.width >= 80 and vec.shape == (128,)
    assert face.landmarks.shape == (68, 2)


def test_same_person_close_other_person_far(enc: IdentityEncoder, selfie: np.ndarray, hopper: np.ndarray) -> None:
    _, a = enc.embed(selfie)
    _, a2 = enc.embed(cv2.flip(selfie, 1))
    _, b = enc.embed(hopper)
    assert identity_distance(a, a2) < 0.35
    assert identity_distance(a, b) > SAME_PERSON_THRESHOLD


def test_no_face(enc: IdentityEncoder, demo_board) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoFaceError, match="no face found"):
        enc.embed(demo_board.thumbs[0], name="board.jpg")


def test_two_comparable_faces_need_a_choice(enc: IdentityEncoder, selfie: np.ndarray, hopper: np.ndarray) -> None:
    h = cv2.resize(hopper, (selfie.shape[1], selfie.shape[0]))
    pair = np.concatenate([selfie, h], axis=1)
    with pytest.raises(MultipleFacesError, match="2 faces of similar size") as exc:
        enc.embed(pair)
    assert exc.value.n_faces == 2
    face0, v0 = enc.embed(pair, face_index=0)
    face1, v1 = enc.embed(pair, face_index=1)
    assert identity_distance(v0, v1) > SAME_PERSON_THRESHOLD
    with pytest.raises(MultipleFacesError, match="face_index 5"):
        enc.embed(pair, face_index=5)


def test_small_background_face_does_not_block(enc: IdentityEncoder, selfie: np.ndarray, hopper: np.ndarray) -> None:
    img = cv2.resize(selfie, (1024, 1024))
    small = cv2.resize(hopper, (200, 234))
    img[800:1034 - 0, 0:200] = small[: 224, :]
    face, _ = enc.embed(img)
    assert face.box[1] < 700  # the big face, not the small one in the corner


def test_tiny_face(enc: IdentityEncoder, selfie: np.ndarray) -> None:
    tiny = cv2.resize(selfie, (400, 400), interpolation=cv2.INTER_AREA)  # face ~70 px wide
    with pytest.raises(FaceTooSmallError, match="px wide; at least 80"):
        enc.embed(tiny)


def test_several_selfies_combine(enc: IdentityEncoder, selfie: np.ndarray) -> None:
    emb, faces = enc.encode([selfie, cv2.flip(selfie, 1)])
    assert emb.n_sources == 2 and len(faces) == 2
    _, single = enc.embed(selfie)
    assert identity_distance(emb, single) < 0.2


def test_selfies_of_different_people_refused(enc: IdentityEncoder, selfie: np.ndarray, hopper: np.ndarray) -> None:
    with pytest.raises(IdentityMismatchError, match="do not look like the same person"):
        enc.encode([selfie, hopper], names=["me.jpg", "grace.jpg"])


def test_identity_file_holds_only_the_embedding(enc: IdentityEncoder, selfie: np.ndarray) -> None:
    emb, _ = enc.encode([selfie])
    data = emb.to_dict()
    assert set(data) == {"kind", "encoder", "encoder_version", "n_sources", "vector"}
    back = IdentityEmbedding.from_dict(data)
    assert identity_distance(back, emb) < 1e-5
    with pytest.raises(ProfileError):
        IdentityEmbedding.from_dict({**data, "vector": [0.0] * 3})


def test_numpy_batch_matches_dlib_in_worker_processes(
    enc: IdentityEncoder, selfie: np.ndarray, hopper: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    f1, _ = enc.embed(selfie)
    f2, _ = enc.embed(hopper)
    chips = [enc.chip(selfie, f1.box), enc.chip(hopper, f2.box)]
    local = embed_chips(chips, workers=2)  # the NumPy port: one in-process batch, no pool
    assert embed_pool(2) is None
    monkeypatch.setenv("TASTEMAKER_FACE_NET", "dlib")
    _numpy_net.cache_clear()
    try:
        assert embed_pool(2) is not None
        pooled = embed_chips(chips, workers=2)  # dlib's own runner in two spawned processes
    finally:
        monkeypatch.delenv("TASTEMAKER_FACE_NET")
        _numpy_net.cache_clear()
    for a, b in zip(local, pooled, strict=True):
        assert np.allclose(a, b, atol=1e-5)
