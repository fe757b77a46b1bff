"""Parse answer text (a model's or ours) back into structured facts for exact scoring.

``parse_answer(qtype, text) -> facts`` returns None when the text cannot be read. It accepts the
canonical short form and every sentence form of :mod:`.qa`, plus close paraphrases.

Facts schema per question type (what ``annotations.json`` stores in ``facts``):

======================== ============================================================================
question type             facts
======================== ============================================================================
potted_balls              sorted list of canonical ball ids, cue ball excluded; a multiset for
                          snooker reds (``["red", "red", "blue"]``); ``[]`` when nothing was potted
potted_count              int, object balls potted (cue ball excluded)
scratch                   bool, the cue ball went into a pocket
first_contact             canonical ball id of the first object ball the cue ball touched, or "none"
pocket_of_ball            pocket id: "top-left" "top-right" "bottom-left" "bottom-right"
                          "top-middle" "bottom-middle" "left-middle" "right-middle" (as seen in the
                          picture; see :mod:`.camera`), or "none" when the named ball was not potted
cushions_before_contact   int, cue-ball cushion contacts before its first ball contact
cue_cushions_total        int, all cue-ball cushion contacts in the clip
ball_moved                bool, the named ball moved (potted counts as moved)
first_potted              canonical ball id of the first ball to drop (may be "cue"), or "none"
pot_time                  float, seconds from the start of the clip to the ball's pocket event,
                          rounded to one decimal, or "none" when the named ball was not potted
foul                      bool, the shot was a foul under the game's rules
foul_reason               {"foul": bool, "reason": code or None}; codes in ``rules.REASONS``:
                          "scratch" "no-contact" "wrong-ball-first" "no-rail" "illegal-8-ball"
                          "wrong-ball-potted" "bad-break"
cue_after_contact         "follow" | "draw" | "stop" | "side"
cue_rest_region           3x3 region of the picture's table: "top-left" "top" "top-right" "left"
                          "centre" "right" "bottom-left" "bottom" "bottom-right"
tc_point                  bool, three-cushion point scored
tc_cushions_before_second int, cue-ball cushions before it first touched the second object ball
tc_first_ball             "yellow" | "red" | "none"
caption                   list of event dicts sorted by JSON text (schema in :mod:`.captions`)
======================== ============================================================================

Canonical ball ids: "cue", "1".."15", snooker "red" "yellow" "green" "brown" "blue" "pink"
"black", carom "yellow" "red".
"""

from __future__ import annotations

import re

from .captions import parse_caption
from .games import sort_balls
from .phrases import NUMBER_WORDS, REASON_PHRASES

_COLOURS = ("yellow", "green", "brown", "blue", "pink", "black")
_COUNT_WORDS = {w: i for i, w in enumerate(NUMBER_WORDS)} | {"a": 1, "an": 1, "zero": 0, "none": 0}
_BALL_RE = re.compile(
    r"(?P<cue>\bcue(?:[- ]?ball)?\b)"
    r"|(?P<num>\b\d{1,2}\b)(?:[- ]?ball\b)?(?!\.\d)"
    r"|(?:\b(?P<count>a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+)\s+)?(?P<red>\breds?\b)"
    r"|(?P<colour>\b(?:yellow|green|brown|blue|pink|black)\b)",
    re.IGNORECASE,
)


def find_balls(text: str) -> list[str]:
    """Canonical ball ids mentioned in text, in order ("two reds" gives two "red")."""
    out: list[str] = []
    for m in _BALL_RE.finditer(text):
        if m.group("cue"):
            out.append("cue")
        elif m.group("num"):
            n = int(m.group("num"))
            if 1 <= n <= 15:
                out.append(str(n))
        elif m.group("red"):
            c = m.group("count")
            k = 1 if c is None else (int(c) if c.isdigit() else _COUNT_WORDS[c.lower()])
            out.extend(["red"] * max(k, 1))
        elif m.group("colour"):
            out.append(m.group("colour").lower())
    return out


def _strip_balls(text: str) -> str:
    return re.sub(r"\b\d{1,2}[- ]?ball\b", " ", text, flags=re.IGNORECASE)


def parse_count(text: str) -> int | None:
    t = _strip_balls(text).lower()
    for tok in re.findall(r"[a-z]+|\d+", t):
        if tok.isdigit():
            return int(tok)
        if tok in _COUNT_WORDS and tok not in ("a", "an"):
            return _COUNT_WORDS[tok]
        if tok == "nothing":
            return 0
    return None


def parse_yes_no(text: str) -> bool | None:
    m = re.match(r"\W*(yes|yeah|yep|true|correct|no|nope|false)\b", text.strip(), re.IGNORECASE)
    if not m:
        return None
    return m.group(1).lower() in ("yes", "yeah", "yep", "true", "correct")


_NONE_RE = re.compile(r"\b(none|nothing|no balls?|neither|missed|did not hit|didn't hit|touched no)\b", re.I)


def _one_ball(text: str, exclude_cue: bool) -> str | None:
    balls = [b for b in find_balls(text) if not (exclude_cue and b == "cue")]
    if balls:
        return balls[0]
    return "none" if _NONE_RE.search(text) else None


_NOT_POTTED_RE = re.compile(
    r"\b(not potted|never potted|stayed on the table|did not go into a pocket|not go into a pocket)\b", re.I
)


def parse_pocket(text: str) -> str | None:
    t = text.lower()
    m = re.search(r"\b(top|bottom|left|right)[- ](middle|side)\b", t)
    if m:
        return f"{m.group(1)}-middle"
    m = re.search(r"\b(top|bottom)[- ](left|right)\b", t)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return None


def parse_region(text: str) -> str | None:
    t = text.lower()
    m = re.search(r"\b(top|bottom)[- ](left|right)\b", t)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    if re.search(r"\b(centre|center|middle)\b", t):
        return "centre"
    m = re.search(r"\b(top|bottom|left|right)\b", t)
    return m.group(1) if m else None


def parse_time(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)", _strip_balls(text))
    return round(float(m.group(1)), 1) if m else None


_REASON_KEYS = {
    "scratch": r"scratch|cue ball went into a pocket|cue ball was potted|in-off",
    "no-contact": r"no-contact|missed every|missed all|no ball contacted|did not hit any",
    "wrong-ball-first": r"wrong-ball-first|wrong ball first|hit the wrong ball",
    "no-rail": r"no-rail|no ball reached a cushion|no rail|no cushion",
    "illegal-8-ball": r"illegal-8-ball|8-ball was potted illegally|8-ball potted illegally",
    "wrong-ball-potted": r"wrong-ball-potted|not on was potted|wrong ball potted",
    "bad-break": r"bad-break|break did not",
}


def parse_foul_reason(text: str) -> dict | None:
    t = text.strip().lower()
    foul = parse_yes_no(t)
    if foul is None:
        if t.startswith("foul") or re.search(r"\bwas a foul\b", t):
            foul = True
        elif re.search(r"\blegal\b", t):
            foul = False
        else:
            return None
    if not foul:
        return {"foul": False, "reason": None}
    reason = next((c for c, pat in _REASON_KEYS.items() if re.search(pat, t)), None)
    if reason is None:
        reason = next((c for c, p in REASON_PHRASES.items() if p in t), None)
    return {"foul": True, "reason": reason}


def parse_after_contact(text: str) -> str | None:
    t = text.lower()
    for label, pat in (("stop", r"\bstop"), ("draw", r"\bdr[ae]w|\bback\b"), ("follow", r"\bfollow|\bforward"),
                       ("side", r"\bside|\bglanc|\bangle")):  # fmt: skip
        if re.search(pat, t):
            return label
    return None


_KEYWORD_BOOL = {
    "scratch": (
        (r"\bno scratch|stayed on the table|not potted", False),
        (r"scratch|went into a pocket|was potted", True),
    ),
    "foul": ((r"\blegal\b|no foul", False), (r"\bfoul\b", True)),
    "ball_moved": ((r"did not move|didn't move|stayed|still|not moved", False), (r"\bmoved\b", True)),
    "tc_point": ((r"did not score|no point|not score", False), (r"scored|a point", True)),
}


def parse_bool(qtype: str, text: str) -> bool | None:
    yn = parse_yes_no(text)
    if qtype == "foul" and re.search(r"\blegal shot\b", text, re.I) and yn is None:
        return False
    if yn is not None:
        return yn
    for pat, val in _KEYWORD_BOOL.get(qtype, ()):
        if re.search(pat, text, re.IGNORECASE):
            return val
    return None


def parse_answer(qtype: str, text: str):
    """Structured facts from answer text (schema in the module docstring); None if unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    if qtype == "potted_balls":
        balls = [b for b in find_balls(text) if b != "cue"]
        if balls:
            return sort_balls(balls)
        return [] if _NONE_RE.search(text) else None
    if qtype in (
        "potted_count",
        "cushions_before_contact",
        "cue_cushions_total",
        "tc_cushions_before_second",
    ):
        return parse_count(text)
    if qtype in ("scratch", "ball_moved", "foul", "tc_point"):
        return parse_bool(qtype, text)
    if qtype == "first_contact":
        return _one_ball(text, exclude_cue=True)
    if qtype == "first_potted":
        return _one_ball(text, exclude_cue=False)
    if qtype == "tc_first_ball":
        m = re.search(r"\b(yellow|red)\b", text, re.I)
        if m:
            return m.group(1).lower()
        return "none" if _NONE_RE.search(text) else None
    if qtype in ("pocket_of_ball", "pot_time") and _NOT_POTTED_RE.search(text):
        return "none"  # the named ball was not potted
    if qtype == "pocket_of_ball":
        return parse_pocket(text)
    if qtype == "pot_time":
        return parse_time(text)
    if qtype == "foul_reason":
        return parse_foul_reason(text)
    if qtype == "cue_after_contact":
        return parse_after_contact(text)
    if qtype == "cue_rest_region":
        return parse_region(text)
    if qtype == "caption":
        return parse_caption(text)
    raise KeyError(f"unknown question type {qtype!r}")
