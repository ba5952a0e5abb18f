"""Examples as training blocks: the prompt under the parent's chat template, then the desired output.

Each example becomes one row of ``seq_len`` token ids: the chat template's rendering of the prompt
messages with the generation prompt (exactly what the model sees when it is asked), the output's
tokens, and the end-of-turn token, padded on the right. ``target_mask`` marks the output and
end-of-turn tokens: the only tokens any loss falls on (CE and the parent's KD alike), so nothing
learns to predict the user's words. A prompt too long for the row loses its beginning, never the
output; an output longer than the row is cut at its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from breedlab.data.examples import Example


def render_example(tokenizer, example: Example) -> tuple[list[int], list[int]]:
    """(prompt ids, output ids ending with the end-of-turn token) under the tokenizer's chat template."""
    messages = list(example.messages)
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # a plain transcript, as the server renders a chat for a model without a template
        prompt = "\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant: "])
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    output_ids = tokenizer(example.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids, output_ids


def example_row(prompt_ids: list[int], output_ids: list[int], seq_len: int, pad_id: int):
    """(input ids, attention mask, target mask), each ``seq_len`` long."""
    output_ids = output_ids[:seq_len - 1]  # at least one prompt token predicts the first output token
    prompt_ids = prompt_ids[-(seq_len - len(output_ids)):]
    ids = prompt_ids + output_ids
    pad = seq_len - len(ids)
    return (ids + [pad_id] * pad, [1] * len(ids) + [0] * pad,
            [0] * len(prompt_ids) + [1] * len(output_ids) + [0] * pad)


@dataclass
class ExampleBlocks:
    """A pool of example rows; the parent runs live on each batch (its KD on the output tokens only)."""

    input_ids: torch.Tensor  # (N, S)
    attention_mask: torch.Tensor  # (N, S)
    target_mask: torch.Tensor  # (N, S) bool: the tokens the loss falls on

    @classmethod
    def from_examples(cls, tokenizer, examples: list[Example], seq_len: int) -> ExampleBlocks:
        if not examples:
            raise ValueError("no examples to train on")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rows = [example_row(*render_example(tokenizer, e), seq_len, pad) for e in examples]
        ids, attention, target = (torch.tensor([row[i] for row in rows]) for i in range(3))
        return cls(ids, attention, target.bool())

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows, cut to the longest one among them: rows are right-padded, so the columns cut
        are padding in every row and the loss is exactly the same (a short niche's rows train ~2x
        faster than at the full ``seq_len``)."""
        width = int(self.attention_mask[indices].sum(dim=1).max())
        return {"input_ids": self.input_ids[indices, :width], "attention_mask": self.attention_mask[indices, :width],
                "target_mask": self.target_mask[indices, :width]}
