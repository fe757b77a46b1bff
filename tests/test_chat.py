"""Conversations (chat_hilight.py through `model.chat` / `model.start_chat`) on a tiny random-weight model
loaded with trust_remote_code: vision tokens computed once per video, the KV cache reused across turns,
prompts identical to the chat template's, answers identical to the naive from-scratch path, streaming,
sampling settings, several videos, text-only turns, explanations, and clear errors."""

import threading

import pytest
import torch
from _chat_utils import build_tiny_model, write_clip, write_corrupt
from transformers import AutoModel, AutoProcessor, TextIteratorStreamer

MAX_NEW = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def model(folder):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def processor(folder):
    return AutoProcessor.from_pretrained(folder, trust_remote_code=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [write_clip(root / f"clip{i}.mp4", seed=i) for i in range(2)]


class TowerCounter:
    """Counts forward calls of both vision towers and the token counts of every LM forward."""

    def __init__(self, model):
        self.tower_calls = 0
        self.lm_tokens: list[int] = []
        self.handles = [
            model.video_tower.register_forward_hook(self._tower),
            model.image_tower.register_forward_hook(self._tower),
            model.language_model.register_forward_pre_hook(self._lm, with_kwargs=True),
        ]

    def _tower(self, *_):
        self.tower_calls += 1

    def _lm(self, _module, _args, kwargs):
        self.lm_tokens.append(kwargs["inputs_embeds"].shape[1])

    def __enter__(self):
        return self

    def __exit__(self, *_):
        for handle in self.handles:
            handle.remove()


def template_messages(messages):
    """Session messages in plain chat-template form (video parts without their display names)."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": "video"} if part["type"] == "video" else part for part in content]
        out.append({"role": message["role"], "content": content})
    return out


def naive_answer(model, processor, messages, videos, max_new_tokens=MAX_NEW):
    """The official demo's path: the whole conversation through the processor (decode + towers) and a
    prefill from scratch, greedy; the answer text up to the end of the turn."""
    text = processor.apply_chat_template(
        template_messages(messages), add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=text, videos=videos or None, return_tensors="pt")
    inputs.pop("video_metadata", None)
    stop = [processor.tokenizer.convert_tokens_to_ids("<end_of_turn>"), processor.tokenizer.eos_token_id]
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop)
    generated = out[0, inputs["input_ids"].shape[1] :].tolist()
    cut = next((i for i, t in enumerate(generated) if t in stop), len(generated))
    return processor.tokenizer.decode(generated[:cut], skip_special_tokens=True)


def test_saved_model_carries_the_chat_code(folder, model):
    assert (folder / "chat_hilight.py").is_file()  # copied by save_pretrained as a relative import
    assert callable(model.chat) and callable(model.start_chat)
    assert type(model).__module__.startswith("transformers_modules")  # the remote-code copy is in use


def test_follow_up_skips_towers_and_prefix_and_matches_a_fresh_session(model, processor, clips):
    session = model.start_chat(processor, max_new_tokens=MAX_NEW)
    with TowerCounter(model) as counter:
        first = session.ask("Which balls were potted?", video=clips[0])
        assert counter.tower_calls == 2  # each tower once
        first_prompt = session.last_stats.prompt_tokens
        counter.lm_tokens.clear()
        second = session.ask("Was it a foul?", video=clips[0])  # the same clip again: a follow-up
        assert counter.tower_calls == 2  # no re-encode
    stats = session.last_stats
    assert stats.encoded_videos == 0 and session.tower_calls == 1
    assert stats.reused_tokens >= first_prompt  # the video block and the first question stay in the cache
    assert counter.lm_tokens[0] == stats.prefilled_tokens < stats.prompt_tokens - 32
    assert all(n == 1 for n in counter.lm_tokens[1:])  # then one token per decoding step
    # The same answers as a fresh session that replays the history, and as the naive from-scratch path.
    history = [
        {"role": "user", "content": [{"type": "video", "path": str(clips[0])}, {"type": "text", "text": "Which balls were potted?"}]},
        {"role": "assistant", "content": first},
    ]  # fmt: skip
    fresh, fresh_session = model.chat(
        processor, None, "Was it a foul?", history=history, max_new_tokens=MAX_NEW
    )
    assert fresh == second and fresh_session.messages == session.messages
    replayed, _ = model.chat(
        processor, None, "Was it a foul?", history=session.messages[:2], max_new_tokens=MAX_NEW
    )
    assert replayed == second  # a session's own messages replay (video parts carry the path)
    assert naive_answer(model, processor, session.messages[:1], [str(clips[0])]) == first
    assert naive_answer(model, processor, session.messages[:3], [str(clips[0])]) == second


def test_incremental_prompt_equals_the_chat_template(model, processor, clips):
    session = model.start_chat(processor, max_new_tokens=MAX_NEW, system="You are a billiards referee. ")
    session.ask("Which balls were potted?", video=clips[0])
    session.ask("How many balls moved?")  # text-only follow-up
    session.ask("And in this clip?", video=clips[1])  # a second video
    session.ask("Compare the two shots.", video=[clips[0], clips[1]])  # both again, from stored tokens
    assert session.tower_calls == 2
    messages = template_messages(session.messages)
    text = processor.apply_chat_template(messages, tokenize=False)
    videos = [str(c) for c in (clips[0], clips[1], clips[0], clips[1])]
    reference = processor(text=text, videos=videos, return_tensors="pt")["input_ids"][0].tolist()
    assert session.prompt_ids() == reference
    # The cache holds the template's ids up to the last answer, then the model's own tokens for it (they
    # are reconciled with the template's tokens at the next turn, see the next assertion).
    n = session.last_stats.prompt_tokens
    assert session.cached_ids[:n] == reference[:n]
    # The prompt of the next turn is the template's with the generation prompt.
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    reference = processor(text=text, videos=videos, return_tensors="pt")["input_ids"][0].tolist()
    assert session.prompt_ids(add_generation_prompt=True) == reference


def test_streaming_yields_the_same_text(model, processor, clips):
    asked = model.start_chat(processor, max_new_tokens=MAX_NEW)
    streamed = model.start_chat(processor, max_new_tokens=MAX_NEW)
    for question, video in [("Describe the shot.", clips[1]), ("Was it a foul?", None)]:
        answer = asked.ask(question, video=video)
        pieces = list(streamed.stream(question, video=video, timeout=60))
        assert "".join(pieces) == answer
    # A user-supplied TextIteratorStreamer through ask(streamer=...) in a worker thread.
    session = model.start_chat(processor, max_new_tokens=MAX_NEW)
    streamer = TextIteratorStreamer(
        processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=60
    )
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(answer=session.ask("Describe the shot.", clips[1], streamer=streamer))
    )
    worker.start()
    text = "".join(streamer)
    worker.join(timeout=60)
    assert text == result["answer"] == asked.turns[0].answer


def test_generation_settings(model, processor, clips):
    def answer(**kwargs):
        return model.start_chat(processor).ask("Describe the shot.", video=clips[0], **kwargs)

    greedy = answer(max_new_tokens=MAX_NEW)
    assert answer(max_new_tokens=MAX_NEW, temperature=0) == greedy  # temperature 0 means greedy
    sampled = answer(max_new_tokens=MAX_NEW, temperature=1.5, top_p=0.95, seed=3)
    assert sampled == answer(max_new_tokens=MAX_NEW, temperature=1.5, top_p=0.95, seed=3)  # seeded
    state = torch.get_rng_state()
    answer(max_new_tokens=MAX_NEW, temperature=1.5, seed=4)
    assert torch.equal(state, torch.get_rng_state())  # the seed does not touch the global RNG
    session = model.start_chat(processor, max_new_tokens=3)
    session.ask("Describe the shot.", video=clips[0])
    assert session.last_stats.generated_tokens <= 3


def test_errors_leave_the_session_usable(model, processor, clips, tmp_path):
    session = model.start_chat(processor, max_new_tokens=MAX_NEW)
    first = session.ask("Which balls were potted?", video=clips[0])
    for broken in [
        write_corrupt(tmp_path / "broken.mp4", source=clips[1]),
        write_corrupt(tmp_path / "text.mp4"),
    ]:
        with pytest.raises(ValueError) as info:
            session.ask("And this?", video=broken)
        # The remote-code copy of processing_hilight raises its own VideoReadError subclasses.
        assert "VideoReadError" in [cls.__name__ for cls in type(info.value).__mro__]
    with pytest.raises(ValueError, match="special token"):
        session.ask("What is <video> here?")
    assert len(session.turns) == 1 and session.turns[0].answer == first and len(session.videos) == 1
    with pytest.raises(ValueError, match="either"):
        model.chat(processor, None, "x", history=[], session=session)
    # One generation at a time per session.
    session._lock.acquire()
    try:
        with pytest.raises(RuntimeError, match="already generating"):
            session.ask("Was it a foul?")
    finally:
        session._lock.release()
    assert session.ask("Was it a foul?") == naive_answer(
        model,
        processor,
        [*session.messages[:2], {"role": "user", "content": "Was it a foul?"}],
        [str(clips[0])],
    )


def test_explain_maps_answer_attention_to_patches(model, processor, clips):
    session = model.start_chat(processor, max_new_tokens=MAX_NEW)
    session.ask("Which balls were potted?", video=clips[0])
    session.ask("And here?", video=clips[1])
    attn_impl = model.language_model.config._attn_implementation
    seen = []  # the shared LM's attention implementation at each of its forward calls during explain()
    hook = model.language_model.register_forward_pre_hook(
        lambda module, _args: seen.append(module.config._attn_implementation)
    )
    try:
        with TowerCounter(model) as counter:
            explanation = session.explain()
            assert counter.tower_calls == 0
    finally:
        hook.remove()
    # The eager pass runs on a weight-sharing view: the model other sessions use is never switched.
    assert set(seen) <= {attn_impl} and model.language_model.config._attn_implementation == attn_impl
    grid = model.config.video_config.grid_size
    assert explanation.method == "answer-attention" and explanation.turn == 1
    assert [v.name for v in explanation.videos] == ["clip0.mp4", "clip1.mp4"]
    for heatmap, leading in zip(explanation.heatmaps, explanation.leading_share, strict=True):
        assert heatmap.shape == (model.config.num_frames, *grid) and (heatmap >= 0).all()
        assert abs(heatmap.sum() + leading - 1) < 1e-4
    assert all(0 < share < 1 for share in explanation.video_share)
    uniform = session.explain(turn=0, method="uniform")
    assert len(uniform.heatmaps) == 1 and uniform.video_share is None
    assert not torch.allclose(
        torch.from_numpy(explanation.heatmaps[0]), torch.from_numpy(uniform.heatmaps[0])
    )
    with pytest.raises(ValueError, match="ask a question first"):
        model.start_chat(processor).explain()


@pytest.mark.parametrize("fusion", ["image_only", "mlp"])
def test_explain_names_fusions_without_token_mining_attention(fusion, clips, tmp_path):
    folder = build_tiny_model(tmp_path / fusion, token_mining_config={"fusion": fusion})
    other = AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
    session = other.start_chat(
        AutoProcessor.from_pretrained(folder, trust_remote_code=True), max_new_tokens=4
    )
    session.ask("Which balls were potted?", video=clips[0])
    for method in ("answer-attention", "uniform"):  # both map vision tokens through TokenMining's attention
        with pytest.raises(ValueError, match=f"fusion '{fusion}' has no such attention"):
            session.explain(method=method)
