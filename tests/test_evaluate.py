"""`train/evaluate.py` end to end on a random-weight tiny model: files, baselines, resume, compare."""

import json
import subprocess
import sys

import pytest

from hilight_train.evaluation import load_entries, read_cache


def run_eval(repo_root, *args):
    cmd = [sys.executable, str(repo_root / "train" / "evaluate.py"), *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def evaluated(repo_root, tiny_model_dir, tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    args = ["--model", tiny_model_dir, "--data", tiny_dataset, "--split", "test", "--out", out]
    run_eval(repo_root, *args, "--max-new-tokens", "4", "--n-boot", "100", "--limit", "8")
    return out, args


def test_report_has_every_type_with_ci_and_baselines(evaluated, tiny_dataset):
    out, _ = evaluated
    report = json.loads((out / "report.json").read_text())
    entries = load_entries(tiny_dataset, "test")[:8]
    assert report["overall"]["n"] == 8
    assert set(report["types"]) == {e["type"] for e in entries}
    for entry in [report["overall"], *report["types"].values()]:
        low, high = entry["ci"]
        assert 0 <= low <= entry["accuracy"] <= high <= 1
    assert set(report["baselines"]) == {"majority", "blind"}
    assert {it["id"] for it in report["items"]} == {e["id"] for e in entries}
    for name in ("report.md", "accuracy.png", "failures.jsonl"):
        assert (out / name).stat().st_size > 0
    # the model's answers were cached one line per item; the blind run saw other clips' videos
    assert len(read_cache(out / "predictions-model.jsonl")) == 8
    assert len(read_cache(out / "predictions-blind.jsonl")) == 8


def test_rerun_resumes_from_the_cache(evaluated, repo_root):
    out, args = evaluated
    model_cache = out / "predictions-model.jsonl"
    before = model_cache.read_text()
    # a torn last line (an interrupted write) is ignored and recomputed
    lines = before.splitlines()
    model_cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:5])
    run_eval(repo_root, *args, "--max-new-tokens", "4", "--n-boot", "100", "--limit", "8")
    after = read_cache(model_cache)
    assert len(after) == 8
    assert {k: v["answer"] for k, v in after.items()} == {
        json.loads(ln)["id"]: json.loads(ln)["answer"] for ln in before.splitlines()
    }


def test_compare_mode(evaluated, repo_root, tmp_path):
    out, _ = evaluated
    report = out / "report.json"
    result = run_eval(repo_root, "--compare", report, report, "--out", tmp_path)
    diffs = json.loads((tmp_path / "compare.json").read_text())
    assert diffs["overall"]["diff"] == 0.0
    assert "| overall |" in result.stdout


def test_cached_answers_of_another_setting_are_refused(evaluated, repo_root, tiny_model_dir, tiny_dataset):
    out, _ = evaluated
    cmd = [sys.executable, str(repo_root / "train" / "evaluate.py"), "--model", str(tiny_model_dir)]
    cmd += ["--data", str(tiny_dataset), "--out", str(out), "--max-new-tokens", "9", "--limit", "8"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "other settings (max_new_tokens)" in result.stderr


def test_conversation_mode_asks_every_question_of_a_clip_in_one_session(
    repo_root, tiny_model_dir, tiny_dataset, tmp_path
):
    from hilight_train.evaluation import conversation_order

    entries = load_entries(tiny_dataset, "test")[:8]
    args = ["--model", tiny_model_dir, "--data", tiny_dataset, "--split", "test", "--out", tmp_path]
    run_eval(repo_root, *args, "--conversation", "--baselines", "", "--max-new-tokens", "4", "--n-boot", "50",
             "--limit", "8")  # fmt: skip
    rows = [json.loads(ln) for ln in (tmp_path / "predictions-conversation.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {e["id"] for e in entries}
    order = conversation_order(entries, seed=0)
    by_id = {r["id"]: r for r in rows}
    for chosen in order.values():  # turn k of a clip's session is the k-th question of its seeded order
        assert [by_id[e["id"]]["turn"] for e in chosen] == list(range(len(chosen)))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["overall"]["n"] == 8 and report["meta"]["questions"].startswith("one chat session")


def test_shifted_datasets_keep_the_questions_and_change_the_pixels(repo_root, tiny_dataset, tmp_path):
    import numpy as np

    from hilight.processing_hilight import read_video
    from hilight_train.shifts import SHIFTS

    entries = load_entries(tiny_dataset, "test")
    video = entries[0]["video"]
    original, _ = read_video(tiny_dataset / video, num_frames=4, decode_in_subprocess=False)
    for shift in SHIFTS:
        out = tmp_path / shift
        cmd = [sys.executable, str(repo_root / "train" / "make_shifted.py"), "--data", str(tiny_dataset)]
        cmd += ["--split", "test", "--shift", shift, "--out", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert load_entries(out, "test") == entries  # the same questions, answers and facts
        assert (out / "annotations_train.json").is_file()  # the majority baseline keeps its reference
        frames, _ = read_video(out / video, num_frames=4, decode_in_subprocess=False)
        if shift == "720p":
            assert frames.shape[1:3] == (720, 1280)
        else:
            assert frames.shape == original.shape
            diff = np.abs(frames.astype(int) - original.astype(int)).mean()
            assert diff > (10 if shift == "colour" else 0.3), (shift, diff)
    compressed = (tmp_path / "compress" / video).stat().st_size
    assert compressed < (tiny_dataset / video).stat().st_size
    # two worker processes write the same bytes as one
    cmd = [
        sys.executable,
        str(repo_root / "train" / "make_shifted.py"),
        "--data",
        str(tiny_dataset),
        "--split",
    ]
    cmd += ["test", "--shift", "colour", "--out", str(tmp_path / "colour2"), "--workers", "2"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    clips = sorted(p.relative_to(tmp_path / "colour") for p in (tmp_path / "colour").rglob("*.mp4"))
    assert clips and all(
        (tmp_path / "colour" / c).read_bytes() == (tmp_path / "colour2" / c).read_bytes() for c in clips
    )
