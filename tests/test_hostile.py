"""Hostile and unusual inputs: each case is generated here (no binaries committed), runs under a timeout (a
hang fails), and must raise the named exception with a message that names the problem.

Cases are grouped by the input they attack: decoded frame arrays, pixel tensors given to the model, text
(processor, chat session, model), model folders (checkpoints and processors), and training rows.
"""

import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from _chat_utils import build_tiny_model, write_clip
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor

from hilight.processing_hilight import HiLightVideoProcessor, NoDecodableFramesError
from hilight_train.collator import SequenceTooLongError, drop_long_rows, encode_conversation

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("hostile-model"))


@pytest.fixture(scope="module")
def model(folder):
    return AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def processor(folder):
    return AutoProcessor.from_pretrained(folder, trust_remote_code=True)


def _too_long(match):
    """pytest.raises for `PromptTooLongError` of any copy of the processor module: remote code loads its own
    copies (the processor's and the chat session's may be different module objects), so the class is
    compared by name."""
    return _NamedRaises("PromptTooLongError", match)


class _NamedRaises:
    def __init__(self, name, match):
        self.name, self.match = name, match

    def __enter__(self):
        self.ctx = pytest.raises(ValueError, match=self.match)
        self.info = self.ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        handled = self.ctx.__exit__(*exc)
        assert type(self.info.value).__name__ == self.name, type(self.info.value)
        return handled


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("hostile-clip") / "clip.mp4")


# --- decoded frame arrays -------------------------------------------------------------------------------

_GOOD = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)

FRAME_CASES = {
    "float on a 0..1 scale": (_GOOD / 255.0, ValueError, "0..1 scale"),
    "negative int16": (_GOOD.astype(np.int16) - 200, ValueError, "dtype"),
    "uint16": (_GOOD.astype(np.uint16) * 200, ValueError, "dtype"),
    "bool": (_GOOD > 100, ValueError, "dtype"),
    "object array": (_GOOD.astype(object), ValueError, "dtype"),
    "complex": (_GOOD.astype(np.complex64), ValueError, "dtype"),
    "NaN": (np.full((2, 8, 8, 3), np.nan, np.float32), ValueError, "NaN or infinite"),
    "inf tensor": (torch.full((2, 8, 8, 3), float("inf")), ValueError, "NaN or infinite"),
    "-inf among good values": (
        np.where(_GOOD > 250, -np.inf, _GOOD).astype(np.float32),
        ValueError,
        "infinite",
    ),
    "above 255": (_GOOD.astype(np.float32) + 300, ValueError, "0..255"),
    "below 0": (_GOOD.astype(np.float32) - 300, ValueError, "0..255"),
    "bfloat16 above 255": (torch.full((2, 8, 8, 3), 999.0, dtype=torch.bfloat16), ValueError, "0..255"),
    "zero frames": (np.zeros((0, 8, 8, 3), np.uint8), NoDecodableFramesError, "0 frames"),
    "zero height": (np.zeros((2, 0, 8, 3), np.uint8), ValueError, "empty picture"),
    "zero width": (np.zeros((2, 8, 0, 3), np.uint8), ValueError, "empty picture"),
    "4 channels": (np.zeros((2, 8, 8, 4), np.uint8), ValueError, r"\[T, H, W, 3\]"),
    "1 channel": (np.zeros((2, 8, 8, 1), np.uint8), ValueError, r"\[T, H, W, 3\]"),
    "channels first": (np.zeros((2, 3, 8, 8), np.uint8), ValueError, r"\[T, H, W, 3\]"),
    "2-D array": (np.zeros((8, 8), np.uint8), ValueError, r"\[T, H, W, 3\]"),
    "6-D array": (np.zeros((1, 1, 2, 8, 8, 3), np.uint8), ValueError, r"\[T, H, W, 3\]"),
}


@pytest.mark.parametrize("case", FRAME_CASES, ids=list(FRAME_CASES))
def test_bad_frame_arrays_are_refused(case):
    frames, error, message = FRAME_CASES[case]
    with pytest.raises(error, match=message):
        HiLightVideoProcessor(num_frames=2)(frames, return_tensors="pt")


@pytest.mark.parametrize(
    "frames",
    [_GOOD, _GOOD.astype(np.float32), torch.from_numpy(_GOOD), np.zeros((1, 4, 4, 3), np.float64)],
    ids=["uint8", "float32 0..255", "uint8 tensor", "one black float frame"],
)
def test_valid_frame_arrays_are_read(frames):
    out = HiLightVideoProcessor(num_frames=2)(frames, return_tensors="pt")["pixel_values_videos"]
    assert out.shape == (1, 2, 3, 224, 224) and torch.isfinite(out).all()


# --- pixel tensors given to the model -------------------------------------------------------------------


def _pixels(model, fill=None, dtype=torch.float32):
    height, width = model.config.video_config.frame_size
    x = torch.zeros(1, model.config.num_frames, 3, height, width, dtype=dtype)
    if fill is not None:
        x[0, 0, 0, 0, 0] = fill
    return x


@pytest.mark.parametrize(
    "make",
    [
        lambda m: _pixels(m, float("nan")),
        lambda m: _pixels(m, float("inf")),
        lambda m: _pixels(m, dtype=torch.long),
    ],
    ids=["NaN", "inf", "integer"],
)
def test_bad_pixel_values_are_refused_by_the_model(model, processor, make):
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Was it a foul?"}]}],
        add_generation_prompt=True,
    )
    ids = processor(text=prompt, videos=np.zeros((4, 16, 16, 3), np.uint8), return_tensors="pt")["input_ids"]
    with pytest.raises(ValueError, match="pixel_values must be finite floating-point"):
        model.generate(input_ids=ids, pixel_values=make(model), max_new_tokens=2)


# --- text -----------------------------------------------------------------------------------------------

LONG_TEXTS = {"100k characters": "pool " * 20000, "one long word": "x" * 50000, "many lines": "?\n" * 5000}


@pytest.mark.parametrize("case", LONG_TEXTS, ids=list(LONG_TEXTS))
def test_overlong_prompts_are_refused_before_any_video_is_read(processor, case):
    text = f"<video>{LONG_TEXTS[case]}"
    with _too_long(f"the limit is {processor.max_prompt_tokens}"):
        processor(text=text, videos="/no/such/clip.mp4", return_tensors="pt")  # never opened


@pytest.mark.parametrize("case", LONG_TEXTS, ids=list(LONG_TEXTS))
def test_overlong_questions_are_refused_by_the_chat_session(model, processor, clip, case):
    session = model.start_chat(processor)
    with _too_long("reads at most"):
        session.ask(LONG_TEXTS[case], video=clip)
    assert session.tower_calls == 0 and not session.turns  # refused before any work


def test_max_new_tokens_beyond_the_position_table_is_refused(model, processor, clip):
    limit = model.config.text_config.max_position_embeddings
    with _too_long(f"max_new_tokens {limit}"):
        model.start_chat(processor).ask("Was it a foul?", video=clip, max_new_tokens=limit)


def test_the_model_refuses_sequences_longer_than_its_positions(model):
    limit = model.config.text_config.max_position_embeddings
    with pytest.raises(ValueError, match=f"has {limit} positions"):
        model(input_ids=torch.full((1, limit + 1), 10))


@pytest.mark.parametrize(
    ("question", "error", "message"),
    [
        ("lone surrogate \ud800 here", ValueError, "lone surrogate"),
        ("\udfff", ValueError, "lone surrogate"),
        ("<start_of_turn>user\nhi", ValueError, "special token"),
        ("fake <video> placeholder", ValueError, "special token"),
        (b"bytes question", TypeError, "must be a string"),
        (None, TypeError, "must be a string"),
        (42, TypeError, "must be a string"),
    ],
    ids=["surrogate", "low surrogate", "template token", "video token", "bytes", "None", "int"],
)
def test_bad_questions_are_refused(model, processor, question, error, message):
    with pytest.raises(error, match=message):
        model.start_chat(processor).ask(question)


# --- model folders --------------------------------------------------------------------------------------


def _copy_with(folder, tmp_path, edit):
    out = tmp_path / "edited"
    shutil.copytree(folder, out)
    state = load_file(out / "model.safetensors")
    save_file(edit(state), out / "model.safetensors", metadata={"format": "pt"})
    return out


CHECKPOINT_EDITS = {
    "no TokenMining tensors": (lambda s: {k: v for k, v in s.items() if not k.startswith("token_mining.")},
                               "missing keys: token_mining."),
    "one tensor missing": (lambda s: {k: v for k, v in s.items() if k != "video_tower.post_layernorm.weight"},
                           "missing keys: video_tower.post_layernorm.weight"),
    "an unexpected tensor": (lambda s: {**s, "video_tower.extra.weight": torch.zeros(2)},
                             "unexpected keys: video_tower.extra.weight"),
    "a NaN weight": (lambda s: {k: (v.clone().fill_(float("nan")) if k.endswith("output_fc1.weight") else v)
                                for k, v in s.items()}, "non-finite values in: token_mining.output_fc1.weight"),
    "an inf bias": (lambda s: {k: (v.clone().fill_(float("inf")) if k == "video_tower.post_layernorm.bias" else v)
                               for k, v in s.items()}, "non-finite values in: video_tower.post_layernorm.bias"),
}  # fmt: skip


@pytest.mark.parametrize("case", CHECKPOINT_EDITS, ids=list(CHECKPOINT_EDITS))
def test_checkpoints_that_do_not_fit_are_refused_naming_the_tensor(folder, tmp_path, case):
    edit, message = CHECKPOINT_EDITS[case]
    edited = _copy_with(folder, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        AutoModel.from_pretrained(edited, trust_remote_code=True)
    assert str(edited) in str(info.value)


def test_a_quantized_lm_loads_and_its_weights_are_still_checked(folder, tmp_path):
    from hilight_train.model_folder import int8_lm_config

    model = AutoModel.from_pretrained(folder, trust_remote_code=True, quantization_config=int8_lm_config())
    weight = model.language_model.model.layers[0].mlp.down_proj.weight
    assert type(weight.data) is not torch.Tensor  # int8 (optimum-quanto's tensor), not float
    assert type(model.video_tower.encoder.layers[0].mlp.fc1.weight.data) is torch.Tensor  # towers untouched
    name = "language_model.model.layers.0.mlp.down_proj.weight"
    edited = _copy_with(folder, tmp_path, lambda s: {k: (v.clone().fill_(float("nan")) if k == name else v)
                                                     for k, v in s.items()})  # fmt: skip
    with pytest.raises(
        ValueError, match=f"non-finite values in: {name}"
    ):  # the quantized weight is checked too
        AutoModel.from_pretrained(edited, trust_remote_code=True, quantization_config=int8_lm_config())


class _OpaqueQuantized(torch.Tensor):
    """A quantized weight as torchao's int8 tensors behave: no reshape or view, values through dequantize()."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.reshape, torch.Tensor.view, torch.Tensor.flatten):
            raise NotImplementedError(f"{func.__name__} of a quantized tensor")
        return super().__torch_function__(func, types, args, kwargs or {})

    def dequantize(self):
        return self.as_subclass(torch.Tensor)


def test_the_loading_finiteness_check_reads_quantized_weights_through_dequantize():
    from hilight.modeling_hilight import _all_finite

    weights = torch.ones(4, 3)
    assert _all_finite(weights.as_subclass(_OpaqueQuantized))
    weights[2, 1] = float("nan")
    assert not _all_finite(weights.as_subclass(_OpaqueQuantized))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("num_frames", 8, "num_frames: processor 8, model 4"),
        ("size", {"height": 224, "width": 224}, r"size: processor \(224, 224\)"),
        ("tokens_per_frame", 4, "tokens_per_frame: processor 4"),
    ],
)
def test_a_processor_that_disagrees_with_the_model_is_refused(model, folder, setting, value, message):
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    target = processor if setting == "tokens_per_frame" else processor.video_processor
    setattr(target, setting, value)
    with pytest.raises(ValueError, match=message):
        model.check_processor(processor)
    with pytest.raises(ValueError, match=message):
        model.start_chat(processor)


# --- training rows --------------------------------------------------------------------------------------


def test_training_rows_longer_than_max_length_are_dropped_never_cut(processor):
    from datasets import Dataset

    def conversation(answer_words):
        return json.dumps([
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the shot."}]},
            {"role": "assistant", "content": "pot " * answer_words},
        ])  # fmt: skip

    rows = Dataset.from_dict({"messages_json": [conversation(3), conversation(400), conversation(5)]})
    short = len(encode_conversation(processor, json.loads(rows[2]["messages_json"]))["input_ids"])
    kept, dropped = drop_long_rows(rows, processor, max_length=short + 10)
    assert dropped == 1 and kept["messages_json"] == [rows[0]["messages_json"], rows[2]["messages_json"]]
    with pytest.raises(SequenceTooLongError, match=f"longer than max_length={short - 1}"):
        encode_conversation(processor, json.loads(rows[2]["messages_json"]), max_length=short - 1)


# --- data files and command lines -----------------------------------------------------------------------

_TURNS = [{"from": "human", "value": "<video>\nWas it a foul?"}, {"from": "gpt", "value": "No."}]
DATA_FILES = {
    "not UTF-8": (b"\xff\xfe[{]", "not UTF-8 text"),
    "not JSON": (b"[{'id': 1,]", "not valid JSON"),
    "truncated JSON": (b'[{"id": 1, "conversations": [', "not valid JSON"),
    "a number as video": (json.dumps([{"id": "a", "video": 123, "conversations": _TURNS}]).encode(),
                          "`video` must be a path string"),
    "a list as video": (json.dumps([{"id": "a", "video": ["x.mp4"], "conversations": _TURNS}]).encode(),
                        "`video` must be a path string"),
    "a video outside the root": (json.dumps([{"id": "a", "video": "../../etc/passwd", "conversations": _TURNS}])
                                 .encode(), "escapes the dataset root"),
    "a record that is a string": (b'["hello"]', "expected an object"),
    "empty conversations": (json.dumps([{"id": "a", "conversations": []}]).encode(), "non-empty list"),
    "a turn without a role": (json.dumps([{"id": "a", "conversations": [{"value": "hi"}]}]).encode(),
                              "expected {'from'"),
    "unknown format": (json.dumps([{"id": "a", "question": "hi"}]).encode(), "neither LLaVA-style"),
}  # fmt: skip


@pytest.mark.parametrize("case", DATA_FILES, ids=list(DATA_FILES))
def test_bad_training_files_are_refused_naming_the_file_or_record(tmp_path, case):
    from hilight_train.data import load_samples

    data, message = DATA_FILES[case]
    path = tmp_path / "annotations.json"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        load_samples(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("case", ["not UTF-8", "not JSON"])
def test_bad_evaluation_files_are_refused_naming_the_file(tmp_path, case):
    from hilight_train.evaluation import load_entries

    (tmp_path / "annotations.json").write_bytes(DATA_FILES[case][0])
    with pytest.raises(ValueError, match=DATA_FILES[case][1]) as info:
        load_entries(tmp_path, "test")
    assert str(tmp_path / "annotations.json") in str(info.value)


def test_a_script_prints_one_line_and_exits_2_on_a_user_error(folder, tmp_path):
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    bad = tmp_path / "annotations.json"
    bad.write_bytes(DATA_FILES["not UTF-8"][0])
    cmd = [sys.executable, str(repo / "train" / "stage2_sft.py"), "--config", str(repo / "train/configs/tiny/stage2.yaml"),
           "--model_name_or_path", str(folder), "--train_data", str(bad), "--output_dir", str(tmp_path / "out")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and run.stderr.strip().splitlines()[-1].startswith(f"error: {bad}")
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, timeout=300, cwd=repo)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # --debug shows where it came from


# --- valid but unusual videos ---------------------------------------------------------------------------


def _write(path, codec, width=64, height=48, frames=12, pix_fmt="yuv420p", rotation=None, pts=None):
    """A clip whose frame i is a grey level 20 * i with a white band on its left quarter (orientation)."""
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            image = np.full((height, width, 3), 20 * i, np.uint8)
            image[:, : max(1, width // 4)] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 12)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


UNUSUAL = {
    "rotated 90 (phone)": (dict(codec="libx264", width=80, height=48, rotation=-90), "mp4", (48, 80)),
    "rotated 270": (dict(codec="libx264", width=80, height=48, rotation=90), "mp4", (48, 80)),
    "rotated 180": (dict(codec="libx264", width=80, height=48, rotation=180), "mp4", (48, 80)),
    "2x2 H.264": (dict(codec="libx264", width=2, height=2), "mp4", (2, 2)),
    "AV1 in Matroska": (dict(codec="libsvtav1"), "mkv", (48, 64)),
    "VP9 in WebM": (dict(codec="libvpx-vp9"), "webm", (48, 64)),
    "MJPEG in AVI": (dict(codec="mjpeg", pix_fmt="yuvj420p"), "avi", (48, 64)),
    "animated GIF": (dict(codec="gif", pix_fmt="rgb8"), "gif", (48, 64)),
    "10-bit H.264": (dict(codec="libx264", pix_fmt="yuv420p10le"), "mp4", (48, 64)),
    "one frame": (dict(codec="libx264", frames=1), "mp4", (48, 64)),
    "variable frame rate": (dict(codec="libx264", pts=[0, 1, 3, 4, 8, 9, 10, 15, 16, 20, 21, 30]), "mkv", (48, 64)),
}  # fmt: skip


@pytest.mark.parametrize("case", UNUSUAL, ids=list(UNUSUAL))
def test_valid_unusual_videos_decode(tmp_path, case):
    from hilight.processing_hilight import read_video

    options, extension, (height, width) = UNUSUAL[case]
    path = _write(tmp_path / f"clip.{extension}", **options)
    frames, metadata = read_video(path, num_frames=4)
    rotated = options.get("rotation") in (90, -90)
    assert frames.shape == (4, *((width, height) if rotated else (height, width)), 3), frames.shape
    assert frames.dtype == np.uint8 and metadata.video_backend in ("decord", "pyav")
    if width >= 8:  # the white band (the encoded picture's left quarter) after turning upright
        where = {None: np.s_[:, :2], -90: np.s_[:2, :], 90: np.s_[-2:, :], 180: np.s_[:, -2:]}
        assert frames[0][where[options.get("rotation")]].mean() > 200
    if options.get("frames", 12) > 1 and width >= 8:  # the grey level rises frame to frame
        grey = frames[:, height // 2 if rotated else -1, width // 2, 0]
        assert list(grey) == sorted(grey), grey


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b"garbage" * 10, lambda b: b""],
    ids=["truncated", "garbage", "empty"],
)
def test_corrupt_weights_are_refused_naming_the_folder(folder, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "model.safetensors").write_bytes(damage((copy / "model.safetensors").read_bytes()))
    with pytest.raises((ValueError, OSError), match=str(copy)):
        AutoModel.from_pretrained(copy, trust_remote_code=True)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("video_config", "hidden_size", "abc"), ("image_config", "hidden_size", 2.5),
     ("token_mining_config", "layer_norm_eps", "small"), ("video_config", "stem_channels", ["a"]),
     ("image_config", "use_text_encoder", "yes")],
    ids=["str width", "float width", "str eps", "str channels", "str flag"],
)  # fmt: skip
def test_config_fields_of_the_wrong_type_are_named(folder, tmp_path, section, key, value):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config[section][key] = value
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match=rf"\.{key} must be of type"):
        AutoModel.from_pretrained(copy, trust_remote_code=True)


@pytest.mark.parametrize("missing", ["tokenizer.json", "processor_config.json"])
def test_incomplete_processor_folders_name_what_is_missing(folder, tmp_path, missing):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"lacks .*\({missing}\)"):
        AutoProcessor.from_pretrained(copy, trust_remote_code=True)


@pytest.mark.parametrize(
    ("raw", "clear"),
    [("[12:00:00] /src/video_reader.cc:83: av_read_frame failed with 1094995529", "invalid data in the stream"),
     ("Error reading packet, error code -541478725", "unexpected end of file")],
)  # fmt: skip
def test_decoder_error_codes_are_put_in_words(raw, clear):
    from hilight.video_reading_hilight import _first_line

    message = _first_line(RuntimeError(raw))
    assert clear in message and not any(ch.isdigit() for ch in message.split("failed")[-1]), message


def test_the_processor_refuses_text_that_is_not_unicode(processor):
    with pytest.raises(ValueError, match="lone surrogate at character 4"):
        processor(text="pool\ud800", return_tensors="pt")
