"""Shared wording: numbers, lists of balls, pockets, cushions and table regions."""

from __future__ import annotations

from collections import Counter

from .games import ball_phrase, sort_balls

NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                "eighteen", "nineteen", "twenty"]  # fmt: skip


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def plural(n: int, word: str, words: str | None = None) -> str:
    """ "no cushions", "one cushion", "three cushions"."""
    return f"{number_word(n)} {word if n == 1 else (words or word + 's')}"


def join_words(items: list[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def balls_phrase(balls: list[str], game: str) -> str:
    """ "the 3-ball and the 7-ball", "two reds and the blue" (balls sorted, reds counted)."""
    counts = Counter(balls)
    parts = []
    for b in sort_balls(counts):
        if b == "red" and game == "snooker":
            n = counts[b]
            parts.append("a red" if n == 1 else f"{number_word(n)} reds")
        else:
            parts.append(ball_phrase(b, game))
    return join_words(parts)


def balls_short(balls: list[str]) -> str:
    """Canonical short form of a ball multiset: "3, 7", "red, red, blue", "none"."""
    return ", ".join(sort_balls(balls)) if balls else "none"


def pocket_phrase(pocket: str) -> str:
    """ "top-right" -> "top-right corner pocket"; "left-middle" -> "left middle pocket"."""
    if pocket.endswith("-middle"):
        return pocket.replace("-middle", " middle pocket")
    return f"{pocket} corner pocket"


REGION_PHRASES = {
    "centre": "near the centre of the table",
    "top": "in the top part of the table",
    "bottom": "in the bottom part of the table",
    "left": "on the left side of the table",
    "right": "on the right side of the table",
}


def region_phrase(region: str) -> str:
    return REGION_PHRASES.get(region, f"in the {region} area of the table")


# Why a shot was a foul, in words (keys are the `reason` codes of the facts schema in parse.py).
REASON_PHRASES = {
    "scratch": "the cue ball went into a pocket",
    "no-contact": "the cue ball missed every object ball",
    "wrong-ball-first": "the cue ball hit the wrong ball first",
    "no-rail": "no ball reached a cushion after contact",
    "illegal-8-ball": "the 8-ball was potted illegally",
    "wrong-ball-potted": "a ball that was not on was potted",
    "bad-break": "the break did not drive four balls to a cushion or pot a ball",
}
