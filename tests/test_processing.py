"""Video reading, preprocessing parity with the official code, error handling, processor, chat template."""

import hashlib
import io
import json
import os
import signal
import struct
import time

import numpy as np
import pytest
import torch
from _processing_utils import FORMATS, frame_level, write_audio_only, write_video
from conftest import official_fixtures_dir
from safetensors.torch import load_file

from hilight import video_reading_hilight
from hilight.processing_hilight import (
    CHAT_TEMPLATE,
    VIDEO_TOKEN,
    CorruptVideoError,
    HiLightProcessor,
    HiLightVideoProcessor,
    NoDecodableFramesError,
    NotAVideoError,
    NoVideoStreamError,
    VideoDecoderCrashedError,
    VideoDecodeTimeoutError,
    VideoNotFoundError,
    VideoPlaceholderMismatchError,
    VideoReadError,
    VideoTooLargeError,
    official_frame_indices,
    read_video,
)
from hilight.video_reading_hilight import _run_in_child
from hilight_train.tokenizer import SPECIAL_TOKENS, train_tokenizer

FIXTURES = official_fixtures_dir()
FIXTURE_VIDEO = FIXTURES / "videos" / "activitynet_v_BshSmo_rRII.mp4"
# Parity tests: skipped with the reason without the fixtures, failed instead under CI (conftest's official_dir).
needs_fixtures = pytest.mark.usefixtures("official_dir")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Small synthetic videos written with PyAV: {name: path}."""
    root = tmp_path_factory.mktemp("clips")
    vfr_times = [0.0, 0.1, 0.15, 0.2, 0.6, 0.7, 1.5, 1.55, 1.6, 2.0, 2.1, 2.2, 3.0, 3.01, 3.02, 3.5]
    out = {fmt: write_video(root / f"{fmt}{FORMATS[fmt][0]}", 30, fmt) for fmt in FORMATS}
    out["faststart"] = write_video(
        root / "faststart.mp4", 60, "h264_mp4", height=96, width=128, faststart=True
    )
    out["vfr"] = write_video(root / "vfr.mp4", len(vfr_times), "h264_mp4", timestamps=vfr_times)
    out["one"] = write_video(root / "one.mp4", 1, "h264_mp4")
    out["ten"] = write_video(root / "ten.mp4", 10, "h264_mp4")
    out["audio_only"] = write_audio_only(root / "audio_only.mp4")
    return out


@pytest.fixture(scope="module")
def prompts(official_dir):
    return json.loads((official_dir / "prompt" / "prompts.json").read_text())


@pytest.fixture(scope="module")
def tokenizer():
    texts = [
        "How does the girl react to seeing the bears? The girl doesn't seem to have much of a reaction.",
        "Which balls were potted? The red ball and the 8-ball were potted; it was not a foul.",
    ] * 20
    return train_tokenizer(texts, vocab_size=320)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return HiLightProcessor(
        HiLightVideoProcessor(num_frames=4, size={"height": 32, "width": 32}), tokenizer, tokens_per_frame=2
    )


def decode_frames(path, **kwargs):
    frames, metadata = read_video(path, **kwargs)
    return frames, metadata


# ---------------------------------------------------------------------------------------------- parity


@needs_fixtures
def test_official_frame_indices_and_pixels_match_fixture():
    meta = json.loads((FIXTURES / "processor" / "frames_meta.json").read_text())
    expected = load_file(FIXTURES / "processor" / "frames.safetensors")["pixel_values"]  # (12, 3, 224, 224)
    out = HiLightVideoProcessor()(str(FIXTURE_VIDEO), num_frames=12, return_tensors="pt")
    pixel_values, metadata = out["pixel_values_videos"], out["video_metadata"][0]
    assert pixel_values.shape == (1, 12, 3, 224, 224)
    assert metadata.frames_indices == meta["frame_indices"]
    assert metadata.total_num_frames == meta["decord_num_frames"]
    assert metadata.fps == pytest.approx(meta["decord_avg_fps"])
    assert (metadata.height, metadata.width) == (meta["decoded_height"], meta["decoded_width"])
    assert metadata.duration == pytest.approx(1300 / 30, abs=1e-3)
    assert metadata.timestamps == pytest.approx([i / 30 for i in meta["frame_indices"]], abs=1e-4)
    assert (pixel_values[0] - expected).abs().max().item() <= 1e-5
    assert torch.equal(pixel_values[0], expected)  # observed: bit-identical


@needs_fixtures
def test_decoded_uint8_frames_match_fixture_md5():
    meta = json.loads((FIXTURES / "processor" / "frames_meta.json").read_text())
    frames, _ = read_video(FIXTURE_VIDEO, num_frames=12)
    for frame, info in zip(frames, meta["decoded_uint8_frames"], strict=True):
        assert (
            hashlib.md5(np.ascontiguousarray(frame).tobytes()).hexdigest() == info["md5_of_HxWx3_rgb_bytes"]
        )


@needs_fixtures
def test_in_process_decoding_equals_isolated_decoding(monkeypatch):
    children = []

    def in_child(function, timeout, name):  # counts the forks and forks as before
        children.append(name)
        return _run_in_child(function, timeout, name)

    monkeypatch.setattr(video_reading_hilight, "_run_in_child", in_child)
    isolated, isolated_meta = read_video(FIXTURE_VIDEO, num_frames=12, decode_in_subprocess=True)
    assert len(children) == 1  # decoded in a forked child
    inline, inline_meta = read_video(FIXTURE_VIDEO, num_frames=12, decode_in_subprocess=False)
    assert len(children) == 1  # decoded in this process
    np.testing.assert_array_equal(isolated, inline)
    assert isolated_meta == inline_meta


def test_official_index_rule_repeats_for_short_videos():
    assert official_frame_indices(1, 12).tolist() == [0] * 12
    assert official_frame_indices(10, 12).tolist() == [0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]
    assert official_frame_indices(1300, 12).tolist() == np.linspace(0, 1299, 12).astype(int).tolist()


# ---------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_generated_formats_decode_the_right_frames(clips, fmt):
    frames, metadata = read_video(clips[fmt], num_frames=12)
    assert frames.shape == (12, 64, 96, 3) and frames.dtype == np.uint8
    assert metadata.frames_indices == official_frame_indices(30, 12).tolist()
    assert metadata.fps == pytest.approx(10.0)
    assert metadata.duration == pytest.approx(3.0, abs=0.11)
    for frame, index in zip(frames, metadata.frames_indices, strict=True):
        background = np.median(frame[..., 1])  # the moving bright square is a small part of the frame
        assert abs(background - frame_level(index)) < 8, (fmt, index, background)


def test_variable_frame_rate_gives_real_timestamps(clips):
    written = [0.0, 0.1, 0.15, 0.2, 0.6, 0.7, 1.5, 1.55, 1.6, 2.0, 2.1, 2.2, 3.0, 3.01, 3.02, 3.5]
    frames, metadata = read_video(clips["vfr"], num_frames=12)
    assert metadata.total_num_frames == 16
    assert metadata.frames_indices == official_frame_indices(16, 12).tolist()
    assert metadata.timestamps == pytest.approx([written[i] for i in metadata.frames_indices], abs=2e-3)
    for frame, index in zip(frames, metadata.frames_indices, strict=True):
        assert abs(np.median(frame[..., 1]) - frame_level(index)) < 8


@pytest.mark.parametrize(("name", "count"), [("one", 1), ("ten", 10)])
def test_videos_shorter_than_t_repeat_frames(clips, name, count):
    out = HiLightVideoProcessor()(clips[name], return_tensors="pt")
    assert out["pixel_values_videos"].shape == (1, 12, 3, 224, 224)
    assert out["video_metadata"][0].frames_indices == official_frame_indices(count, 12).tolist()


def test_wrong_frame_count_in_container_header_is_ignored(clips, tmp_path):
    data = bytearray(clips["mjpeg_avi"].read_bytes())
    avih = data.find(b"avih")
    struct.pack_into("<I", data, avih + 8 + 16, 999)  # dwTotalFrames in the main AVI header
    strh = data.find(b"strh")
    struct.pack_into("<I", data, strh + 8 + 32, 999)  # dwLength of the video stream header
    patched = tmp_path / "wrong_count.avi"
    patched.write_bytes(bytes(data))
    frames, metadata = read_video(patched, num_frames=12)
    reference, _ = read_video(clips["mjpeg_avi"], num_frames=12)
    assert metadata.total_num_frames == 30
    np.testing.assert_array_equal(frames, reference)


def test_every_input_form_gives_the_same_pixels(clips):
    vp = HiLightVideoProcessor(num_frames=6)
    path = clips["h264_mp4"]
    expected = vp(videos=path, num_frames=6, return_tensors="pt")["pixel_values_videos"]
    all_frames, _ = read_video(
        path, num_frames=None
    )  # (30, H, W, 3): decoded frames are sampled the same way
    with open(path, "rb") as f:
        from_file = vp(f, return_tensors="pt")["pixel_values_videos"]
    for video in (
        str(path),
        path.read_bytes(),
        io.BytesIO(path.read_bytes()),
        all_frames,
        torch.from_numpy(all_frames),
    ):
        assert torch.equal(vp(video, return_tensors="pt")["pixel_values_videos"], expected), type(video)
    assert torch.equal(from_file, expected)
    assert torch.equal(
        vp(list(all_frames[official_frame_indices(30, 6)]), return_tensors="pt")["pixel_values_videos"],
        expected,
    )


def test_batch_of_videos_and_preset_config(clips):
    vp = HiLightVideoProcessor(
        num_frames=5, size={"height": 40, "width": 56}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    out = vp([clips["h264_mp4"], clips["vp9_webm"], clips["ten"]], return_tensors="pt")
    assert out["pixel_values_videos"].shape == (3, 5, 3, 40, 56)  # (B, T, C, H, W)
    assert [m.total_num_frames for m in out["video_metadata"]] == [30, 30, 10]
    assert (
        out["pixel_values_videos"].min() >= -1.5 and out["pixel_values_videos"].max() <= 1.5
    )  # (x - 0.5) / 0.5, bicubic overshoot


# ---------------------------------------------------------------------------------------------- errors


def _broken_corpus(clips, root):
    """(name, bytes-or-path, expected exception) for files that must be rejected."""
    faststart = clips["faststart"].read_bytes()
    moov_last = clips["h264_mp4"].read_bytes()
    webm = clips["vp9_webm"].read_bytes()
    avi = clips["mjpeg_avi"].read_bytes()
    rng = np.random.default_rng(0)
    corpus = [
        ("zero_bytes", b"", NotAVideoError),
        ("random_bytes", rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(), NotAVideoError),
        ("text", b"this is not a video\n" * 10, NotAVideoError),
        ("png", b"\x89PNG\r\n\x1a\n" + bytes(100), NotAVideoError),
        ("audio_only", clips["audio_only"].read_bytes(), NoVideoStreamError),
    ]
    for name, data in (
        ("faststart_mp4", faststart),
        ("moov_last_mp4", moov_last),
        ("webm", webm),
        ("avi", avi),
    ):
        for fraction in (0.02, 0.3, 0.6, 0.97):
            corpus.append(
                (f"{name}_truncated_{fraction}", data[: int(len(data) * fraction)], CorruptVideoError)
            )
    mdat = faststart.find(b"mdat") - 4
    corpus.append(("mp4_header_only", faststart[:mdat], CorruptVideoError))
    corpus.append(("mp4_header_and_mdat_header", faststart[: mdat + 8], CorruptVideoError))
    damaged = bytearray(faststart)
    for position in rng.integers(mdat + 64, len(damaged), 300):
        damaged[position] = rng.integers(0, 256)
    corpus.append(("mp4_bit_flips", bytes(damaged), CorruptVideoError))
    empty_avi = root / "zero_frames.avi"
    import av

    with av.open(str(empty_avi), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuvj420p"
        container.start_encoding()
    corpus.append(("avi_zero_frames", empty_avi.read_bytes(), NoDecodableFramesError))
    return corpus


def test_broken_files_raise_their_own_errors_quickly(clips, tmp_path):
    for name, data, expected in _broken_corpus(clips, tmp_path):
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        for source in (path, data):
            with pytest.raises(expected) as info:
                read_video(source, decode_timeout=30)
            assert isinstance(info.value, VideoReadError) and str(info.value), name
            assert "github/workspace" not in str(info.value)  # decord's source locations are stripped


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoNotFoundError, match="no such file"):
        HiLightVideoProcessor()(tmp_path / "missing.mp4")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for callers that catch that
        read_video(str(tmp_path / "missing.mp4"))
    with pytest.raises(NotAVideoError, match="directory"):
        read_video(tmp_path)


def test_size_and_duration_limits(clips):
    with pytest.raises(VideoTooLargeError, match="max_frame_pixels"):
        HiLightVideoProcessor(max_frame_pixels=64 * 64)(clips["h264_mp4"])
    with pytest.raises(VideoTooLargeError, match="max_duration"):
        HiLightVideoProcessor()(clips["h264_mp4"], max_duration=1.0)
    assert HiLightVideoProcessor(max_frame_pixels=None, max_duration=None)(clips["h264_mp4"])[
        "pixel_values_videos"
    ]


def test_hanging_decoder_is_stopped_and_crashing_decoder_is_contained():
    with pytest.raises(VideoDecodeTimeoutError, match="decode_timeout"):  # a finished sleep would return
        _run_in_child(lambda: time.sleep(60), timeout=0.5, name="hang")
    with pytest.raises(VideoDecoderCrashedError, match="SIGSEGV"):
        _run_in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV), timeout=30, name="crash")
    with pytest.raises(KeyError):  # ordinary exceptions come back as themselves
        _run_in_child(lambda: {}["missing"], timeout=30, name="error")
    assert _run_in_child(lambda: np.arange(3), timeout=30, name="ok").tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_special_tokens_bos_and_round_trip(tokenizer, tmp_path):
    assert tokenizer.convert_ids_to_tokens(list(range(7))) == SPECIAL_TOKENS
    assert (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.bos_token_id,
        tokenizer.unk_token_id,
    ) == (0, 1, 2, 3)
    text = "<start_of_turn>user\n<video>\nWhich balls were potted? Ünïcödé 🎱<end_of_turn>\n"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == 2 and ids.count(tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)) == 1
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids[1:]) == text
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids[1:]
    tokenizer.save_pretrained(tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(text)["input_ids"] == ids and reloaded.chat_template == CHAT_TEMPLATE


# ---------------------------------------------------------------------------------------------- processor


def test_processor_expands_placeholders_and_left_pads(processor, clips):
    video_id = processor.video_token_id
    out = processor(
        text=[
            "<video>\nWhich balls were potted?",
            "Describe <video> and <video> please, in a long sentence.",
        ],
        videos=[clips["h264_mp4"], clips["vp9_webm"], clips["ten"]],
        return_tensors="pt",
    )
    assert out["pixel_values_videos"].shape == (3, 4, 3, 32, 32)  # (V, T, C, H, W)
    per_video = 4 * 2  # num_frames * tokens_per_frame
    assert (out["input_ids"] == video_id).sum(dim=1).tolist() == [per_video, 2 * per_video]
    first = out["attention_mask"][0]
    assert first[0] == 0 and first[-1] == 1  # left padding
    assert out["input_ids"][0, first.argmax()] == processor.tokenizer.bos_token_id
    assert (out["input_ids"][out["attention_mask"] == 0] == processor.tokenizer.pad_token_id).all()
    texts = processor.batch_decode(out["input_ids"], skip_special_tokens=True)
    assert texts[0] == "\nWhich balls were potted?"


def test_processor_placeholder_count_mismatch(processor, clips):
    with pytest.raises(VideoPlaceholderMismatchError, match="1 <video> placeholder"):
        processor(text="<video> what happened?", videos=[clips["h264_mp4"], clips["ten"]])
    with pytest.raises(VideoPlaceholderMismatchError, match="0 video"):
        processor(text="<video> what happened?")
    with pytest.raises(VideoPlaceholderMismatchError, match="0 <video> placeholder"):
        processor(text="what happened?", videos=clips["h264_mp4"])


def test_auto_processor_round_trip(processor, clips, tmp_path):
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path)
    saved = {p.name for p in tmp_path.iterdir()}
    assert {
        "processor_config.json",
        "processing_hilight.py",
        "video_reading_hilight.py",  # imported by processing_hilight.py
        "tokenizer.json",
        "chat_template.jinja",
    } <= saved
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["auto_map"]["AutoProcessor"] == "processing_hilight.HiLightProcessor"
    assert (
        config["video_processor"]["auto_map"]["AutoVideoProcessor"]
        == "processing_hilight.HiLightVideoProcessor"
    )
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "HiLightProcessor"
    assert type(reloaded.video_processor).__name__ == "HiLightVideoProcessor"
    assert reloaded.tokens_per_frame == 2 and reloaded.video_processor.num_frames == 4
    assert reloaded.chat_template == CHAT_TEMPLATE
    kwargs = {
        "text": ["<video> hi", "a <video>"],
        "videos": [clips["ten"], clips["vfr"]],
        "return_tensors": "pt",
    }
    before, after = processor(**kwargs), reloaded(**kwargs)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


# ---------------------------------------------------------------------------------------------- chat template


def _messages(conversation, videos_as_parts=True):
    """prompts.json raw conversation -> chat messages (video as a content part, as users write them)."""
    messages = []
    for turn in conversation:
        role = "user" if turn["from"] == "human" else "assistant"
        text = turn["value"]
        if videos_as_parts and VIDEO_TOKEN in text:
            content = [{"type": "text", "text": text.replace(VIDEO_TOKEN, "").strip()}, {"type": "video"}]
        else:
            content = [{"type": "text", "text": text}]
        messages.append({"role": role, "content": content})
    return messages


def test_chat_template_reproduces_official_prompts(processor, prompts):
    single, two_turn, web = prompts["conversations"]
    render = processor.apply_chat_template
    assert render(_messages(single["raw_conversation"])) == single["training_prompt"]
    assert (
        render(_messages(single["raw_conversation"][:1]), add_generation_prompt=True)
        == single["inference_prompt_after_move"]
    )
    without_move = [
        {"role": "user", "content": single["raw_conversation"][0]["value"]}
    ]  # string content: verbatim
    assert render(without_move, add_generation_prompt=True) == single["inference_prompt_without_move"]
    assert render(_messages(two_turn["raw_conversation"])) == two_turn["training_prompt"]
    assert (
        render(_messages(two_turn["raw_conversation"][:3]), add_generation_prompt=True)
        == two_turn["inference_prompt_second_question"]
    )
    demo = [
        {"role": "system", "content": web["system_sentence"]},
        {"role": "user", "content": web["user_message_after_add_video_button"]},
    ]
    assert render(demo, add_generation_prompt=True) == web["prompt"]
    demo += [
        {"role": "assistant", "content": "She is looking at two teddy bears."},
        {"role": "user", "content": "What colour are they?"},
    ]
    assert render(demo, add_generation_prompt=True) == web["prompt_second_question"]
    # The tokenizer carries the same template.
    assert (
        processor.tokenizer.apply_chat_template(_messages(single["raw_conversation"]), tokenize=False)
        == single["training_prompt"]
    )


@pytest.mark.parametrize("index", [0, 1])
def test_assistant_mask_covers_exactly_the_trained_spans(processor, prompts, clips, index):
    conversation = prompts["conversations"][index]
    messages = _messages(conversation["raw_conversation"])
    for message in messages:
        for part in message["content"]:
            if part["type"] == "video":
                part["path"] = str(clips["ten"])
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    runs, current = [], []
    for token, trained in zip(ids.tolist(), mask.tolist(), strict=True):
        if trained:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    spans = [s["text"] for s in conversation["label_masking"]["spans"] if s["trained"]]
    assert [processor.tokenizer.decode(run) for run in runs] == spans
    untrained = processor.tokenizer.decode(ids[~mask].tolist()).replace(VIDEO_TOKEN * 8, VIDEO_TOKEN)
    expected = "<bos>" + "".join(
        s["text"] for s in conversation["label_masking"]["spans"] if not s["trained"]
    )
    assert untrained == expected
