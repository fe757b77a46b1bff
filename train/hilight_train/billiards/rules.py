"""Rules outcome of a shot, decided by pooltool's rule sets.

The legality functions of each game's pooltool rule set judge the shot from its events and ball
histories (given the shot's constraints: the 8-ball group, the snooker ball on):

- 9-ball (``_NineBall``): the lowest ball must be hit first, no scratch, and after contact some
  ball must reach a cushion unless a ball is potted; breaks need a pot or four balls to rails;
- 8-ball (``_EightBall``): the player's group (open table, solids, stripes or the 8) must be hit
  first, no scratch, a cushion after contact unless a pot, the 8 only when on it and in the
  called pocket;
- snooker (``_Snooker``): a ball "on" (a red, or the nominated colour) must be hit first, no ball
  that is not on may be potted, no in-off;
- three-cushion (``_ThreeCushion``): the point scores when the cue ball touches both object balls
  and at least three cushions before it first touches the second.

pooltool's reason strings are mapped to canonical reason codes (``REASONS``).
"""

from __future__ import annotations

import pooltool as pt
from pooltool.ruleset import BallInHandOptions, ShotConstraints, eight_ball, nine_ball, three_cushion
from pooltool.ruleset.eight_ball import BallGroup as EightGroup
from pooltool.ruleset.snooker import core as snooker_core
from pooltool.ruleset.snooker.balls import BallGroup as SnookerGroup

REASONS = (
    "scratch",  # the cue ball went into a pocket
    "no-contact",  # the cue ball touched no object ball
    "wrong-ball-first",  # the first ball touched was not a legal target
    "no-rail",  # no ball reached a cushion after contact and nothing was potted
    "illegal-8-ball",  # 8-ball: the 8 potted out of turn or in an uncalled pocket
    "wrong-ball-potted",  # snooker: a ball that was not on was potted
    "bad-break",  # break: no pot and fewer than four balls reached a cushion
)

_REASON_MAP = {
    "Cue ball in pocket!": "scratch",
    "No ball contacted": "no-contact",
    "No ball contacted!": "no-contact",
    "Lowest ball not hit first": "wrong-ball-first",
    "First contact wasn't made with target balls": "wrong-ball-first",
    "First contact made with a ball that's not on!": "wrong-ball-first",
    "Cushion not contacted after first contact": "no-rail",
    "8-ball sunk illegally (out of turn or wrong pocket)!": "illegal-8-ball",
    "Pocketed a ball that's not on!": "wrong-ball-potted",
    "4 rails must be contacted, or 1 ball potted": "bad-break",
}


_EIGHT_GROUPS = {
    "undecided": EightGroup.UNDECIDED,
    "solids": EightGroup.SOLIDS,
    "stripes": EightGroup.STRIPES,
    "eight": EightGroup.EIGHT,
}


def constraints(game: str, ctx: dict) -> ShotConstraints:
    """pooltool ShotConstraints for the shot's context (who is on what)."""
    if game == "8ball":
        return ShotConstraints(
            ball_in_hand=BallInHandOptions.NONE,
            movable=[],
            cueable=["cue"],
            hittable=_EIGHT_GROUPS[ctx.get("group", "undecided")].balls,
            call_shot=ctx.get("pocket_call") is not None,
            ball_call="8" if ctx.get("pocket_call") else None,
            pocket_call=ctx.get("pocket_call"),
        )
    if game == "snooker":
        on_colours = ctx.get("on") == "colours"
        return ShotConstraints(
            ball_in_hand=BallInHandOptions.NONE,
            movable=[],
            cueable=["white"],
            hittable=(SnookerGroup.COLORS if on_colours else SnookerGroup.REDS).balls,
            call_shot=on_colours,
            ball_call=ctx.get("ball_call") if on_colours else None,
        )
    if game == "3cushion":
        return ShotConstraints(
            ball_in_hand=BallInHandOptions.NONE, movable=[], cueable=["white"], hittable=(), call_shot=False
        )
    return ShotConstraints(
        ball_in_hand=BallInHandOptions.NONE, movable=[], cueable=["cue"], hittable=(), call_shot=False
    )


def judge(system: pt.System, game: str, ctx: dict) -> dict:
    """Rules outcome: ``{"foul": bool, "reason": code or None, "reason_text": pooltool's, "point": bool|None}``.

    Uses the legality functions of pooltool's rule sets (not their scoring, which assumes a
    whole game was played from the rack). ``point`` is set for three-cushion only (then ``foul``
    is False: a miss is no foul there).
    """
    c = constraints(game, ctx)
    if game == "3cushion":
        return {
            "foul": False,
            "reason": None,
            "reason_text": "",
            "point": not three_cushion.is_turn_over(system, c),
        }
    if game == "9ball":
        legal, text = nine_ball.is_legal(system, break_shot=bool(ctx.get("break")))
    elif game == "8ball":
        legal, text = eight_ball.is_legal(system, c, break_shot=bool(ctx.get("break")))
    else:
        legal, text = snooker_core.is_legal(system, c)
    text = str(text)
    if legal:
        return {"foul": False, "reason": None, "reason_text": "", "point": None}
    if text not in _REASON_MAP:
        raise ValueError(f"unmapped pooltool foul reason {text!r}; add it to rules._REASON_MAP")
    return {"foul": True, "reason": _REASON_MAP[text], "reason_text": text, "point": None}
