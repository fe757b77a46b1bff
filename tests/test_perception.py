"""Perception: the scene stream's labels, the dense targets, stage 0 (perception) and its report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hilight_train.billiards import frame_truth as ft
from hilight_train.billiards.scenes import SceneStream, sample_layout
from hilight_train.perception import CLASS_INDEX, clip_targets, frame_targets

sys.path.insert(0, str(Path(__file__).parent))
from _train_utils import OVERRIDES

torch.set_num_threads(1)


def test_stream_is_seekable_deterministic_and_labelled():
    stream = SceneStream(("9ball", "snooker"), seed=3, frames=4, width=160, height=96)
    a, b, c = stream[7], stream[7], stream[8]
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.truth.xy, b.truth.xy)
    assert a.game == "snooker" and c.game == "9ball" and not np.array_equal(a.frames[0], c.frames[0])
    assert a.frames.shape == (4, 96, 160, 3) and a.truth.state.shape == (4, len(a.truth.balls))
    with pytest.raises(IndexError):
        stream[len(stream)]
    # the labels are where the pictures change: a ball that leaves its spot changes the pixels there
    checked = 0
    for i in range(12):
        scene = stream[i]
        t = scene.truth
        for j in range(len(t.balls)):
            gone = t.state[-1, j] == ft.GONE
            far = gone or np.linalg.norm(t.xy[-1, j] - t.xy[0, j]) > 3 * t.radius[0, j]
            covered = any(np.linalg.norm(t.xy[-1, k] - t.xy[0, j]) < 2 * t.radius[0, j] + 1
                          for k in range(len(t.balls)) if t.state[-1, k] != ft.GONE)  # fmt: skip
            if t.state[0, j] == ft.STILL and far and not covered and t.radius[0, j] > 1.5:
                x, y = np.floor(t.xy[0, j]).astype(int)
                assert np.abs(scene.frames[0, y, x].astype(int) - scene.frames[-1, y, x]).max() > 12
                checked += 1
    assert checked >= 3


def test_layouts_keep_balls_apart_and_on_the_cloth():
    rng = np.random.default_rng(0)
    for game in ("9ball", "8ball", "snooker"):
        for _ in range(20):
            ids, xy = sample_layout(game, rng)
            assert len(ids) == len(xy) >= 1 and len(set(ids)) == len(ids)
            d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
            assert d.min() >= 2 * 0.0262  # never overlapping (snooker balls are the smallest)


def test_dense_targets_of_a_hand_made_truth():
    # two frames, 448 x 256, a 2 x 4 grid; the cue ball and two reds; one red is potted in frame 1
    xy = np.array([[[10, 10], [300, 200], [310, 205]], [[120, 10], [300, 200], [0, 0]]], dtype=np.float32)
    uv = np.array(
        [[[0.1, 0.9], [0.7, 0.2], [0.7, 0.2]], [[0.5, 0.5], [0.7, 0.2], [0.0, 0.0]]], dtype=np.float32
    )
    state = np.array([[ft.STILL, ft.STILL, ft.MOVING], [ft.MOVING, ft.STILL, ft.POTTED]], dtype=np.uint8)
    truth = ft.FrameTruth(
        ["cue", "red", "red"], xy, np.full((2, 3), 4, np.float32), uv, state, 448, 256, 30.0
    )
    y = frame_targets(truth, (2, 4))
    red, cue = CLASS_INDEX["red"], CLASS_INDEX["cue"]
    assert y["cells"].shape == (2, 8, len(CLASS_INDEX))
    assert y["cells"][0, 0, cue] == 1 and y["cells"][1, 1, cue] == 1  # x 120 of 448 is column 1 of 4
    assert y["cells"][0, 6, red] == 1 and y["cells"][0].sum() == 2  # both reds share cell (row 1, col 2)
    assert y["counts"][0, red] == 2 and y["counts"][1, red] == 1
    assert y["cue_region"].tolist() == [0, 4] and y["cue_cell"].tolist() == [0, 1]
    assert np.allclose(y["cue_xy"][0], [10 / 448, 10 / 256]) and y["regions"][0, red, 8] == 1
    # every visible ball's cell and class, padded with -1 (frame 1: the potted red is gone)
    assert y["ball_cell"][0, :3].tolist() == [0, 6, 6] and y["ball_class"][0, :3].tolist() == [cue, red, red]
    assert y["ball_cell"][1, :2].tolist() == [1, 6] and (y["ball_cell"][1, 2:] == -1).all()
    # the identity loss reads the cell logits at those cells: low when the right class wins there
    from hilight_train.perception import ball_identity_loss

    cells, classes = torch.as_tensor(y["ball_cell"])[None], torch.as_tensor(y["ball_class"])[None]
    logits = torch.zeros(1, 2, 8, len(CLASS_INDEX))
    chance = ball_identity_loss(logits, cells, classes)
    assert torch.isclose(chance, torch.tensor(float(np.log(len(CLASS_INDEX)))))
    logits[0, :, 6, red] = logits[0, 0, 0, cue] = logits[0, 1, 1, cue] = 10.0
    assert ball_identity_loss(logits, cells, classes) < 1e-3 < chance
    c = clip_targets(truth)
    assert c["potted"][red] == 1 and c["potted"].sum() == 1 and int(c["potted_count"]) == 1
    assert c["moved"][cue] == 1 and c["moved"][red] == 1 and int(c["final_cue_region"]) == 4


def test_engine_clips_mix_into_the_stream_with_their_frame_truth(engine_data):
    from hilight.processing_hilight import HiLightVideoProcessor
    from hilight_train.billiards import frame_truth as ft
    from hilight_train.perception import ClipTruthDataset, InterleavedDataset, dataset_clips, frame_targets

    clips = dataset_clips(engine_data, "train")
    assert clips and all(c["split"] == "train" for c in clips)
    processor = HiLightVideoProcessor(num_frames=3, size={"height": 64, "width": 112})
    rows = ClipTruthDataset(engine_data, clips, processor, (2, 4), num_frames=3)
    row = rows[0]
    assert row["pixel_values"].shape == (3, 3, 64, 112)
    truth = ft.read(engine_data / clips[0]["frame_truth"])
    indices = processor.load(str(engine_data / clips[0]["video"]), num_frames=3)[1].frames_indices
    expected = frame_targets(truth.select(indices), (2, 4))["cells"]
    assert torch.equal(row["cells"], torch.as_tensor(expected)) and row["cells"].sum() > 0
    mixed = InterleavedDataset(list(range(10)), ["clip0", "clip1"], every=3)
    assert [mixed[i] for i in range(9)] == [0, 1, "clip0", 2, 3, "clip1", 4, 5, "clip0"]


def test_stage0_perception_trains_and_the_report_measures_it(tmp_path, engine_data):
    """A few steps of stage 0 (perception) on the stream, then the report on real engine clips."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "perception"
    overrides = json.dumps({**OVERRIDES, "num_frames": 2})
    cmd = [
        sys.executable, str(repo / "train" / "stage0_perception.py"),
        "--config", str(repo / "train" / "configs" / "tiny" / "stage0_perception.yaml"),
        "--tokenizer_corpus", str(engine_data / "annotations.json"), "--vocab_size", "600",
        "--model_overrides", overrides, "--output_dir", str(out), "--scenes", "4",
        "--per_device_train_batch_size", "2", "--dataloader_num_workers", "0", "--save_steps", "1",
        "--clips_data", str(engine_data),  # every 2nd row an engine clip
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=repo, timeout=600)
    assert (out / "perception_heads.safetensors").is_file() and (out / "model.safetensors").is_file()
    assert (out / "log.jsonl").read_text().strip()
    from safetensors.torch import load_file

    trained, start = (
        load_file(str(out / "model.safetensors")),
        load_file(str(out / "init" / "model.safetensors")),
    )
    changed = {k.split(".")[0] for k in trained if not torch.equal(trained[k], start[k])}
    assert changed == {"video_tower", "image_tower"}  # only the towers train; their text encoders stay
    assert all(torch.equal(trained[k], start[k]) for k in trained if ".text_model." in k)
    report = tmp_path / "report"
    cmd = [
        sys.executable, str(repo / "train" / "perception_report.py"), "--model", str(out),
        "--data", str(engine_data), "--test_split", "train", "--threshold_split", "train", "--cnn_steps", "2",
        "--out", str(report),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=repo, timeout=600)
    result = json.loads((report / "report.json").read_text())
    assert {r["fact"] for r in result["probes"]} >= {"ball_moved"}
    for tower in ("video", "image"):
        m = result["cells"][tower]
        assert 0 <= m["cells"]["f1"] <= 1 and m["frames"] > 0
        assert result["cells_at_0.5"][tower]["thresholds"] == {"cells": 0.5, "presence": 0.5}
        assert m["presence"]["f1"] >= result["cells_at_0.5"][tower]["presence"]["f1"] - 1e-9  # chosen on these clips
        assert list(m["presence_recall_by_class"]) == list(CLASS_INDEX)
    assert all(
        0 <= result["counts"][k] <= 1 for k in ("frame_count_exact", "potted_from_counts", "potted_majority")
    )
    assert (report / "cells.png").stat().st_size > 0 and "ball-cell" in (report / "report.md").read_text()


def test_a_run_that_continues_from_a_stage0_folder_starts_from_its_heads(tmp_path):
    from safetensors.torch import save_file

    from hilight.configuration_hilight import HiLightConfig
    from hilight.modeling_hilight import HiLightForConditionalGeneration
    from hilight_train.perception import HEADS_FILE, heads_for

    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(HiLightConfig.from_preset("tiny", **OVERRIDES))
    trained = heads_for(model)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / HEADS_FILE))
    loaded, fresh = heads_for(model, tmp_path), heads_for(model, tmp_path / "no-heads-here")
    for k, v in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v) and not torch.equal(fresh.state_dict()[k], v)
    state = trained.state_dict()
    state["frame.weight"] = state["frame.weight"][:-1]  # heads of other towers: refused, named
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / HEADS_FILE))
    with pytest.raises(ValueError, match=r"frame\.weight"):
        heads_for(model, tmp_path)


def test_report_thresholds_are_chosen_where_the_f1_is_best():
    """Scores of a head trained with weighted positives sit above 0.5 on empty cells too: at 0.5 every cell
    looks like a ball; the chosen thresholds separate them."""
    from perception_report import cell_metrics, chosen_thresholds  # train/ is on the test path

    gen = torch.Generator().manual_seed(0)
    cells = (torch.rand(4, 3, 10, len(CLASS_INDEX), generator=gen) < 0.05).float()  # (N, T, P, K)
    scores = torch.where(cells > 0, 0.8 + 0.1 * torch.rand(cells.shape, generator=gen), 0.55)
    assert cell_metrics(scores, cells)["cells"]["precision"] < 0.1
    cell_t, presence_t = chosen_thresholds(scores, cells)
    assert 0.55 <= cell_t < 0.8 and 0.55 <= presence_t < 0.8
    chosen = cell_metrics(scores, cells, cell_t, presence_t)
    assert chosen["cells"]["f1"] == 1.0 and chosen["presence"]["f1"] == 1.0
