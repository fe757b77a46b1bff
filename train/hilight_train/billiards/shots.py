"""Shot sampler: layouts (break racks, mid-game positions) and cue parameters.

Shot kinds:

- ``break``: the opening rack, cue ball behind the head string, hard shot at the apex ball;
- ``pot``: aim an object ball at a chosen pocket through the ghost-ball point, with a Gaussian
  aim error (a few degrees at most) so that some shots miss;
- ``kick``: cushion-first, aimed at the mirror image of an object ball across a rail;
- ``safety``: a soft thin cut;
- ``random``: any direction and speed;
- ``carom``: three-cushion candidates (searched in :mod:`.simulate` so about half score).

Cue parameters follow pooltool's ``Cue``: speed ``V0`` (m/s), direction ``phi`` (degrees),
elevation ``theta`` (degrees), side spin ``a`` and top/draw ``b`` (fractions of the radius).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pooltool as pt
import pooltool.constants as const

from .games import get_game
from .tables import full_rack, mid_game_layout

SHOT_WEIGHTS = {
    "9ball": {"break": 0.08, "pot": 0.55, "kick": 0.12, "safety": 0.12, "random": 0.13},
    "8ball": {"break": 0.08, "pot": 0.55, "kick": 0.12, "safety": 0.12, "random": 0.13},
    "snooker": {"break": 0.06, "pot": 0.57, "kick": 0.12, "safety": 0.12, "random": 0.13},
    "3cushion": {"carom": 1.0},
}


@dataclass
class Shot:
    """Everything needed to regenerate a shot: layout, cue parameters and the player's intent."""

    game: str
    kind: str
    V0: float
    phi: float
    theta: float
    a: float
    b: float
    positions: dict[str, list[float]]  # pooltool id -> [x, y]
    target: str | None = None  # pooltool id of the aimed object ball
    pocket: str | None = None  # pooltool id of the aimed pocket
    aim_error_deg: float = 0.0  # pot: intended object-ball heading error; others: cue direction error
    rules: dict = field(default_factory=dict)  # ruleset context (group, ball_call, break)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("V0", "phi", "theta", "a", "b", "aim_error_deg"):
            d[k] = round(float(d[k]), 6)
        d["positions"] = {
            k: [round(float(v[0]), 6), round(float(v[1]), 6)] for k, v in self.positions.items()
        }
        return d


def build_system(shot: Shot, table: pt.Table) -> pt.System:
    """A pooltool System with the shot's ball positions and cue parameters set (not simulated)."""
    game = get_game(shot.game)
    params = pt.BallParams.default(game_type=pt.GameType(game.pooltool_game))
    balls = {bid: pt.Ball.create(bid, xy=tuple(xy), **_params(params)) for bid, xy in shot.positions.items()}
    system = pt.System(cue=pt.Cue(cue_ball_id=game.cue_id), table=table, balls=balls)
    system.strike(V0=shot.V0, phi=shot.phi % 360.0, theta=shot.theta, a=shot.a, b=shot.b)
    return system


def _params(params: pt.BallParams) -> dict:
    import attrs

    return attrs.asdict(params)


def _angle(v) -> float:
    return math.degrees(math.atan2(v[1], v[0])) % 360.0


def _spin(rng: np.random.Generator, scale: float = 0.5) -> tuple[float, float, float]:
    """(a, b, theta): side, top/draw within a miscue-safe disc, small elevation."""
    while True:
        a, b = rng.uniform(-scale, scale, size=2)
        if a * a + b * b <= scale * scale:
            break
    theta = float(rng.choice([0.0, rng.uniform(0.0, 8.0), rng.uniform(5.0, 15.0)], p=[0.3, 0.55, 0.15]))
    return float(a), float(b), theta


def pocket_aim_point(table: pt.Table, pid: str) -> np.ndarray:
    """Where a potted ball should cross into the pocket: the middle of the pocket mouth.

    Aiming at the pocket centre (outside the cushion corner) sends balls near a rail into it, so
    corner shots aim at the mouth between the jaws, side shots at the middle of the side opening.
    """
    w, l = table.w, table.l  # noqa: E741
    x = 0.0 if pid[0] == "l" else w
    sx = 1.0 if pid[0] == "l" else -1.0
    if pid[1] == "c":
        return np.array([x, l / 2])
    y, sy = (0.0, 1.0) if pid[1] == "b" else (l, -1.0)
    inset = 0.03 if table.table_type == pt.TableType.SNOOKER else 0.042
    return np.array([x + sx * inset, y + sy * inset])


def _pocket_candidates(table: pt.Table, cue: np.ndarray, obj: np.ndarray, R: float):
    """Makeable pockets (cut below 70 degrees, side pockets approached steeply enough):
    list of (pocket_id, ghost_xy, cut_deg, aim_point)."""
    out = []
    for pid in table.pockets:
        p = pocket_aim_point(table, pid)
        d = p - obj
        dist = np.linalg.norm(d)
        if dist < 3 * R:
            continue
        d = d / dist
        if pid[1] == "c" and abs(d[0]) < np.cos(np.radians(50)):
            continue
        ghost = obj - 2 * R * d
        aim = ghost - cue
        if np.linalg.norm(aim) < 2 * R:
            continue
        cut = math.degrees(math.acos(np.clip(np.dot(aim / np.linalg.norm(aim), d), -1, 1)))
        if cut < 70:
            out.append((pid, ghost, cut, p))
    return out


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def _heading_error(shot: Shot, table: pt.Table, phi: float, goal: np.ndarray) -> float | None:
    """Signed angle (deg) by which the target ball misses ``goal`` after being struck, or None.

    The target leaves the collision sliding (throw gives it spin), so its path curves until it
    rolls; the error is measured along its line once it rolls.
    """
    trial = Shot(**{**shot.__dict__, "phi": phi % 360.0})
    system = build_system(trial, table)
    pt.simulate(system, inplace=True, max_events=30)
    cue = system.cue.cue_ball_id
    t_hit = None
    for e in system.events:
        if e.event_type == pt.EventType.BALL_BALL and cue in e.ids:
            if shot.target not in e.ids:
                return None
            t_hit = e.time
            break
    if t_hit is None:
        return None
    for state in system.balls[shot.target].history.states:
        if state.t > t_hit and state.s == const.rolling:
            r, v = state.rvw[0], state.rvw[1]
            if np.hypot(v[0], v[1]) < 1e-9:
                return None
            return _wrap(_angle(v[:2]) - _angle(goal - r[:2]))
    return None


def refine_aim(
    shot: Shot, table: pt.Table, phi0: float, goal: np.ndarray, miss_deg: float = 0.0, iters: int = 6
) -> float:
    """Cue direction that sends the target ball ``miss_deg`` degrees off the line to ``goal``.

    The ghost-ball aim ignores throw and spin, and a thin cut multiplies a cue-direction error many
    times, so the aim is corrected with secant iterations on short simulations (up to the target
    rolling). The intended error is an error of the object ball's heading, as a player's is.
    """
    f0 = _heading_error(shot, table, phi0, goal)
    if f0 is None:
        return phi0
    f0 -= miss_deg
    phi1 = phi0 + 0.05
    for _ in range(iters):
        f1 = _heading_error(shot, table, phi1, goal)
        if f1 is None:
            return phi0
        f1 -= miss_deg
        if abs(f1) < 0.05 or abs(f1 - f0) < 1e-9:
            return phi1
        step = -f1 * (phi1 - phi0) / (f1 - f0)
        phi0, f0, phi1 = phi1, f1, phi1 + float(np.clip(step, -3.0, 3.0))
    return phi1


def _pick_target(game: str, ids: list[str], rng: np.random.Generator) -> str:
    """The object ball the player aims at: usually the legal one, sometimes not (fouls)."""
    if game == "9ball":
        lowest = min(ids, key=int)
        return lowest if rng.random() < 0.8 else str(rng.choice(ids))
    return str(rng.choice(ids))


def _rules_context(
    game: str, ids_on_table: list[str], target: str | None, pocket: str | None, is_break: bool, rng
):
    """Which balls are 'on' for the ruleset (8-ball group, snooker reds/colours)."""
    ctx: dict = {"break": is_break}
    if game == "8ball":
        solids = [b for b in ids_on_table if b.isdigit() and 1 <= int(b) <= 7]
        stripes = [b for b in ids_on_table if b.isdigit() and int(b) >= 9]
        if is_break:
            group = "undecided"
        elif target == "8" and rng.random() < 0.7:
            group = "eight"
        elif target in solids and rng.random() < 0.75:
            group = "solids"
        elif target in stripes and rng.random() < 0.75:
            group = "stripes"
        else:
            group = str(rng.choice(["undecided", "solids", "stripes"]))
        if (group == "solids" and not solids) or (group == "stripes" and not stripes):
            group = "eight"
        ctx["group"] = group
        ctx["pocket_call"] = pocket if target == "8" else None
    elif game == "snooker":
        reds = [b for b in ids_on_table if b.startswith("red_")]
        if is_break or (reds and (target is None or target.startswith("red_")) and rng.random() < 0.85):
            ctx["on"] = "reds" if reds else "colours"
        else:
            ctx["on"] = "colours"
        colours = [b for b in ids_on_table if not b.startswith("red_") and b != "white"]
        if ctx["on"] == "colours":
            ctx["ball_call"] = (
                target if target in colours else (str(rng.choice(colours)) if colours else None)
            )
    return ctx


@dataclass
class _Layout:
    """The balls a shot starts from, as the kind samplers see them."""

    game: str
    table: pt.Table
    pos: dict[str, np.ndarray]  # pooltool id -> (x, y)
    objects: list[str]  # every ball but the cue ball
    cue_xy: np.ndarray
    R: float  # ball radius


@dataclass
class _Aim:
    """What a kind sampler decides: speed, direction, cue-tip offsets and elevation, intent."""

    V0: float
    phi: float
    a: float
    b: float
    theta: float
    target: str | None = None
    pocket: str | None = None
    err: float = 0.0


def _break_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    pos, objects, table = lay.pos, lay.objects, lay.table
    apex = min(objects, key=lambda o: abs(pos[o][1] - 0.77 * table.l) + abs(pos[o][0] - 0.5 * table.w))
    if lay.game == "snooker":  # a soft break off the side of the pack
        side = min(objects, key=lambda o: (pos[o][1], -abs(pos[o][0] - 0.5 * table.w)))
        target, V0 = side, rng.uniform(3.0, 5.0)
    else:
        target, V0 = apex, rng.uniform(5.0, 8.0)
    err = float(rng.normal(0, 0.6))
    phi = _angle(pos[target] - lay.cue_xy) + err
    a, b, theta = float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.3, 0.2)), float(rng.uniform(0, 5))
    return _Aim(V0, phi, a, b, theta, target=target, err=err)


def _pot_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    """Aim a chosen object ball (or, when it has no open pocket, up to three others) at a pocket."""
    a, b, theta = spin
    order = list(rng.permutation(lay.objects))
    first = _pick_target(lay.game, lay.objects, rng)
    order = [first] + [o for o in order if o != first]
    for tgt in order[:4]:
        cands = _pocket_candidates(lay.table, lay.cue_xy, lay.pos[tgt], lay.R)
        if not cands:
            continue
        pid, ghost, _, mouth = cands[int(rng.integers(len(cands)))]
        err = float(rng.normal(0, rng.choice([0.5, 1.5, 4.0], p=[0.5, 0.3, 0.2])))
        phi = _angle(ghost - lay.cue_xy)
        positions = {k: list(v) for k, v in lay.pos.items()}
        aim = Shot(lay.game, "pot", 1.0, phi, theta, a, b, positions, target=tgt)
        style = rng.choice(["follow", "draw", "stun", "any"], p=[0.3, 0.3, 0.15, 0.25])
        if style == "follow":
            b = float(rng.uniform(0.2, 0.5))
        elif style == "draw":
            b = float(rng.uniform(-0.6, -0.3))
        elif style == "stun":
            b = float(rng.uniform(-0.2, 0.0))
        aim.b = b
        aim.V0 = V0 = float(rng.uniform(0.8, 3.5))
        phi = refine_aim(aim, lay.table, phi, mouth, miss_deg=err)
        return _Aim(V0, phi, a, b, theta, target=tgt, pocket=pid, err=err)
    target = order[0]  # nothing makeable: hit the first target full
    return _Aim(rng.uniform(0.8, 3.5), _angle(lay.pos[target] - lay.cue_xy), a, b, theta, target=target)


def _kick_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    """Cushion first: aim at the object ball's mirror image across a rail."""
    a, b, theta = spin
    target = _pick_target(lay.game, lay.objects, rng)
    o, R, table = lay.pos[target].copy(), lay.R, lay.table
    rail = int(rng.integers(4))
    if rail == 0:
        o[0] = -o[0] + 2 * R
    elif rail == 1:
        o[0] = 2 * (table.w - R) - o[0]
    elif rail == 2:
        o[1] = -o[1] + 2 * R
    else:
        o[1] = 2 * (table.l - R) - o[1]
    err = float(rng.normal(0, 1.0))
    phi = _angle(o - lay.cue_xy) + err
    return _Aim(rng.uniform(1.5, 4.5), phi, a * 0.3, b * 0.5, theta, target=target, err=err)


def _safety_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    """A soft thin cut of an object ball."""
    target = _pick_target(lay.game, lay.objects, rng)
    d = lay.pos[target] - lay.cue_xy
    dist = max(float(np.linalg.norm(d)), 2 * lay.R)
    off = math.degrees(math.asin(min(1.0, 2 * lay.R * rng.uniform(0.6, 0.97) / dist)))
    err = float(rng.choice([-1.0, 1.0]) * off)
    return _Aim(rng.uniform(0.6, 2.0), _angle(d) + err, *spin, target=target, err=err)


def _random_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    phi = rng.uniform(0, 360)
    return _Aim(rng.uniform(0.5, 4.0), phi, *spin)


def _carom_shot(lay: _Layout, spin, rng: np.random.Generator) -> _Aim:
    """Three-cushion candidates: any direction, or (70%) one object ball with a random cut."""
    _, b, theta = spin
    phi = rng.uniform(0, 360)
    V0 = rng.uniform(2.0, 5.5)
    target = None
    if rng.random() < 0.7:
        target = str(rng.choice(lay.objects))
        d = lay.pos[target] - lay.cue_xy
        dist = max(float(np.linalg.norm(d)), 2 * lay.R)
        phi = _angle(d) + math.degrees(math.asin(min(1.0, 2 * lay.R * rng.uniform(-0.95, 0.95) / dist)))
    return _Aim(V0, phi, float(rng.uniform(-0.5, 0.5)), b, theta, target=target)


_KIND_SAMPLERS = {
    "break": _break_shot,
    "pot": _pot_shot,
    "kick": _kick_shot,
    "safety": _safety_shot,
    "random": _random_shot,
    "carom": _carom_shot,
}


def _layout(game: str, table: pt.Table, kind: str, rng: np.random.Generator) -> dict[str, pt.Ball]:
    """The balls: a full rack with the cue ball behind the head string for a break, else a mid-game layout."""
    if kind != "break":
        return mid_game_layout(game, table, rng)
    balls = full_rack(game, table, seed=int(rng.integers(2**31)))
    x = rng.uniform(0.3, 0.7) * table.w
    y = rng.uniform(0.15, 0.24) * table.l
    balls[get_game(game).cue_id].state.rvw[0, :2] = (x, y)
    return balls


def sample_shot(game: str, table: pt.Table, rng: np.random.Generator, kind: str | None = None) -> Shot:
    """Sample a layout and a shot for a game (deterministic given ``rng``): the kind (by ``SHOT_WEIGHTS``
    unless given), the layout, then the kind's sampler."""
    if kind is None:
        weights = SHOT_WEIGHTS[game]
        kinds = list(weights)
        kind = str(rng.choice(kinds, p=np.array([weights[k] for k in kinds]) / sum(weights.values())))
    if kind not in _KIND_SAMPLERS:
        raise ValueError(f"unknown shot kind {kind!r}")
    balls = _layout(game, table, kind, rng)
    cue_id = get_game(game).cue_id
    pos = {bid: b.state.rvw[0, :2].copy() for bid, b in balls.items()}
    lay = _Layout(
        game, table, pos, [bid for bid in balls if bid != cue_id], pos[cue_id], balls[cue_id].params.R
    )
    aim = _KIND_SAMPLERS[kind](lay, _spin(rng), rng)
    return Shot(
        game=game,
        kind=kind,
        V0=float(aim.V0),
        phi=float(aim.phi) % 360.0,
        theta=float(aim.theta),
        a=float(aim.a),
        b=float(aim.b),
        positions={bid: [float(v[0]), float(v[1])] for bid, v in pos.items()},
        target=aim.target,
        pocket=aim.pocket,
        aim_error_deg=float(aim.err),
        rules=_rules_context(game, list(balls), aim.target, aim.pocket, kind == "break", rng),
    )
