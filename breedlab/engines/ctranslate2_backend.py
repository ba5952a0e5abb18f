"""The ``ctranslate2`` backend: CTranslate2's generator on a conversion its own converter makes from the HF folder.

The conversion lives in the home's engine cache, one folder per quantization
(``float32``, ``int8_float32``, ``int8``), with ``export.json`` naming every
file's sha256; a load re-hashes them and converts again if any differ.

CTranslate2 decodes inside its own loop (``generate_tokens``), so this engine
streams its step results rather than sampling with breedlab's ``pick``. Greedy
decoding is therefore exact to the arithmetic, as for the other engines, but a
*sampled* request draws from CTranslate2's own generator: it is seeded
per request (``ctranslate2.set_random_seed``, process-wide, so a seeded sample
is reproducible only while no other sampled request runs at the same time).
Scoring is ``forward_batch`` (all positions' logits, no cache).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from breedlab.engines.base import Backend, Engine, ModelFolder, backend, importable
from breedlab.engines.conversions import cached_conversion
from breedlab.engines.sampling import Sampling

QUANTIZATIONS = ("float32", "int8_float32", "int8")
ARCHITECTURES = ("LlamaForCausalLM",)


@backend
class CTranslate2Backend(Backend):
    name = "ctranslate2"
    quantizations = QUANTIZATIONS
    architectures = ARCHITECTURES
    supports = ("pruned shapes its converter reads from config.json; the full head (no domain head); "
                "not breedlab's int8/fp16 artifacts; sampling on its own generator")

    def version(self) -> str:
        import ctranslate2

        return f"ctranslate2-{ctranslate2.__version__}"

    def unsupported(self, folder: ModelFolder, quantization: str) -> str | None:
        if not importable("ctranslate2"):
            return "ctranslate2 is not installed"
        if quantization not in QUANTIZATIONS:
            return f"unknown quantization {quantization!r}; CTranslate2 on CPU takes {', '.join(QUANTIZATIONS)}"
        if folder.config.get("architectures", [None])[0] not in ARCHITECTURES:
            return f"this backend converts {', '.join(ARCHITECTURES)} only, not {folder.config.get('architectures')}"
        if folder.kind == "quantized":
            return "breedlab's own int8/fp16 weight files: convert the fp32 model it was made from"
        return None

    def load(self, folder: ModelFolder, quantization: str, cache: Path, *, threads: int) -> "CTranslate2Engine":
        import ctranslate2
        from transformers import AutoTokenizer

        files = ensure_conversion(folder, quantization, cache)
        generator = ctranslate2.Generator(str(cache / "model"), device="cpu", compute_type=quantization,
                                          intra_threads=threads)
        tokenizer = AutoTokenizer.from_pretrained(folder.path, local_files_only=True)
        return CTranslate2Engine(generator, tokenizer, quantization, files)


def ensure_conversion(folder: ModelFolder, quantization: str, cache: Path) -> dict[str, str]:
    """Convert ``folder`` into ``cache/model`` unless an unchanged conversion of it is there; its files' sha256."""
    from ctranslate2.converters import TransformersConverter

    def convert() -> dict:
        TransformersConverter(str(folder.path), low_cpu_mem_usage=False).convert(
            str(cache / "model"), quantization=quantization, force=True)
        return {}

    return cached_conversion(cache, cache / "model", {"source": folder.id, "quantization": quantization}, convert)


class CTranslate2Engine(Engine):
    backend = "ctranslate2"

    def __init__(self, generator, tokenizer, quantization: str, files: dict[str, str]):
        self.generator, self.tokenizer, self.quantization, self.files = generator, tokenizer, quantization, files

    def token_ids(self, prompt_ids: list[int], sampling: Sampling, cancel: threading.Event) -> Iterator[int]:
        import time

        import ctranslate2

        if not sampling.greedy:
            ctranslate2.set_random_seed(sampling.seed)
        steps = self.generator.generate_tokens(
            self.tokenizer.convert_ids_to_tokens(list(prompt_ids)), max_length=sampling.max_new_tokens,
            sampling_topk=1 if sampling.greedy else 0, sampling_topp=sampling.top_p,
            sampling_temperature=1.0 if sampling.greedy else sampling.temperature, end_token=[])
        for step in steps:
            if cancel.is_set() or (sampling.deadline is not None and time.monotonic() > sampling.deadline):
                steps.close()
                return
            yield int(step.token_id)

    def logits(self, ids: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.array(self.generator.forward_batch([list(ids)]), dtype=np.float32)[0])  # (T, V)
