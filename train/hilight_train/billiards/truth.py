"""Ground-truth summary of a simulated clip, derived from its canonical events and trajectories.

``summarize`` returns a JSON-ready dict (stored per clip in ``events.jsonl``):

- ``duration`` (s, the clip), ``truncated`` (the shot was cut at the maximum duration);
- ``moved``: balls that moved (sorted canonical ids); ``potted``: ``[{"ball","pocket","t"}]`` in
  time order (the cue ball included, a scratch);
- ``first_contact`` (canonical id or None), ``first_contact_t``;
- ``cue_cushions_before_contact`` / ``cue_cushions_after_contact`` / ``cue_cushions_total``
  (before contact counts every cue-ball cushion when nothing is hit);
- ``cue_after_contact``: "follow" | "draw" | "stop" | "side" | None (no contact, or potted);
- ``cue_rest_region``: 3x3 view region where the cue ball stopped (None if potted, or still moving
  when a long shot is cut: ``cue_moving_at_end``);
- ``final``: canonical id -> ``[x, y]`` table coordinates or None if potted (snooker reds are
  listed as ``red#k`` in pooltool order, because they share the canonical id ``red``);
- three-cushion: ``second_contact``, ``cue_cushions_before_second`` (None when the second ball is
  never touched), and ``rules.point``.
"""

from __future__ import annotations

import numpy as np

from .camera import View
from .games import canonical_ball, get_game, sort_balls

MOVE_EPS = 1e-3  # metres


def _classify_after_contact(xy: np.ndarray, times: np.ndarray, t1: float, t_next: float, R: float) -> str:
    """follow / draw / stop / side from the cue ball's path around first contact.

    ``xy`` is a callable-free sampled path: positions at ``times``; incoming direction from
    0.05 s before contact, outgoing displacement at min(t1 + 0.8 s, next cue-ball event).
    """
    p_in = np.array([np.interp(t1 - 0.05, times, xy[:, k]) for k in range(2)])
    p1 = np.array([np.interp(t1, times, xy[:, k]) for k in range(2)])
    t_out = min(t1 + 0.8, t_next)
    p_out = np.array([np.interp(t_out, times, xy[:, k]) for k in range(2)])
    d_in = p1 - p_in
    disp = p_out - p1
    if np.linalg.norm(disp) < 2 * R:
        return "stop"
    if np.linalg.norm(d_in) < 1e-9:
        return "side"
    cosang = float(np.dot(d_in, disp) / (np.linalg.norm(d_in) * np.linalg.norm(disp)))
    if cosang > np.cos(np.radians(45)):
        return "follow"
    if cosang < np.cos(np.radians(135)):
        return "draw"
    return "side"


def summarize(
    game: str,
    events: list[dict],
    ids: list[str],
    dense_t: np.ndarray,
    dense_xyz: np.ndarray,
    dense_on: np.ndarray,
    view: View,
    duration: float,
    truncated: bool,
    rules: dict,
    R: float,
    cue_moving_at_end: bool = False,
) -> dict:
    """Summarise a clip (see module docstring). ``dense_*`` sample the shot finely (F, B, 3)."""
    spec = get_game(game)
    cue_j = ids.index(spec.cue_id)
    start, end = dense_xyz[0, :, :2], dense_xyz[-1, :, :2]
    potted = [
        {"ball": e["ball"], "pocket": e["pocket"], "t": e["t"]} for e in events if e["type"] == "pocket"
    ]
    moved_idx = [
        j for j in range(len(ids)) if np.linalg.norm(end[j] - start[j]) > MOVE_EPS or not dense_on[-1, j]
    ]
    moved = sort_balls(canonical_ball(game, ids[j]) for j in moved_idx)
    cue_hits = [e for e in events if e["type"] == "ball_ball" and e["ball"] == "cue"]
    cue_cush = [e for e in events if e["type"] == "cushion" and e["ball"] == "cue"]
    first = cue_hits[0] if cue_hits else None
    t1 = first["t"] if first else None
    before = [e for e in cue_cush if t1 is None or e["t"] < t1]
    after = [e for e in cue_cush if t1 is not None and e["t"] >= t1]
    cue_potted = any(p["ball"] == "cue" for p in potted)
    cue_after = None
    if first is not None and not cue_potted:
        later = [
            e["t"]
            for e in events
            if e["t"] > t1 + 1e-6 and (e.get("ball") == "cue" or e.get("other") == "cue")
        ]
        t_next = later[0] if later else duration
        cue_after = _classify_after_contact(dense_xyz[:, cue_j, :2], dense_t, t1, t_next, R)
    rest = None if cue_potted or cue_moving_at_end else view.region_name(*end[cue_j])
    final: dict = {}
    reds = 0
    for j, bid in enumerate(ids):
        name = canonical_ball(game, bid)
        if name == "red" and game == "snooker":
            reds += 1
            name = f"red#{reds}"
        final[name] = (
            None if not dense_on[-1, j] else [round(float(end[j, 0]), 4), round(float(end[j, 1]), 4)]
        )
    out = {
        "duration": round(float(duration), 4),
        "truncated": bool(truncated),
        "moved": moved,
        "potted": potted,
        "first_contact": first["other"] if first else None,
        "first_contact_t": t1,
        "cue_cushions_before_contact": len(before),
        "cue_cushions_after_contact": len(after),
        "cue_cushions_total": len(cue_cush),
        "cue_after_contact": cue_after,
        "cue_rest_region": rest,
        "final": final,
        "rules": rules,
    }
    if game == "3cushion":
        hit_order: list[str] = []
        second_t = None
        for e in cue_hits:
            if e["other"] not in hit_order:
                hit_order.append(e["other"])
                if len(hit_order) == 2:
                    second_t = e["t"]
        out["second_contact"] = hit_order[1] if len(hit_order) > 1 else None
        out["cue_cushions_before_second"] = (
            None if second_t is None else len([e for e in cue_cush if e["t"] < second_t])
        )
    return out
