"""Commentary captions from a grammar, and the parser that reads their events back.

A caption narrates a shot in up to six sentences (random synonyms; structure fixed by the events):

    The cue ball strikes the 3-ball, which rolls into the top-right corner pocket.
    The cue ball comes off two cushions and stops near the centre of the table. A legal shot.

Caption facts are the list of events the caption states, sorted by their JSON text:

- ``{"event": "contact", "ball": B, "cushions_before": n}`` first object ball and cue-ball
  cushions before it; ``{"event": "miss"}`` when the cue ball touches no ball;
- ``{"event": "second_contact", "ball": B, "cushions": n}`` (three-cushion);
- ``{"event": "pot", "ball": B, "pocket": P}`` for every potted ball, the cue ball included;
- ``{"event": "no_pot"}`` (pool games, nothing potted);
- ``{"event": "rest", "cushions_after": n, "region": R}`` cue-ball cushions after first contact
  (all of them after a miss) and where it stopped (absent if potted or still moving);
- ``{"event": "foul", "reason": code}`` | ``{"event": "legal"}`` (pool games);
  ``{"event": "point", "scored": bool}`` (three-cushion).
"""

from __future__ import annotations

import json
import re

import numpy as np

from .games import ball_phrase
from .phrases import NUMBER_WORDS, REASON_PHRASES, plural, pocket_phrase, region_phrase


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def caption_events(game: str, truth: dict) -> list[dict]:
    """The events a caption of this clip states (its facts), in narrative order."""
    ev: list[dict] = []
    contact = truth["first_contact"]
    if contact is None:
        ev.append({"event": "miss"})
    else:
        ev.append(
            {"event": "contact", "ball": contact, "cushions_before": truth["cue_cushions_before_contact"]}
        )
    if game == "3cushion" and truth.get("second_contact"):
        ev.append(
            {
                "event": "second_contact",
                "ball": truth["second_contact"],
                "cushions": truth["cue_cushions_before_second"],
            }
        )
    for p in truth["potted"]:
        ev.append({"event": "pot", "ball": p["ball"], "pocket": p["pocket"]})
    if game != "3cushion" and not any(p["ball"] != "cue" for p in truth["potted"]):
        ev.append({"event": "no_pot"})
    if truth["cue_rest_region"] is not None:
        after = truth["cue_cushions_after_contact"] if contact is not None else truth["cue_cushions_total"]
        ev.append({"event": "rest", "cushions_after": after, "region": truth["cue_rest_region"]})
    rules = truth["rules"]
    if game == "3cushion":
        ev.append({"event": "point", "scored": bool(rules["point"])})
    elif rules["foul"]:
        ev.append({"event": "foul", "reason": rules["reason"]})
    else:
        ev.append({"event": "legal"})
    return ev


def canonical_events(events: list[dict]) -> list[dict]:
    """Caption facts: events sorted by their JSON text (order-free comparison)."""
    return sorted(events, key=lambda e: json.dumps(e, sort_keys=True))


def make_caption(game: str, truth: dict, rng: np.random.Generator) -> str:
    """A commentary caption from the grammar (see module docstring)."""
    ev = caption_events(game, truth)
    s: list[str] = []
    pots = [e for e in ev if e["event"] == "pot"]
    described: set[int] = set()
    for e in ev:
        if e["event"] == "miss":
            s.append(_pick(rng, ["The cue ball misses every ball.", "The cue ball fails to touch any ball."]))
        elif e["event"] == "contact":
            verb = _pick(rng, ["strikes", "hits", "finds", "clips"])
            target = ball_phrase(e["ball"], game)
            n = e["cushions_before"]
            if n == 0:
                sent = f"The cue ball {verb} {target}"
            else:
                sent = _pick(
                    rng,
                    [
                        f"After {plural(n, 'cushion')}, the cue ball {verb} {target}",
                        f"The cue ball comes off {plural(n, 'cushion')} before it {verb} {target}",
                    ],
                )
            first_pot = next(
                (i for i, p in enumerate(pots) if p["ball"] == e["ball"] and p["ball"] != "cue"), None
            )
            if first_pot is not None and e["ball"] != "red":
                described.add(first_pot)
                roll = _pick(rng, ["rolls into", "drops into", "falls into"])
                sent += f", which {roll} the {pocket_phrase(pots[first_pot]['pocket'])}"
            s.append(sent + ".")
        elif e["event"] == "second_contact":
            s.append(f"It reaches {ball_phrase(e['ball'], game)} after {plural(e['cushions'], 'cushion')}.")
        elif e["event"] == "pot":
            i = pots.index(e)
            if i in described:
                continue
            described.add(i)
            pp = pocket_phrase(e["pocket"])
            if e["ball"] == "cue":
                s.append(
                    _pick(
                        rng,
                        [
                            f"The cue ball then falls into the {pp} for a scratch.",
                            f"The cue ball follows into the {pp}, a scratch.",
                        ],
                    )
                )
            else:
                b = ball_phrase(e["ball"], game)
                b = b[:1].upper() + b[1:]
                s.append(f"{b} {_pick(rng, ['drops into', 'falls into', 'finds'])} the {pp}.")
        elif e["event"] == "no_pot":
            s.append(_pick(rng, ["Nothing drops.", "No ball is potted."]))
        elif e["event"] == "rest":
            m = e["cushions_after"]
            stop = _pick(rng, ["stops", "comes to rest", "settles"])
            how = f"comes off {plural(m, 'cushion')}" if m else "stays off the cushions"
            s.append(f"The cue ball {how} and {stop} {region_phrase(e['region'])}.")
        elif e["event"] == "legal":
            s.append(_pick(rng, ["A legal shot.", "The shot is legal."]))
        elif e["event"] == "foul":
            s.append(f"Foul: {REASON_PHRASES[e['reason']]}.")
        elif e["event"] == "point":
            s.append(
                _pick(rng, ["The point scores.", "That is a point."])
                if e["scored"]
                else _pick(rng, ["No point.", "The point does not score."])
            )
    return " ".join(s)


# ----------------------------------------------------------------------------- parsing

_NUM = r"(no|zero|\d+|" + "|".join(NUMBER_WORDS[1:]) + r")"
_BALL = r"(the cue ball|the \d{1,2}-ball|the (?:red|yellow) ball|a red|the (?:yellow|green|brown|blue|pink|black))"
_POCKET = r"((?:top|bottom)-(?:left|right) corner pocket|(?:top|bottom|left|right) middle pocket)"
_REGION = r"(near the centre of the table|in the (?:top|bottom) part of the table|on the (?:left|right) side of the table|in the (?:top|bottom)-(?:left|right) area of the table)"


def _num(tok: str) -> int:
    tok = tok.lower()
    if tok in ("no", "zero"):
        return 0
    if tok.isdigit():
        return int(tok)
    return NUMBER_WORDS.index(tok)


def _ball(tok: str) -> str:
    tok = tok.lower()
    if tok == "the cue ball":
        return "cue"
    if tok == "a red":
        return "red"
    m = re.match(r"the (\d{1,2})-ball", tok)
    if m:
        return m.group(1)
    return tok.removeprefix("the ").removesuffix(" ball")


def _pocket(tok: str) -> str:
    tok = tok.lower()
    if tok.endswith(" corner pocket"):
        return tok.removesuffix(" corner pocket")
    return tok.removesuffix(" middle pocket") + "-middle"


def _region(tok: str) -> str:
    tok = tok.lower()
    if "centre" in tok:
        return "centre"
    m = re.search(r"(top|bottom)-(left|right)", tok)
    if m:
        return m.group(0)
    return re.search(r"(top|bottom|left|right)", tok).group(1)


def parse_caption(text: str) -> list[dict] | None:
    """Events stated by a caption (canonical, sorted); None if no event can be read."""
    t = " ".join(text.split())
    ev: list[dict] = []
    verbs = r"(?:strikes|hits|finds|clips)"
    m = re.search(rf"(?i)after {_NUM} cushions?, the cue ball {verbs} {_BALL}", t) or re.search(
        rf"(?i)the cue ball comes off {_NUM} cushions? before it {verbs} {_BALL}", t
    )
    if m:
        ev.append({"event": "contact", "ball": _ball(m.group(2)), "cushions_before": _num(m.group(1))})
    else:
        m = re.search(rf"(?i)the cue ball {verbs} {_BALL}", t)
        if m:
            ev.append({"event": "contact", "ball": _ball(m.group(1)), "cushions_before": 0})
    if m:
        w = re.match(rf"(?i)\s*, which (?:rolls|drops|falls) into the {_POCKET}", t[m.end() :])
        if w:
            ev.append({"event": "pot", "ball": ev[-1]["ball"], "pocket": _pocket(w.group(1))})
    if re.search(r"(?i)misses every ball|fails to touch any ball", t):
        ev.append({"event": "miss"})
    for m in re.finditer(rf"(?i)it reaches {_BALL} after {_NUM} cushions?", t):
        ev.append({"event": "second_contact", "ball": _ball(m.group(1)), "cushions": _num(m.group(2))})
    for m in re.finditer(
        rf"(?i){_BALL} (?:then )?(?:drops into|falls into|finds|follows into) the {_POCKET}", t
    ):
        ev.append({"event": "pot", "ball": _ball(m.group(1)), "pocket": _pocket(m.group(2))})
    if re.search(r"(?i)nothing drops|no ball is potted", t):
        ev.append({"event": "no_pot"})
    m = re.search(
        rf"(?i)the cue ball (?:comes off {_NUM} cushions?|stays off the cushions) and (?:stops|comes to rest|settles) {_REGION}",
        t,
    )
    if m:
        ev.append(
            {
                "event": "rest",
                "cushions_after": _num(m.group(1)) if m.group(1) else 0,
                "region": _region(m.group(2)),
            }
        )
    if re.search(r"(?i)a legal shot|the shot is legal", t):
        ev.append({"event": "legal"})
    m = re.search(r"(?i)foul: ([^.]+)", t)
    if m:
        why = m.group(1).strip().lower()
        code = next((c for c, p in REASON_PHRASES.items() if p == why), None)
        ev.append({"event": "foul", "reason": code})
    if re.search(r"(?i)the point scores|that is a point", t):
        ev.append({"event": "point", "scored": True})
    elif re.search(r"(?i)no point|the point does not score", t):
        ev.append({"event": "point", "scored": False})
    return canonical_events(ev) if ev else None
