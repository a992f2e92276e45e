"""Scenes, "me in that place": light estimates, the scene crop and the composite (the package look/scene)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tastemaker.engines.look.scene import (
    NEUTRAL,
    FaceGeometry,
    SceneLight,
    composite,
    face_geometry,
    fit_scene,
    fit_sh,
    person_light,
    scene_light,
    scene_zoom,
)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


# --------------------------------------------------------------------------- light
@pytest.mark.parametrize(
    "light", [(0.0, 0.0, 1.0), (-0.6, -0.3, 0.74), (0.8, 0.1, 0.59), (0.3, -0.8, 0.52), (-0.9, 0.2, 0.39)]
)
def test_fit_sh_recovers_the_light_of_a_lambertian_sphere(light: tuple[float, float, float]) -> None:
    """The visible hemisphere of a sphere, clamped-cosine shading plus ambient, 10 % outliers."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    inside = xx**2 + yy**2 < 0.97
    n = np.stack([xx[inside], yy[inside], np.sqrt(1 - xx[inside] ** 2 - yy[inside] ** 2)], 1)
    ldir = np.array(light) / np.linalg.norm(light)
    lum = 0.6 * (0.25 + np.maximum(n @ ldir, 0.0))
    bad = rng.random(len(lum)) < 0.1  # eyes, a beard, a specular spot
    lum[bad] = rng.uniform(0.0, 1.5, bad.sum())
    a0, a = fit_sh(n, lum)
    assert a0 > 0
    assert _angle(a, ldir) < 20.0


@pytest.fixture(scope="module")
def selfie_face(selfie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from tastemaker.encoders.identity import IdentityEncoder

    face = IdentityEncoder().detect(selfie)[0]
    return selfie, face.landmarks


def _mirror(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = lm.copy()
    out[:, 0] = img.shape[1] - 1 - out[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), out


def test_person_light_from_a_real_face_lit_from_the_left_flips_in_the_mirror(
    selfie_face: tuple[np.ndarray, np.ndarray],
) -> None:
    img, lm = selfie_face
    h, w = img.shape[:2]
    x0, x1 = lm[:, 0].min(), lm[:, 0].max()
    # a strong key light from the viewer's left, across the face
    ramp = np.clip(1.25 - 0.7 * (np.arange(w) - x0) / (x1 - x0), 0.45, 1.3).astype(np.float32)
    lit = np.clip(img * ramp[None, :, None], 0, 255).astype(np.uint8)
    left = person_light(lit, lm)
    right = person_light(*_mirror(lit, lm))
    assert left.direction[0] < -0.4 and right.direction[0] > 0.4
    assert abs(left.direction[0] + right.direction[0]) < 0.15
    assert abs(left.direction[1] - right.direction[1]) < 0.15
    assert left.direction[2] > 0  # from the camera's side
    assert np.isclose(np.linalg.norm(left.direction), 1.0)
    # the photo as it is: its own light mirrors too
    own, own_m = person_light(img, lm), person_light(*_mirror(img, lm))
    assert abs(own.direction[0] + own_m.direction[0]) < 0.15


def test_face_geometry_is_a_camera_facing_mesh_that_follows_the_frame(
    selfie_face: tuple[np.ndarray, np.ndarray],
) -> None:
    img, lm = selfie_face
    geo = face_geometry(img, lm)
    assert geo is not None
    assert geo.points.shape == (468, 2) and geo.normals.shape == (468, 3)
    np.testing.assert_allclose(np.linalg.norm(geo.normals, axis=1), 1.0, atol=1e-4)
    assert np.median(geo.normals[:, 2]) > 0.7  # toward the viewer
    # the mesh sits on dlib's face: its centre within a tenth of the face's width
    width = float(np.ptp(lm[:, 0]))
    assert np.linalg.norm(geo.points.mean(0) - lm.mean(0)) < 0.1 * width
    # the nose tip (vertex 1) points at the camera more than the cheeks' outer edge (234, 454)
    assert geo.normals[1, 2] > geo.normals[234, 2] and geo.normals[1, 2] > geo.normals[454, 2]
    assert geo.normals[234, 0] * geo.normals[454, 0] < 0  # one cheek faces left, the other right
    moved = geo.transformed(np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -5.0]]))
    np.testing.assert_allclose(moved.points, geo.points * 2 + [10.0, -5.0], rtol=1e-5)
    np.testing.assert_allclose(moved.normals, geo.normals)
    mirrored = geo.transformed(np.array([[-1.0, 0.0, img.shape[1] - 1.0], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(mirrored.normals[:, 0], -geo.normals[:, 0])
    # the light from a given mesh is the light found without it
    np.testing.assert_allclose(person_light(img, lm, geometry=geo).direction, person_light(img, lm).direction)


def test_person_light_falls_back_without_a_mesh() -> None:
    """No face for the mesh to find (a flat grey card): the ellipsoid fallback still answers."""
    img = np.full((200, 200, 3), 128, np.uint8)
    img[:, :100] = 180  # brighter on the left
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lm = np.stack([100 + 40 * np.cos(t), 100 + 50 * np.sin(t)], 1).astype(np.float32)
    light = person_light(img, lm)
    assert isinstance(light, SceneLight)
    assert np.isclose(np.linalg.norm(light.direction), 1.0)
    assert light.direction[0] < 0


def test_scene_light_reads_the_bright_side_and_the_colour() -> None:
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    left = np.clip(0.9 - 0.6 * xx / 160, 0, 1)
    warm = np.stack([left, left * 0.85, left * 0.6], -1)
    lw = scene_light((warm * 255).astype(np.uint8))
    assert lw.direction[0] < -0.3 and lw.direction[2] > 0
    assert lw.colour[0] > lw.colour[2]
    top = np.clip(0.95 - 0.7 * yy / 120, 0, 1)
    lt = scene_light(np.repeat(top[..., None], 3, -1))
    assert lt.direction[1] < -0.3 and abs(lt.direction[0]) < 0.1
    flat = scene_light(np.full((50, 50, 3), 0.5, np.float32))
    assert flat.direction[2] > 0.9


# --------------------------------------------------------------------------- the scene's crop
def test_fit_scene_covers_without_distortion_and_finds_room() -> None:
    rng = np.random.default_rng(1)
    H, W = 300, 600
    scene = np.full((H, W, 3), 0.55, np.float32)
    scene[:, : W // 2] = rng.random((H, W // 2, 3)).astype(np.float32)  # busy left half
    scene[..., 2] = np.linspace(0.2, 0.8, W, dtype=np.float32)[None, :]  # orientation marker
    cv2.circle(scene, (420, 30), 20, (0.1, 0.1, 0.1), -1)  # up, out of the person's way
    out = fit_scene((scene * 255).astype(np.uint8), 200, 250, person_scale_hint=0.11)
    assert out.shape == (250, 200, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # the person will stand in the quiet half
    assert out[60:, 50:150, 1].std() < 0.05
    # not mirrored: the blue ramp still rises to the right
    assert out[5, -5, 2] > out[5, 5, 2]
    # not stretched: the disc stays round
    ys, xs = np.nonzero((out[..., 0] < 0.2) & (out[..., 2] < 0.15))
    assert len(xs) > 100
    assert abs((np.ptp(xs) + 1) / (np.ptp(ys) + 1) - 1.0) < 0.06


def test_tighter_shots_crop_the_scene_tighter() -> None:
    assert scene_zoom(0.11) == pytest.approx(1.0)
    assert 1.0 < scene_zoom(0.26) < scene_zoom(0.42) <= 1.8
    yy, xx = np.mgrid[0:200, 0:200]
    rings = ((np.hypot(yy - 100, xx - 100) // 10) % 2).astype(np.float32)
    scene = np.repeat(rings[..., None], 3, -1)
    wide = fit_scene(scene, 100, 100, person_scale_hint=0.11)
    close = fit_scene(scene, 100, 100, person_scale_hint=0.42)
    # fewer rings (edges) fit in the tighter crop
    edges = [int((np.diff(np.sign(im[50, :, 0] - 0.5)) != 0).sum()) for im in (wide, close)]
    assert edges[1] < edges[0]


# --------------------------------------------------------------------------- the composite
S = 192


def _person(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """A textured head-and-shoulders person on a saturated green screen; soft mask; the true matte."""
    rng = np.random.default_rng(seed)
    hard = np.zeros((S, S), np.float32)
    cv2.ellipse(hard, (96, 70), (28, 36), 0, 0, 360, 1.0, -1)
    cv2.ellipse(hard, (96, 150), (62, 40), 0, 180, 360, 1.0, -1)
    cv2.rectangle(hard, (34, 150), (158, 170), 1.0, -1)
    true_alpha = cv2.GaussianBlur(hard, (0, 0), 1.2)
    texture = cv2.GaussianBlur(rng.random((S, S)).astype(np.float32), (0, 0), 1.0)
    skin = np.stack([0.78 + 0.2 * (texture - 0.5), 0.56 + 0.2 * (texture - 0.5), 0.45 + 0.2 * (texture - 0.5)], -1)
    shirt = np.stack([0.2 + 0.3 * texture, 0.25 + 0.3 * texture, 0.55 + 0.3 * texture], -1)
    fg = np.where((np.arange(S)[:, None] < 108)[..., None], skin, shirt).astype(np.float32)
    green = np.array([0.05, 0.95, 0.1], np.float32)
    img = fg * true_alpha[..., None] + green * (1 - true_alpha[..., None])
    # the segmenter's mask: softer and a little wider than the truth
    mask = np.clip(cv2.GaussianBlur(cv2.dilate(hard, np.ones((3, 3), np.uint8)), (0, 0), 2.5) * 1.1, 0, 1)
    return img.astype(np.float32), mask.astype(np.float32), true_alpha, (68.0, 40.0, 124.0, 106.0)


def _scene(seed: int = 3, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((S, S, 3)).astype(np.float32), (0, 0), 6.0)
    base = 0.35 + (base - base.mean()) * 4.0
    base[..., 2] += 0.12  # bluish
    if noise:
        base = base + rng.normal(0, noise, base.shape).astype(np.float32)
    return np.clip(base, 0, 1).astype(np.float32)


LIGHTS = (
    SceneLight(np.array([-0.6, -0.2, 0.77]), 0.6, 0.5, np.array([1.05, 1.0, 0.95])),
    SceneLight(np.array([0.5, -0.5, 0.71]), 1.0, 0.4, np.array([0.95, 1.0, 1.05])),
)


def _grad(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.stack([cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)], -1)


def test_composite_shapes_range_and_strength_zero_is_the_plain_alpha_composite() -> None:
    img, mask, _, box = _person()
    scene = _scene()
    out = composite(img, mask, box, scene, light=LIGHTS)
    assert out.shape == (S, S, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    plain = composite(img, mask, box, scene, strength=0.0)
    np.testing.assert_allclose(plain, img * mask[..., None] + scene * (1 - mask[..., None]), atol=1e-6)
    # no light given: estimated from the two pictures
    auto = composite(img, mask, box, scene)
    assert auto.shape == (S, S, 3) and auto.dtype == np.float32
    # no person at all: the scene
    np.testing.assert_allclose(composite(img, np.zeros_like(mask), box, scene), scene, atol=1e-6)
    with pytest.raises(ValueError):
        composite(img, mask, box, scene[:100])


def test_composite_keeps_the_person_and_the_scene() -> None:
    img, mask, true_alpha, box = _person()
    scene = _scene()
    out = composite(img, mask, box, scene, light=LIGHTS)
    k = np.ones((9, 9), np.uint8)
    # inside the eroded mask, less the slot of green screen between chin and shoulders the mask fills
    core = cv2.erode((mask > 0.5).astype(np.uint8), k).astype(bool) & (true_alpha > 0.99)
    g_out, g_in = _grad(out)[core].ravel(), _grad(img)[core].ravel()
    assert np.corrcoef(g_out, g_in)[0, 1] > 0.9
    # outside the (generously) dilated mask the scene is only ever darkened, evenly in R, G and B
    far = cv2.dilate((mask > 0.02).astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    ratio = out[far] / np.maximum(scene[far], 1e-3)
    assert (ratio <= 1.0 + 1e-4).all() and ratio.min() > 0.4
    np.testing.assert_allclose(ratio[:, 0], ratio[:, 2], atol=0.02)
    # and above the head, beyond the shadow's reach, not at all
    top = far.copy()
    top[10:] = False
    np.testing.assert_allclose(out[top], scene[top], atol=2e-3)


def test_composite_leaves_no_halo_of_the_old_background() -> None:
    img, mask, true_alpha, box = _person()
    scene = _scene()
    band = (mask > 0.03) & (mask < 0.97)

    def green_excess(x: np.ndarray) -> np.ndarray:
        return x[..., 1] - np.maximum(x[..., 0], x[..., 2])

    allowed = max(float(green_excess(scene)[band].max()), float(green_excess(img)[true_alpha > 0.99].max())) + 0.05
    plain = composite(img, mask, box, scene, strength=0.0)
    assert green_excess(plain)[band].max() > allowed + 0.1  # the test can see a halo
    out = composite(img, mask, box, scene, light=LIGHTS)
    assert green_excess(out)[band].max() < allowed
    assert float(np.mean(green_excess(out)[band] > allowed - 0.05)) < 0.01


def test_contact_shadow_darkens_below_the_person() -> None:
    img, mask, _, box = _person()
    hard = (mask > 0.5).astype(np.uint8)
    # float the person up so there is scene below the body
    shift = np.array([[1, 0, 0], [0, 1, -30]], np.float32)
    img = cv2.warpAffine(img, shift, (S, S), borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(mask, shift, (S, S))
    hard = cv2.warpAffine(hard, shift, (S, S))
    box = (box[0], box[1] - 30, box[2], box[3] - 30)
    scene = np.full((S, S, 3), 0.6, np.float32)
    out = composite(img, mask, box, scene, light=(NEUTRAL, LIGHTS[1]))
    near = cv2.dilate(hard, np.ones((7, 7), np.uint8))
    below = np.zeros((S, S), bool)
    below[145:160, 40:150] = True
    below &= near == 0
    assert below.sum() > 200
    assert out[below].mean() < 0.6 - 0.03
    assert out[:20, :20].mean() == pytest.approx(0.6, abs=2e-3)  # far from the person: untouched
    weak = composite(img, mask, box, scene, light=(NEUTRAL, LIGHTS[1]), strength=0.3)
    assert out[below].mean() < weak[below].mean() < 0.6


def test_composite_harmonises_toward_the_scene_but_skin_stays_skin() -> None:
    img, mask, true_alpha, box = _person()
    dark_blue = np.clip(_scene() * np.array([0.35, 0.45, 0.8], np.float32), 0, 1)
    cold = SceneLight(np.array([0.0, -0.3, 0.95]), 1.0, 0.2, np.array([0.7, 0.95, 1.35]))
    out = composite(img, mask, box, dark_blue, light=(LIGHTS[0], cold))
    face = np.zeros((S, S), bool)
    face[55:90, 80:112] = True
    lab_in = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)[face].mean(0)
    lab_out = cv2.cvtColor(out, cv2.COLOR_RGB2Lab)[face].mean(0)
    assert lab_out[0] < lab_in[0] - 2  # darker, like the scene
    assert lab_out[2] < lab_in[2]  # cooler
    hue_in = np.degrees(np.arctan2(lab_in[2], lab_in[1]))
    hue_out = np.degrees(np.arctan2(lab_out[2], lab_out[1]))
    assert abs(hue_out - hue_in) <= 7.0 and 10.0 < hue_out < 85.0
    # darker light lowers a* and b* with L*; saturation (chroma over lightness) stays
    assert np.hypot(lab_out[1], lab_out[2]) / lab_out[0] > 0.8 * np.hypot(lab_in[1], lab_in[2]) / lab_in[0]


def test_composite_relights_with_the_face_mesh_when_given() -> None:
    img, mask, _, box = _person()
    scene = _scene()
    # a toy mesh over the head: a hemisphere's normals at 468 points
    rng = np.random.default_rng(2)
    u = rng.uniform(-1, 1, (468, 2)) * 0.95
    u = u[np.hypot(u[:, 0], u[:, 1]) < 0.95][:200]
    normals = np.concatenate([u, np.sqrt(1 - (u**2).sum(1, keepdims=True))], 1)
    face = FaceGeometry(points=(u * [26, 32] + [96, 72]).astype(np.float32), normals=normals.astype(np.float32))
    with_mesh = composite(img, mask, box, scene, light=LIGHTS, face=face)
    without = composite(img, mask, box, scene, light=LIGHTS)
    assert with_mesh.dtype == np.float32 and 0.0 <= with_mesh.min() and with_mesh.max() <= 1.0
    head = np.zeros((S, S), bool)
    head[50:95, 75:118] = True
    assert np.abs(with_mesh - without)[head].max() > 1e-3
    # only the face's shading changes: the background does not
    np.testing.assert_allclose(with_mesh[:20, :20], without[:20, :20], atol=1e-6)


def test_composite_is_deterministic_for_a_seed() -> None:
    img, mask, _, box = _person()
    grainy = _scene(noise=0.05)  # a grainy scene: the person gets grain, drawn from the seed
    a = composite(img, mask, box, grainy, light=LIGHTS, seed=7)
    b = composite(img, mask, box, grainy, light=LIGHTS, seed=7)
    c = composite(img, mask, box, grainy, light=LIGHTS, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    core = mask > 0.99
    assert np.abs(a - c)[core].mean() > 0.005
