"""Exact scoring of hand-made answers against engine facts."""

import pytest

from hilight_train.evaluation import shuffled_videos
from hilight_train.scoring import compare_facts, event_f1, majority_facts, score_answer


@pytest.mark.parametrize(
    ("qtype", "truth", "answer"),
    [
        ("potted_balls", ["3", "7"], "The 3-ball and the 7-ball were potted."),
        ("potted_balls", [], "None."),
        ("potted_count", 2, "Two balls were potted."),
        ("scratch", True, "Yes, the cue ball went in."),
        ("first_contact", "9", "The cue ball hit the 9-ball first."),
        ("pot_time", 1.4, "It dropped at 1.5 seconds."),
    ],
)
def test_right_answers_score_one(qtype, truth, answer):
    scored = score_answer(qtype, truth, answer)
    assert scored["parsed"] is not None, answer
    assert scored["score"] == 1.0


@pytest.mark.parametrize(
    ("qtype", "truth", "answer"),
    [
        ("potted_balls", ["3", "7"], "The 3-ball was potted."),  # partially right set: wrong
        ("potted_balls", ["3"], "The 3-ball and the 5-ball."),  # superset: wrong
        ("potted_count", 2, "One."),
        ("scratch", True, "No."),
        ("first_contact", "9", "The 1-ball."),
        ("pot_time", 1.4, "At 2.0 seconds."),
    ],
)
def test_wrong_answers_score_zero(qtype, truth, answer):
    scored = score_answer(qtype, truth, answer)
    assert scored["parsed"] is not None
    assert scored["score"] == 0.0


def test_unparseable_answer_is_wrong_and_marked():
    scored = score_answer("first_contact", "9", "bananas")
    assert scored == {"parsed": None, "score": 0.0}


def test_snooker_reds_compare_as_a_multiset():
    assert compare_facts("potted_balls", ["red", "red"], ["red"])["score"] == 0.0
    assert compare_facts("potted_balls", ["red", "blue", "red"], ["red", "red", "blue"])["score"] == 1.0


def test_time_error_is_kept():
    scored = compare_facts("pot_time", 1.0, 1.3, time_tolerance=0.25)
    assert scored["score"] == 0.0
    assert scored["abs_error"] == pytest.approx(0.3)


def test_caption_event_f1():
    a, b, c = {"event": "miss"}, {"event": "legal"}, {"event": "pot", "ball": "3", "pocket": "top-left"}
    assert event_f1([a, b], [a, b]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    m = event_f1([a, b, c], [a, {"event": "no_pot"}])
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(1 / 3) and m["f1"] == pytest.approx(0.4)
    assert compare_facts("caption", [a], [])["score"] == 0.0


def test_majority_facts_picks_the_most_common_answer_per_type():
    entries = [{"type": "scratch", "facts": f} for f in (True, False, False)] + [
        {"type": "potted_count", "facts": 1}
    ]
    assert majority_facts(entries) == {"scratch": False, "potted_count": 1}


def test_shuffled_videos_never_keep_their_own_clip_and_stay_within_a_game():
    entries = [
        {"clip": f"c{i}", "video": f"v{i}.mp4", "game": "9ball" if i < 5 else "snooker"} for i in range(9)
    ]
    mapping = shuffled_videos(entries, seed=3)
    assert set(mapping) == {e["clip"] for e in entries}
    for e in entries:
        assert mapping[e["clip"]] != e["video"]
        other = int(mapping[e["clip"]][1:-4])
        assert (other < 5) == (int(e["clip"][1:]) < 5)
    assert sorted(mapping.values()) == sorted(e["video"] for e in entries)  # a permutation
