"""The Gradio Space's functions called directly (no browser): example discovery, clip loading with its
limits and error messages, the streamed chat step, the explain view, the page's queue settings, and the
overlay PNG script. The model is a tiny random-weight folder loaded the way the Space loads it."""

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from _chat_utils import build_tiny_model, write_clip, write_corrupt
from PIL import Image

import hilight_train

SPACE_DIR = hilight_train.REPO_ROOT / "space"


def _import(name: str, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(SPACE_DIR))  # app.py imports explain.py from its own folder
space_app = _import("hilight_space_app", SPACE_DIR / "app.py")
space_explain = _import("hilight_space_explain", SPACE_DIR / "explain.py")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    write_clip(root / "break_shot.mp4", seed=0)
    write_clip(root / "corner_pot.mp4", seed=1)
    (root / "notes.txt").write_text("not a clip")
    return root


@pytest.fixture(scope="module")
def loaded(folder):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return space_app.load_model(str(folder))


@pytest.fixture
def space(loaded, folder, examples):
    config = space_app.SpaceConfig(model_id=str(folder), examples_dir=examples, max_duration_s=10.0)
    return space_app.HiLightSpace(*loaded, config)


def test_config_and_examples(monkeypatch, folder, examples, tmp_path):
    monkeypatch.setenv("HILIGHT_MODEL", str(folder))
    monkeypatch.setenv("HILIGHT_EXAMPLES", str(examples))
    monkeypatch.setenv("HILIGHT_MAX_DURATION", "30")
    config = space_app.SpaceConfig.from_env()
    assert config.model_id == str(folder) and config.max_duration_s == 30.0
    assert [p.name for p in space_app.find_examples(config)] == ["break_shot.mp4", "corner_pot.mp4"]
    # Without HILIGHT_EXAMPLES a local model folder's examples/ is used (none in the tiny folder).
    assert space_app.find_examples(space_app.SpaceConfig(model_id=str(folder))) == []
    # A Hub id whose examples cannot be fetched (tests run offline): no examples, no exception.
    assert space_app.find_examples(space_app.SpaceConfig(model_id="motern/hilight")) == []
    with pytest.raises(SystemExit, match=r"no config\.json"):
        space_app.load_model(str(tmp_path))


def test_load_video_shows_frames_and_rejects_bad_uploads(space, examples, tmp_path):
    gallery, status, state = space.load_video(str(examples / "break_shot.mp4"), None)
    assert "break_shot.mp4" in status and "loaded" in status
    assert len(gallery) == space.model.config.num_frames
    image, caption = gallery[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and caption.startswith("frame 1 · 0.00 s")
    good = state.current
    bad = {
        "truncated.mp4": write_corrupt(tmp_path / "truncated.mp4", source=examples / "corner_pot.mp4"),
        "text.mp4": write_corrupt(tmp_path / "text.mp4"),
        "long.mp4": write_clip(tmp_path / "long.mp4", num_frames=12 * 12, fps=12),  # 12 s > the 10 s limit
    }
    for name, path in bad.items():
        gallery, status, state = space.load_video(str(path), state)
        assert gallery == [] and status.startswith("⚠️") and f"Cannot use {name}" in status, status
        assert str(tmp_path) not in status  # no server paths on the page
        assert state.current is None
    assert "above the limit" in status
    space.config.max_upload_mb = 0.001
    _, status, _ = space.load_video(str(examples / "break_shot.mp4"), state)
    assert "above the 0.001 MB limit" in status
    assert space.load_video(None, state)[1] == "Upload a clip or pick an example."
    assert space.load_video(str(tmp_path / "gone.mp4"), state)[1].startswith("⚠️")
    assert state.session.videos == [good]  # failed uploads leave nothing behind


def test_uploads_are_decoded_in_a_child_process_with_the_spaces_timeout(loaded, folder, examples):
    # the library decodes in process by default; the Space isolates untrusted uploads, so its timeout applies
    config = space_app.SpaceConfig(model_id=str(folder), examples_dir=examples, decode_timeout_s=1e-4)
    _, status, state = space_app.HiLightSpace(*loaded, config).load_video(
        str(examples / "break_shot.mp4"), None
    )
    assert status.startswith("⚠️") and "decode_timeout" in status, status
    assert state.current is None


def test_a_failed_upload_after_a_good_clip_leaves_no_clip_current(space, examples, tmp_path):
    """A directory, a FIFO or a dangling symlink as the upload: the earlier clip is no longer current, so the
    next question is not answered about it."""
    (tmp_path / "folder.mp4").mkdir()
    os.mkfifo(tmp_path / "fifo.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    for name in ("folder.mp4", "fifo.mp4", "dangling.mp4"):
        _, status, state = space.load_video(str(examples / "break_shot.mp4"), None)
        assert state.current is not None
        _, status, state = space.load_video(str(tmp_path / name), state)
        assert status.startswith("⚠️") and state.current is None, (name, status)
        assert "Upload a clip" in list(space.chat("Was it a foul?", [], state))[-1][2]


def test_an_overlong_question_is_refused_at_once(space, examples):
    _, _, state = space.load_video(str(examples / "break_shot.mp4"), None)
    history, textbox, status, state = list(space.chat("Was it a foul? " * 20000, [], state))[-1]
    assert status.startswith("⚠️") and "reads at most" in status and history == [] and textbox
    assert not state.session.turns


@pytest.mark.parametrize("setting", [float("nan"), float("inf"), "many", None])
def test_bad_settings_get_a_message_not_an_exception(space, examples, setting):
    _, _, state = space.load_video(str(examples / "break_shot.mp4"), None)
    for kwargs in ({"max_new_tokens": setting}, {"temperature": setting}):
        history, textbox, status, state = list(space.chat("Was it a foul?", [], state, **kwargs))[-1]
        assert status.startswith("⚠️") and "must be a" in status and history == [] and textbox
    assert not state.session.turns


def test_chat_step_streams_and_follow_up_reuses_the_clip(space, examples):
    steps = list(space.chat("Which balls were potted?", [], None))
    assert steps[0][2] == "Type a question first." or "Upload a clip" in steps[0][2]
    _, _, state = space.load_video(str(examples / "break_shot.mp4"), None)
    assert list(space.chat("  ", [], state))[-1][2] == "Type a question first."
    steps = list(space.chat("Which balls were potted?", [], state, max_new_tokens=12))
    history, textbox, status, state = steps[-1]
    answer = state.session.turns[-1].answer
    assert history == [
        {"role": "user", "content": "Which balls were potted?"},
        {"role": "assistant", "content": answer.strip() or "(empty answer)"},
    ]
    assert textbox == "" and "Answered" in status and "1 clips encoded" not in status
    partial = [h[-1]["content"] for h, *_ in steps[:-1]]
    assert len(partial) >= 2 and all(answer.startswith(p) for p in partial)  # streamed piece by piece
    assert state.session.last_stats.generated_tokens <= 12
    calls = state.session.tower_calls
    history, _, status, state = list(space.chat("Was it a foul?", history, state, max_new_tokens=200))[-1]
    assert len(history) == 4 and state.session.tower_calls == calls
    assert "0 clips encoded" in status and state.session.last_stats.reused_tokens > 0
    assert state.session.last_stats.generated_tokens <= space.config.max_new_tokens  # clamped
    _, _, status, state = space.clear(state)
    assert state.session.turns == [] and status == "Conversation cleared."


def test_explain_view(space, examples):
    items, markdown = space.explain(None)
    assert items == [] and "Ask a question first" in markdown
    _, _, state = space.load_video(str(examples / "corner_pot.mp4"), None)
    list(space.chat("Describe the shot.", [], state, max_new_tokens=6))
    items, markdown = space.explain(state)
    assert len(items) == space.model.config.num_frames
    image, caption = items[0]
    assert image.dtype == np.uint8 and caption.startswith("corner_pot.mp4 · frame 1")
    assert "TokenMining" in markdown and "CLS/proxy" in markdown and "corner_pot.mp4" in markdown


def test_page_limits_and_queue(space):
    demo = space.build()
    assert demo._queue.max_size == space.config.queue_size
    model_fns = [fn for fn in demo.fns.values() if fn.concurrency_id == "model"]
    assert len(model_fns) >= 4 and all(fn.concurrency_limit == 1 for fn in model_fns)
    chat_fns = [fn for fn in model_fns if fn.name == "chat"]
    assert len(chat_fns) == 2 and all(fn.trigger_mode == "once" for fn in chat_fns)
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"clip", "status", "frames", "chat", "question", "ask", "explain", "overlay"} <= ids


def test_overlay_png_script(folder, examples, tmp_path):
    out = tmp_path / "overlay.png"
    code = space_explain.main(
        ["--model", str(folder), "--video", str(examples / "break_shot.mp4"), "--question", "Which balls?",
         "--out", str(out), "--max-new-tokens", "4"]
    )  # fmt: skip
    assert code == 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width == 4 * 256 and image.height > 100
    bad = space_explain.main(
        ["--model", str(folder), "--video", str(write_corrupt(tmp_path / "x.mp4")), "--question", "?", "--out",
         str(tmp_path / "no.png")]
    )  # fmt: skip
    assert bad == 2 and not (tmp_path / "no.png").exists()


def test_overlay_frame_is_a_patch_grid():
    frame = np.full((40, 60, 3), 100, dtype=np.uint8)
    grid = np.zeros((2, 3))
    grid[1, 2] = 1.0
    out = space_explain.overlay_frame(frame, grid, vmax=1.0)
    assert out.shape == frame.shape
    hot, cold = out[30, 50].astype(int), out[5, 5].astype(int)
    assert (out[20:, 40:] == out[30, 50]).all()  # one flat square per patch
    assert abs(hot - 100).sum() > abs(cold - 100).sum()  # the attended patch is coloured more
