"""Pico Llama models: seconds-to-build stand-ins for the real parent.

Tests and the quick demo need a parent with the same shape of interfaces as
SmolLM2 (Llama architecture, tied embeddings, a chat template, bos/eos/pad
ids 1/2/3) but small enough to build, train and save in under two seconds.
Everything here is deterministic: the same arguments give byte-identical
safetensors on the same machine and thread count.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from breedlab.models.io import save_model

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

# Special tokens mirror SmolLM2's ids (0 unk, 1 bos, 2 eos) so code written
# against the pico parent meets the same ids with the real one.
UNK, BOS, EOS, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
PICO_VOCAB_SIZE = 512
PICO_MAX_POSITIONS = 512
PICO_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Original text written for this module: a little prose and a little code, so
# a pico model trained for a few steps has seen both kinds of token.
PICO_TEXTS: tuple[str, ...] = (
    "The lighthouse keeper wrote the weather in a green ledger every morning. "
    "Wind from the west, three knots; the sea flat as a plate; a gull on the "
    "railing that would not leave. Nobody read the ledger, but he kept it anyway, "
    "because a record kept for no reader is still a record.",
    "A small model cannot know everything, so it should know one thing well. "
    "Give it a narrow shelf of books, test it on questions from that shelf, and "
    "keep it only if it answers better than the large model it came from.",
    "In the market town the bakers opened before dawn. Flour dust hung in the "
    "lamplight, the ovens ticked as they warmed, and the first loaves went out "
    "on wooden boards to the carts waiting in the lane.",
    "def mean(values):\n    \"\"\"Arithmetic mean of a non-empty list.\"\"\"\n"
    "    return sum(values) / len(values)\n",
    "for line in open('ledger.txt'):\n    date, wind, sea = line.split(',')\n"
    "    if wind.strip() == 'west':\n        print(date)\n",
    "Question: What does the keeper write each morning?\n"
    "Answer: The weather, in a green ledger.",
)


def build_pico_tokenizer(
    texts: Sequence[str] = PICO_TEXTS, vocab_size: int = PICO_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` with a ChatML chat template.

    Byte-level means every string is encodable (no unknown characters), so the
    vocabulary can stay tiny; training is single-pass and deterministic.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[UNK, BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(texts), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=UNK, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        model_max_length=PICO_MAX_POSITIONS,
    )
    tokenizer.chat_template = PICO_CHAT_TEMPLATE
    return tokenizer


def build_pico_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama (tied embeddings, like SmolLM2), seeded.

    The seed is applied inside ``fork_rng`` so building a pico model does not
    disturb the caller's global random state.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=PICO_MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def _token_blocks(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], block: int) -> torch.Tensor:
    """All texts as one eos-separated token stream cut into rows of ``block`` ids."""
    import torch

    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    while len(stream) < block:  # tiny inputs: repeat rather than fail
        stream += stream
    rows = len(stream) // block
    return torch.tensor(stream[: rows * block]).view(rows, block)  # (rows, block)


def train_pico(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    *,
    steps: int,
    seed: int = 0,
    block: int = 64,
    batch: int = 8,
    lr: float = 3e-3,
) -> LlamaForCausalLM:
    """A few AdamW steps of next-token training so the model is not pure noise."""
    import torch

    blocks = _token_blocks(tokenizer, texts, block)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(blocks), (batch,), generator=generator)
        inputs = blocks[rows]  # (B, T)
        loss = model(input_ids=inputs, labels=inputs).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def build_pico_parent(
    directory: Path | str,
    *,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
    texts: Sequence[str] | None = None,
    train_steps: int = 0,
) -> Path:
    """Build, optionally train, and save a pico parent into ``directory``.

    The tokenizer is trained on ``texts`` (default PICO_TEXTS), its vocabulary
    sets the model's; ``train_steps`` > 0 runs that many training steps.
    """
    texts = tuple(texts) if texts is not None else PICO_TEXTS
    tokenizer = build_pico_tokenizer(texts)
    model = build_pico_model(
        tokenizer, hidden=hidden, layers=layers, heads=heads,
        kv_heads=kv_heads, intermediate=intermediate, seed=seed,
    )
    if train_steps > 0:
        train_pico(model, tokenizer, texts, steps=train_steps, seed=seed)
    return save_model(model, tokenizer, directory)
