"""OpenAI response shapes: text completions and chat completions, whole or as stream chunks.

Every body and chunk carries ``breedlab`` (which model served, the route, the
confidence, the reason); ``model`` is the public name of the model that served,
which for ``auto`` is the routing's answer.
"""

from __future__ import annotations

import time
import uuid

from breedlab.server.dispatch import Prepared
from breedlab.server.generation import Generation


class TextShape:
    """``text_completion`` objects."""

    object = "text_completion"
    prefix = "cmpl"

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def _head(self, object_name: str) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.prepared.served_name}

    def usage(self, generation: Generation) -> dict:
        prompt = len(self.prepared.prompt_ids)
        return {"prompt_tokens": prompt, "completion_tokens": generation.completion_tokens,
                "total_tokens": prompt + generation.completion_tokens}

    def body(self, generation: Generation) -> dict:
        return {**self._head(self.object), "choices": [self._choice(generation.text, generation.finish_reason)],
                "usage": self.usage(generation), "breedlab": self.prepared.served()}

    def opening(self) -> list[dict]:
        """Chunks sent before the first generated text (none for text completions)."""
        return []

    def chunk(self, text: str, finish_reason: str | None = None) -> dict:
        return {**self._head(self.object), "choices": [self._choice(text, finish_reason)],
                "breedlab": self.prepared.served()}

    def usage_chunk(self, generation: Generation) -> dict:
        """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
        return {**self._head(self.object), "choices": [], "usage": self.usage(generation),
                "breedlab": self.prepared.served()}

    def _choice(self, text: str, finish_reason: str | None) -> dict:
        return {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}


class ChatShape(TextShape):
    """``chat.completion`` and ``chat.completion.chunk`` objects."""

    object = "chat.completion"
    prefix = "chatcmpl"

    def body(self, generation: Generation) -> dict:
        choice = {"index": 0, "message": {"role": "assistant", "content": generation.text},
                  "finish_reason": generation.finish_reason, "logprobs": None}
        return {**self._head(self.object), "choices": [choice], "usage": self.usage(generation),
                "breedlab": self.prepared.served()}

    def opening(self) -> list[dict]:
        return [self._delta({"role": "assistant", "content": ""}, None)]

    def chunk(self, text: str, finish_reason: str | None = None) -> dict:
        return self._delta({"content": text} if text or finish_reason is None else {}, finish_reason)

    def usage_chunk(self, generation: Generation) -> dict:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": self.usage(generation),
                "breedlab": self.prepared.served()}

    def _delta(self, delta: dict, finish_reason: str | None) -> dict:
        return {**self._head("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
                "breedlab": self.prepared.served()}
