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

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from breedlab.engines.base import Backend, Engine, ModelFolder, backend
from breedlab.engines.sampling import Sampling
from breedlab.registry.canonical import sha256_file

QUANTIZATIONS = ("float32", "int8_float32", "int8")
FACTS_NAME = "export.json"
ARCHITECTURES = ("LlamaForCausalLM",)


def installed() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


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
        if not installed():
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
    """Convert ``folder`` into ``cache/model`` unless a complete conversion of it is there; its files' sha256."""
    from ctranslate2.converters import TransformersConverter

    from breedlab.registry.atomic import atomic_write_bytes

    facts_path, model_dir = cache / FACTS_NAME, cache / "model"
    if facts_path.is_file():
        facts = json.loads(facts_path.read_text())
        if facts.get("source") == folder.id and _hashes(model_dir) == facts.get("files"):
            return facts["files"]
        facts_path.unlink()  # stale or damaged: convert again (the facts go first, so a crash re-converts)
    TransformersConverter(str(folder.path), low_cpu_mem_usage=False).convert(str(model_dir), quantization=quantization,
                                                                             force=True)
    files = _hashes(model_dir)
    atomic_write_bytes(facts_path, json.dumps({"source": folder.id, "quantization": quantization, "files": files},
                                              indent=1, sort_keys=True).encode())
    return files


def _hashes(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


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
