"""HiLight Space: ask questions about a billiards clip, watch the answer stream, see where it looked.

    HILIGHT_MODEL=. python space/app.py            # the repo's own model; serves on $GRADIO_SERVER_PORT

Environment:
    HILIGHT_MODEL           model folder or Hub id (default "motern/hilight"), loaded with trust_remote_code
    HILIGHT_EXAMPLES        folder of example clips (*.mp4); default: `examples/` of the model folder, or of
                            the Hub repo (downloaded once; none when offline)
    HILIGHT_MAX_UPLOAD_MB   largest accepted upload (default 50)
    HILIGHT_MAX_DURATION    longest accepted clip in seconds (default 120)
    HILIGHT_MAX_NEW_TOKENS  upper bound of the answer length slider (default 256)
    HILIGHT_QUEUE_SIZE      requests waiting in the queue before new ones are refused (default 16)
    HILIGHT_DTYPE           auto (default: bf16 on CPUs with bf16 instructions, else float32), float32 or bfloat16
    GRADIO_SERVER_PORT / GRADIO_SERVER_NAME   Gradio's usual port and address variables

How it runs: one `HiLightChatSession` per browser session (chat_hilight.py in the model repo) holds the
conversation's videos, encoded once when they are loaded, and the language model's KV cache, so a follow-up
question costs only its own tokens. Every event that uses the model shares one queue slot
(`concurrency_id="model"`, limit 1): requests wait in Gradio's queue, and a session cannot start a second
answer while its first is running (`trigger_mode="once"`). Bad uploads (not a video, corrupt, too long, too
big) end in a message on the page, never in an exception.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # explain.py beside this file
from explain import describe, frame_captions, overlay_frames

logger = logging.getLogger("hilight.space")

DEFAULT_MODEL_ID = "motern/hilight"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")


@dataclass
class SpaceConfig:
    """Limits and locations; `from_env` reads the variables listed in the module docstring."""

    model_id: str = DEFAULT_MODEL_ID
    examples_dir: Path | None = None
    max_upload_mb: float = 50.0
    max_duration_s: float = 120.0
    max_new_tokens: int = 256
    default_new_tokens: int = 64
    queue_size: int = 16
    dtype: str = "auto"
    decode_timeout_s: float = 60.0
    gallery_width: int = 320

    @classmethod
    def from_env(cls, **overrides: Any) -> SpaceConfig:
        env = os.environ
        config = cls(
            model_id=env.get("HILIGHT_MODEL", DEFAULT_MODEL_ID),
            examples_dir=Path(env["HILIGHT_EXAMPLES"]) if env.get("HILIGHT_EXAMPLES") else None,
            max_upload_mb=float(env.get("HILIGHT_MAX_UPLOAD_MB", 50)),
            max_duration_s=float(env.get("HILIGHT_MAX_DURATION", 120)),
            max_new_tokens=int(env.get("HILIGHT_MAX_NEW_TOKENS", 256)),
            queue_size=int(env.get("HILIGHT_QUEUE_SIZE", 16)),
            dtype=env.get("HILIGHT_DTYPE", "auto"),
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config


def load_model(model_id: str, dtype: str = "auto") -> tuple[Any, Any]:
    """Model and processor through `from_pretrained(..., trust_remote_code=True)`; ``dtype="auto"`` leaves the
    choice to the model (its config's dtype, or fp32 on a CPU without bf16 instructions)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    if dtype not in ("auto", "float32", "bfloat16"):
        raise SystemExit(f"HILIGHT_DTYPE must be auto, float32 or bfloat16; got {dtype!r}")
    local = Path(model_id)
    if local.is_dir() and not (local / "config.json").is_file():
        raise SystemExit(
            f"No HiLight model in {local.resolve()}: it has no config.json. Point HILIGHT_MODEL at a model "
            "folder or a Hub id (the bundled default model is trained by `make default-model`)."
        )
    chosen = {} if dtype == "auto" else {"dtype": getattr(torch, dtype)}
    model = AutoModel.from_pretrained(model_id, trust_remote_code=True, **chosen).eval()
    processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
    model.check_processor(processor)
    return model, processor


def find_examples(config: SpaceConfig) -> list[Path]:
    """Example clips: `config.examples_dir`, else `examples/` of the model folder or Hub repo."""
    folder = config.examples_dir
    if folder is None:
        local = Path(config.model_id)
        if local.is_dir():
            folder = local / "examples"
        else:
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

            try:
                folder = (
                    Path(snapshot_download(config.model_id, allow_patterns=["examples/*.mp4"])) / "examples"
                )
            except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
                logger.warning("no example clips: cannot fetch examples/ of %s (%s)", config.model_id, exc)
                return []
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _thumbnail(frame: np.ndarray, width: int) -> np.ndarray:
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if image.width > width:
        image = image.resize(
            (width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR
        )
    return np.asarray(image)


@dataclass
class ChatState:
    """What one browser session keeps: its chat session and the clip the next question is about."""

    session: Any = None
    current: Any = None  # ChatVideo of the loaded clip
    log: list[str] = field(default_factory=list)


def _setting(value: Any, name: str, low: float, high: float) -> float:
    """A numeric setting from the page, clamped to [low, high]; ValueError for what is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return min(max(number, low), high)


class HiLightSpace:
    """The Space's logic, callable without a browser (tests call these methods directly)."""

    def __init__(self, model: Any, processor: Any, config: SpaceConfig):
        self.model, self.processor, self.config = model, processor, config
        self.examples = find_examples(config)

    def _session(self, state: ChatState | None) -> ChatState:
        state = state if state is not None else ChatState()
        if state.session is None:
            state.session = self.model.start_chat(
                self.processor,
                video_kwargs={
                    "max_duration": self.config.max_duration_s,
                    "decode_timeout": self.config.decode_timeout_s,
                    "decode_in_subprocess": True,  # uploads are untrusted: a decoder crash or hang must not take the Space down
                },
            )
        return state

    # --- clip ------------------------------------------------------------------------------------------

    def load_video(self, path: str | None, state: ChatState | None) -> tuple[list, str, ChatState]:
        """Decode + encode an uploaded or example clip once; returns (frame gallery, status, state)."""
        state = self._session(state)
        state.current = None  # a failed upload never leaves an earlier clip current
        if not path:
            return [], "Upload a clip or pick an example.", state
        file = Path(path)
        name = file.name
        if not file.is_file():
            return [], f"⚠️ **{name}**: the upload did not arrive; try again.", state
        size_mb = file.stat().st_size / 1e6
        if size_mb > self.config.max_upload_mb:
            return (
                [],
                f"⚠️ **{name}** is {size_mb:.1f} MB, above the {self.config.max_upload_mb:g} MB limit.",
                state,
            )
        start = time.perf_counter()
        try:
            video = state.session.add_video(file)
        except (ValueError, TypeError, OSError) as exc:  # VideoReadError subclasses are ValueErrors
            message = str(exc).replace(str(file), name).removeprefix(f"{name}: ")
            return [], f"⚠️ **Cannot use {name}**: {message}", state
        # Frames are kept for the gallery and the explain overlays only: bound their size (memory per session).
        video.frames = np.stack([_thumbnail(f, 2 * self.config.gallery_width) for f in video.frames])
        state.current = video
        captions = [
            c.rsplit(" · ", 1)[0] for c in frame_captions(np.ones(len(video.frames)), video.timestamps)
        ]
        gallery = [
            (_thumbnail(f, self.config.gallery_width), c) for f, c in zip(video.frames, captions, strict=True)
        ]
        duration = getattr(video.metadata, "duration", None)
        seconds = f", {duration:.1f} s" if duration else ""
        status = (
            f"✅ **{name}** loaded{seconds}: {len(video.frames)} frames sampled and encoded once "
            f"({time.perf_counter() - start:.2f} s). Ask a question."
        )
        return gallery, status, state

    # --- chat ------------------------------------------------------------------------------------------

    def chat(
        self,
        message: str,
        history: list[dict] | None,
        state: ChatState | None,
        max_new_tokens: float = 64,
        temperature: float = 0.0,
    ) -> Iterator[tuple[list[dict], str, str, ChatState]]:
        """One chat step, streamed: yields (chatbot messages, textbox value, status, state)."""
        state = self._session(state)
        history = list(history or [])
        message = (message or "").strip()
        if not message:
            yield history, "", "Type a question first.", state
            return
        if state.current is None and not state.session.turns:
            yield history, message, "⚠️ Upload a clip or pick an example first.", state
            return
        try:
            max_new = int(_setting(max_new_tokens, "max new tokens", 1, self.config.max_new_tokens))
            temperature = _setting(temperature, "temperature", 0.0, 2.0)
        except ValueError as exc:
            yield history, message, f"⚠️ {exc}", state
            return
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        start = time.perf_counter()
        generation = {"max_new_tokens": max_new}
        if temperature and temperature > 0:
            generation.update(temperature=float(temperature), top_p=0.95)
        try:
            for piece in state.session.stream(message, video=state.current, timeout=600, **generation):
                history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
                yield history, "", "Answering…", state
        except (ValueError, RuntimeError) as exc:
            history = history[:-2]
            yield history, message, f"⚠️ {exc}", state
            return
        answer = state.session.turns[-1].answer.strip()
        history[-1] = {"role": "assistant", "content": answer or "(empty answer)"}
        stats = state.session.last_stats
        status = (
            f"Answered in {time.perf_counter() - start:.2f} s: {stats.prefilled_tokens} new prompt tokens "
            f"prefilled, {stats.reused_tokens} reused from the cache, {stats.encoded_videos} clips encoded "
            f"in this turn, {stats.generated_tokens} tokens generated."
        )
        yield history, "", status, state

    # --- explain ---------------------------------------------------------------------------------------

    def explain(self, state: ChatState | None) -> tuple[list, str]:
        """Overlays of the last answer's attention on the frames: (gallery items, markdown)."""
        if state is None or state.session is None or not state.session.turns:
            return [], "Ask a question first; the explanation is about the last answer."
        try:
            explanation = state.session.explain()
        except ValueError as exc:  # e.g. a text-only conversation
            return [], f"⚠️ {exc}"
        items = []
        for video, heatmap in zip(explanation.videos, explanation.heatmaps, strict=True):
            captions = frame_captions(heatmap, video.timestamps)
            for image, caption in zip(overlay_frames(video.frames, heatmap), captions, strict=True):
                items.append((_thumbnail(image, self.config.gallery_width), f"{video.name} · {caption}"))
        return items, describe(explanation)

    def clear(self, state: ChatState | None) -> tuple[list, list, str, ChatState]:
        """Forget the conversation (the loaded clips stay encoded)."""
        state = self._session(state)
        state.session.reset()
        return [], [], "Conversation cleared.", state

    # --- page ------------------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        config = self.config
        with gr.Blocks(title="HiLight: ask about a billiards clip") as demo:
            gr.Markdown(
                "# HiLight\nAsk about a billiards clip: upload one or pick an example, then chat. "
                f"Limits: {config.max_upload_mb:g} MB, {config.max_duration_s:g} s per clip, "
                f"{config.max_new_tokens} new tokens per answer; one answer at a time, others wait in a queue."
            )
            state = gr.State(None, time_to_live=3600)
            with gr.Row():
                with gr.Column(scale=1):
                    video = gr.Video(
                        label="Clip", sources=["upload"], format=None, elem_id="clip", height=300
                    )
                    if self.examples:
                        gr.Examples(
                            examples=[[str(p)] for p in self.examples],
                            inputs=[video],
                            label="Example clips",
                            example_labels=[p.name for p in self.examples],
                        )
                    else:
                        gr.Markdown("_No example clips yet (examples/ is empty); upload a clip._")
                    status = gr.Markdown("Upload a clip or pick an example.", elem_id="status")
                    frames = gr.Gallery(
                        label="Frames the model sampled",
                        columns=4,
                        height=260,
                        object_fit="contain",
                        elem_id="frames",
                    )
                with gr.Column(scale=1):
                    chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=380, render_markdown=False)
                    question = gr.Textbox(
                        label="Question", placeholder="Which balls were potted?", elem_id="question", lines=1
                    )
                    with gr.Row():
                        ask = gr.Button("Ask", variant="primary", elem_id="ask")
                        clear = gr.Button("Clear chat", elem_id="clear")
                    with gr.Accordion("Generation settings", open=False):
                        max_new = gr.Slider(
                            1, config.max_new_tokens, value=min(config.default_new_tokens, config.max_new_tokens),
                            step=1, label="Max new tokens",
                        )  # fmt: skip
                        temperature = gr.Slider(
                            0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)"
                        )
            with gr.Accordion("Explain: where did the last answer look?", open=False, elem_id="explain-box"):
                explain = gr.Button("Explain the last answer", elem_id="explain")
                overlay = gr.Gallery(
                    label="TokenMining attention on the frames",
                    columns=4,
                    object_fit="contain",
                    elem_id="overlay",
                )
                explanation = gr.Markdown(elem_id="explanation")

            model_event = {"concurrency_limit": 1, "concurrency_id": "model"}
            video.change(self.load_video, [video, state], [frames, status, state], **model_event)
            chat_inputs = [question, chatbot, state, max_new, temperature]
            chat_outputs = [chatbot, question, status, state]
            question.submit(self.chat, chat_inputs, chat_outputs, trigger_mode="once", **model_event)
            ask.click(self.chat, chat_inputs, chat_outputs, trigger_mode="once", **model_event)
            clear.click(self.clear, [state], [chatbot, overlay, status, state])
            explain.click(self.explain, [state], [overlay, explanation], **model_event)
        demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
        return demo

    def launch(self, **kwargs: Any) -> Any:
        """Build and serve (port and address from GRADIO_SERVER_PORT / GRADIO_SERVER_NAME unless given)."""
        allowed = [str(p.parent) for p in self.examples[:1]]
        return self.build().launch(
            max_file_size=f"{self.config.max_upload_mb:g}mb", allowed_paths=allowed, show_error=True, **kwargs
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    config = SpaceConfig.from_env()
    model, processor = load_model(config.model_id, config.dtype)
    HiLightSpace(model, processor, config).launch()


if __name__ == "__main__":
    main()
