"""Question types, phrasings and answers (a canonical short form and sentence forms).

Every question has structured ``facts`` (the schema is in :mod:`.parse`) and two renderings:
``short_answer`` (canonical, e.g. ``"3, 7"``, ``"yes"``, ``"top-right"``, ``"2.3"``) and
``sentence_answer`` (one of several sentence templates). ``parse.parse_answer`` maps both back to
the facts. ``make_questions`` picks the questions of a clip; keep probabilities per answer
(``KEEP``) thin out the most common answers so that majority-answer baselines stay low.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .games import ball_phrase
from .phrases import (
    REASON_PHRASES,
    balls_phrase,
    balls_short,
    number_word,
    plural,
    pocket_phrase,
    region_phrase,
)

POOL = ("9ball", "8ball", "snooker")
CAROM = ("3cushion",)
ALL = POOL + CAROM


@dataclass(frozen=True)
class QType:
    name: str
    games: tuple[str, ...]
    questions: tuple[str, ...]  # may contain {ball}


QTYPES: dict[str, QType] = {
    q.name: q
    for q in [
        QType(
            "potted_balls",
            POOL,
            (
                "Which balls were potted?",
                "Which balls went into a pocket on this shot?",
                "Name the balls that were potted.",
                "What balls dropped?",
            ),
        ),
        QType(
            "potted_count",
            POOL,
            (
                "How many balls were potted?",
                "How many object balls went into the pockets?",
                "Count the balls that dropped on this shot.",
                "How many balls did the player pot?",
            ),
        ),
        QType(
            "scratch",
            POOL,
            (
                "Was the cue ball potted?",
                "Did the player scratch?",
                "Did the cue ball end up in a pocket?",
                "Was this shot a scratch?",
            ),
        ),
        QType(
            "first_contact",
            POOL,
            (
                "Which ball did the cue ball hit first?",
                "What was the first ball the cue ball touched?",
                "Which object ball was contacted first?",
                "Name the first ball struck by the cue ball.",
            ),
        ),
        QType(
            "pocket_of_ball",
            POOL,
            (
                "Which pocket did {ball} go into?",
                "Where was {ball} potted?",
                "In which pocket did {ball} drop?",
                "Name the pocket that {ball} fell into.",
            ),
        ),
        QType(
            "cushions_before_contact",
            ALL,
            (
                "How many cushions did the cue ball touch before hitting an object ball?",
                "How many rails did the cue ball hit before its first contact with a ball?",
                "Before reaching the first object ball, how many cushions did the cue ball touch?",
                "Count the cushions the cue ball hit before it struck a ball.",
            ),
        ),
        QType(
            "cue_cushions_total",
            ALL,
            (
                "How many cushions did the cue ball touch in total?",
                "How many times did the cue ball hit a rail during the shot?",
                "Count all the cushions the cue ball touched.",
                "How many rails did the cue ball contact altogether?",
            ),
        ),
        QType(
            "ball_moved",
            ALL,
            (
                "Did {ball} move?",
                "Was {ball} moved during the shot?",
                "Did {ball} change position?",
                "Was {ball} disturbed by the shot?",
            ),
        ),
        QType(
            "first_potted",
            POOL,
            (
                "Which ball dropped first?",
                "What was the first ball to go into a pocket?",
                "Which ball was potted first?",
                "Name the first ball that fell into a pocket.",
            ),
        ),
        QType(
            "pot_time",
            POOL,
            (
                "At what time did {ball} drop? Answer in seconds.",
                "When did {ball} go into the pocket (in seconds)?",
                "How many seconds into the clip was {ball} potted?",
                "At what second did {ball} fall into the pocket?",
            ),
        ),
        QType(
            "foul",
            POOL,
            (
                "Was the shot a foul?",
                "Did the shot break the rules?",
                "Did the player commit a foul?",
                "Is this shot a foul under the rules?",
            ),
        ),
        QType(
            "foul_reason",
            POOL,
            (
                "Was the shot a foul, and why?",
                "Was there a foul? Explain.",
                "Did the player foul? If so, what was the foul?",
                "Judge the shot: foul or legal, and why?",
            ),
        ),
        QType(
            "cue_after_contact",
            ALL,
            (
                "What did the cue ball do after contact?",
                "How did the cue ball react after hitting the first ball?",
                "After the first contact, did the cue ball follow, draw back, stop or go to the side?",
                "Describe the cue ball's motion right after it struck the object ball.",
            ),
        ),
        QType(
            "cue_rest_region",
            ALL,
            (
                "Where did the cue ball come to rest?",
                "Where did the cue ball stop?",
                "In which part of the table did the cue ball finish?",
                "Where is the cue ball at the end of the shot?",
            ),
        ),
        QType(
            "tc_point",
            CAROM,
            (
                "Did the shot score?",
                "Was a point scored?",
                "Did the player make the carom?",
                "Did the cue ball score a three-cushion point?",
            ),
        ),
        QType(
            "tc_cushions_before_second",
            CAROM,
            (
                "How many cushions did the cue ball touch before hitting the second object ball?",
                "How many rails did the cue ball hit before reaching the second ball?",
                "Before it touched the second object ball, how many cushions did the cue ball hit?",
            ),
        ),
        QType(
            "tc_first_ball",
            CAROM,
            (
                "Which ball was hit first?",
                "Which object ball did the cue ball hit first?",
                "Did the cue ball reach the red or the yellow first?",
                "Name the first object ball the cue ball touched.",
            ),
        ),
    ]
}

SHORT_SUFFIX = " Answer briefly."


# ----------------------------------------------------------------------------- answers


def _yesno(b: bool) -> str:
    return "yes" if b else "no"


def short_answer(qtype: str, facts, ctx: dict) -> str:
    """The canonical short form of an answer."""
    if qtype in ("pocket_of_ball", "pot_time") and facts == "none":
        return "not potted"
    if qtype in ("potted_balls",):
        return balls_short(facts)
    if qtype in (
        "potted_count",
        "cushions_before_contact",
        "cue_cushions_total",
        "tc_cushions_before_second",
    ):
        return str(facts)
    if qtype in ("scratch", "ball_moved", "foul", "tc_point"):
        return _yesno(facts)
    if qtype in (
        "first_contact",
        "first_potted",
        "tc_first_ball",
        "pocket_of_ball",
        "cue_after_contact",
        "cue_rest_region",
    ):
        return str(facts)
    if qtype == "pot_time":
        return f"{facts:.1f}"
    if qtype == "foul_reason":
        return f"foul: {facts['reason']}" if facts["foul"] else "legal"
    raise KeyError(f"unknown question type {qtype!r}")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _sentences(qtype: str, facts, ctx: dict) -> list[str]:
    game = ctx.get("game", "")
    ball = ctx.get("ball")
    bp = ball_phrase(ball, game) if ball else ""
    if qtype == "potted_balls":
        if not facts:
            return ["No balls were potted.", "Nothing was potted on this shot.", "None of the balls dropped."]
        ph = balls_phrase(facts, game)
        verb = "was" if len(facts) == 1 else "were"
        return [
            f"{_cap(ph)} {verb} potted.",
            f"The player potted {ph}.",
            f"{_cap(ph)} went into the pockets.",
        ]
    if qtype == "potted_count":
        n = facts
        return [
            f"{_cap(plural(n, 'ball'))} {'was' if n == 1 else 'were'} potted.",
            f"The player potted {plural(n, 'ball')}.",
            f"{_cap(number_word(n)) if n else 'None'} in total.",
        ]
    if qtype == "scratch":
        return (
            ["Yes, the cue ball went into a pocket.", "Yes, it was a scratch."]
            if facts
            else ["No, the cue ball stayed on the table.", "No, there was no scratch."]
        )
    if qtype == "first_contact":
        if facts == "none":
            return [
                "The cue ball did not hit any ball.",
                "It missed every ball.",
                "None; the cue ball touched no ball.",
            ]
        p = ball_phrase(facts, game)
        return [f"The cue ball hit {p} first.", f"It struck {p} first.", f"First contact was with {p}."]
    if qtype in ("pocket_of_ball", "pot_time") and facts == "none":
        return [
            f"{_cap(bp)} was not potted.",
            f"{_cap(bp)} stayed on the table.",
            "It did not go into a pocket.",
        ]
    if qtype == "pocket_of_ball":
        pp = pocket_phrase(facts)
        return [f"{_cap(bp)} went into the {pp}.", f"It dropped in the {pp}.", f"The {pp}."]
    if qtype in ("cushions_before_contact", "cue_cushions_total", "tc_cushions_before_second"):
        n = facts
        what = {
            "cushions_before_contact": "before its first contact",
            "cue_cushions_total": "during the shot",
            "tc_cushions_before_second": "before reaching the second object ball",
        }[qtype]
        return [
            f"The cue ball touched {plural(n, 'cushion')} {what}.",
            f"{_cap(plural(n, 'cushion'))}.",
            f"It hit {plural(n, 'rail')} {what}.",
        ]
    if qtype == "ball_moved":
        return (
            [f"Yes, {bp} moved.", f"Yes, {bp} was moved during the shot."]
            if facts
            else [f"No, {bp} did not move.", f"No, {bp} stayed where it was."]
        )
    if qtype in ("first_potted", "tc_first_ball"):
        p = ball_phrase(facts, game) if facts != "none" else ""
        if qtype == "tc_first_ball":
            if facts == "none":
                return ["The cue ball did not hit either object ball.", "Neither; it missed both balls."]
            return [f"The cue ball hit {p} first.", f"It reached {p} first.", f"{_cap(p)} was hit first."]
        if facts == "none":
            return ["No ball was potted.", "Nothing was potted.", "None of the balls dropped."]
        return [
            f"{_cap(p)} dropped first.",
            f"The first ball to go down was {p}.",
            f"{_cap(p)} was potted first.",
        ]
    if qtype == "pot_time":
        t = f"{facts:.1f}"
        return [
            f"{_cap(bp)} dropped at {t} seconds.",
            f"At about {t} s.",
            f"It went into the pocket {t} seconds into the clip.",
        ]
    if qtype == "foul":
        return (
            ["Yes, it was a foul.", "Yes, the shot was a foul."]
            if facts
            else ["No, it was a legal shot.", "No foul; the shot was legal."]
        )
    if qtype == "foul_reason":
        if not facts["foul"]:
            return ["No, the shot was legal.", "It was a legal shot: no foul."]
        why = REASON_PHRASES[facts["reason"]]
        return [f"Yes, it was a foul because {why}.", f"Foul: {why}."]
    if qtype == "cue_after_contact":
        return {
            "follow": ["The cue ball followed through.", "It rolled forward after contact."],
            "draw": ["The cue ball drew back.", "It came back towards the player with draw."],
            "stop": ["The cue ball stopped dead.", "It stopped almost on the spot."],
            "side": ["The cue ball went off to the side.", "It glanced off to the side."],
        }[facts]
    if qtype == "cue_rest_region":
        rp = region_phrase(facts)
        return [f"The cue ball came to rest {rp}.", f"It stopped {rp}.", f"{_cap(rp)}."]
    if qtype == "tc_point":
        return (
            ["Yes, the shot scored a point.", "Yes, it was a valid three-cushion point."]
            if facts
            else ["No, the shot did not score.", "No point was scored."]
        )
    raise KeyError(f"unknown question type {qtype!r}")


def sentence_variants(qtype: str, facts, ctx: dict) -> list[str]:
    """All sentence forms of an answer (tests check that the parser reads every one)."""
    return _sentences(qtype, facts, ctx)


def sentence_answer(qtype: str, facts, ctx: dict, rng: np.random.Generator) -> str:
    options = _sentences(qtype, facts, ctx)
    return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------- selection

# Keep probability by (question type, answer key); the rest are kept. Calibrated on a pilot run so
# that no single answer dominates a question type (see card.md for the measured baselines).
KEEP: dict[str, dict] = {
    "potted_count": {0: 0.7},
    "potted_balls": {"none": 0.5},
    "scratch": {False: 0.14},
    "foul_reason": {"legal": 0.6},
    "cushions_before_contact": {0: 0.1},
    "cue_after_contact": {"follow": 0.35},
    "tc_cushions_before_second": {3: 0.5},
    "tc_point": {False: 0.65},
}


def answer_key(qtype: str, facts):
    if qtype == "potted_balls":
        return "none" if not facts else "some"
    if qtype == "foul_reason":
        return facts["reason"] if facts["foul"] else "legal"
    return facts


def pot_question_ball(truth: dict, rng: np.random.Generator) -> str | None:
    """The ball a pocket / pot-time question names: a potted or a not-potted ball with equal chance (uniform
    within the group), among the balls with a unique name (not snooker reds), so that the question being asked
    says nothing about what happened; None when no ball qualifies."""
    names = [n for n in truth["final"] if "#" not in n]
    gone = {p["ball"] for p in truth["potted"]}
    potted, stayed = [n for n in names if n in gone], [n for n in names if n not in gone]
    group = potted if (potted and (not stayed or rng.random() < 0.5)) else stayed
    return group[int(rng.integers(len(group)))] if group else None


def _entries(game: str, truth: dict, rng: np.random.Generator) -> list[tuple[str, object, dict]]:
    """All (qtype, facts, ctx) this clip can answer. Which types are asked, and about which ball, does not depend
    on the clip's outcome (a clip where nothing dropped is asked where and when a ball dropped too), so that the
    questions of one chat session do not tell the answers of the others; only ``KEEP`` thins by answer."""
    out: list[tuple[str, object, dict]] = []
    ctx = {"game": game}
    potted = truth["potted"]
    obj_potted = [p for p in potted if p["ball"] != "cue"]
    rules = truth["rules"]
    contact = truth["first_contact"]
    if game != "3cushion":
        out.append(("potted_balls", sorted_potted(obj_potted), ctx))
        out.append(("potted_count", len(obj_potted), ctx))
        out.append(("scratch", any(p["ball"] == "cue" for p in potted), ctx))
        out.append(("first_contact", contact or "none", ctx))
        out.append(("first_potted", potted[0]["ball"] if potted else "none", ctx))
        ball = pot_question_ball(truth, rng)
        if ball is not None:
            pot = next((p for p in potted if p["ball"] == ball), None)
            bctx = {**ctx, "ball": ball}
            out.append(("pocket_of_ball", pot["pocket"] if pot else "none", bctx))
            out.append(("pot_time", round(pot["t"], 1) if pot else "none", bctx))
        out.append(("foul", rules["foul"], ctx))
        out.append(("foul_reason", {"foul": rules["foul"], "reason": rules["reason"]}, ctx))
    else:
        out.append(("tc_point", bool(rules["point"]), ctx))
        out.append(("tc_first_ball", contact or "none", ctx))
        if truth.get("cue_cushions_before_second") is not None:
            out.append(("tc_cushions_before_second", truth["cue_cushions_before_second"], ctx))
    if contact is not None:
        out.append(("cushions_before_contact", truth["cue_cushions_before_contact"], ctx))
    out.append(("cue_cushions_total", truth["cue_cushions_total"], ctx))
    if truth["cue_after_contact"] is not None:
        out.append(("cue_after_contact", truth["cue_after_contact"], ctx))
    if truth["cue_rest_region"] is not None:
        out.append(("cue_rest_region", truth["cue_rest_region"], ctx))
    # ball_moved: ask about a moved or an unmoved ball with equal chance (unique names only)
    names = [n for n in truth["final"] if "#" not in n and n != "cue"]
    moved = [n for n in names if n in truth["moved"]]
    still = [n for n in names if n not in truth["moved"]]
    pick = moved if (moved and (not still or rng.random() < 0.5)) else still
    if pick:
        b = pick[int(rng.integers(len(pick)))]
        out.append(("ball_moved", b in truth["moved"], {**ctx, "ball": b}))
    return out


def sorted_potted(potted: list[dict]) -> list[str]:
    from .games import sort_balls

    return sort_balls(p["ball"] for p in potted)


def make_questions(game: str, truth: dict, rng: np.random.Generator, short_prob: float = 0.4) -> list[dict]:
    """The question entries of a clip: ``{"type","question","answer","facts","style"}``."""
    entries = []
    for qtype, facts, ctx in _entries(game, truth, rng):
        keep = KEEP.get(qtype, {}).get(answer_key(qtype, facts), 1.0)
        u = rng.random()
        if u >= keep:
            continue
        spec = QTYPES[qtype]
        q = spec.questions[int(rng.integers(len(spec.questions)))]
        if "{ball}" in q:
            q = q.replace("{ball}", ball_phrase(ctx["ball"], game))
        if rng.random() < short_prob:
            q, answer, style = q + SHORT_SUFFIX, short_answer(qtype, facts, ctx), "short"
        else:
            answer, style = sentence_answer(qtype, facts, ctx, rng), "sentence"
        entries.append({"type": qtype, "question": q, "answer": answer, "facts": facts, "style": style})
    return entries
