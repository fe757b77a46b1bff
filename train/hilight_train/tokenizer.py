"""Train a small byte-level BPE tokenizer for the tiny HiLight preset.

The paper model uses Gemma's 256k-token tokenizer, which cannot be downloaded here. The tiny preset
trains its own with Hugging Face ``tokenizers`` on the text of the generated dataset, and tests build
a throw-away one from a few sentences. Either way the result is a ``PreTrainedTokenizerFast`` that
behaves like Gemma's where HiLight depends on it:

- special tokens ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, then ``<start_of_turn>``,
  ``<end_of_turn>`` and the video placeholder ``<video>``; all atomic (never split, never merged);
- ``<bos>`` is added by the post-processor when ``add_special_tokens=True`` (the chat template does
  not write it);
- the HiLight chat template (from ``processing_hilight.CHAT_TEMPLATE``) is set;
- byte-level, so any text encodes without ``<unk>`` and decodes back to the same string;
- left padding (generation batches).

Example (tiny, CPU, < 1 s)::

    from hilight_train.tokenizer import train_tokenizer
    tok = train_tokenizer(["Which balls were potted?", "The 8-ball was potted."] * 50, vocab_size=300)
    tok.save_pretrained("outputs/tokenizer")   # tokenizer.json + tokenizer_config.json + chat_template.jinja
"""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

import hilight_train  # noqa: F401  (registers the repo root as the package `hilight`)
from hilight.processing_hilight import CHAT_TEMPLATE, VIDEO_TOKEN

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
# Order fixes the ids: <pad>=0, <eos>=1, <bos>=2, <unk>=3 (Gemma's), then the turn markers and <video>.
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN, VIDEO_TOKEN]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    model_max_length: int = 4096,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: any iterable of strings (a generator is fine; it is consumed once).
        vocab_size: target size including the 7 special tokens and the 256 byte symbols.
        min_frequency: a pair must occur at least this often to be merged.
        model_max_length: stored in the tokenizer config (truncation limit when asked for).
    """
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs the {len(SPECIAL_TOKENS)} special "
            "tokens plus 256 byte symbols; use at least 263"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    # add_prefix_space=False: "Hello" and " Hello" stay different, so decode(encode(s)) == s.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != expected_id:
            raise RuntimeError(
                f"special token {token} got id {tokenizer.token_to_id(token)}, expected {expected_id}"
            )
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return wrap_tokenizer(tokenizer, model_max_length=model_max_length)


def wrap_tokenizer(tokenizer: Tokenizer, model_max_length: int = 4096) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` that has HiLight's special tokens as a HiLight text tokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[START_OF_TURN, END_OF_TURN, VIDEO_TOKEN],
        padding_side="left",
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
