"""A byte-level BPE tokenizer trained on a corpus, for the tiny model."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .chat_format import CHATML, TEMPLATE_TOKENS

BOS, PAD, UNK = "<s>", "<pad>", "<unk>"
IM_START, IM_END = TEMPLATE_TOKENS["chatml"]
SPECIAL_TOKENS = [PAD, UNK, BOS, IM_START, IM_END]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (no unknown characters) and wrap it for transformers. It speaks ChatML
    (``<|im_end|>`` ends a turn), as SmolLM2 and Qwen do: the chat format is chosen as for any other model, and
    its end marker (one added token) makes ``vocab_size``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=IM_END, pad_token=PAD, unk_token=UNK
    )
    wrapped.chat_template = CHATML
    return wrapped
