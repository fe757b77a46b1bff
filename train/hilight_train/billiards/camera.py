"""Cameras (overhead and broadcast) and the view-relative naming of pockets, cushions and regions.

A clip's words for places are what a viewer of that clip sees: "the top-right corner pocket" is
the pocket in the top-right of the picture. Each camera fixes a :class:`View`, an orientation that
maps table coordinates ``(x, y)`` to normalised view coordinates ``(u, v)`` in ``[0, 1]``, ``u``
to the right of the picture and ``v`` up it (far from the camera in broadcast views).

- overhead: the long axis runs across the picture (``k`` = 0 or 2, the two 180-degree turns);
- broadcast: perspective from behind a short rail, raised (``k`` = 1 behind ``y = 0``,
  ``k`` = 3 behind ``y = l``), the long axis running up the picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CORNER_POCKETS = ("top-left", "top-right", "bottom-left", "bottom-right")
SIDE_POCKETS = ("top-middle", "bottom-middle", "left-middle", "right-middle")
POCKETS = CORNER_POCKETS + SIDE_POCKETS
CUSHIONS = ("top", "bottom", "left", "right")
REGIONS = ("top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right")


@dataclass(frozen=True)
class View:
    """Orientation of the table in the picture (see module docstring)."""

    family: str  # "overhead" | "broadcast"
    k: int  # 0..3
    w: float
    l: float  # noqa: E741

    def uv(self, x, y):
        """Normalised view coordinates of table points (arrays or floats)."""
        xn, yn = np.asarray(x) / self.w, np.asarray(y) / self.l
        if self.k == 0:
            return yn, 1 - xn
        if self.k == 1:
            return xn, yn
        if self.k == 2:
            return 1 - yn, xn
        return 1 - xn, 1 - yn

    def pocket_name(self, x: float, y: float) -> str:
        u, v = (float(t) for t in self.uv(x, y))
        if abs(u - 0.5) < 0.2:
            return "top-middle" if v > 0.5 else "bottom-middle"
        if abs(v - 0.5) < 0.2:
            return "right-middle" if u > 0.5 else "left-middle"
        return ("top-" if v > 0.5 else "bottom-") + ("right" if u > 0.5 else "left")

    def cushion_name(self, x: float, y: float) -> str:
        """Name of the rail nearest (in metres) to a table point, e.g. a cushion segment's midpoint."""
        options = {(0.0, y): x, (self.w, y): self.w - x, (x, 0.0): y, (x, self.l): self.l - y}
        rx, ry = min(options, key=options.get)
        u, v = (float(t) for t in self.uv(rx, ry))
        d = {"left": u, "right": 1 - u, "bottom": v, "top": 1 - v}
        return min(d, key=d.get)

    def region_name(self, x: float, y: float) -> str:
        """3x3 grid region of a table point: "top-left" ... "centre" ... "bottom-right"."""
        u, v = (float(t) for t in self.uv(x, y))
        col = 0 if u < 1 / 3 else (2 if u > 2 / 3 else 1)
        row = 0 if v > 2 / 3 else (2 if v < 1 / 3 else 1)
        return REGIONS[row * 3 + col]


@dataclass
class Camera:
    """A pinhole camera: world point (x, y, z) -> pixel (px, py) with py down."""

    eye: np.ndarray  # (3,)
    rot: np.ndarray  # (3, 3) rows: right, up, forward (world -> camera)
    f: float
    cx: float
    cy: float
    width: int
    height: int
    view: View

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N, 3) camera coordinates (x right, y up, z forward)."""
        return (pts - self.eye) @ self.rot.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world -> pixels (N, 2) and depth (N,)."""
        c = self.to_camera(np.atleast_2d(pts))
        z = c[:, 2]
        px = self.cx + self.f * c[:, 0] / z
        py = self.cy - self.f * c[:, 1] / z
        return np.stack([px, py], axis=1), z

    def rays(self) -> np.ndarray:
        """World-space ray directions through every pixel centre: (H, W, 3)."""
        xs = (np.arange(self.width) + 0.5 - self.cx) / self.f
        ys = -(np.arange(self.height) + 0.5 - self.cy) / self.f
        X, Y = np.meshgrid(xs, ys)  # (H, W)
        d = np.stack([X, Y, np.ones_like(X)], axis=-1)  # (H, W, 3) camera coords
        return d @ self.rot  # camera -> world


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    return np.stack([right, true_up, fwd])


def _roll(rot: np.ndarray, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return r @ rot


def sample_camera(
    family: str,
    w: float,
    l: float,  # noqa: E741
    width: int,
    height: int,
    rng: np.random.Generator,
    margin: float = 0.16,
) -> Camera:
    """A randomised camera of a family that frames the whole table (rails included).

    Jitter: eye position, aim point, roll, zoom (field of view) and framing offset.
    """
    if family == "overhead":
        k = int(rng.choice([0, 2]))
        h = rng.uniform(2.5, 4.5)
        eye = np.array([w / 2 + rng.normal(0, 0.02 * w), l / 2 + rng.normal(0, 0.02 * l), h])
        target = np.array([w / 2, l / 2, 0.0])
        up = np.array([-1.0, 0, 0]) if k == 0 else np.array([1.0, 0, 0])
        eye[:2] += up[:2] * 1e-3  # keep look-at well defined
        rot = _look_at(eye, target, up)
        rot = _roll(rot, rng.normal(0, 1.0))
    elif family == "broadcast":
        k = int(rng.choice([1, 3]))
        dist = rng.uniform(0.5, 1.6)
        h = rng.uniform(1.4, 2.4)
        side = 1.0 if k == 1 else -1.0
        near_y = 0.0 if k == 1 else l
        eye = np.array([w / 2 + rng.normal(0, 0.04 * w), near_y - side * dist, h])
        target = np.array([w / 2 + rng.normal(0, 0.02 * w), near_y + side * l * rng.uniform(0.42, 0.52), 0.0])
        rot = _look_at(eye, target, np.array([0, 0, 1.0]))
        rot = _roll(rot, rng.normal(0, 1.0))
    else:
        raise ValueError(f"unknown camera family {family!r}; use 'overhead' or 'broadcast'")
    view = View(family, k, w, l)
    # Fit the focal length and principal point to the table outline (with the rails).
    corners = np.array(
        [
            [-margin, -margin, 0],
            [w + margin, -margin, 0],
            [w + margin, l + margin, 0],
            [-margin, l + margin, 0],
        ]
    )
    c = (corners - eye) @ rot.T
    nx, ny = c[:, 0] / c[:, 2], c[:, 1] / c[:, 2]  # normalised image coordinates
    f = min(width / (nx.max() - nx.min()), height / (ny.max() - ny.min())) * rng.uniform(0.88, 0.99)
    cx = width / 2 - f * (nx.max() + nx.min()) / 2 + rng.normal(0, 0.01 * width)
    cy = height / 2 + f * (ny.max() + ny.min()) / 2 + rng.normal(0, 0.01 * height)
    return Camera(
        eye=eye, rot=rot, f=float(f), cx=float(cx), cy=float(cy), width=width, height=height, view=view
    )
