"""HiLight processors: video reading and preprocessing (decord, official rules) and the text+video processor.

What is notable:

- ``HiLightVideoProcessor`` reproduces the official HiLight ``load_video`` bit for bit: decord decode,
  frame indices ``numpy.linspace(0, n_frames - 1, T).astype(int)`` (indices repeat for clips shorter
  than T), ``float / 255``, resize to exactly 224x224 (aspect ratio not kept) with antialiased bicubic
  on the float tensor, no clamping, CLIP mean/std. Everything is configuration (saved in the processor
  config): another preset changes ``num_frames``, ``size``, ``image_mean`` / ``image_std``.
- Reading is defended (``video_reading_hilight.py``, a root file of its own): cheap container checks, then
  decord, in process by default or, with ``decode_in_subprocess=True`` (the Space sets it for uploads), in a
  forked child with a timeout; PyAV where decord cannot read. Each failure has its own exception class (all
  subclass ``VideoReadError``, a ``ValueError``), re-exported here.
- transformers' video-processor auto classes need torchvision, which cannot be installed beside every
  torch build; HiLight's processors need torch alone, so ``HiLightProcessor`` loads its video processor
  itself (``AutoProcessor.from_pretrained(folder, trust_remote_code=True)`` works either way).
- ``HiLightProcessor`` joins the video processor and a tokenizer; it expands every ``<video>`` in the
  text into ``num_frames * tokens_per_frame`` copies of the ``<video>`` token (12 * 32 = 384 for the
  paper preset) and carries the chat template that reproduces the official Gemma prompt strings.

Shape legend: B videos in a batch, T frames, H x W pixels, C = 3 (RGB).
"""

import functools
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack, VideosKwargs
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

from .video_reading_hilight import (
    CorruptVideoError,
    HiLightVideoMetadata,
    NoDecodableFramesError,
    NotAVideoError,
    NoVideoStreamError,
    VideoDecoderCrashedError,
    VideoDecodeTimeoutError,
    VideoNotFoundError,
    VideoReadError,
    VideoTooLargeError,
    official_frame_indices,
    read_video,
)

VIDEO_TOKEN = "<video>"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Official conv_gemma prompt format (see the class docstring of HiLightProcessor). No <bos>: the tokenizer adds it.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set ns = namespace(text='') -%}"
    "{%- if message['content'] is string -%}"
    "{%- set ns.text = message['content'] -%}"
    "{%- else -%}"
    # Official training-time rule: every video goes to the start of its turn, as '<video>\n'.
    "{%- for part in message['content'] if part['type'] == 'video' -%}"
    "{%- set ns.text = ns.text + '<video>\\n' -%}"
    "{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}"
    "{%- set ns.text = ns.text + part['text'] -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- ns.text -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<start_of_turn>user\\n' + ns.text + '<end_of_turn>\\n' -}}"
    "{%- elif message['role'] in ['assistant', 'model'] -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- generation -%}{{- ns.text + '<end_of_turn>\\n<eos>' -}}{%- endgeneration -%}"
    "{%- else -%}"
    "{{- raise_exception('HiLight chat roles are system, user and assistant (or model); got ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)


class PromptTooLongError(ValueError):
    """A prompt (text plus its vision tokens) is longer than the model can read."""


class VideoPlaceholderMismatchError(ValueError):
    """The number of ``<video>`` placeholders in the text differs from the number of videos."""


# ----------------------------------------------------------------------------------------------------------
# Video processor
# ----------------------------------------------------------------------------------------------------------


class HiLightVideoProcessorKwargs(VideosKwargs, total=False):
    """HiLight's video options on top of transformers' ``VideosKwargs``.

    max_frame_pixels (`int`): largest accepted decoded frame (height * width); default 8K (7680 * 4320).
    max_duration (`float`): longest accepted video in seconds; default 3600.
    decode_timeout (`float`): seconds before a decode is stopped; default 120.
    decode_in_subprocess (`bool`): decode in a forked child, so a decoder crash or hang on a hostile file
        raises instead of taking the process down (the Space turns it on for uploads); default False, as
        transformers' ``load_video`` decodes: forking a process that holds a large model costs more than the
        decode itself, and fork is unsafe in multi-threaded processes on macOS.
    """

    max_frame_pixels: int | None
    max_duration: float | None
    decode_timeout: float | None
    decode_in_subprocess: bool | None


_RESAMPLE_TO_TORCH = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL codes: NEAREST, BILINEAR, BICUBIC


def utf8_length(text: str, what: str = "text") -> int:
    """Bytes of ``text`` in UTF-8; a lone surrogate (not valid Unicode text) raises ValueError naming where."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the {what} is not valid Unicode text (a lone surrogate at character {exc.start})"
        ) from None


def _is_frames(x: Any) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor))


def check_frames(frames: np.ndarray | torch.Tensor) -> None:
    """Refuse decoded frames that are not RGB pictures on the uint8 scale, with the reason: shape
    [T, H, W, 3] with T, H, W > 0; dtype uint8, or float (16/32/64 bit, bfloat16) with finite values in
    0..255 (frames on a 0..1 scale are refused rather than read as nearly black)."""
    shape = tuple(frames.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"decoded frames must be [T, H, W, 3] RGB (channels last); got shape {shape}")
    if shape[0] == 0:
        raise NoDecodableFramesError("decoded frames: the array has 0 frames")
    if shape[1] == 0 or shape[2] == 0:
        raise ValueError(f"decoded frames have an empty picture (shape {shape})")
    if isinstance(frames, np.ndarray) and frames.dtype.kind not in "uif":
        raise ValueError(
            f"decoded frames must be uint8 (0..255) or float on the same 0..255 scale; got dtype {frames.dtype}"
        )
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if x.dtype == torch.uint8:
        return
    if not x.is_floating_point():
        raise ValueError(
            f"decoded frames must be uint8 (0..255) or float on the same 0..255 scale; got dtype {x.dtype}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("decoded frames contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise ValueError(f"decoded float frames must lie in 0..255 (the uint8 scale); got {low:g}..{high:g}")
    if 0 < high <= 1:
        raise ValueError(
            f"decoded float frames lie in 0..{high:g}: they look like a 0..1 scale; pass uint8 or multiply "
            "by 255"
        )


class HiLightVideoProcessor(VideoProcessorMixin):
    r"""Video processor of HiLight: decord reading + the official sampling and preprocessing.

    ``video_processor(videos, num_frames=T, return_tensors="pt")`` accepts one video or a list of them;
    a video is a path, bytes, a binary file object, or decoded RGB frames (numpy array or tensor
    [T, H, W, 3], uint8 scale 0..255), and a 5-D array [B, T, H, W, 3] is a batch. It returns
    ``pixel_values_videos`` float [B, T, 3, H', W'] (transformers' name for video inputs; the model also
    takes it as ``pixel_values``) and ``video_metadata`` (one ``HiLightVideoMetadata`` per video:
    frame indices, timestamps in seconds, fps, duration, size). Decoded frames are sampled by the same rule
    (a clip that already has T frames is kept as is).

    Args (all saved by ``save_pretrained``; the defaults are the paper preset):
        num_frames (`int`, defaults to 12): frames per video, indices ``linspace(0, n - 1, T).astype(int)``.
        size (`dict`, defaults to `{"height": 224, "width": 224}`): output size; aspect ratio not kept.
        resample (`int`, defaults to 3 = bicubic): 0 nearest, 2 bilinear, 3 bicubic (antialiased).
        do_rescale / rescale_factor (`1/255`), do_normalize / image_mean / image_std (CLIP's).
        do_center_crop / crop_size: optional crop after the resize (off; the official one is a no-op).
        max_frame_pixels, max_duration, decode_timeout, decode_in_subprocess: see
            ``HiLightVideoProcessorKwargs``.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values_videos"]
    valid_kwargs = HiLightVideoProcessorKwargs

    num_frames = 12
    do_sample_frames = True
    do_resize = True
    size: ClassVar[dict[str, int]] = {"height": 224, "width": 224}
    resample = 3
    do_center_crop = False
    crop_size = None
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    do_convert_rgb = False
    return_metadata = True
    max_frame_pixels = 7680 * 4320
    max_duration = 3600.0
    decode_timeout = 120.0
    decode_in_subprocess = False

    def __init__(self, **kwargs: Unpack[HiLightVideoProcessorKwargs]):
        super().__init__(**kwargs)
        self._set_attributes(**kwargs)

    # -- inputs ------------------------------------------------------------------------------------------

    @staticmethod
    def make_video_list(videos: Any) -> list[Any]:
        """Flatten the accepted input forms into a list with one entry per video (in order)."""
        if videos is None:
            return []
        if isinstance(videos, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(videos, "read"):
            return [videos]
        if _is_frames(videos):
            if videos.ndim == 4:
                return [videos]
            if videos.ndim == 5:
                return list(videos)
            raise ValueError(
                f"decoded frames must be [T, H, W, 3] (one video) or [B, T, H, W, 3] (a batch); got shape "
                f"{tuple(videos.shape)}"
            )
        if isinstance(videos, (list, tuple)):
            if videos and all(_is_frames(v) and v.ndim == 3 for v in videos):
                # One video given as a list of [H, W, 3] frames.
                return [np.stack([np.asarray(v) for v in videos])]
            flat = []
            for item in videos:
                flat.extend(HiLightVideoProcessor.make_video_list(item))
            return flat
        raise TypeError(
            "videos must be a path, bytes, a binary file object, frames [T, H, W, 3], or a list of these; got "
            f"{type(videos).__name__}"
        )

    def sample_frames(
        self, metadata: Any, num_frames: int | None = None, fps: float | None = None, **kwargs: Any
    ) -> np.ndarray:
        """Indices of the frames to keep (transformers' sampling hook): the official HiLight rule,
        ``linspace(0, n - 1, T).astype(int)`` with ``T = num_frames`` (default ``self.num_frames``) over the
        ``metadata.total_num_frames = n`` frames. HiLight samples a fixed number of frames, not a rate:
        ``fps`` only describes the video (timestamps)."""
        return official_frame_indices(int(metadata.total_num_frames), num_frames or self.num_frames)

    def _sample_decoded(self, frames: Any, num_frames: int | None, do_sample: bool, fps: float | None):
        """`sample_frames` applied to frames that are already decoded (checked by `check_frames`)."""
        check_frames(frames)
        total = int(frames.shape[0])
        given = VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps if fps else None)
        indices = self.sample_frames(given, num_frames) if (do_sample and num_frames) else np.arange(total)
        frames = frames[torch.as_tensor(indices)] if isinstance(frames, torch.Tensor) else frames[indices]
        metadata = HiLightVideoMetadata(
            total_num_frames=total,
            fps=fps,
            duration=given.duration,
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            video_backend=None,
            frames_indices=[int(i) for i in indices],
            frame_timestamps=[int(i) / fps for i in indices] if fps else None,
        )
        return frames, metadata

    def load(self, video: Any, **kwargs: Any) -> tuple[Any, HiLightVideoMetadata]:
        """Decode (or sample already decoded) frames of one video: (frames [T, H, W, 3], metadata). Frames are
        picked by `sample_frames` (every frame with ``do_sample_frames=False``)."""
        options = {
            key: kwargs.get(key, getattr(self, key, None)) for key in self.valid_kwargs.__annotations__
        }
        num_frames = options["num_frames"] if options["do_sample_frames"] else None
        if _is_frames(video):
            given = options["video_metadata"]
            fps = given.get("fps") if isinstance(given, dict) else getattr(given, "fps", None)
            return self._sample_decoded(video, num_frames, bool(options["do_sample_frames"]), fps)
        return read_video(
            video,
            num_frames=num_frames,
            max_frame_pixels=options["max_frame_pixels"],
            max_duration=options["max_duration"],
            decode_timeout=options["decode_timeout"],
            decode_in_subprocess=bool(options["decode_in_subprocess"]),
            sample_indices_fn=functools.partial(self.sample_frames, num_frames=num_frames)
            if num_frames
            else None,
        )

    # -- transform ---------------------------------------------------------------------------------------

    def transform(self, frames: Any, **kwargs: Any) -> torch.Tensor:
        """uint8-scale frames [T, H, W, 3] -> float [T, 3, H', W'] by the official order of operations.

        float, / 255, resize on the float tensor (antialiased bicubic, no clamping), optional centre crop,
        (x - mean) / std. The division (not a multiplication by 1/255) keeps the result bit-identical to the
        official tensors.
        """
        opts = self._standardize_kwargs(
            **{key: kwargs.get(key, getattr(self, key, None)) for key in self.valid_kwargs.__annotations__}
        )
        # One pass to a contiguous float copy (never the caller's tensor), then in-place ops: the same
        # arithmetic as the official code, with fewer full-resolution temporaries (see benchmarks/).
        x = torch.as_tensor(frames).permute(0, 3, 1, 2)  # (T, 3, H, W)
        x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        if opts["do_rescale"]:
            inverse = 1 / opts["rescale_factor"]
            if abs(inverse - round(inverse)) < 1e-6:
                x.div_(
                    round(inverse)
                )  # divide by 255, as the official code does (x * (1/255) differs by 1 ulp)
            else:
                x.mul_(opts["rescale_factor"])
        if opts["do_resize"]:
            size = opts["size"]
            if size.height is None or size.width is None:
                raise ValueError(
                    f"size must give height and width (aspect ratio is not kept); got {dict(size)}"
                )
            resample = int(opts["resample"])
            if resample not in _RESAMPLE_TO_TORCH:
                raise ValueError(f"resample must be 0 (nearest), 2 (bilinear) or 3 (bicubic); got {resample}")
            mode = _RESAMPLE_TO_TORCH[resample]
            if (x.shape[-2], x.shape[-1]) != (size.height, size.width):
                x = F.interpolate(
                    x,
                    size=(size.height, size.width),
                    mode=mode,
                    align_corners=None if mode == "nearest" else False,
                    antialias=mode != "nearest",
                )  # (T, 3, H', W')
        if opts["do_center_crop"] and opts["crop_size"] is not None:
            crop = opts["crop_size"]
            top = max(0, (x.shape[-2] - crop.height) // 2)
            left = max(0, (x.shape[-1] - crop.width) // 2)
            x = x[..., top : top + crop.height, left : left + crop.width]
        if opts["do_normalize"]:
            mean = torch.tensor(opts["image_mean"], dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(opts["image_std"], dtype=x.dtype).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    # -- call --------------------------------------------------------------------------------------------

    def preprocess(self, videos: Any, **kwargs: Unpack[HiLightVideoProcessorKwargs]) -> BatchFeature:
        """Read, sample and transform ``videos``; see the class docstring for inputs and outputs."""
        unknown = set(kwargs) - set(self.valid_kwargs.__annotations__)
        if unknown:
            raise TypeError(f"unknown video processor arguments: {sorted(unknown)}")
        return_tensors = kwargs.pop("return_tensors", None)
        return_metadata = kwargs.pop("return_metadata", self.return_metadata)
        video_list = self.make_video_list(videos)
        if not video_list:
            raise ValueError("no video given")
        given_metadata = kwargs.pop("video_metadata", None)
        if isinstance(given_metadata, (list, tuple)):
            if len(given_metadata) != len(video_list):
                raise ValueError(
                    f"got {len(video_list)} videos but {len(given_metadata)} video_metadata entries"
                )
        else:
            given_metadata = [given_metadata] * len(video_list)
        pixel_values, metadata = [], []
        for video, meta in zip(video_list, given_metadata, strict=True):
            frames, video_metadata = self.load(video, video_metadata=meta, **kwargs)
            pixel_values.append(self.transform(frames, **kwargs))  # (T, 3, H', W')
            metadata.append(video_metadata)
        if return_tensors is not None:
            shapes = {tuple(p.shape) for p in pixel_values}
            if len(shapes) > 1:
                raise ValueError(
                    f"videos of different shapes cannot be stacked into one tensor: {sorted(shapes)}"
                )
            pixel_values = torch.stack(pixel_values)  # (B, T, 3, H', W')
            if str(return_tensors) not in ("pt", "TensorType.PYTORCH"):
                pixel_values = pixel_values.numpy()
        data = {"pixel_values_videos": pixel_values}
        if return_metadata:
            data["video_metadata"] = metadata
        return BatchFeature(data=data, skip_tensor_conversion=["video_metadata"])

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("_valid_kwargs_names", None)
        for key in ("video_metadata", "device", "input_data_format", "data_format", "return_tensors"):
            output.pop(key, None)
        return output


# ----------------------------------------------------------------------------------------------------------
# Processor (video processor + tokenizer)
# ----------------------------------------------------------------------------------------------------------


class HiLightProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: HiLightVideoProcessorKwargs


class HiLightProcessor(ProcessorMixin):
    r"""Joins ``HiLightVideoProcessor`` and a tokenizer.

    ``processor(text=..., videos=..., return_tensors="pt")`` returns ``input_ids`` and ``attention_mask``
    (left padding for batches) and ``pixel_values_videos`` float [V, T, 3, H, W] (V = videos in text order). Every
    ``<video>`` in the text becomes ``T * tokens_per_frame`` copies of the ``<video>`` token (the model
    replaces them with its vision tokens); the number of placeholders must equal the number of videos.

    Chat template (official conv_gemma strings; the tokenizer adds ``<bos>``):
        user turn ``<start_of_turn>user\n{content}<end_of_turn>\n``; assistant turn
        ``<start_of_turn>model\n{content}<end_of_turn>\n<eos>`` (content + ``<end_of_turn>\n<eos>`` are the
        trained tokens, marked by ``return_assistant_tokens_mask=True``); generation prompt
        ``<start_of_turn>model\n``; a system message is written verbatim in front (as the official web
        demo does). Content parts ``{"type": "video", "path": ...}`` render as ``<video>\n`` at the start
        of the turn (the official training-time rule), then the ``{"type": "text"}`` parts; string content
        is used verbatim.

    Args:
        video_processor (`HiLightVideoProcessor`), tokenizer (any fast tokenizer with a ``<video>`` token).
        chat_template (`str`, *optional*): defaults to ``CHAT_TEMPLATE``.
        tokens_per_frame (`int`, defaults to 32): vision tokens per frame (the model's
            ``token_mining_config.queries_per_frame``).
        video_token (`str`, defaults to ``"<video>"``).
        max_prompt_tokens (`int`, *optional*): longest prompt, text plus vision tokens, the processor accepts
            (the LM's ``max_position_embeddings``); longer prompts raise ``PromptTooLongError`` before any
            video is read. Defaults to the tokenizer's ``model_max_length``.
    """

    valid_processor_kwargs = HiLightProcessorKwargs
    text_kwargs: ClassVar[dict[str, Any]] = {"padding": True, "padding_side": "left"}

    def __init__(
        self,
        video_processor: HiLightVideoProcessor | None = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        tokens_per_frame: int = 32,
        video_token: str = VIDEO_TOKEN,
        max_prompt_tokens: int | None = None,
    ):
        self.tokens_per_frame = int(tokens_per_frame)
        self.video_token = video_token
        if max_prompt_tokens is None and tokenizer is not None and tokenizer.model_max_length < 10**9:
            max_prompt_tokens = int(tokenizer.model_max_length)
        self.max_prompt_tokens = max_prompt_tokens
        if tokenizer is not None:
            video_token_id = tokenizer.convert_tokens_to_ids(video_token)
            if video_token_id is None or video_token_id == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer has no {video_token} token; add it as a special token")
            self.video_token_id = video_token_id
        super().__init__(
            video_processor,
            tokenizer,
            chat_template=chat_template if chat_template is not None else CHAT_TEMPLATE,
        )

    # transformers routes video processors through AutoVideoProcessor / VIDEO_PROCESSOR_MAPPING, which exist
    # only when torchvision is installed, even for remote-code classes. HiLight's video processor needs torch
    # alone, so these two hooks type-check and load it directly; everything else is ProcessorMixin's.
    def check_argument_for_proper_class(self, argument_name: str, argument: Any):
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                raise TypeError(f"video_processor must be a video processor; got {type(argument).__name__}")
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)

    @classmethod
    def _load_subprocessors(cls, pretrained_model_name_or_path, **kwargs) -> dict[str, Any]:
        """The video processor and the tokenizer of a saved processor, after naming the files a local folder
        lacks (before transformers fails deep inside)."""
        subfolder = kwargs.pop("subfolder", "")
        folder = Path(pretrained_model_name_or_path) / subfolder
        if folder.is_dir():
            needed = {"processor_config.json": "the processor config", "tokenizer.json": "the tokenizer"}
            missing = [f"{what} ({name})" for name, what in needed.items() if not (folder / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{folder} is not a complete HiLight folder: it lacks {' and '.join(missing)}; save the "
                    "processor there (processor.save_pretrained) or load it from the model's folder"
                )
        video_processor = HiLightVideoProcessor.from_pretrained(
            pretrained_model_name_or_path, subfolder=subfolder, **kwargs
        )
        tokenizer = cls._load_tokenizer_from_pretrained(
            "tokenizer", pretrained_model_name_or_path, subfolder=subfolder, **kwargs
        )
        return {"video_processor": video_processor, "tokenizer": tokenizer}

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # transformers < 5.25 loads the sub-processors here
        return list(cls._load_subprocessors(pretrained_model_name_or_path, **kwargs).values())

    @classmethod
    def _resolve_subprocessors(cls, pretrained_model_name_or_path, processor_dict, **kwargs):
        # transformers >= 5.25 loads them here (the base class keeps sub-processors it is handed as they are)
        loaded = cls._load_subprocessors(pretrained_model_name_or_path, **kwargs)
        return super()._resolve_subprocessors(pretrained_model_name_or_path, processor_dict, **{**kwargs, **loaded})

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        if images is not None or audio is not None:
            raise ValueError("HiLight takes text and videos only (no images or audio)")
        if text is None and videos is None:
            raise ValueError("give text, videos, or both")
        if text is None:
            return
        texts = [text] if isinstance(text, str) else text
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a list of strings")
        placeholders = sum(t.count(self.video_token) for t in texts)
        num_videos = len(HiLightVideoProcessor.make_video_list(videos))
        if placeholders != num_videos:
            raise VideoPlaceholderMismatchError(
                f"the text has {placeholders} {self.video_token} placeholder(s) but {num_videos} video(s) were "
                f"given; put exactly one {self.video_token} in the text for each video, in the same order"
            )
        for t in texts:
            self._check_prompt_length(t)

    def _check_prompt_length(self, text: str) -> None:
        """``PromptTooLongError`` when ``text`` with its placeholders expanded to vision tokens exceeds
        ``max_prompt_tokens``. A text of n UTF-8 bytes has at most n + 1 tokens (with <bos>), so only a text
        that could be too long is tokenized here (the processor tokenizes it again afterwards)."""
        if self.max_prompt_tokens is None:
            utf8_length(text)  # refuse lone surrogates here rather than inside the tokenizer
            return
        videos = text.count(self.video_token)
        per_video = self.video_processor.num_frames * self.tokens_per_frame
        if utf8_length(text) + 1 + videos * (per_video - 1) <= self.max_prompt_tokens:
            return
        text_tokens = len(self.tokenizer(text)["input_ids"])
        total = text_tokens + videos * (per_video - 1)
        if total > self.max_prompt_tokens:
            raise PromptTooLongError(
                f"the prompt is {total} tokens ({text_tokens} of text, {videos} video(s) of {per_video} vision "
                f"tokens); the limit is {self.max_prompt_tokens} (max_prompt_tokens): shorten the text or start "
                "a new conversation"
            )

    def _process_videos(self, videos: Any, **kwargs: Any):
        processed = self.video_processor(videos, **kwargs)
        replacements = [
            self.replace_video_token(processed, i) for i in range(len(processed["pixel_values_videos"]))
        ]
        return processed, replacements

    def expand_video_tokens(
        self, ids: list[int], per_video: int | list[int] | None = None
    ) -> tuple[list[int], list[int]]:
        """Token ids with each ``<video>`` id repeated ``per_video`` times (an int for every video, a list for
        each in turn; default ``num_frames * tokens_per_frame``), what the processor does to text, and for each
        position of the result the index of the token of ``ids`` it came from. The chat session and the
        training collator build their ids with it."""
        counts = (
            per_video if per_video is not None else self.video_processor.num_frames * self.tokens_per_frame
        )
        videos = sum(1 for token in ids if token == self.video_token_id)
        if isinstance(counts, int):
            counts = [counts] * videos
        if len(counts) != videos:
            raise VideoPlaceholderMismatchError(
                f"the ids have {videos} {self.video_token} tokens but {len(counts)} vision-token counts were given"
            )
        out: list[int] = []
        source: list[int] = []
        slot = 0
        for i, token in enumerate(ids):
            repeat = 1
            if token == self.video_token_id:
                repeat, slot = counts[slot], slot + 1
            out += [token] * repeat
            source += [i] * repeat
        return out, source

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs: Any) -> str:
        num_frames = len(video_inputs["pixel_values_videos"][video_idx])
        return self.video_token * (num_frames * self.tokens_per_frame)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos"]


HiLightVideoProcessor.register_for_auto_class("AutoVideoProcessor")
HiLightProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "CHAT_TEMPLATE",
    "VIDEO_TOKEN",
    "CorruptVideoError",
    "HiLightProcessor",
    "HiLightVideoMetadata",
    "HiLightVideoProcessor",
    "NoDecodableFramesError",
    "NoVideoStreamError",
    "NotAVideoError",
    "PromptTooLongError",
    "VideoDecodeTimeoutError",
    "VideoDecoderCrashedError",
    "VideoNotFoundError",
    "VideoPlaceholderMismatchError",
    "VideoReadError",
    "VideoTooLargeError",
    "official_frame_indices",
    "read_video",
]
