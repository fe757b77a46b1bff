"""One collator for every HiLight training stage, built on the processor's chat template.

A training row is ``{"id", "messages_json", "video"}`` (see ``hilight_train.training.rows_from_samples``):
chat-template messages as JSON (Arrow cannot hold the mixed ``str | list`` content of chat messages) and the
video path ("" for a text-only sample). The collator

1. renders the conversation with the processor's chat template and the template's ``{% generation %}``
   spans (the official conv_gemma strings; ``<bos>`` comes from the tokenizer),
2. tokenizes it with character offsets and trains exactly the tokens inside those spans: each answer, its
   ``<end_of_turn>\\n`` and ``<eos>``. Everything else (``<bos>``, user turns, ``<start_of_turn>model\\n``
   headers, the vision placeholders, padding) is labelled -100, as the official ``preprocess_gemma`` does,
3. expands each ``<video>`` token into ``num_frames * tokens_per_frame`` copies (what the processor does),
4. pads left or right and attaches ONE visual source for the batch's videos, in text order:
   ``pixel_values_videos`` (V, T, 3, H, W) read from disk by the processor's video processor (towers run every step,
   the official way; with a :class:`~hilight_train.frame_cache.FrameCache` the decoded frames come from disk
   and only the processor's transform runs), or ``video_hidden_states`` (V, M + T*P, Dv) + ``frame_embeds`` (V, T, Di) from a
   :class:`~hilight_train.cache.FeatureCache` (towers never run).

The collator draws no random numbers, so a resumed run collates exactly the batches an uninterrupted run does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from transformers.utils.chat_template_utils import render_jinja_template

IGNORE_INDEX = -100


class SequenceTooLongError(ValueError):
    """A sample is longer than ``max_length`` (samples are never cut: a cut would train a partial answer)."""


def _char_trained(length: int, spans: list[tuple[int, int]]) -> list[bool]:
    flags = [False] * length
    for start, end in spans:
        for i in range(start, end):
            flags[i] = True
    return flags


def encode_conversation(
    processor: Any, messages: list[dict[str, Any]], max_length: int | None = None
) -> dict[str, list[int]]:
    """Token ids and labels of one conversation, with each ``<video>`` expanded to the processor's count.

    Returns ``{"input_ids", "labels", "num_videos"}``; labels are -100 outside the assistant spans of the
    chat template. A token is trained when its characters lie inside a ``{% generation %}`` span.
    """
    tokenizer = processor.tokenizer
    rendered, generation = render_jinja_template(
        conversations=[messages], chat_template=processor.chat_template, return_assistant_tokens_mask=True
    )
    text, spans = rendered[0], [tuple(s) for s in generation[0]]
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    trained_chars = _char_trained(len(text), spans)
    video_id = processor.video_token_id
    token_labels = [
        token if token != video_id and end > start and all(trained_chars[start:end]) else IGNORE_INDEX
        for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
    ]
    input_ids, source = processor.expand_video_tokens(enc["input_ids"])  # each <video> -> T*Q copies
    labels = [token_labels[i] for i in source]
    num_videos = enc["input_ids"].count(video_id)
    if max_length is not None and len(input_ids) > max_length:
        raise SequenceTooLongError(
            f"a conversation of {len(input_ids)} tokens is longer than max_length={max_length}; raise max_length "
            "or shorten the conversation (training drops such rows up front: see `drop_long_rows`)"
        )
    return {"input_ids": input_ids, "labels": labels, "num_videos": num_videos}


def drop_long_rows(rows: Any, processor: Any, max_length: int | None) -> tuple[Any, int]:
    """The training rows (a ``datasets.Dataset`` with ``messages_json``) whose whole conversation fits in
    ``max_length`` tokens, and how many were dropped. Rows are dropped, never cut mid-answer."""
    if max_length is None:
        return rows, 0
    keep = [
        i
        for i, text in enumerate(rows["messages_json"])
        if len(encode_conversation(processor, json.loads(text))["input_ids"]) <= max_length
    ]
    return (rows if len(keep) == len(rows) else rows.select(keep)), len(rows) - len(keep)


@dataclass
class HiLightCollator:
    """Batch training rows for ``HiLightForConditionalGeneration`` (see the module docstring).

    Args:
        processor: a ``HiLightProcessor`` (tokenizer, chat template, video processor, tokens per frame).
        feature_cache: a ``FeatureCache``; when given, videos come as cached tower outputs (no video decoding,
            no tower forward), otherwise as ``pixel_values_videos`` read from disk.
        frame_cache: a ``FrameCache``; when given (and no feature cache), ``pixel_values_videos`` are computed from
            the cached decoded frames instead of decoding the files (the same values).
        max_length: truncate longer sequences (never inside the vision tokens; see ``encode_conversation``).
        padding_side: "right" (training default) or "left". The model derives position ids from the
            attention mask, so both give the same loss.
    """

    processor: Any
    feature_cache: Any = None
    frame_cache: Any = None
    max_length: int | None = None
    padding_side: str = "right"

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded, videos = [], []
        for row in rows:
            messages = json.loads(row["messages_json"])
            item = encode_conversation(self.processor, messages, self.max_length)
            video = row.get("video") or ""
            if item["num_videos"] != (1 if video else 0):
                raise ValueError(
                    f"sample {row.get('id')!r}: the conversation has {item['num_videos']} <video> placeholders but "
                    f"{'one video' if video else 'no video'} is attached"
                )
            if video:
                videos.append(video)
            encoded.append(item)
        batch = self.pad(encoded)
        if videos:
            batch.update(self.visual_inputs(videos))
        return batch

    def pad(self, encoded: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Pad ``input_ids`` with the tokenizer's pad id, ``labels`` with -100; (B, S) tensors."""
        pad_id = self.processor.tokenizer.pad_token_id
        width = max(len(e["input_ids"]) for e in encoded)
        ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)  # (B, S)
        labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)  # (B, S)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)  # (B, S)
        for i, e in enumerate(encoded):
            n = len(e["input_ids"])
            cols = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            ids[i, cols] = torch.tensor(e["input_ids"])
            labels[i, cols] = torch.tensor(e["labels"])
            mask[i, cols] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def visual_inputs(self, videos: list[str]) -> dict[str, torch.Tensor]:
        """Cached tower outputs (float32) or decoded frames for the batch's videos, in text order."""
        if self.feature_cache is not None:
            hidden, frames = self.feature_cache.load(videos)
            return {"video_hidden_states": hidden.float(), "frame_embeds": frames.float()}
        sources = self.frame_cache.load(videos) if self.frame_cache is not None else videos
        out = self.processor.video_processor(sources, return_tensors="pt")
        return {"pixel_values_videos": out["pixel_values_videos"]}  # (V, T, 3, H, W)
