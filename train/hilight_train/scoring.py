"""Exact scoring of answers against the data engine's facts (no judge model).

Each answer is parsed back into facts with the engine's parser (`billiards.parse.parse_answer`) and
compared with the truth stored in `annotations.json`:

- sets of balls (``potted_balls``) compare as multisets; counts, yes/no, pockets, ball ids, regions,
  cue-ball actions and foul reasons compare exactly;
- ``pot_time`` is correct within ``time_tolerance`` seconds; its absolute error is kept as well ("none",
  the ball was not potted, compares exactly);
- ``caption`` scores event-level F1 between the events the caption states and the true events
  (precision and recall are kept).

An answer the parser cannot read scores 0 and is marked ``parsed = None``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .billiards.parse import parse_answer

TIME_TYPES = {"pot_time"}
BALL_IDENTITY_TYPES = ("first_contact", "first_potted", "tc_first_ball", "pocket_of_ball")
DEFAULT_TIME_TOLERANCE = 0.25  # seconds: ~7 frames at 30 fps


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def event_f1(true_events: list, pred_events: list) -> dict[str, float]:
    """Multiset precision, recall and F1 of two event lists (events compared as canonical JSON)."""
    truth, pred = Counter(map(_key, true_events)), Counter(map(_key, pred_events))
    hit = sum((truth & pred).values())
    precision = hit / sum(pred.values()) if pred else float(not truth)
    recall = hit / sum(truth.values()) if truth else float(not pred)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def compare_facts(
    qtype: str, truth: Any, pred: Any, time_tolerance: float = DEFAULT_TIME_TOLERANCE
) -> dict[str, Any]:
    """{"score": 0..1, ...extras} for predicted facts `pred` (None = unparseable) against `truth`."""
    if pred is None:
        return {"score": 0.0}
    if qtype == "caption":
        metrics = event_f1(truth, pred)
        return {"score": metrics["f1"], **metrics}
    if qtype in TIME_TYPES and (isinstance(truth, str) or isinstance(pred, str)):
        return {"score": float(truth == pred)}  # "none": the ball was not potted
    if qtype in TIME_TYPES:
        error = abs(float(pred) - float(truth))
        return {"score": float(error <= time_tolerance), "abs_error": error}
    if isinstance(truth, list):
        return {
            "score": float(
                sorted(map(_key, truth)) == sorted(map(_key, pred if isinstance(pred, list) else [pred]))
            )
        }
    return {"score": float(_key(truth) == _key(pred))}


def score_answer(qtype: str, truth: Any, answer: str, time_tolerance: float = DEFAULT_TIME_TOLERANCE) -> dict:
    """Parse `answer` for question type `qtype` and score it: {"parsed", "score", ...extras}."""
    parsed = parse_answer(qtype, answer)
    return {"parsed": parsed, **compare_facts(qtype, truth, parsed, time_tolerance)}


def majority_facts(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The most common true facts per question type (ties broken by the canonical JSON text)."""
    by_type: dict[str, Counter] = {}
    for e in entries:
        by_type.setdefault(e["type"], Counter())[_key(e["facts"])] += 1
    return {t: json.loads(min(c, key=lambda k: (-c[k], k))) for t, c in by_type.items()}
