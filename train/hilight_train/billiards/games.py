"""Game types, their tables, ball sets, canonical ball ids and colours.

pooltool names balls per game ("cue", "1".."15"; snooker "white", "red_01".., "black";
carom "white", "yellow", "red"). The data engine speaks one canonical vocabulary:

- the cue ball is always ``"cue"`` (pooltool's "white" in snooker and three-cushion);
- pool balls are their numbers ``"1"``..``"15"``;
- snooker reds all map to ``"red"`` (lists of reds are multisets, e.g. ``["red", "red"]``),
  colours are ``"yellow" "green" "brown" "blue" "pink" "black"``;
- carom object balls are ``"yellow"`` and ``"red"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAMES = ("9ball", "8ball", "snooker", "3cushion")

# RGB in [0, 1]
POOL_COLOURS = {
    1: (0.98, 0.78, 0.05),  # yellow
    2: (0.05, 0.22, 0.75),  # blue
    3: (0.85, 0.08, 0.06),  # red
    4: (0.38, 0.10, 0.55),  # purple
    5: (0.98, 0.45, 0.05),  # orange
    6: (0.05, 0.50, 0.20),  # green
    7: (0.50, 0.06, 0.08),  # maroon
    8: (0.04, 0.04, 0.04),  # black
}
SNOOKER_COLOURS = {
    "red": (0.78, 0.04, 0.04),
    "yellow": (0.97, 0.85, 0.10),
    "green": (0.05, 0.45, 0.15),
    "brown": (0.42, 0.22, 0.08),
    "blue": (0.08, 0.25, 0.80),
    "pink": (0.98, 0.55, 0.65),
    "black": (0.04, 0.04, 0.04),
}
CUE_COLOUR = (0.96, 0.95, 0.90)
CAROM_COLOURS = {"yellow": (0.98, 0.82, 0.12), "red": (0.82, 0.06, 0.05)}
SNOOKER_VALUES = {"red": 1, "yellow": 2, "green": 3, "brown": 4, "blue": 5, "pink": 6, "black": 7}


@dataclass(frozen=True)
class BallLook:
    """How a ball is drawn: base colour, and whether it is a stripe (white with a colour band)."""

    colour: tuple[float, float, float]
    stripe: bool = False


@dataclass(frozen=True)
class Game:
    """A game type: its pooltool game, cue ball id, ball ids and pockets."""

    name: str
    pooltool_game: str  # pooltool GameType value
    cue_id: str  # pooltool id of the cue ball
    ball_ids: tuple[str, ...]  # pooltool ids of all object balls in a full rack
    pockets: bool = True
    display: str = ""
    extra: dict = field(default_factory=dict)


GAME_SPECS: dict[str, Game] = {
    "9ball": Game("9ball", "nineball", "cue", tuple(str(i) for i in range(1, 10)), display="9-ball"),
    "8ball": Game("8ball", "eightball", "cue", tuple(str(i) for i in range(1, 16)), display="8-ball"),
    "snooker": Game(
        "snooker",
        "snooker",
        "white",
        (*(f"red_{i:02d}" for i in range(1, 16)), "yellow", "green", "brown", "blue", "pink", "black"),
        display="snooker",
    ),
    "3cushion": Game(
        "3cushion", "threecushion", "white", ("yellow", "red"), pockets=False, display="three-cushion"
    ),
}


def get_game(name: str) -> Game:
    """Look up a game by name (one of ``GAMES``)."""
    if name not in GAME_SPECS:
        raise ValueError(f"unknown game {name!r}; choose from {', '.join(GAMES)}")
    return GAME_SPECS[name]


def canonical_ball(game: str, pooltool_id: str) -> str:
    """Map a pooltool ball id to the canonical id of this package (see module docstring)."""
    if pooltool_id == GAME_SPECS[game].cue_id:
        return "cue"
    if pooltool_id.startswith("red_"):
        return "red"
    return pooltool_id


def ball_sort_key(ball: str) -> tuple:
    """Sort key for canonical ids: cue first, numbers numerically, then snooker order, then names."""
    if ball == "cue":
        return (0, 0, "")
    if ball.isdigit():
        return (1, int(ball), "")
    if ball in SNOOKER_VALUES:
        return (2, SNOOKER_VALUES[ball], ball)
    return (3, 0, ball)


def sort_balls(balls) -> list[str]:
    """Sorted list (a multiset: duplicates kept) of canonical ball ids."""
    return sorted(balls, key=ball_sort_key)


def ball_look(game: str, ball: str) -> BallLook:
    """Colour and stripe flag of a canonical ball id in a game."""
    if ball == "cue":
        return BallLook(CUE_COLOUR)
    if game in ("9ball", "8ball"):
        n = int(ball)
        return BallLook(POOL_COLOURS[(n - 1) % 8 + 1] if n != 8 else POOL_COLOURS[8], stripe=n > 8)
    if game == "snooker":
        return BallLook(SNOOKER_COLOURS[ball])
    return BallLook(CAROM_COLOURS[ball])


def ball_phrase(ball: str, game: str = "", article: str = "the") -> str:
    """Natural-language name of a canonical ball.

    "the 3-ball", "the cue ball", snooker "a red" / "the blue", carom "the red ball".
    """
    if ball == "cue":
        return f"{article} cue ball"
    if ball.isdigit():
        return f"{article} {ball}-ball"
    if game == "3cushion":
        return f"{article} {ball} ball"
    if ball == "red":
        return "a red"
    return f"{article} {ball}"
