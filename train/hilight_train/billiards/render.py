"""Frames from trajectories: a static table background once per clip, balls composited on top.

Everything is vectorised numpy. The background (cloth with a spotlight falloff, cushions, wooden
rails with sights, pockets, floor) is ray-cast once per clip through every pixel onto the table
plane. Each ball is a premultiplied RGBA sprite (a soft contact shadow plus a Phong-shaded sphere
with a specular highlight; stripes are white balls with a coloured band; anti-aliased edge), cached
per (ball, radius, sub-pixel offset) at quarter-pixel steps and alpha-composited far-to-near.
Stripe bands keep their orientation (balls are not drawn rolling).

Appearance randomisation (:class:`Look`): cloth colour, light intensity and falloff, rail wood
tone, optional static grain and a 3x3 blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Camera
from .games import ball_look

CLOTHS = {
    "green": (0.10, 0.42, 0.18),
    "blue": (0.09, 0.28, 0.55),
    "tournament-blue": (0.12, 0.36, 0.62),
    "red": (0.50, 0.10, 0.10),
    "grey": (0.38, 0.40, 0.42),
    "purple": (0.30, 0.16, 0.45),
}


@dataclass
class Look:
    """Randomised appearance of a clip."""

    cloth: str
    cloth_rgb: tuple[float, float, float]
    light: float  # overall intensity multiplier
    falloff: float  # spotlight falloff strength
    wood_rgb: tuple[float, float, float]
    noise: float  # std of static grain (0 = none)
    blur: bool

    def to_json(self) -> dict:
        return {
            "cloth": self.cloth,
            "cloth_rgb": [round(c, 4) for c in self.cloth_rgb],
            "light": round(self.light, 4),
            "falloff": round(self.falloff, 4),
            "wood_rgb": [round(c, 4) for c in self.wood_rgb],
            "noise": round(self.noise, 4),
            "blur": self.blur,
        }


def sample_look(game: str, rng: np.random.Generator) -> Look:
    """Cloth colour (snooker is mostly green, three-cushion mostly blue), lighting, noise, blur."""
    names = list(CLOTHS)
    if game == "snooker":
        p = np.array([0.7, 0.06, 0.06, 0.06, 0.06, 0.06])
    elif game == "3cushion":
        p = np.array([0.15, 0.35, 0.35, 0.05, 0.05, 0.05])
    else:
        p = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
    cloth = str(rng.choice(names, p=p / p.sum()))
    base = np.array(CLOTHS[cloth]) * rng.uniform(0.85, 1.15, size=3)
    wood = np.array([0.36, 0.20, 0.09]) * rng.uniform(0.6, 1.3)
    return Look(
        cloth=cloth,
        cloth_rgb=tuple(float(c) for c in np.clip(base, 0, 1)),
        light=float(rng.uniform(0.8, 1.2)),
        falloff=float(rng.uniform(0.1, 0.45)),
        wood_rgb=tuple(float(c) for c in np.clip(wood, 0, 1)),
        noise=float(rng.choice([0.0, rng.uniform(0.01, 0.04)], p=[0.6, 0.4])),
        blur=bool(rng.random() < 0.25),
    )


def _blur3(img: np.ndarray) -> np.ndarray:
    """3x3 box blur with edge padding; img (H, W, C) float."""
    p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h = (p[:, :-2] + p[:, 1:-1] + p[:, 2:]) / 3
    return (h[:-2] + h[1:-1] + h[2:]) / 3


def render_background(
    cam: Camera, table, look: Look, cushion_width: float, rng: np.random.Generator
) -> np.ndarray:
    """The static table picture (H, W, 3) uint8."""
    w, l = table.w, table.l  # noqa: E741
    d = cam.rays()  # (H, W, 3)
    dz = np.where(np.abs(d[..., 2]) < 1e-9, -1e-9, d[..., 2])
    t = -cam.eye[2] / dz
    hit = t > 0
    x = cam.eye[0] + t * d[..., 0]
    y = cam.eye[1] + t * d[..., 1]
    cw = cushion_width
    rail = 0.11
    inside = (x >= 0) & (x <= w) & (y >= 0) & (y <= l)
    cush = ~inside & (x >= -cw) & (x <= w + cw) & (y >= -cw) & (y <= l + cw)
    wood = (
        ~inside & ~cush & (x >= -cw - rail) & (x <= w + cw + rail) & (y >= -cw - rail) & (y <= l + cw + rail)
    )
    cloth = np.asarray(look.cloth_rgb, dtype=np.float64)
    # spotlight: brightest over the table centre
    r2 = ((x - w / 2) / (0.75 * l)) ** 2 + ((y - l / 2) / (0.75 * l)) ** 2
    shade = look.light * (1.0 - look.falloff * np.clip(r2, 0, 1.5))
    img = np.empty(d.shape, dtype=np.float64)
    floor = np.array([0.10, 0.09, 0.08])
    img[:] = floor * (0.6 + 0.4 * look.light)
    img[inside] = cloth * shade[inside, None]
    img[cush] = cloth * 0.8 * shade[cush, None]
    img[wood] = np.asarray(look.wood_rgb) * shade[wood, None]
    # diamonds (sights) on the rails
    rail_mid = cw + rail / 2
    dots = []
    for k in range(1, 8):
        dots += [(-rail_mid, l * k / 8), (w + rail_mid, l * k / 8)]
    for k in range(1, 4):
        dots += [(w * k / 4, -rail_mid), (w * k / 4, l + rail_mid)]
    for px, py in dots:
        img[wood & ((x - px) ** 2 + (y - py) ** 2 < 0.012**2)] = (0.92, 0.9, 0.82)
    for pocket in table.pockets.values():
        c = pocket.center
        rr = (x - c[0]) ** 2 + (y - c[1]) ** 2
        # pooltool's capture circles are wider than the visible openings on snooker tables
        radius = min(pocket.radius, 0.066)
        img[(inside | cush | wood) & (rr < radius**2)] = (0.02, 0.02, 0.02)
    img[~hit] = floor * 0.5
    if look.noise > 0:
        img = img + rng.normal(0, look.noise, size=img.shape)
    if look.blur:
        img = _blur3(img)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


class BallSprites:
    """Premultiplied RGBA sprites of the balls of a clip, cached per radius and sub-pixel offset."""

    def __init__(self, game: str, balls: list[str], cam: Camera, rng: np.random.Generator, blur: bool):
        self.game = game
        self.blur = blur
        self.looks = {b: ball_look(game, b) for b in set(balls)}
        # light from above the table, a little towards the camera, in camera coordinates
        light_world = np.array([rng.normal(0, 0.3), rng.normal(0, 0.3), 1.0])
        light = cam.rot @ (light_world / np.linalg.norm(light_world))
        self.light = light / np.linalg.norm(light)
        to_cam = np.array([0.0, 0.0, -1.0])  # from the ball towards the camera
        h = self.light + to_cam
        self.half_vec = h / np.linalg.norm(h)
        self.axes = {}
        self.cache: dict = {}
        self.rot = cam.rot

    def stripe_axis(self, key: str, rng_seed: int) -> np.ndarray:
        if key not in self.axes:
            g = np.random.default_rng(rng_seed)
            a = g.normal(size=3)
            a[2] = abs(a[2]) + 0.8  # mostly upright bands
            self.axes[key] = self.rot @ (a / np.linalg.norm(a))
        return self.axes[key]

    def get(self, key: str, ball: str, radius: float, fx: float, fy: float, axis_seed: int):
        """Sprite for a ball of `radius` px whose centre sits at (fx, fy) within its pixel.

        Returns (rgb (S, S, 3) premultiplied float32, alpha (S, S, 1), half size).
        """
        rq = round(radius * 4) / 4
        ck = (key, rq, fx, fy)
        hit = self.cache.get(ck)
        if hit is not None:
            return hit
        look = self.looks[ball]
        r = max(rq, 0.75)
        half = int(np.ceil(r * 1.4)) + 1
        coords = np.arange(-half, half + 1, dtype=np.float32) + 0.5
        X, Y = np.meshgrid(coords - fx, coords - fy)  # pixel centres relative to the ball centre
        dist = np.sqrt(X**2 + Y**2)
        # shadow: a soft dark ellipse slightly below the ball
        sd = np.sqrt((X / 1.15) ** 2 + ((Y - 0.35 * r) / 0.9) ** 2)
        a_shadow = 0.45 * np.clip(1.0 - sd / (1.15 * r), 0, 1)
        a_ball = np.clip(r - dist + 0.5, 0, 1)
        nx, ny = X / r, -Y / r
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        n = np.stack([nx, ny, -nz], axis=-1)  # facing the camera (camera looks along +z)
        lam = np.clip(n @ self.light, 0, 1)
        spec = np.clip(n @ self.half_vec, 0, 1) ** 40
        base = np.broadcast_to(np.asarray(look.colour, dtype=np.float32), n.shape).copy()
        if look.stripe:
            axis = self.stripe_axis(key, axis_seed)
            band = np.abs(n @ axis) < 0.5
            base[~band] = (0.96, 0.95, 0.9)
        rgb = base * (0.4 + 0.6 * lam[..., None]) + 0.75 * spec[..., None]
        rgb = np.clip(rgb, 0, 1)
        alpha = a_ball + a_shadow * (1 - a_ball)
        prem = rgb * a_ball[..., None]  # the shadow is black: contributes no colour
        if self.blur:
            both = _blur3(np.concatenate([prem, alpha[..., None]], axis=-1))
            prem, alpha = both[..., :3], both[..., 3]
        out = ((prem * 255).astype(np.float32), alpha[..., None].astype(np.float32), half)
        self.cache[ck] = out
        return out


def render_frames(
    background: np.ndarray,
    cam: Camera,
    sprites: BallSprites,
    keys: list[str],
    balls: list[str],
    radius_m: float,
    xyz: np.ndarray,
    on: np.ndarray,
    bake_static: bool = True,
) -> np.ndarray:
    """Frames (F, H, W, 3) uint8. xyz (F, B, 3) ball centres; on (F, B) visibility."""
    F, B = on.shape
    H, W = background.shape[:2]
    # Balls that never move are composited into the background once (a static ball is then drawn
    # under moving ones, which only matters where a moving ball passes behind it in perspective).
    still = on.all(axis=0) & (np.abs(xyz - xyz[:1]).max(axis=(0, 2)) < 1e-9)  # (B,)
    if bake_static and still.any():
        background = render_frames(
            background, cam, sprites, keys, balls, radius_m, xyz[:1], on[:1] & still[None], bake_static=False
        )[0]
        on = on & ~still
    flat = xyz.reshape(-1, 3)
    pix, depth = cam.project(flat)
    pix = pix.reshape(F, B, 2)
    depth = depth.reshape(F, B)
    rad = cam.f * radius_m / np.maximum(depth, 1e-6)  # (F, B) apparent radius, px
    frames = np.empty((F, H, W, 3), dtype=np.uint8)
    for i in range(F):
        frame = frames[i]
        frame[:] = background
        order = np.argsort(-depth[i], kind="stable")  # far to near
        for j in order:
            if not on[i, j]:
                continue
            px, py = pix[i, j]
            ix, iy = int(np.floor(px)), int(np.floor(py))
            fx, fy = round((px - ix) * 4) / 4, round((py - iy) * 4) / 4
            prem, alpha, half = sprites.get(keys[j], balls[j], float(rad[i, j]), fx, fy, j)
            y0, x0 = iy - half, ix - half
            y1, x1 = y0 + prem.shape[0], x0 + prem.shape[1]
            cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, H), min(x1, W)
            if cy0 >= cy1 or cx0 >= cx1:
                continue
            sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
            patch = frame[cy0:cy1, cx0:cx1].astype(np.float32)
            frame[cy0:cy1, cx0:cx1] = (patch * (1 - alpha[sl]) + prem[sl] + 0.5).astype(np.uint8)
    return frames
