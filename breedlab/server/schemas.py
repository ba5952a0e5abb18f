"""Request and response bodies of the OpenAI-compatible endpoints (the subset breedlab serves).

Requests accept the OpenAI fields a local server can honour and ignore unknown
ones (clients send many); fields we cannot honour (several choices, logprobs,
token-id prompts, batched prompts) are refused with a 400 naming them rather
than silently ignored. Responses carry the OpenAI fields plus ``breedlab``:
which model served, on what route, how confident, and why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STOPS = 4


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200, description="'auto' (route through the ecosystem), a served "
                                                                    "model's name, 'parent', or an artifact id prefix")
    max_tokens: int | None = Field(None, ge=1, description="answer length bound (server limit: max_new_tokens_limit)")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="only 1 is supported")
    stream: bool = False
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOPS} stop strings")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="sampling seed (default: a fresh one, "
                                                                      "reported in breedlab.seed)")
    user: str | None = Field(None, max_length=256)
    logprobs: Literal[False] | None = Field(None, description="not supported")
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class CompletionRequest(Request):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="one text prompt (a list must hold exactly one string; token ids are refused)")
    echo: Literal[False] = Field(False, description="not supported")
    logprobs: int | None = Field(None, ge=0, le=0, description="not supported")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(Request):
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens")


class Served(BaseModel):
    """Which model served and why (``breedlab`` in every response and stream chunk)."""

    served_by: str
    artifact_id: str
    requested: str
    route: str
    confidence: float | None
    reason: str
    canary: bool = False
    fallback: str | None = None
    seed: int
    """The sampling seed used (the request's, or a fresh one): send it back to reproduce a sampled answer."""
    engine: str
    """The engine that generated the answer: hf, llamacpp or ctranslate2."""
    quantization: str
    """Its weights: fp32 (hf), or the checked quantization (f32, q8_0, int8, ...)."""


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    breedlab: Served


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatDelta
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    breedlab: Served


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    parent: str | None
    root: str
    breedlab: dict


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


Request.model_rebuild()
