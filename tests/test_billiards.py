"""Billiards data engine: events, rules, QA, parser, renderer, determinism.

pooltool's numba kernels are compiled once and cached (``NUMBA_CACHE_DIR``, see
``hilight_train.billiards``); a cold cache adds ~25-60 s to the first test that simulates.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hilight_train.billiards import qa
from hilight_train.billiards.camera import CUSHIONS, POCKETS, REGIONS, View, sample_camera
from hilight_train.billiards.captions import canonical_events, caption_events, make_caption, parse_caption
from hilight_train.billiards.clip import ClipConfig, make_clip
from hilight_train.billiards.games import canonical_ball
from hilight_train.billiards.parse import find_balls, parse_answer
from hilight_train.billiards.render import BallSprites, render_background, render_frames, sample_look
from hilight_train.billiards.rules import REASONS, judge
from hilight_train.billiards.shots import Shot, build_system
from hilight_train.billiards.simulate import extract_events, sample_positions, simulate_shot
from hilight_train.billiards.tables import make_table
from hilight_train.billiards.truth import summarize
from hilight_train.billiards.video import write_mp4

L = 1.9812  # 7-ft pool table length (m); width L / 2
R = 0.028575  # pool ball radius (m)
BROADCAST = View("broadcast", 1, L / 2, L)  # camera behind the y = 0 rail: x right, y up the picture
OVERHEAD = View("overhead", 0, L / 2, L)  # long axis across the picture, y to the right


def _shot(game, positions, V0, phi, b=0.0, ctx=None):
    """Simulate a hand-built shot; returns (system, events in BROADCAST view, rules)."""
    table = make_table(game)
    shot = Shot(game, "test", V0, phi, 0.0, 0.0, b, positions, rules=ctx or {"break": False})
    system = simulate_shot(build_system(shot, table))
    return system, extract_events(system, game, BROADCAST), judge(system, game, shot.rules)


def _truth(game, system, events, rules, view=BROADCAST):
    t_end = system.events[-1].time
    times = np.linspace(0, t_end, int(t_end * 30) + 2)
    ids, xyz, on = sample_positions(system, times)
    return summarize(game, events, ids, times, xyz, on, view, t_end, False, rules, R)


def _aim(src, dst) -> float:
    return math.degrees(math.atan2(dst[1] - src[1], dst[0] - src[0]))


# ----------------------------------------------------------------------------- events and rules


def test_straight_pot_into_named_pocket():
    system, events, rules = _shot(
        "9ball", {"cue": [0.6, L / 2], "1": [0.3, L / 2], "2": [0.7, 0.4]}, 1.5, 180, b=-0.2
    )
    kinds = [(e["type"], e.get("other") or e.get("pocket")) for e in events]
    assert kinds == [("strike", None), ("ball_ball", "1"), ("pocket", "left-middle")]
    assert events[2]["ball"] == "1" and events[1]["t"] < events[2]["t"]
    assert rules == {"foul": False, "reason": None, "reason_text": "", "point": None}
    truth = _truth("9ball", system, events, rules)
    assert truth["potted"] == [{"ball": "1", "pocket": "left-middle", "t": events[2]["t"]}]
    assert truth["first_contact"] == "1" and truth["cue_cushions_before_contact"] == 0
    assert truth["final"]["1"] is None and truth["moved"] == ["cue", "1"]
    # the same pocket seen from the overhead camera (long axis across the picture) is the top side pocket
    assert extract_events(system, "9ball", OVERHEAD)[2]["pocket"] == "top-middle"


def test_scratch_is_a_foul():
    system, events, rules = _shot("8ball", {"cue": [0.3, L / 2], "3": [0.7, 0.4], "8": [0.5, 1.6]}, 1.5, 180)
    assert [e["type"] for e in events] == ["strike", "pocket"]
    assert events[1]["ball"] == "cue" and events[1]["pocket"] == "left-middle"
    assert rules["foul"] and rules["reason"] == "scratch"
    truth = _truth("8ball", system, events, rules)
    assert truth["cue_rest_region"] is None and truth["cue_after_contact"] is None
    facts = {q: f for q, f, _ in qa._entries("8ball", truth, np.random.default_rng(0))}
    assert facts["scratch"] is True and facts["potted_balls"] == [] and facts["first_potted"] == "cue"


def test_cushion_first_kick():
    cue, obj = [0.3, 0.6], [0.6, 1.2]
    mirror = [obj[0], 2 * R - obj[1]]  # the object ball reflected in the bottom cushion
    system, events, rules = _shot("9ball", {"cue": cue, "1": obj, "2": [0.8, 1.8]}, 2.0, _aim(cue, mirror))
    assert events[1]["type"] == "cushion" and events[1]["ball"] == "cue" and events[1]["cushion"] == "bottom"
    assert events[2]["type"] == "ball_ball" and events[2]["other"] == "1"
    truth = _truth("9ball", system, events, rules)
    assert truth["cue_cushions_before_contact"] == 1 and truth["first_contact"] == "1"
    assert not rules["foul"]  # the 1-ball reaches a cushion after contact


def test_miss_is_a_no_contact_foul():
    system, events, rules = _shot("9ball", {"cue": [0.5, 0.5], "1": [0.8, 1.5]}, 1.0, 270)
    assert not any(e["type"] == "ball_ball" for e in events)
    assert next(e["cushion"] for e in events if e["type"] == "cushion") == "bottom"
    assert rules["foul"] and rules["reason"] == "no-contact"
    truth = _truth("9ball", system, events, rules)
    assert truth["first_contact"] is None and truth["moved"] == ["cue"]
    facts = {q: f for q, f, _ in qa._entries("9ball", truth, np.random.default_rng(0))}
    assert facts["first_contact"] == "none" and facts["foul_reason"] == {"foul": True, "reason": "no-contact"}


def test_wrong_ball_first_in_nine_ball():
    cue, two = [0.5, 0.5], [0.53, 1.0]
    _system, events, rules = _shot("9ball", {"cue": cue, "1": [0.2, 1.7], "2": two}, 1.5, _aim(cue, two))
    assert events[1]["other"] == "2" and rules["reason"] == "wrong-ball-first"


def test_three_cushion_point_matches_the_event_definition():
    """Over a fan of shots from one layout, pooltool's verdict equals the three-cushion rule read
    from our events (both object balls, three cue-ball cushions before the second), and scores."""
    table = make_table("3cushion")
    positions = {"white": [0.7, 0.9], "yellow": [0.35, 2.4], "red": [1.15, 2.1]}
    points = 0
    for phi in range(0, 360, 3):
        shot = Shot("3cushion", "test", 4.0, float(phi), 0.0, 0.4, 0.2, positions)
        system = simulate_shot(build_system(shot, table))
        events = extract_events(system, "3cushion", BROADCAST)
        hits, cushions, second = [], 0, None
        for e in events:
            if e["type"] == "cushion" and e["ball"] == "cue" and second is None:
                cushions += 1
            if e["type"] == "ball_ball" and e["ball"] == "cue" and e["other"] not in hits:
                hits.append(e["other"])
                if len(hits) == 2:
                    second = cushions
        ours = second is not None and second >= 3
        assert judge(system, "3cushion", {})["point"] == ours, phi
        points += ours
    assert 0 < points < 120


# ----------------------------------------------------------------------------- clips, QA, captions


@pytest.fixture(scope="module")
def clips():
    """One clip per game (record + frames), made once for the module."""
    return {
        g: make_clip(g, seed)[:2]
        for g, seed in (("9ball", 11), ("8ball", 12), ("snooker", 13), ("3cushion", 14))
    }


def test_qa_answers_agree_with_events(clips):
    for game, (frames, rec) in clips.items():
        ev, truth = rec["events"], rec["truth"]
        pots = [e for e in ev if e["type"] == "pocket"]
        cue_hits = [e for e in ev if e["type"] == "ball_ball" and e["ball"] == "cue"]
        first_t = cue_hits[0]["t"] if cue_hits else math.inf
        expected = {
            "potted_balls": sorted(
                (e["ball"] for e in pots if e["ball"] != "cue"), key=lambda b: (b != "red", b)
            ),
            "potted_count": sum(e["ball"] != "cue" for e in pots),
            "scratch": any(e["ball"] == "cue" for e in pots),
            "first_contact": cue_hits[0]["other"] if cue_hits else "none",
            "cushions_before_contact": sum(
                e["type"] == "cushion" and e["ball"] == "cue" and e["t"] < first_t for e in ev
            ),
            "cue_cushions_total": sum(e["type"] == "cushion" and e["ball"] == "cue" for e in ev),
            "foul": truth["rules"]["foul"],
            "first_potted": pots[0]["ball"] if pots else "none",
        }
        assert len(frames) == rec["n_frames"]
        for q in rec["qa"]:
            t, f = q["type"], q["facts"]
            if t in expected and t != "potted_balls":
                assert f == expected[t], (game, t)
            if t == "potted_balls":
                assert sorted(f) == sorted(expected[t])
            if t == "pocket_of_ball" or t == "pot_time":
                (named,) = find_balls(q["question"])  # the ball the question names
                pot = [e for e in pots if e["ball"] == named]
                assert f == (
                    "none"
                    if not pot
                    else pot[0]["pocket"]
                    if t == "pocket_of_ball"
                    else round(pot[0]["t"], 1)
                )
            if t == "ball_moved":
                assert isinstance(f, bool)
            # every stored answer reads back to its facts
            assert parse_answer(t, q["answer"]) == f, (game, t, q["answer"])
        assert parse_answer("caption", rec["caption"]) == rec["caption_facts"]


def test_renderer_puts_balls_where_physics_says():
    """Render a moving shot from both camera families; at each ball's projected centre the pixel has
    the ball's colour (the white cue ball is bright, the background there is not)."""
    system, _, _ = _shot(
        "9ball", {"cue": [0.25, 0.4], "1": [0.75, 1.6], "3": [0.25, 1.5], "6": [0.7, 0.5]}, 2.0, 70.0
    )
    rng = np.random.default_rng(0)
    times = np.arange(0, 1.5, 1 / 30)
    ids, xyz, on = sample_positions(system, times)
    names = [canonical_ball("9ball", b) for b in ids]
    for family in ("overhead", "broadcast"):
        cam = sample_camera(family, system.table.w, system.table.l, 448, 256, rng)
        look = sample_look("9ball", rng)
        look.noise, look.blur = 0.0, False
        bg = render_background(cam, system.table, look, 0.0508, rng)
        sprites = BallSprites("9ball", names, cam, rng, blur=False)
        frames = render_frames(bg, cam, sprites, ids, names, R, xyz, on)
        pix, _ = cam.project(xyz.reshape(-1, 3))
        pix = pix.reshape(len(times), len(ids), 2)
        checked = 0
        for i in range(0, len(times), 5):
            for j, name in enumerate(names):
                if not on[i, j]:
                    continue
                px, py = (int(v) for v in np.floor(pix[i, j]))
                got = frames[i, py, px].astype(int)
                want = (np.asarray(sprites.looks[name].colour) * 255).astype(int)
                back = bg[py, px].astype(int)
                if name == "cue":  # the white ball is brighter than the cloth under it
                    assert got.mean() > back.mean() + 40, (family, i, got, back)
                else:  # the dominant channel of the ball colour dominates the pixel
                    assert int(np.argmax(got)) == int(np.argmax(want)), (family, name, i, got, want)
                assert np.abs(got - back).sum() > 30, (family, name, i)
                checked += 1
        assert checked > 30


def test_views_name_places_consistently():
    for view in (BROADCAST, OVERHEAD, View("overhead", 2, L / 2, L), View("broadcast", 3, L / 2, L)):
        table = make_table("9ball")
        names = {view.pocket_name(*p.center[:2]) for p in table.pockets.values()}
        assert len(names) == 6 and names <= set(POCKETS)
        assert {view.cushion_name(x, y) for x, y in [(0, 1), (L / 2, 1), (0.5, 0), (0.5, L)]} == set(CUSHIONS)
        assert view.region_name(L / 4, L / 2) == "centre"


# ----------------------------------------------------------------------------- parser


def _examples() -> list[tuple[str, object, dict]]:
    ex: list[tuple[str, object, dict]] = []
    pool, snk, car = {"game": "9ball"}, {"game": "snooker"}, {"game": "3cushion"}
    for balls, ctx in (
        ([], pool),
        (["3"], pool),
        (["3", "11"], pool),
        (["red", "red", "blue"], snk),
        (["red"], snk),
        (["8"], {"game": "8ball"}),
    ):
        ex.append(("potted_balls", balls, ctx))
    for t in ("potted_count", "cushions_before_contact", "cue_cushions_total", "tc_cushions_before_second"):
        ex += [(t, n, pool) for n in (0, 1, 2, 5, 12)]
    for t in ("scratch", "foul", "tc_point"):
        ex += [(t, v, pool) for v in (True, False)]
    for ball, ctx in (("5", pool), ("11", pool), ("blue", snk), ("red", car), ("yellow", car)):
        ex += [("ball_moved", v, {**ctx, "ball": ball}) for v in (True, False)]
    ex += [("first_contact", b, pool) for b in ("none", "9", "15")] + [
        ("first_contact", b, snk) for b in ("red", "pink")
    ]
    ex += [("first_potted", b, pool) for b in ("cue", "4", "12", "none")] + [("first_potted", "black", snk)]
    ex += [("tc_first_ball", b, car) for b in ("yellow", "red", "none")]
    ex += [("pocket_of_ball", p, {**pool, "ball": "7"}) for p in POCKETS]
    ex += [("pot_time", t, {**pool, "ball": b}) for t, b in ((0.4, "3"), (2.3, "12"), (7.0, "cue"))]
    ex += [("pot_time", 1.6, {**snk, "ball": "green"})]
    ex += [
        (t, "none", {**ctx, "ball": b})
        for t in ("pocket_of_ball", "pot_time")
        for b, ctx in (("7", pool), ("cue", pool), ("pink", snk))
    ]
    ex += [("foul_reason", {"foul": True, "reason": r}, pool) for r in REASONS] + [
        ("foul_reason", {"foul": False, "reason": None}, pool)
    ]
    ex += [("cue_after_contact", a, pool) for a in ("follow", "draw", "stop", "side")]
    ex += [("cue_rest_region", r, pool) for r in REGIONS]
    return ex


def test_examples_cover_every_question_type():
    assert {t for t, _, _ in _examples()} == set(qa.QTYPES)


@pytest.mark.parametrize(("qtype", "facts", "ctx"), _examples())
def test_parser_reads_short_and_sentence_forms(qtype, facts, ctx):
    assert parse_answer(qtype, qa.short_answer(qtype, facts, ctx)) == facts
    for sentence in qa.sentence_variants(qtype, facts, ctx):
        assert parse_answer(qtype, sentence) == facts, sentence


def test_parser_returns_none_for_unreadable_text():
    for qtype in qa.QTYPES:
        assert parse_answer(qtype, "") is None
    assert parse_answer("first_contact", "bananas") is None
    assert parse_answer("pocket_of_ball", "somewhere") is None
    assert parse_answer("caption", "A lovely day.") is None


def _truth_variants():
    base = {
        "potted": [], "first_contact": "3", "cue_cushions_before_contact": 0, "cue_cushions_after_contact": 2,
        "cue_cushions_total": 2, "cue_rest_region": "centre", "rules": {"foul": False, "reason": None, "point": None},
    }  # fmt: skip
    yield "9ball", base
    yield "9ball", {**base, "potted": [{"ball": "3", "pocket": "top-right", "t": 1.0}, {"ball": "cue", "pocket": "left-middle", "t": 2.0}],
                    "cue_rest_region": None, "rules": {"foul": True, "reason": "scratch", "point": None}}  # fmt: skip
    yield "9ball", {**base, "first_contact": None, "cue_cushions_before_contact": 3, "cue_cushions_total": 3,
                    "rules": {"foul": True, "reason": "no-contact", "point": None}}  # fmt: skip
    yield "snooker", {**base, "first_contact": "red", "cue_cushions_before_contact": 1,
                      "potted": [{"ball": "red", "pocket": "bottom-left", "t": 1.0}, {"ball": "red", "pocket": "top-middle", "t": 1.5}]}  # fmt: skip
    yield "3cushion", {**base, "first_contact": "red", "second_contact": "yellow", "cue_cushions_before_second": 3,
                       "cue_rest_region": "bottom-left", "rules": {"foul": False, "reason": None, "point": True}}  # fmt: skip


def test_the_questions_asked_do_not_depend_on_what_was_potted():
    """The same table asked about after a shot that potted the 3-ball and after one that potted nothing: the same
    question types, and the pocket / time question names a potted ball half of the time, not always."""
    final = {"cue": [0.5, 0.5], "3": [0.2, 0.4], "5": [0.6, 1.0], "9": [0.3, 1.2]}
    rules = {"foul": False, "reason": None, "point": None}
    base = {
        "potted": [], "first_contact": "3", "cue_cushions_before_contact": 0, "cue_cushions_after_contact": 1,
        "cue_cushions_total": 1, "cue_after_contact": "follow", "cue_rest_region": "centre", "moved": ["3", "cue"],
        "final": final, "rules": rules,
    }  # fmt: skip
    potted = {
        **base,
        "potted": [{"ball": "3", "pocket": "top-left", "t": 1.04}],
        "final": {**final, "3": None},
    }
    kinds = [
        {t for t, _, _ in qa._entries("9ball", truth, np.random.default_rng(0))} for truth in (base, potted)
    ]
    assert kinds[0] == kinds[1] and {"first_potted", "pocket_of_ball", "pot_time"} <= kinds[0]
    asked = []
    for seed in range(400):
        entries = {t: (f, c) for t, f, c in qa._entries("9ball", potted, np.random.default_rng(seed))}
        (pocket, ctx), (time, _) = entries["pocket_of_ball"], entries["pot_time"]
        assert (pocket, time) == (("top-left", 1.0) if ctx["ball"] == "3" else ("none", "none"))
        asked.append(ctx["ball"])
    assert 0.4 < asked.count("3") / len(asked) < 0.6 and set(asked) == set(final)
    assert qa.pot_question_ball({"final": {"red#1": None, "red#2": [0, 0]}, "potted": [{"ball": "red"}]},
                                np.random.default_rng(0)) is None  # fmt: skip


def test_caption_parser_recovers_caption_events():
    for game, truth in _truth_variants():
        facts = canonical_events(caption_events(game, truth))
        for seed in range(12):  # different synonym choices
            assert parse_caption(make_caption(game, truth, np.random.default_rng(seed))) == facts


# ----------------------------------------------------------------------------- determinism, dataset


def test_same_seed_same_clip_and_bytes(tmp_path):
    f1, r1, _ = make_clip("8ball", 5)
    f2, r2, _ = make_clip("8ball", 5)
    assert json.dumps(r1) == json.dumps(r2)
    assert np.array_equal(f1, f2)
    write_mp4(tmp_path / "a.mp4", f1, 30)
    write_mp4(tmp_path / "b.mp4", f2, 30)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.mp4", "b.mp4")]
    assert digest[0] == digest[1]
    _, r3, _ = make_clip("8ball", 6)
    assert r3["shot"] != r1["shot"]


def test_ball_contrast_is_the_colour_distance_of_a_ball_from_its_surroundings():
    from hilight_train.billiards.frame_truth import ball_contrast

    frame = np.zeros((40, 60, 3), dtype=np.uint8)
    frame[:] = (20, 100, 40)  # cloth
    yy, xx = np.mgrid[0:40, 0:60] + 0.5
    xy = np.array([[15.0, 20.0], [45.0, 20.0], [36.0, 20.0], [58.0, 39.0]], dtype=np.float32)
    radius = np.full(4, 4.0, dtype=np.float32)
    frame[np.hypot(xx - 45, yy - 20) <= 4] = (23, 104, 40)  # ball 1 differs from the cloth by (3, 4, 0)
    frame[np.hypot(xx - 36, yy - 20) <= 4] = (255, 255, 255)  # ball 2, white, in ball 1's ring
    c = ball_contrast(frame, xy, radius, np.ones(4, dtype=bool))
    assert c[0] == pytest.approx(0.0)  # ball 0 has the cloth's colour
    assert c[1] == pytest.approx(5.0)  # ball 2's pixels are left out of ball 1's ring
    assert c[2] == pytest.approx(np.linalg.norm([235, 155, 215]), rel=1e-3)  # and ball 1's out of ball 2's
    assert c[3] == pytest.approx(0.0)  # a ball at the corner: the part of it in the picture
    hidden = ball_contrast(frame, xy, radius, np.array([True, True, False, True]))
    assert np.isnan(hidden[2]) and hidden[1] > 10  # not visible: no contrast, and its pixels count as ring
    far = np.array([[100.0, 100.0]], dtype=np.float32)  # its core lies outside the picture
    assert np.isnan(ball_contrast(frame, far, radius[:1], np.ones(1, dtype=bool))[0])


def test_frame_truth_matches_the_events_and_the_pictures(tmp_path):
    from hilight_train.billiards import frame_truth as ft
    from hilight_train.billiards.games import sort_balls

    frames, rec, truth = make_clip("9ball", 21, ClipConfig(max_duration=4.0))
    F, B = truth.state.shape
    assert F == rec["n_frames"] == len(frames) and len(truth.balls) == B
    assert (truth.width, truth.height) == (rec["config"]["width"], rec["config"]["height"])
    # moved / potted balls in the clip's summary are exactly those the per-frame states show
    moved = sort_balls(b for j, b in enumerate(truth.balls) if (truth.state[:, j] != ft.STILL).any())
    assert moved == rec["truth"]["moved"]
    potted_frames = {truth.balls[j]: int(np.argmax(truth.state[:, j] == ft.POTTED)) for j in range(B)
                     if (truth.state[:, j] == ft.POTTED).any()}  # fmt: skip
    assert sorted(potted_frames) == sorted(p["ball"] for p in rec["truth"]["potted"])
    for p in rec["truth"]["potted"]:
        assert abs(potted_frames[p["ball"]] / truth.fps - p["t"]) <= 1.0 / truth.fps + 1e-9
    # the picture: where a ball leaves, the pixels change; where it stays still, they do not
    f0, f1 = frames[0].astype(int), frames[-1].astype(int)
    for j in range(B):
        x, y = np.floor(truth.xy[0, j]).astype(int)
        if truth.state[0, j] == ft.OUTSIDE:
            continue
        still = (truth.state[:, j] == ft.STILL).all()
        far = (
            np.linalg.norm(truth.xy[-1, j] - truth.xy[0, j]) > 3 * truth.radius[0, j]
            or truth.state[-1, j] == ft.GONE
        )
        if still:
            assert np.abs(f0[y, x] - f1[y, x]).max() <= 12  # H.264-free frames: only moving neighbours
        elif far and not any(np.linalg.norm(truth.xy[-1, k] - truth.xy[0, j]) < 2 * truth.radius[0, j]
                             for k in range(B) if truth.state[-1, k] != ft.GONE):  # fmt: skip
            assert np.abs(f0[y, x] - f1[y, x]).max() > 12
    # bytes round trip; model-input mapping of the processor's resize
    ft.write(tmp_path / "t.safetensors", truth)
    back = ft.read(tmp_path / "t.safetensors")
    assert (
        back.balls == truth.balls
        and np.array_equal(back.xy, truth.xy)
        and np.array_equal(back.state, truth.state)
    )
    assert ft.to_bytes(back) == (tmp_path / "t.safetensors").read_bytes()
    corner = ft.to_model_input(np.array([truth.width, truth.height]), (truth.height, truth.width), (224, 224))
    assert np.allclose(corner, [224, 224])
    with pytest.raises(ValueError, match="not a frame-truth file"):
        (tmp_path / "bad.safetensors").write_bytes(b"junk")
        ft.read(tmp_path / "bad.safetensors")


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "card.md"  # the card records the command line (its --out differs)
    }


RACKS = """
import json, sys
import hilight_train
from hilight_train.billiards.tables import full_rack, make_table
racks = {g: {k: b.state.rvw[0][:2].tolist() for k, b in full_rack(g, make_table(g), seed=7).items()}
         for g in ("9ball", "8ball", "snooker")}
print(json.dumps(racks, sort_keys=True))
"""


def test_same_seed_gives_the_same_bytes_under_any_hash_seed(tmp_path):
    """Processes with different PYTHONHASHSEED (str hashing, hence set order) build the same opening racks and
    make_data.py writes identical files: every random choice of the engine follows the seed alone."""
    script = Path(__file__).resolve().parents[1] / "train" / "make_data.py"
    racks = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(script.parent)}
        run = subprocess.run(
            [sys.executable, "-c", RACKS], capture_output=True, text=True, env=env, timeout=300
        )
        assert run.returncode == 0, run.stderr[-2000:]
        racks.append(json.loads(run.stdout.strip().splitlines()[-1]))
        cmd = [sys.executable, str(script), "--out", str(tmp_path / hash_seed), "--clips", "6", "--seed", "3",
               "--games", "9ball,8ball,snooker", "--workers", "1", "--max-duration", "2"]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
    assert racks[0] == racks[1]
    assert sorted(racks[0]["8ball"]) == sorted(["cue", *(str(i) for i in range(1, 16))])
    assert _digests(tmp_path / "1") == _digests(tmp_path / "2")


def test_dataset_files_resume_and_determinism(tmp_path):
    from hilight_train.billiards.dataset import plan
    from hilight_train.billiards.runner import generate

    cfg = ClipConfig(max_duration=3.0)
    a, b = tmp_path / "a", tmp_path / "b"
    stats = generate(a, 3, 7, ["9ball", "3cushion"], cfg, workers=1, command="test")
    generate(b, 3, 7, ["9ball", "3cushion"], cfg, workers=1, command="test")
    for name in ("annotations.json", "events.jsonl", "captions.jsonl", "card.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for video in sorted((a / "videos").glob("*.mp4")):
        assert video.read_bytes() == (b / "videos" / video.name).read_bytes()
    truths = sorted((a / "truth").glob("*.safetensors"))
    assert len(truths) == 3 and all(t.read_bytes() == (b / "truth" / t.name).read_bytes() for t in truths)
    entries = json.loads((a / "annotations.json").read_text())
    assert stats["clips"] == 3 and {e["split"] for e in entries} == {"train", "val", "test"}
    for e in entries:
        assert e["conversations"][0]["value"].startswith("<video>\n")
        assert parse_answer(e["type"], e["conversations"][1]["value"]) == e["facts"]
    assert "majority" in (a / "card.md").read_text()
    # resume: a finished clip is skipped (its files are not rewritten)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (a / "videos").glob("*.mp4")}
    generate(a, 3, 7, ["9ball", "3cushion"], cfg, workers=1)
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (a / "videos").glob("*.mp4")}
    # ... unless its record comes from another engine version: then it is made again, to the same bytes
    old = sorted((a / "records").glob("*.json"))[0]
    record = json.loads(old.read_text())
    old.write_text(json.dumps({**record, "engine_version": "0"}))
    generate(a, 3, 7, ["9ball", "3cushion"], cfg, workers=1)
    video = a / "videos" / f"{old.stem}.mp4"
    assert video.stat().st_mtime_ns != mtimes[video.name] and json.loads(old.read_text()) == record
    assert video.read_bytes() == (b / "videos" / video.name).read_bytes()
    # splits come from disjoint seed streams
    jobs = plan(300, 7)
    seeds = {s: {j.seed for j in jobs if j.split == s} for s in ("train", "val", "test")}
    assert (
        not (seeds["train"] & seeds["val"])
        and not (seeds["train"] & seeds["test"])
        and not (seeds["val"] & seeds["test"])
    )


def test_long_shots_are_cut_and_labelled_as_seen():
    cfg = ClipConfig(max_duration=1.0, retries=0)
    frames, rec, _ = make_clip("snooker", 3, cfg)
    truth = rec["truth"]
    assert truth["truncated"]
    assert all(e["t"] <= 1.0 for e in rec["events"])
    assert len(frames) == rec["n_frames"] == math.ceil((1.0 + cfg.tail) * cfg.fps)
    assert truth["potted"] == [
        {"ball": e["ball"], "pocket": e["pocket"], "t": e["t"]}
        for e in rec["events"]
        if e["type"] == "pocket"
    ]
    for q in rec["qa"]:
        assert parse_answer(q["type"], q["answer"]) == q["facts"]


def test_contact_sheet_writes_a_png(tmp_path):
    from hilight_train.billiards.contact_sheet import contact_sheet

    frames, rec, _ = make_clip("9ball", 2, ClipConfig(max_duration=2.0))
    write_mp4(tmp_path / "clip.mp4", frames, 30)
    out = contact_sheet(tmp_path / "clip.mp4", rec, tmp_path / "sheet.png", n_tiles=4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_parallel_workers_write_the_same_dataset(tmp_path):
    from hilight_train.billiards.runner import generate

    cfg = ClipConfig(max_duration=3.0)
    generate(tmp_path / "one", 8, 2, ["9ball", "8ball", "snooker", "3cushion"], cfg, workers=1)
    generate(tmp_path / "two", 8, 2, ["9ball", "8ball", "snooker", "3cushion"], cfg, workers=2)
    for name in ("annotations.json", "events.jsonl", "captions.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    for video in (tmp_path / "one" / "videos").glob("*.mp4"):
        assert video.read_bytes() == (tmp_path / "two" / "videos" / video.name).read_bytes()


@pytest.mark.parametrize("family", ["overhead", "broadcast"])
def test_place_names_match_the_picture(family):
    """ "top-left" pockets are up and left in the rendered picture, for every sampled camera."""
    table = make_table("8ball")
    for seed in range(6):
        cam = sample_camera(family, table.w, table.l, 448, 256, np.random.default_rng(seed))
        where = {}
        for p in table.pockets.values():
            pix, _ = cam.project(np.array([[p.center[0], p.center[1], 0.0]]))  # (1, 2)
            where[cam.view.pocket_name(p.center[0], p.center[1])] = tuple(pix[0])
        corners = {k: v for k, v in where.items() if "middle" not in k}
        assert set(corners) == {"top-left", "top-right", "bottom-left", "bottom-right"}
        assert (
            corners["top-left"][0] < corners["top-right"][0]
            and corners["bottom-left"][0] < corners["bottom-right"][0]
        )
        assert (
            corners["top-left"][1] < corners["bottom-left"][1]
            and corners["top-right"][1] < corners["bottom-right"][1]
        )


# Imports the package, then every module of it, and lists what exists under HOME and the working directory
# after each step.
IMPORT_ALL = """
import importlib, json, os, pkgutil
from pathlib import Path
tree = lambda: sorted(str(p) for root in (Path.home(), Path.cwd()) for p in root.rglob("*"))
import hilight_train.billiards as billiards
after_package = tree()
for module in pkgutil.iter_modules(billiards.__path__):
    importlib.import_module(f"hilight_train.billiards.{module.name}")
print(json.dumps({"package": after_package, "modules": tree(), "numba": os.environ["NUMBA_CACHE_DIR"]}))
"""


def test_importing_the_billiards_package_creates_no_directories(tmp_path):
    """Importing the package creates nothing (it only names numba's cache folder), and importing all its
    modules creates only the folders the libraries they import create on their own import: pooltool's user
    config, numba's cache folders of pooltool's kernels and matplotlib's config and font cache."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    unset = ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1] / "train"))
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["package"] == []
    assert found["numba"] == str(home / ".cache" / "hilight" / "numba")
    libraries = [home / ".config" / "pooltool", Path(found["numba"])]
    libraries += [home / ".config" / "matplotlib", home / ".cache" / "matplotlib"]
    ours = [
        p for p in map(Path, found["modules"])
        if not any(p == d or d in p.parents or p in d.parents for d in libraries)
    ]  # fmt: skip
    assert ours == []


def test_ball_contrast_report_ranks_every_class_seen(tmp_path):
    import ball_contrast

    table = ball_contrast.summarise(ball_contrast.measure(["snooker"], scenes=3, seed=0))
    rows = table["snooker"]
    assert {"cue", "red"} <= {r["ball"] for r in rows} and all(r["balls"] > 0 for r in rows)
    medians = [r["contrast_median"] for r in rows]
    assert medians == sorted(medians) and all(0 <= m <= 255 * 3**0.5 for m in medians)
    assert all(0 < r["radius_px_median"] < 20 for r in rows)
    ball_contrast.plot(table, tmp_path / "contrast.png")
    assert (tmp_path / "contrast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ball_contrast_correlates_a_perception_report_by_rank(tmp_path):
    import ball_contrast

    table = {
        "8ball": [
            {"ball": b, "contrast_median": c}
            for b, c in (("6", 80.0), ("2", 95.0), ("1", 210.0), ("9", 220.0))
        ],
        "snooker": [
            {"ball": b, "contrast_median": c} for b, c in (("green", 36.0), ("pink", 195.0), ("cue", 240.0))
        ],
    }
    assert ball_contrast.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert ball_contrast.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    same_order = {"green": 0.1, "6": 0.5, "2": 0.6, "pink": 0.9, "1": 0.95, "9": 0.2, "cue": 1.0}
    report = {"cells": {"video": {"presence_recall_by_class": same_order}}}
    rho = ball_contrast.recall_correlations(table, report)["video"]
    assert rho["classes"] == 5 and rho["solids_and_colours"] == pytest.approx(1.0)  # the stripe 9 left out
    assert rho["all_but_cue"] < 1.0  # the stripe breaks the order
    ball_contrast.plot_recall(table, report, tmp_path / "recall.png")
    assert (tmp_path / "recall.png").stat().st_size > 0
