"""Reading LLaVA/HiLight and VideoInstruct conversation files."""

import json

import pytest

from hilight_train.data import DatasetFormatError, load_samples


def write(path, records):
    path.write_text(json.dumps(records))
    return path


def test_video_marker_moves_to_start_of_turn_like_official(tmp_path, official_dir):
    (tmp_path / "clip.mp4").write_bytes(b"")
    conv = json.loads((official_dir / "prompt" / "prompts.json").read_text())["conversations"][1]
    ann = write(
        tmp_path / "a.json", [{"id": "x", "video": "clip.mp4", "conversations": conv["raw_conversation"]}]
    )
    (sample,) = load_samples(ann)
    assert sample.video == (tmp_path / "clip.mp4").resolve()
    moved = conv["after_video_move"]
    assert [m["role"] for m in sample.messages] == ["user", "assistant", "user", "assistant"]
    # official: "<video>\n" + stripped text; ours: a video part then the stripped text
    first = sample.messages[0]["content"]
    assert first[0] == {"type": "video"}
    assert "<video>\n" + first[1]["text"] == moved[0]["value"]
    assert sample.messages[2]["content"] == moved[2]["value"]  # later turns stay plain text


def test_text_only_and_multi_turn(tmp_path):
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]
    (sample,) = load_samples(write(tmp_path / "a.json", [{"id": 1, "conversations": turns}]))
    assert sample.video is None
    assert sample.messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_videoinstruct_style(tmp_path):
    (tmp_path / "v_abc.webm").write_bytes(b"")
    (sample,) = load_samples(write(tmp_path / "a.json", [{"video_id": "v_abc", "q": "What?", "a": "That."}]))
    assert sample.video.name == "v_abc.webm"
    assert sample.messages[0]["content"] == [{"type": "video"}, {"type": "text", "text": "What?"}]


def test_jsonl_and_engine_fields_are_kept(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "c.mp4").write_bytes(b"")
    rec = {
        "id": "c-0",
        "video": "videos/c.mp4",
        "type": "potted",
        "facts": {"potted": [3]},
        "split": "test",
        "conversations": [{"from": "human", "value": "<video>\nWhich?"}, {"from": "gpt", "value": "3"}],
    }
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (sample,) = load_samples(path)
    assert (sample.type, sample.facts, sample.extra) == ("potted", {"potted": [3]}, {"split": "test"})


@pytest.mark.parametrize("video", ["../outside.mp4", "/etc/passwd", "videos/../../x.mp4"])
def test_paths_escaping_the_root_are_refused(tmp_path, video):
    root = tmp_path / "root"
    root.mkdir()
    rec = {"id": "e", "video": video, "conversations": [{"from": "human", "value": "<video> q"}]}
    with pytest.raises(DatasetFormatError, match="escapes the dataset root"):
        load_samples(write(root / "a.json", [rec]))


def test_symlink_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"")
    (root / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    rec = {"id": "s", "video": "link.mp4", "conversations": [{"from": "human", "value": "<video> q"}]}
    with pytest.raises(DatasetFormatError, match="escapes"):
        load_samples(write(root / "a.json", [rec]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "not valid JSON"),
        (json.dumps([{"foo": 1}]), "neither LLaVA-style"),
        (json.dumps([{"id": 1, "conversations": [{"from": "robot", "value": "x"}]}]), "turn 0"),
        (
            json.dumps([{"id": 1, "conversations": [{"from": "human", "value": "<video> q"}]}]),
            "names no video",
        ),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetFormatError, match=message):
        load_samples(path)
