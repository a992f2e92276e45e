"""Scenes, "me in that place": the person from a selfie composited into a scene from their board.

Pure functions over NumPy arrays; no engine state. The engine frames the person at the output size
(``compose``), calls :func:`fit_scene` for the scene's crop and :func:`composite` for the picture.
Images are RGB; ``uint8`` where a function says so, otherwise ``float32`` in 0..1 (sRGB-encoded).

The package, in the order the engine uses it (each module's docstring has the method and its sources):

``light``
    The selfie's light from its face mesh (:func:`person_light`, :func:`face_geometry`) and the scene's
    from its large-scale luminance (:func:`scene_light`): first-order spherical-harmonic fits
    (:func:`fit_sh`, :class:`SceneLight`).
``fit``
    The scene's crop at the output size (:func:`fit_scene`, :func:`scene_zoom`): the least busy place
    where the person will stand, a scan's border or a frame's edge left out.
``matte``
    The composite's first steps: the person's matte refined where the segmenter hesitated, and the
    old background pushed out of the soft pixels' colour.
``compositing``
    The composite itself (:func:`composite`): harmonisation, relight, gradient-domain seam, contact
    shadow and grain, every step scaled by ``strength``.
``arrays``
    The small array helpers they share.

Use (``frame`` from ``compose.frame_subject``; ``person``/``mask`` the selfie and its mask warped
with ``frame.matrix()``; ``box`` the face box in output pixels)::

    geo = face_geometry(selfie, face.landmarks)
    lights = (person_light(selfie, face.landmarks, selfie_mask, geometry=geo), scene_light(pin))
    bg = fit_scene(pin, frame.out_w, frame.out_h, person_scale_hint=(box[3] - box[1]) / frame.out_h,
                   person_mask=mask)
    out = composite(person, mask, box, bg, strength=s, seed=seed, light=lights,
                    face=None if geo is None else geo.transformed(frame.matrix()))
"""

from __future__ import annotations

from .arrays import GAMMA, LOW_SIDE
from .compositing import (
    ILLUM_W,
    L_MAX_SHIFT,
    L_MEAN_W,
    L_STD_W,
    RELIGHT_GAIN,
    RELIGHT_MAX,
    RELIGHT_MIN,
    SEAM_BAND,
    SEAM_W,
    SHADOW_OFFSET,
    SHADOW_OPACITY,
    SKIN_HUE_RANGE,
    SKIN_HUE_STEP,
    WRAP_BAND,
    WRAP_W,
    composite,
)
from .fit import fit_scene, scene_zoom
from .light import (
    NEUTRAL,
    FaceGeometry,
    SceneLight,
    face_geometry,
    fit_sh,
    illuminant,
    mesh_normals,
    person_light,
    scene_light,
)

__all__ = [
    "GAMMA",
    "ILLUM_W",
    "LOW_SIDE",
    "L_MAX_SHIFT",
    "L_MEAN_W",
    "L_STD_W",
    "NEUTRAL",
    "RELIGHT_GAIN",
    "RELIGHT_MAX",
    "RELIGHT_MIN",
    "SEAM_BAND",
    "SEAM_W",
    "SHADOW_OFFSET",
    "SHADOW_OPACITY",
    "SKIN_HUE_RANGE",
    "SKIN_HUE_STEP",
    "WRAP_BAND",
    "WRAP_W",
    "FaceGeometry",
    "SceneLight",
    "composite",
    "face_geometry",
    "fit_scene",
    "fit_sh",
    "illuminant",
    "mesh_normals",
    "person_light",
    "scene_light",
    "scene_zoom",
]
