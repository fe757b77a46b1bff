"""A fresh HiLight model folder from a preset: tokenizer, config, random weights and processor.

This is where every trained model starts (stage 0 of the tiny recipe trains from it) and what end-to-end
tests run on. The folder is Hub-style: `AutoModel` / `AutoProcessor.from_pretrained(folder,
trust_remote_code=True)` load it, because `save_pretrained` copies the root code files beside
`config.json` (whose `auto_map` names them).

    from hilight_train.model_folder import init_model_folder
    model, processor = init_model_folder("outputs/init", texts, preset="tiny", vocab_size=2048)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from hilight.configuration_hilight import HiLightConfig
from hilight.modeling_hilight import HiLightForConditionalGeneration
from hilight.processing_hilight import HiLightProcessor, HiLightVideoProcessor

from .tokenizer import END_OF_TURN, train_tokenizer


def stop_token_ids(tokenizer) -> list[int]:
    """The ids a HiLight answer ends at: ``<eos>`` and, when the tokenizer has it, ``<end_of_turn>`` (the chat
    template closes every turn with it), so a plain ``model.generate`` stops where the chat session does."""
    ids = [tokenizer.eos_token_id]
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_of_turn is not None and end_of_turn != tokenizer.unk_token_id:
        ids.append(end_of_turn)
    return ids


# What int8 weight-only quantization leaves alone: the towers and TokenMining (a small share of the bytes a
# generated token reads; what the LM reads stays as trained) and the output head, whose weight is the token
# embedding's (transformers does not quantize a tied head).
INT8_NOT_QUANTIZED = ("video_tower", "image_tower", "token_mining", "lm_head")


def int8_lm_config():
    """transformers' `QuantoConfig` for an int8 weight-only LM (optimum-quanto): pass it to
    `from_pretrained(..., dtype=torch.bfloat16, quantization_config=int8_lm_config())`."""
    from transformers import QuantoConfig

    return QuantoConfig(weights="int8", modules_to_not_convert=list(INT8_NOT_QUANTIZED))


def build_processor(config: HiLightConfig, tokenizer, **video_kwargs: Any) -> HiLightProcessor:
    """The processor that matches `config`: frames, image size and vision tokens per frame."""
    height, width = config.video_config.frame_size
    video_processor = HiLightVideoProcessor(
        num_frames=config.num_frames, size={"height": height, "width": width}, **video_kwargs
    )
    return HiLightProcessor(
        video_processor,
        tokenizer,
        tokens_per_frame=config.token_mining_config.queries_per_frame,
        max_prompt_tokens=config.text_config.max_position_embeddings,
    )


def init_model_folder(
    out: str | Path | None,
    texts: Iterable[str],
    preset: str = "tiny",
    vocab_size: int = 2048,
    seed: int = 0,
    **config_overrides: Any,
) -> tuple[HiLightForConditionalGeneration, HiLightProcessor]:
    """Train a BPE tokenizer on `texts`, build the preset with that vocabulary, initialise the weights from
    `seed`, and (when `out` is given) save model + processor there. Returns (model, processor)."""
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    text_config = dict(config_overrides.pop("text_config", {}))
    text_config["vocab_size"] = len(tokenizer)
    config = HiLightConfig.from_preset(
        preset,
        text_config=text_config,
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = HiLightForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    processor = build_processor(config, tokenizer)
    if out is not None:
        out = Path(out)
        model.save_pretrained(out)
        processor.save_pretrained(out)
    return model, processor


def _tower_text_key(name: str) -> bool:
    tower, _, rest = name.partition(".")
    return tower in ("video_tower", "image_tower") and (
        rest.startswith("text_model.") or rest == "logit_scale"
    )


def export_inference_folder(
    src: str | Path, out: str | Path, dtype: torch.dtype = torch.bfloat16
) -> tuple[HiLightForConditionalGeneration, HiLightProcessor]:
    """The shipped form of a trained model: the towers' text encoders dropped (contrastive pretraining only,
    never used to answer) and the weights stored in ``dtype``. Every other tensor is copied exactly (up to the
    dtype); a missing or unexpected key is an error. Returns the exported model and processor."""
    model = HiLightForConditionalGeneration.from_pretrained(str(src), dtype=torch.float32)
    processor = HiLightProcessor.from_pretrained(str(src), trust_remote_code=True)
    config = HiLightConfig.from_dict(model.config.to_dict())
    config.video_config.use_text_encoder = False
    config.image_config.use_text_encoder = False
    slim = HiLightForConditionalGeneration(config)
    state = {k: v for k, v in model.state_dict().items() if not _tower_text_key(k)}
    slim.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    slim = slim.to(dtype).eval()
    slim.generation_config = model.generation_config
    out = Path(out)
    slim.save_pretrained(out)
    processor.save_pretrained(out)
    return slim, processor
