"""What text a model continues: a completion's prompt as given, a chat rendered by the model's own template.

A chat is rendered with the serving model's tokenizer (``apply_chat_template``
with the generation prompt), since a child may in principle carry another
template than its parent. A tokenizer without a template gets a plain
``role: content`` transcript ending in ``assistant:``, so every model can chat.
The template's end-of-turn marker (``<|im_end|>`` in ChatML templates such as
SmolLM2's and the pico's) becomes a stop string: small models often emit it as
text rather than as the end-of-sequence token.
"""

from __future__ import annotations

from breedlab.server.errors import ApiError

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")


def text_renderer(prompt: str):
    """A completion prompt is the text itself, with no extra stop strings."""
    return lambda tokenizer: (prompt, ())


def chat_renderer(messages: list[dict]):
    """``render(tokenizer) -> (prompt, stops)`` for a list of {role, content} messages."""
    def render(tokenizer) -> tuple[str, tuple[str, ...]]:
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            lines = [f"{m['role']}: {m['content']}" for m in messages]
            return "\n".join([*lines, "assistant:"]), ("\nuser:",)
        try:
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # a template may refuse e.g. two user turns in a row
            raise ApiError(400, f"the model's chat template refused these messages: {error}", param="messages",
                           code="invalid_messages") from None
        return prompt, tuple(marker for marker in END_OF_TURN if marker in template)
    return render
