"""Conversations with HiLight: every video is decoded and encoded once, the LM's KV cache is kept across turns.

    session = model.start_chat(processor)                       # or: answer, session = model.chat(...)
    session.ask("Which balls were potted?", video="shot.mp4")   # decode + towers + TokenMining + prefill
    session.ask("Was it a foul?")                               # prefills only the new turn's tokens
    for text in session.stream("Describe the shot."):           # the same through a TextIteratorStreamer
        print(text, end="")
    session.explain()                                           # where the last answer looked (see below)

What is notable:
- The conversation is kept as chat-template messages, and the token ids fed to the LM are ALWAYS the ids
  the processor gives for the whole conversation (`processor.apply_chat_template` + tokenizer + `<video>`
  expansion). Each turn renders the full conversation (cheap: text with one `<video>` token per clip),
  finds the longest prefix the KV cache already holds, and prefills only the rest. When the model's own
  tokens for an answer equal the tokenizer's tokens for the answer text (the usual case) that is exactly
  the new turn; otherwise the cache is cropped where they part and the few differing tokens are prefilled.
  A turn can therefore never see a prompt that differs from the chat template's.
- Vision tokens of each video are computed once (`get_video_features`) and spliced through the model's
  `video_embeds` input whenever that video's placeholders are among the tokens being prefilled. A video
  already in the conversation is never decoded or encoded again; passing the conversation's latest video
  again adds no new `<video>` to the turn (a follow-up), an earlier one is inserted again from its stored
  vision tokens.
- Generation goes through `model.generate` with the session's cache (`cache=`), so every generation
  setting and streamer of transformers works. Defaults: greedy; `temperature` > 0 or `top_p` switch to
  sampling; `seed` makes sampling reproducible without touching the global RNG. A turn stops at
  the model's stop ids (`generation_config.eos_token_id`: `<eos>` and `<end_of_turn>`).
- `explain()` answers "which regions did this answer draw on": the LM's attention from the positions that
  produced the answer to each vision token (mean over layers, heads and those positions), pushed through
  TokenMining's attention from each vision token to the CLIP-ViP tokens. The result per video is a
  distribution over CLIP-ViP's tokens: its patch part as a (T, gh, gw) grid per frame (gh x gw patches of
  the resized square frame, i.e. of the whole frame with its aspect squashed), plus the share that went to
  the leading (CLS + proxy) tokens, which have no place in the image.

One session runs one generation at a time (a second concurrent call raises). Shape legend: T frames,
Q TokenMining queries per frame, K = T*Q vision tokens of a clip, H LM width, L = M + T*P CLIP-ViP tokens
(M leading, P = gh*gw patches per frame).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache, TextIteratorStreamer

from .processing_hilight import PromptTooLongError, utf8_length

# Template tokens a turn adds around its question and answer (<start_of_turn>user\n ... <end_of_turn>\n
# <start_of_turn>model\n ... <end_of_turn>\n<eos>), an upper bound used by the length check.
_TURN_OVERHEAD = 16

# Generation settings the session understands besides those of `GenerationConfig` (passed through as is).
_SESSION_GENERATION_KEYS = ("seed",)
_DEFAULT_MAX_NEW_TOKENS = 128


@dataclass(eq=False)
class ChatVideo:
    """A video of the conversation, decoded and encoded once.

    Args:
        key: identity of the source (path + size + mtime, or a hash of the bytes / frames).
        name: short display name.
        frames: the sampled frames as decoded, uint8 (T, H, W, 3) (for display and attention overlays).
        timestamps: presentation time of each sampled frame in seconds (None when unknown).
        video_embeds: vision tokens (1, K, H).
        token_mining_attentions: TokenMining softmax weights (1, K, L).
        metadata: the video processor's metadata for this video.
        reference: what the conversation's messages show for it: the path as given, else `name`.
    """

    key: str
    name: str
    frames: np.ndarray
    timestamps: list[float] | None
    video_embeds: torch.Tensor
    token_mining_attentions: torch.Tensor
    metadata: Any = None
    reference: str = ""


@dataclass
class ChatTurnStats:
    """What a turn cost: tokens of the whole prompt, tokens reused from the cache, tokens prefilled, videos
    decoded+encoded in this turn, tokens generated."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    encoded_videos: int = 0
    generated_tokens: int = 0


@dataclass
class ChatExplanation:
    """Where an answer drew on the videos (see the module docstring for the exact definition).

    Args:
        turn: index of the explained turn (0-based over assistant answers).
        question, answer: the turn's text.
        videos: the conversation's videos whose tokens were in the prompt, in placeholder order.
        heatmaps: per video, float (T, gh, gw): the answer's relevance mass on each CLIP-ViP patch. Per
            video, heatmap.sum() + leading_share == 1.
        leading_share: per video, the mass on CLIP-ViP's leading (CLS + proxy) tokens.
        video_share: per video, the fraction of the answer's LM attention that went to that video's vision
            tokens (the rest went to text tokens); None with method "uniform".
        method: "answer-attention" (LM attention x TokenMining attention) or "uniform" (every vision token
            weighted equally: TokenMining attention alone, independent of any question).
    """

    turn: int
    question: str
    answer: str
    videos: list[ChatVideo]
    heatmaps: list[np.ndarray]
    leading_share: list[float]
    video_share: list[float] | None
    method: str


@dataclass
class _Turn:
    question: str
    answer: str
    video_indices: list[int]
    stats: ChatTurnStats = field(default_factory=ChatTurnStats)


def _source_key(video: Any) -> tuple[str, str, Any]:
    """(identity key, display name, what to hand the video processor) of a video source."""
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_file():
            stat = path.stat()
            return f"path:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", path.name, str(path)
        return f"path:{path}", path.name, str(path)  # the video processor raises the precise error
    if hasattr(video, "read"):
        video = video.read()
        if not isinstance(video, bytes):
            raise TypeError("file objects must be opened in binary mode ('rb')")
    if isinstance(video, (bytes, bytearray, memoryview)):
        data = bytes(video)
        digest = hashlib.sha1(data).hexdigest()
        return f"bytes:{digest}", f"<{len(data)} bytes>", data
    if isinstance(video, (np.ndarray, torch.Tensor)):
        array = np.ascontiguousarray(video.numpy() if isinstance(video, torch.Tensor) else video)
        digest = hashlib.sha1(array.tobytes()).hexdigest()
        return f"frames:{array.shape}:{digest}", f"<frames {tuple(array.shape)}>", array
    raise TypeError(
        "a video is a path, bytes, a binary file object or decoded frames [T, H, W, 3]; "
        f"got {type(video).__name__}"
    )


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class HiLightChatSession:
    """A conversation with a HiLight model (see the module docstring).

    Args:
        model: a `HiLightForConditionalGeneration` (any dtype; put it in eval mode).
        processor: the matching `HiLightProcessor` (chat template, tokenizer, video processor).
        system: optional system text, written verbatim in front of the conversation (chat template rule).
        video_kwargs: options for the video processor's `load` (e.g. `max_duration`, `decode_timeout`).
        **generation_kwargs: defaults for every turn (`max_new_tokens`, `temperature`, `top_p`, `seed`,
            or any `GenerationConfig` field); a turn's own arguments override them.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        system: str | None = None,
        video_kwargs: dict[str, Any] | None = None,
        **generation_kwargs: Any,
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.system = system
        self.video_kwargs = dict(video_kwargs or {})
        self.generation_defaults = dict(generation_kwargs)
        self.video_token_id = int(processor.video_token_id)
        if model.config.video_token_id is not None and model.config.video_token_id != self.video_token_id:
            raise ValueError(
                f"the processor's <video> token id ({self.video_token_id}) differs from the model's "
                f"config.video_token_id ({model.config.video_token_id}); load both from the same folder"
            )
        model.check_processor(processor)
        self.stop_token_ids = self._stop_token_ids()
        self.videos: list[ChatVideo] = []
        self.turns: list[_Turn] = []
        self.tower_calls = 0  # get_video_features calls made by this session (one per new video)
        self._placeholder_videos: list[int] = []  # video index of every <video> in the conversation, in order
        self._cache: DynamicCache | None = None
        self._cache_ids: list[int] = []  # token ids the KV cache holds, in order
        self._lock = threading.Lock()
        self._eager_lm: torch.nn.Module | None = None  # explain()'s weight-sharing eager view of the LM

    # --- conversation state ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation in chat-template form; a video part carries the video's path as given (else its
        display name) under "video", so `chat(history=session.messages)` can replay a file-based one."""
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for turn in self.turns:
            parts = [{"type": "video", "video": self.videos[i].reference} for i in turn.video_indices]
            out.append({"role": "user", "content": [*parts, {"type": "text", "text": turn.question}]})
            out.append({"role": "assistant", "content": turn.answer})
        return out

    @property
    def last_stats(self) -> ChatTurnStats | None:
        """Cost of the latest turn (None before the first)."""
        return self.turns[-1].stats if self.turns else None

    @property
    def cached_ids(self) -> list[int]:
        """The conversation token ids the KV cache holds (a prefix of `prompt_ids()`)."""
        return list(self._cache_ids)

    def reset(self) -> None:
        """Forget the conversation (turns, cache); the encoded videos are kept for reuse."""
        self.turns.clear()
        self._placeholder_videos.clear()
        self._drop_cache()

    def _drop_cache(self) -> None:
        self._cache, self._cache_ids = None, []

    # --- videos ------------------------------------------------------------------------------------------

    def add_video(self, video: Any) -> ChatVideo:
        """Decode and encode `video` unless the session already holds it; returns its `ChatVideo`.

        Raises the video processor's `VideoReadError` subclasses (a `ValueError`) for unreadable input and
        for inputs above its limits (e.g. `max_duration` in `video_kwargs`)."""
        if isinstance(video, ChatVideo):
            if video not in self.videos:
                self.videos.append(video)
            return video
        key, name, source = _source_key(video)
        for known in self.videos:
            if known.key == key:
                return known
        video_processor = self.processor.video_processor
        frames, metadata = video_processor.load(source, **self.video_kwargs)  # uint8 (T, H, W, 3)
        pixel_values = video_processor.transform(frames, **self.video_kwargs)[None]  # (1, T, 3, S, S)
        params = next(self.model.parameters())
        pixel_values = pixel_values.to(device=params.device, dtype=params.dtype)
        with torch.inference_mode():
            features = self.model.get_video_features(pixel_values)
        self.tower_calls += 1
        record = ChatVideo(
            key=key,
            name=name,
            frames=np.asarray(frames),
            timestamps=list(metadata.timestamps) if getattr(metadata, "fps", None) else None,
            video_embeds=features.video_embeds,  # (1, K, H)
            token_mining_attentions=features.token_mining_attentions,  # (1, K, L)
            metadata=metadata,
            reference=source if isinstance(source, str) else name,
        )
        self.videos.append(record)
        return record

    def _turn_videos(self, video: Any, follow_up: bool = True) -> tuple[list[int], int]:
        """Indices of the videos this turn adds to the prompt, and how many of them were newly encoded.

        With `follow_up`, a single video equal to the conversation's latest one adds nothing (the turn is a
        follow-up about it); without, every given video gets its `<video>` (replayed history)."""
        if video is None:
            return [], 0
        sources = list(video) if isinstance(video, (list, tuple)) else [video]
        before = self.tower_calls
        records = [self.add_video(source) for source in sources]
        indices = [self.videos.index(r) for r in records]
        latest = self._placeholder_videos[-1] if self._placeholder_videos else None
        if follow_up and len(indices) == 1 and indices[0] == latest:
            indices = []  # the conversation's current video: a follow-up, no new <video>
        return indices, self.tower_calls - before

    # --- prompt ------------------------------------------------------------------------------------------

    def _check_text(self, text: str, what: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"the {what} must be a string; got {type(text).__name__}")
        utf8_length(text, what)  # ValueError for lone surrogates
        specials = [t for t in self.tokenizer.all_special_tokens if t and t in text]
        if specials:
            raise ValueError(
                f"the {what} contains the special token text {specials}; remove it (videos are passed "
                "with `video=`, not written into the text)"
            )

    def _render(
        self, turns: list[tuple[str, str | None, list[int]]], add_generation_prompt: bool = False
    ) -> tuple[str, list[int]]:
        """Chat-template text of `turns` (question, answer or None for the open turn, video indices), and
        the video index of each `<video>` in it."""
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        order: list[int] = []
        for question, answer, video_indices in turns:
            parts = [{"type": "video"} for _ in video_indices]
            messages.append({"role": "user", "content": [*parts, {"type": "text", "text": question}]})
            order += video_indices
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
        open_turn = bool(turns) and turns[-1][1] is None
        if not messages:
            raise ValueError("the conversation is empty")
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=open_turn or add_generation_prompt, tokenize=False
        )
        return text, order

    def _token_ids(self, text: str, order: list[int]) -> list[int]:
        """Token ids of `text` exactly as the processor gives them, `<video>` expanded to K tokens each."""
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        if ids.count(self.video_token_id) != len(order):
            raise ValueError(
                f"the prompt has {ids.count(self.video_token_id)} <video> tokens but the conversation has "
                f"{len(order)} video parts"
            )
        per_video = [self.videos[v].video_embeds.shape[1] for v in order]
        return self.processor.expand_video_tokens(ids, per_video)[0]

    def prompt_ids(self, add_generation_prompt: bool = False) -> list[int]:
        """Token ids of the conversation so far (with the generation prompt when asked)."""
        turns = [(t.question, t.answer, t.video_indices) for t in self.turns]
        text, order = self._render(turns, add_generation_prompt=add_generation_prompt)
        return self._token_ids(text, order)

    # --- generation --------------------------------------------------------------------------------------

    def _stop_token_ids(self) -> list[int]:
        """The model's stop ids (``generation_config.eos_token_id``: ``<eos>`` and ``<end_of_turn>``), else the
        tokenizer's ``<eos>``."""
        eos = self.model.generation_config.eos_token_id
        ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        return ids or [self.tokenizer.eos_token_id]

    def _generation_config(self, overrides: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """generate() kwargs for a turn (greedy unless temperature / top_p / do_sample ask otherwise)."""
        kwargs = {**self.generation_defaults, **overrides}
        seed = kwargs.pop("seed", None)
        temperature = kwargs.get("temperature")
        sample = kwargs.get("do_sample")
        if sample is None:
            sample = bool(temperature) or kwargs.get("top_p") is not None
        if temperature is not None and temperature <= 0:
            sample = False
        if not sample:
            for key in ("temperature", "top_p", "top_k"):
                kwargs.pop(key, None)
        kwargs["do_sample"] = bool(sample)
        kwargs.setdefault("max_new_tokens", _DEFAULT_MAX_NEW_TOKENS)
        kwargs.setdefault("eos_token_id", self.stop_token_ids)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        return kwargs, seed

    def _prefill_plan(self, ids: list[int], order: list[int]) -> tuple[int, torch.Tensor | None]:
        """How many leading tokens of `ids` the cache can keep, and the vision tokens of the videos whose
        placeholders lie after that point (None when there are none)."""
        keep = min(_common_prefix(self._cache_ids, ids), len(ids) - 1)  # >= 1 new token to get logits
        # Never keep half of a video's placeholder block: back off to its start.
        while keep > 0 and ids[keep] == self.video_token_id and ids[keep - 1] == self.video_token_id:
            keep -= 1
        embeds = [self.videos[order[i]].video_embeds for i in self._video_slots_after(ids, order, keep)]
        return keep, (torch.cat(embeds) if embeds else None)

    def _video_slots_after(self, ids: list[int], order: list[int], start: int) -> list[int]:
        """Ordinals (into `order`) of the video blocks that start at or after `start`."""
        slots, slot, i = [], 0, 0
        while i < len(ids):
            if ids[i] == self.video_token_id:
                if i >= start:
                    slots.append(slot)
                i += self.videos[order[slot]].video_embeds.shape[1]
                slot += 1
            else:
                i += 1
        return slots

    def _sync_cache(self, keep: int) -> None:
        if keep == 0 or self._cache is None:
            self._cache = DynamicCache(config=self.model.config.text_config)
            self._cache_ids = []
        elif keep < len(self._cache_ids):
            self._cache.crop(keep - self._cache.get_seq_length())  # negative: tokens to drop
            self._cache_ids = self._cache_ids[:keep]

    def _generate(
        self, turns: list[tuple[str, str | None, list[int]]], streamer: Any, overrides: dict[str, Any]
    ) -> tuple[list[int], ChatTurnStats]:
        """Prefill what the cache lacks and generate the open turn's answer ids (stop token excluded)."""
        text, order = self._render(turns)
        ids = self._token_ids(text, order)
        keep, video_embeds = self._prefill_plan(ids, order)
        self._sync_cache(keep)
        kwargs, seed = self._generation_config(overrides)
        params = next(self.model.parameters())
        input_ids = torch.tensor([ids], device=params.device)  # (1, S)
        if video_embeds is not None:
            video_embeds = video_embeds.to(device=params.device)
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(int(seed))
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                video_embeds=video_embeds,
                cache=self._cache,
                streamer=streamer,
                **kwargs,
            )
        generated = out[0, len(ids) :].tolist()
        self._cache_ids = (ids + generated)[: self._cache.get_seq_length()]
        answer_ids = generated
        for i, token in enumerate(generated):
            if token in self.stop_token_ids:
                answer_ids = generated[:i]
                break
        stats = ChatTurnStats(
            prompt_tokens=len(ids),
            reused_tokens=keep,
            prefilled_tokens=len(ids) - keep,
            generated_tokens=len(generated),
        )
        return answer_ids, stats

    def _decode_answer(self, answer_ids: list[int]) -> str:
        text = self.tokenizer.decode(answer_ids, skip_special_tokens=True)
        for token in self.tokenizer.all_special_tokens:  # text pieces that would parse as special tokens
            if token:
                text = text.replace(token, "")
        return text

    def _start_turn(
        self, question: str, video: Any, generation_kwargs: dict[str, Any]
    ) -> tuple[list[tuple[str, str | None, list[int]]], int]:
        self._check_room(question, video, generation_kwargs)  # before any video is read
        indices, encoded = self._turn_videos(video)
        history = [(t.question, t.answer, t.video_indices) for t in self.turns]
        return [*history, (question, None, indices)], encoded

    def ask(self, question: str, video: Any = None, streamer: Any = None, **generation_kwargs: Any) -> str:
        """Answer `question` (about `video` when given, else about the conversation so far).

        Args:
            question: the user's text.
            video: None (follow-up / text-only turn), a video source (path, bytes, binary file, frames
                [T, H, W, 3]) or a list of sources. The conversation's latest video passed again adds no
                new `<video>` (a follow-up on it).
            streamer: any transformers streamer (e.g. `TextIteratorStreamer(tokenizer, skip_prompt=True)`).
            **generation_kwargs: `max_new_tokens`, `temperature`, `top_p`, `seed`, or any generate() option.

        Returns:
            The answer text (special tokens removed; the stop token is not part of it).
        """
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this chat session is already generating; wait for the answer first")
        try:
            turns, encoded = self._start_turn(question, video, generation_kwargs)
            return self._run_turn(turns, encoded, streamer, generation_kwargs)
        finally:
            self._lock.release()

    @property
    def max_tokens(self) -> int | None:
        """The longest conversation (prompt + answer) the session allows: the LM's positions, or the
        processor's `max_prompt_tokens` when smaller."""
        limits = [
            getattr(self.model.config.text_config, "max_position_embeddings", None),
            getattr(self.processor, "max_prompt_tokens", None),
        ]
        limits = [int(x) for x in limits if x is not None]
        return min(limits) if limits else None

    def _check_room(self, question: str, video: Any, overrides: dict[str, Any]) -> None:
        """Refuse a turn, before any video is read, whose prompt plus ``max_new_tokens`` cannot fit."""
        self._check_text(question, "question")
        limit = self.max_tokens
        if limit is None:
            return
        videos = 0 if video is None else len(video) if isinstance(video, (list, tuple)) else 1
        vision = self.processor.video_processor.num_frames * self.processor.tokens_per_frame
        question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        so_far = len(self.prompt_ids()) if self.turns else 1  # <bos>
        max_new = int(self._generation_config(dict(overrides))[0].get("max_new_tokens") or 0)
        needed = so_far + question_tokens + videos * vision + _TURN_OVERHEAD + max_new
        if needed > limit:
            raise PromptTooLongError(
                f"this turn needs about {needed} tokens (conversation {so_far}, question {question_tokens}, "
                f"{videos} new video(s) of {vision} vision tokens, max_new_tokens {max_new}); the model reads "
                f"at most {limit}: shorten the question or start a new session"
            )

    def _run_turn(self, turns, encoded: int, streamer: Any, generation_kwargs: dict[str, Any]) -> str:
        question, _, indices = turns[-1]
        try:
            answer_ids, stats = self._generate(turns, streamer, generation_kwargs)
        except BaseException:
            self._drop_cache()  # the cache may hold a partial prefill; the next turn rebuilds it
            raise
        stats.encoded_videos = encoded
        answer = self._decode_answer(answer_ids)
        self.turns.append(_Turn(question=question, answer=answer, video_indices=indices, stats=stats))
        self._placeholder_videos += indices
        return answer

    def stream(
        self, question: str, video: Any = None, timeout: float | None = None, **generation_kwargs: Any
    ) -> Iterator[str]:
        """Like `ask`, but yields the answer's text as it is generated (through a `TextIteratorStreamer`;
        the generation runs in a worker thread). Video errors are raised here, before the first yield.
        `timeout` bounds the wait for each piece of text (None: no bound)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this chat session is already generating; wait for the answer first")
        try:
            turns, encoded = self._start_turn(question, video, generation_kwargs)
        except BaseException:
            self._lock.release()
            raise
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self._run_turn(turns, encoded, streamer, generation_kwargs)
            except BaseException as exc:
                failure.append(exc)
                streamer.end()  # release the consumer
            finally:
                self._lock.release()

        worker = threading.Thread(target=work, name="hilight-chat-generate", daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise failure[0]

    # --- history -----------------------------------------------------------------------------------------

    def load_history(self, history: list[dict[str, Any]], videos: Any = None) -> None:
        """Replay chat-template `history` (user/assistant pairs; a system message sets `system`).

        Video parts may carry their source under "video", "path" or "url" (a local path); `videos` gives the
        sources instead, in the order of the video parts."""
        queue = list(videos) if videos is not None else None
        pending_question: tuple[str, list[Any]] | None = None
        for message in history:
            role, content = message["role"], message["content"]
            if role == "system":
                self.system = (
                    content
                    if isinstance(content, str)
                    else "".join(p.get("text", "") for p in content if p.get("type") == "text")
                )
                continue
            if role == "user":
                if pending_question is not None:
                    raise ValueError("history has two user messages in a row; pair each with an answer")
                if isinstance(content, str):
                    pending_question = (content, [])
                    continue
                text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
                sources = []
                for part in content:
                    if part.get("type") != "video":
                        continue
                    if queue is not None:
                        if not queue:
                            raise ValueError("history has more video parts than `videos` gives")
                        sources.append(queue.pop(0))
                    else:
                        source = part.get("video", part.get("path", part.get("url")))
                        if source is None:
                            raise ValueError("a video part of the history has no source; pass `videos=`")
                        sources.append(source)
                pending_question = (text, sources)
            elif role in ("assistant", "model"):
                if pending_question is None:
                    raise ValueError("history has an assistant message without a user message before it")
                answer = (
                    content
                    if isinstance(content, str)
                    else "".join(p.get("text", "") for p in content if p.get("type") == "text")
                )
                question, sources = pending_question
                indices, encoded = self._turn_videos(sources or None, follow_up=False)
                self._check_text(question, "question")
                self.turns.append(_Turn(question, answer, indices, ChatTurnStats(encoded_videos=encoded)))
                self._placeholder_videos += indices
                pending_question = None
            else:
                raise ValueError(f"HiLight chat roles are system, user and assistant; got {role!r}")
        if pending_question is not None:
            raise ValueError("history ends with a user message; ask it with `ask` instead")
        if queue:
            raise ValueError(f"`videos` has {len(queue)} more sources than the history has video parts")

    # --- explanation -------------------------------------------------------------------------------------

    def explain(self, turn: int = -1, method: str = "answer-attention") -> ChatExplanation:
        """Which regions of the conversation's videos answer `turn` drew on (see the module docstring).

        "answer-attention" runs one extra forward pass over the conversation up to that answer with eager
        attention (to read the weights) and the stored vision tokens: no tower runs, the session's cache is
        not touched. "uniform" weights every vision token equally (no forward pass)."""
        if method not in ("answer-attention", "uniform"):
            raise ValueError(f"method must be 'answer-attention' or 'uniform'; got {method!r}")
        if not self.turns:
            raise ValueError("nothing to explain yet: ask a question first")
        index = range(len(self.turns))[turn]
        history = [(t.question, t.answer, t.video_indices) for t in self.turns[: index + 1]]
        question, answer, _ = history[-1]
        prompt_text, order = self._render([*history[:-1], (question, None, history[-1][2])])
        prompt_ids = self._token_ids(prompt_text, order)
        if not order:
            raise ValueError("this turn has no video in its prompt, so there is nothing to overlay")
        missing = sorted(
            {
                self.model.config.token_mining_config.fusion
                for v in order
                if self.videos[v].token_mining_attentions is None
            }
        )
        if missing:
            raise ValueError(
                f"explain() follows TokenMining's attention to the CLIP-ViP tokens; this model's fusion "
                f"{missing[0]!r} has no such attention (only 'token_mining' models can be explained)"
            )
        blocks = self._video_blocks(prompt_ids, order)  # [(video index, start, end)]
        weights, video_share = self._vision_token_weights(history, prompt_ids, order, blocks, method)
        heatmaps, leading = [], []
        for (video_index, _, _), w in zip(blocks, weights, strict=True):
            record = self.videos[video_index]
            attn = record.token_mining_attentions[0].float()  # (K, L)
            relevance = (w.to(attn) @ attn).cpu().numpy()  # (L,)
            heatmaps.append(self._patch_grid(relevance, num_frames=record.frames.shape[0]))
            leading.append(float(relevance[: relevance.shape[0] - heatmaps[-1].size].sum()))
        return ChatExplanation(
            turn=index,
            question=question,
            answer=answer,
            videos=[self.videos[v] for v, _, _ in blocks],
            heatmaps=heatmaps,
            leading_share=leading,
            video_share=video_share,
            method=method,
        )

    def _video_blocks(self, ids: list[int], order: list[int]) -> list[tuple[int, int, int]]:
        blocks, slot, i = [], 0, 0
        while i < len(ids):
            if ids[i] == self.video_token_id:
                k = self.videos[order[slot]].video_embeds.shape[1]
                blocks.append((order[slot], i, i + k))
                i, slot = i + k, slot + 1
            else:
                i += 1
        return blocks

    def _vision_token_weights(self, history, prompt_ids, order, blocks, method):
        """Per video block, weights (K,) summing to 1 over its vision tokens; and the answer's attention
        share per block."""
        if method == "uniform":
            return [torch.full((end - start,), 1.0 / (end - start)) for _, start, end in blocks], None
        full_text, _ = self._render(history)
        full_ids = self._token_ids(full_text, order)
        start = _common_prefix(prompt_ids, full_ids)  # the answer's first token
        stops = set(self._stop_token_ids())
        end = next((i for i in range(start, len(full_ids)) if full_ids[i] in stops), len(full_ids))
        rows = slice(start - 1, end)  # positions that predicted the answer tokens and the end of the turn
        params = next(self.model.parameters())
        ids = torch.tensor([full_ids[: rows.stop]], device=params.device)  # (1, S)
        embeds = torch.cat([self.videos[v].video_embeds for v, _, _ in blocks]).to(params.device)
        with torch.inference_mode():
            inputs_embeds = self.model.embed_inputs(ids, embeds)  # (1, S, H)
            out = self._eager_language_model()(
                inputs_embeds=inputs_embeds, output_attentions=True, use_cache=False
            )
        stacked = torch.stack([a[0].float() for a in out.attentions])  # (layers, heads, S, S)
        per_key = stacked[:, :, rows, :].mean(dim=(0, 1, 2))  # (S,) over keys
        weights, shares = [], []
        for _, start, end in blocks:
            w = per_key[start:end]  # (K,)
            shares.append(float(w.sum()))
            weights.append((w / w.sum().clamp_min(1e-12)).cpu())
        return weights, shares

    def _eager_language_model(self) -> torch.nn.Module:
        """The model's LM with eager attention (which returns its weights), sharing every parameter and buffer:
        the shared model's own attention implementation is never switched, so other sessions are unaffected."""
        if self._eager_lm is None:
            lm = self.model.language_model
            memo: dict[int, Any] = {id(t): t for t in (*lm.parameters(), *lm.buffers())}
            for module in lm.modules():  # hooks on the shared modules stay there (not copied into the view)
                for name, value in vars(module).items():
                    if name.endswith("hooks") or name.endswith("hooks_with_kwargs"):
                        memo[id(value)] = type(value)()
            self._eager_lm = copy.deepcopy(lm, memo=memo)
            self._eager_lm.set_attn_implementation("eager")
        return self._eager_lm

    def _patch_grid(self, relevance: np.ndarray, num_frames: int) -> np.ndarray:
        """The patch part of a CLIP-ViP token vector (L,) as (T, gh, gw); the leading tokens dropped."""
        gh, gw = self.model.config.video_config.grid_size
        patches = relevance[relevance.shape[0] - num_frames * gh * gw :]
        return patches.reshape(num_frames, gh, gw)  # (T, gh, gw)


def chat(
    model: Any,
    processor: Any,
    video: Any = None,
    question: str = "",
    history: list[dict[str, Any]] | None = None,
    session: HiLightChatSession | None = None,
    streamer: Any = None,
    **generation_kwargs: Any,
) -> tuple[str, HiLightChatSession]:
    """One turn of a conversation: `(answer, session)`; pass the session back for the next turn.

    `history` (chat-template messages with video sources in their video parts) starts a new session that
    replays it first; `session` continues one (not both)."""
    if history is not None and session is not None:
        raise ValueError(
            "pass either `history` (to start from messages) or `session` (to continue), not both"
        )
    if session is None:
        session = HiLightChatSession(model, processor)
        if history:
            session.load_history(history)
    elif session.model is not model:
        raise ValueError("this session belongs to another model")
    answer = session.ask(question, video=video, streamer=streamer, **generation_kwargs)
    return answer, session


__all__ = ["ChatExplanation", "ChatTurnStats", "ChatVideo", "HiLightChatSession", "chat"]
