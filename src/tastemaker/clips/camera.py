"""A gentle camera move chosen by the seed, and the parallax it gives the subject's layer.

Each layer at a depth moves as ``x' = s (x - a) + a + D``: a zoom ``s`` about an anchor ``a`` and a shift ``D``.
The background gets the camera's own zoom and shift; the subject, nearer the camera, gets ``1 + p`` times both
(``p``, the parallax, from the seed), which is what makes it read as standing in front of the scene. The
background never shows past its edges: its zoom is >= 1 and its shift stays within what that zoom leaves.
Motion is eased (smoothstep) so it starts and ends at rest. Same seed, same move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOVES = ("push_in", "pull_back", "pan_left", "pan_right", "rise", "drift")


@dataclass(frozen=True)
class Camera:
    """One move over a ``width`` x ``height`` frame; :meth:`at` gives the layers' 2x3 matrices at time 0..1."""

    move: str
    width: int
    height: int
    zoom: float  # the most the background is enlarged, e.g. 0.06 = 6 %
    parallax: float  # the subject moves (1 + parallax) times as much as the background
    anchor: tuple[float, float]  # zoom centre (the subject's centre for push/pull, else the frame's)
    start: tuple[float, float, float]  # (zoom, dx, dy) of the background at t = 0
    end: tuple[float, float, float]

    def background(self, t: float) -> tuple[float, float, float]:
        """The background's (zoom factor, dx, dy) at ``t`` in 0..1 (eased)."""
        e = t * t * (3.0 - 2.0 * t)
        z0, x0, y0 = self.start
        z1, x1, y1 = self.end
        return z0 + (z1 - z0) * e, x0 + (x1 - x0) * e, y0 + (y1 - y0) * e

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(background, subject) affine matrices at ``t`` (0..1): source pixel -> frame pixel."""
        z, dx, dy = self.background(t)
        k = 1.0 + self.parallax
        return _matrix(1.0 + z, dx, dy, self.anchor), _matrix(1.0 + z * k, dx * k, dy * k, self.anchor)


def _matrix(s: float, dx: float, dy: float, anchor: tuple[float, float]) -> np.ndarray:
    ax, ay = anchor
    return np.array([[s, 0.0, ax * (1.0 - s) + dx], [0.0, s, ay * (1.0 - s) + dy]], np.float32)


def _bounds(z: float, anchor: float, side: int) -> tuple[float, float]:
    """The shifts that keep a background enlarged by ``1 + z`` about ``anchor`` covering ``side`` pixels."""
    return z * (anchor - side), z * anchor


def plan_camera(seed: int, width: int, height: int, *, subject_centre: tuple[float, float] | None = None) -> Camera:
    """The seed's move: which one, how far (zoom 4-7 %, parallax 0.5-0.9), all within the background's margin."""
    rng = np.random.default_rng([int(seed) % (2**63), 0xC11F])
    move = MOVES[int(rng.integers(len(MOVES)))]
    zoom = float(rng.uniform(0.04, 0.07))
    parallax = float(rng.uniform(0.5, 0.9))
    centre = (width / 2.0, height / 2.0)
    if move in ("push_in", "pull_back") and subject_centre is not None:
        # zoom about a point between the frame's centre and the subject's: the subject comes (or goes) gently
        anchor = (0.5 * (centre[0] + subject_centre[0]), 0.5 * (centre[1] + subject_centre[1]))
    else:
        anchor = centre
    xlo, xhi = _bounds(zoom, anchor[0], width)
    ylo, yhi = _bounds(zoom, anchor[1], height)
    mid = ((xlo + xhi) / 2, (ylo + yhi) / 2)
    reach = 0.8
    if move == "push_in":
        start, end = (0.0, 0.0, 0.0), (zoom, 0.0, 0.0)
    elif move == "pull_back":
        start, end = (zoom, 0.0, 0.0), (0.0, 0.0, 0.0)
    elif move in ("pan_left", "pan_right"):
        sign = 1.0 if move == "pan_left" else -1.0  # pan left: the picture slides right
        half = reach * (xhi - xlo) / 2
        start, end = (zoom, mid[0] - sign * half, mid[1]), (zoom, mid[0] + sign * half, mid[1])
    elif move == "rise":
        half = reach * (yhi - ylo) / 2
        start, end = (zoom, mid[0], mid[1] - half), (zoom, mid[0], mid[1] + half)
    else:  # drift: a diagonal glide while closing in a little
        sx, sy = (1.0 if rng.random() < 0.5 else -1.0), (1.0 if rng.random() < 0.5 else -1.0)
        hx, hy = reach * (xhi - xlo) / 2, reach * (yhi - ylo) / 2
        start = (zoom, mid[0] - sx * hx, mid[1] - sy * hy)
        end = (zoom, mid[0] + sx * hx, mid[1] + sy * hy)
    return Camera(move, width, height, zoom, parallax, anchor, start, end)
