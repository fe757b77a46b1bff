"""Tables, racks and mid-game layouts for each game, built with pooltool.

Table coordinates are pooltool's: the playing surface spans ``x in [0, w]`` (the short side)
and ``y in [0, l]`` (the long side); balls are racked near ``y = 0.77 l`` ("foot") and the
cue ball starts near ``y = 0.23 l`` ("head").
"""

from __future__ import annotations

import attrs
import numpy as np
import pooltool as pt
from pooltool.layouts import _game_rack_map  # the per-game rack builders (get_rack has no seed)
from pooltool.objects.table.layout import create_pocket_table_cushion_segments, create_pocket_table_pockets
from pooltool.objects.table.specs import SnookerTableSpecs

from .games import get_game


def make_table(game: str) -> pt.Table:
    """The standard pooltool table of a game (7-ft pool, 12-ft snooker, 10-ft carom).

    ``Table.from_game_type`` fails for snooker in pooltool 0.3.3 (it asserts pocket-table specs),
    so the snooker table is assembled from its specs here.
    """
    spec = get_game(game)
    if game == "snooker":
        specs = SnookerTableSpecs()
        return pt.Table(
            cushion_segments=create_pocket_table_cushion_segments(specs),
            pockets=create_pocket_table_pockets(specs),
            table_type=specs.table_type,
        )
    return pt.Table.from_game_type(pt.GameType(spec.pooltool_game))


# The interchangeable ids of each opening rack (pooltool's rack blueprints: any id of a group may take any of
# the group's spots). pooltool deals them with `random.choice(list(a_set))`, whose order follows str hashing,
# so its deal changes with PYTHONHASHSEED; `full_rack` keeps its spots and deals each group again from the seed.
RACK_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "9ball": (tuple(str(i) for i in range(2, 9)),),
    "8ball": (tuple(str(i) for i in range(1, 8)), tuple(str(i) for i in range(9, 16))),
    "snooker": (tuple(f"red_{i:02d}" for i in range(1, 16)),),
}


def full_rack(game: str, table: pt.Table, seed: int) -> dict[str, pt.Ball]:
    """The game's opening rack: pooltool's spots (seeded; they do not depend on the hash seed) with each
    group of interchangeable ids (``RACK_GROUPS``) dealt to its spots by a generator of ``seed`` alone."""
    gt = pt.GameType(get_game(game).pooltool_game)
    balls = _game_rack_map[gt](table, seed=seed)  # insertion order = the blueprint's spot order
    rng = np.random.default_rng([seed, 0x5ACC])
    renamed: dict[str, str] = {}
    for group in RACK_GROUPS.get(game, ()):
        spots = [ball_id for ball_id in balls if ball_id in group]  # the group's spots, in blueprint order
        renamed.update(zip(spots, rng.permutation(sorted(spots)).tolist(), strict=True))
    return {renamed.get(k, k): attrs.evolve(b, id=renamed.get(k, k)) for k, b in balls.items()}


def _ball_params(game: str) -> pt.BallParams:
    return pt.BallParams.default(game_type=pt.GameType(get_game(game).pooltool_game))


def mid_game_layout(game: str, table: pt.Table, rng: np.random.Generator) -> dict[str, pt.Ball]:
    """Random legal mid-game positions: some balls already potted, the rest scattered.

    No ball overlaps another or a cushion. 9-ball keeps a contiguous tail of the rack (lowest
    balls potted first, plus random extra removals), 8-ball and snooker keep a random subset.
    """
    spec = get_game(game)
    params = _ball_params(game)
    R = params.R
    ids = list(spec.ball_ids)
    if game == "9ball":
        lowest = int(rng.integers(1, 8))  # balls below `lowest` are gone
        keep = [b for b in ids if int(b) >= lowest]
        keep = [b for b in keep if b == "9" or b == str(lowest) or rng.random() < 0.7]
    elif game == "8ball":
        keep = [b for b in ids if b == "8" or rng.random() < rng.uniform(0.3, 0.8)]
    elif game == "snooker":
        n_red = int(rng.integers(0, 9))
        reds = [b for b in ids if b.startswith("red_")][:n_red]
        colours = [b for b in ids if not b.startswith("red_") and rng.random() < 0.75]
        keep = reds + (colours or ["black"])
    else:
        keep = ids
    keep = [spec.cue_id, *keep]
    w, l = table.w, table.l  # noqa: E741
    placed: list[tuple[float, float]] = []
    balls: dict[str, pt.Ball] = {}
    margin = 1.5 * R
    for bid in keep:
        for _ in range(1000):
            x = rng.uniform(margin, w - margin)
            y = rng.uniform(margin, l - margin)
            if all((x - px) ** 2 + (y - py) ** 2 > (2.2 * R) ** 2 for px, py in placed):
                break
        else:
            raise RuntimeError(f"could not place ball {bid} on the {game} table")
        placed.append((x, y))
        balls[bid] = pt.Ball.create(bid, xy=(x, y), **attrs.asdict(params))
    return balls
