"""Simulate a shot with pooltool, sample ball positions at frame times, and extract events.

``simulate_shot`` runs pooltool's event-based engine until every ball stops; ``truncate`` cuts a
shot at the clip's maximum duration (events and ball histories after the cut are dropped, so the
ground truth describes exactly what the clip shows). ``sample_positions`` evaluates the exact
ball motion at arbitrary times from the event history (pooltool's own motion equations, no
interpolation). ``extract_events`` turns pooltool events into the canonical, view-relative
events of this package::

    {"t": 0.0,  "type": "strike",   "ball": "cue"}
    {"t": 0.41, "type": "ball_ball", "ball": "cue", "other": "3"}
    {"t": 0.93, "type": "cushion",  "ball": "3", "cushion": "top"}
    {"t": 1.27, "type": "pocket",   "ball": "3", "pocket": "top-right"}
"""

from __future__ import annotations

import numpy as np
import pooltool as pt
import pooltool.constants as const
from pooltool.objects.ball.datatypes import BallHistory, BallState
from pooltool.physics.evolve import evolve_ball_motion

from .camera import View
from .games import canonical_ball, get_game

_CUSHION_TYPES = (pt.EventType.BALL_LINEAR_CUSHION, pt.EventType.BALL_CIRCULAR_CUSHION)


def simulate_shot(system: pt.System) -> pt.System:
    """Simulate in place until all balls are at rest; returns the system."""
    pt.simulate(system, inplace=True)
    return system


def end_time(system: pt.System) -> float:
    return float(system.events[-1].time) if system.events else 0.0


def _evolve(ball: pt.Ball, rvw: np.ndarray, s: int, dt: float) -> tuple[np.ndarray, int]:
    p = ball.params
    return evolve_ball_motion(s, rvw, p.R, p.m, p.u_s, p.u_sp, p.u_r, p.g, dt)


def truncate(system: pt.System, t_cut: float) -> pt.System:
    """A copy of a simulated system as seen up to ``t_cut`` (events and histories cut there)."""
    out = system.copy()
    out.events = [e for e in out.events if e.time <= t_cut]
    for ball in out.balls.values():
        history = BallHistory()
        last = None
        for state in ball.history.states:
            if state.t <= t_cut:
                history.add(state)
                last = state
        rvw, s = _evolve(ball, last.rvw.copy(), last.s, t_cut - last.t)
        history.add(BallState(rvw, s, t_cut))
        ball.history = history
        ball.state = history[-1].copy()
    out.t = t_cut
    return out


def sample_positions(system: pt.System, times: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ball positions at the given times.

    Returns (pooltool ball ids, xyz (F, B, 3), on_table (F, B) bool). A ball leaves the table at
    its pocket event.
    """
    ids = list(system.balls)
    F, B = len(times), len(ids)
    xyz = np.zeros((F, B, 3))
    on = np.ones((F, B), dtype=bool)
    for j, bid in enumerate(ids):
        ball = system.balls[bid]
        rvws, ss, ts = ball.history.vectorize()
        idx = np.clip(np.searchsorted(ts, times, side="right") - 1, 0, len(ts) - 1)
        for i, k in enumerate(idx):
            s = int(ss[k])
            if s == const.pocketed:
                on[i, j] = False
                xyz[i, j] = rvws[k, 0]
            elif s == const.stationary or times[i] <= ts[k]:
                xyz[i, j] = rvws[k, 0]
            else:
                rvw, _ = _evolve(ball, rvws[k].copy(), s, float(times[i] - ts[k]))
                xyz[i, j] = rvw[0]
    return ids, xyz, on


def _segment_point(table: pt.Table, seg_id: str) -> tuple[float, float]:
    segs = table.cushion_segments
    if seg_id in segs.linear:
        s = segs.linear[seg_id]
        m = (s.p1 + s.p2) / 2
        return float(m[0]), float(m[1])
    c = segs.circular[seg_id].center
    return float(c[0]), float(c[1])


def extract_events(system: pt.System, game: str, view: View) -> list[dict]:
    """Canonical, view-relative events in time order (see module docstring)."""
    cue_id = get_game(game).cue_id
    out: list[dict] = []
    for e in system.events:
        et = e.event_type
        t = round(float(e.time), 4)
        if et == pt.EventType.STICK_BALL:
            out.append({"t": t, "type": "strike", "ball": "cue"})
        elif et == pt.EventType.BALL_BALL:
            a, b = e.ids
            if b == cue_id:
                a, b = b, a
            out.append(
                {
                    "t": t,
                    "type": "ball_ball",
                    "ball": canonical_ball(game, a),
                    "other": canonical_ball(game, b),
                }
            )
        elif et in _CUSHION_TYPES:
            bid, seg = e.ids
            x, y = _segment_point(system.table, seg)
            out.append(
                {
                    "t": t,
                    "type": "cushion",
                    "ball": canonical_ball(game, bid),
                    "cushion": view.cushion_name(x, y),
                }
            )
        elif et == pt.EventType.BALL_POCKET:
            bid, pid = e.ids
            c = system.table.pockets[pid].center
            out.append(
                {
                    "t": t,
                    "type": "pocket",
                    "ball": canonical_ball(game, bid),
                    "pocket": view.pocket_name(c[0], c[1]),
                }
            )
    return out
