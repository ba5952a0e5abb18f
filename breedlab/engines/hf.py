"""The ``hf`` backend: transformers' eager Llama in float32, the exact reference every other engine is checked against.

It runs every model breedlab breeds: non-uniform shapes, a domain head, and breedlab's own int8/fp16
weight-only artifacts (``quantized``), whose quantization it reports as their scheme.
"""

from __future__ import annotations

from pathlib import Path

import torch

from breedlab.engines.base import Backend, DecodeSession, LogitsEngine, ModelFolder, backend

SCHEME_LABELS = {"symmetric": "int8", "fp16": "fp16"}


@backend
class HFBackend(Backend):
    name = "hf"
    quantizations = ("fp32",)
    architectures = ("any transformers causal LM",)
    supports = "everything breedlab makes: pruned shapes, the domain head's fast greedy path, int8/fp16 artifacts"

    def version(self) -> str:
        import transformers

        return f"transformers-{transformers.__version__}+torch-{torch.__version__}"

    def unsupported(self, folder: ModelFolder, quantization: str) -> str | None:
        own = folder_quantization(folder)
        return None if quantization == own else f"hf runs this folder as it is stored ({own}), not {quantization}"

    def load(self, folder: ModelFolder, quantization: str, cache: Path, *, threads: int) -> "HFEngine":
        from breedlab.cmg.domain_head import attach_domain_head
        from breedlab.models.io import load_model

        if folder.kind == "quantized":
            from breedlab.operators.quantize import load_quantized

            model, tokenizer = load_quantized(folder.path)
        else:
            model, tokenizer = load_model(folder.path)
        attach_domain_head(model, folder.path)  # a no-op for a model without one
        return HFEngine(model.eval(), quantization)


def folder_quantization(folder: ModelFolder) -> str:
    """``fp32`` for a plain folder; a quantized artifact's scheme (int8 or fp16) otherwise."""
    if folder.kind != "quantized":
        return "fp32"
    return SCHEME_LABELS.get(str(folder.recipe.get("scheme")), str(folder.recipe.get("scheme")))


class HFEngine(LogitsEngine):
    """A loaded transformers model; decode steps reuse its ``past_key_values``."""

    backend = "hf"

    def __init__(self, model, quantization: str = "fp32"):
        self.model, self.quantization, self.files = model, quantization, {}

    @torch.no_grad()
    def logits(self, ids: list[int]) -> torch.Tensor:
        return self.model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0].float()  # (T, V)

    def _session(self) -> "HFSession":
        return HFSession(self.model)


class HFSession(DecodeSession):
    def __init__(self, model):
        self.model, self.past = model, None

    @torch.no_grad()
    def feed(self, ids: list[int]) -> torch.Tensor:
        # logits_to_keep=1: a prefill needs the next-token logits of its last position only, not the head
        # over every prompt token
        out = self.model(input_ids=torch.tensor([ids], dtype=torch.long), cache=self.past, use_cache=True,
                         logits_to_keep=1)
        self.past = out.cache
        return out.logits[0, -1].float()  # (V,)
