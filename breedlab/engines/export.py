"""``breedlab export``: a registered model as a GGUF file plus an Ollama Modelfile, verified by loading it back.

Two loads check every export before it is reported done:

- transformers' GGUF loader (``from_pretrained(gguf_file=...)``) must give the
  model's logits on a fixed probe within ``tolerance`` (max |difference|; at
  f32 the round trip is exact, at a quantization the tolerance is the type's);
- llama.cpp must load the file and score the same probe.

A model llama.cpp cannot represent is refused before anything is written, with
the reason (``gguf_export.export_unsupported``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from breedlab.engines.base import ModelFolder
from breedlab.engines.gguf_export import export_unsupported, lineage_of, modelfile, write_gguf
from breedlab.registry.atomic import atomic_write_bytes

TOLERANCE = {"f32": 1e-4, "f16": 0.05, "q8_0": 0.25}
"""Max |logit difference| against the fp32 folder a round trip may show, per quantization; other
quantizations are reported but not bounded (4-5 bit types move logits by whole units)."""
PROBE = "def mean(values):\n    return sum(values) / len(values)\n\nThe keeper wrote the weather down."


@dataclass(frozen=True)
class ExportReport:
    gguf: str
    modelfile: str
    quantization: str
    sha256: str
    bytes: int
    transformers_max_logit_diff: float
    llamacpp_max_logit_diff: float
    tolerance: float | None
    facts: dict

    @property
    def verified(self) -> bool:
        worst = max(self.transformers_max_logit_diff, self.llamacpp_max_logit_diff)
        return self.tolerance is None or worst <= self.tolerance


def export_gguf(folder: ModelFolder, out_dir: Path, quant: str, name: str) -> ExportReport:
    """Write ``<out_dir>/<name>.<quant>.gguf`` and a Modelfile, then verify both loads; raise ValueError if refused."""
    reason = export_unsupported(folder.config, folder.path)
    if reason is not None:
        raise ValueError(f"cannot export {folder.id[:12]} to GGUF: {reason}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.{quant}.gguf"
    facts = write_gguf(folder.path, target, quant, lineage_of(folder), name=name)
    template = json.loads((folder.path / "tokenizer_config.json").read_text()).get("chat_template")
    jinja = folder.path / "chat_template.jinja"
    if template is None and jinja.is_file():
        template = jinja.read_text()
    atomic_write_bytes(out_dir / "Modelfile", modelfile(target.name, template).encode())
    reference = _reference_logits(folder.path)
    from breedlab.registry.canonical import sha256_file

    return ExportReport(gguf=str(target), modelfile=str(out_dir / "Modelfile"), quantization=quant,
                        sha256=sha256_file(target), bytes=target.stat().st_size,
                        transformers_max_logit_diff=_transformers_diff(target, reference),
                        llamacpp_max_logit_diff=_llamacpp_diff(target, reference),
                        tolerance=TOLERANCE.get(quant), facts=facts)


def _reference_logits(folder: Path) -> tuple[list[int], torch.Tensor]:
    from breedlab.models.io import load_model

    model, tokenizer = load_model(folder)
    ids = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return ids, model(input_ids=torch.tensor([ids])).logits[0].float()


def _transformers_diff(path: Path, reference: tuple[list[int], torch.Tensor]) -> float:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    ids, expected = reference
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                 local_files_only=True)
    with torch.no_grad():
        return float((model(input_ids=torch.tensor([ids])).logits[0].float() - expected).abs().max())


def _llamacpp_diff(path: Path, reference: tuple[list[int], torch.Tensor]) -> float:
    from breedlab.engines.llamacpp import LlamaCppEngine

    ids, expected = reference
    engine = LlamaCppEngine(path, "export", context=max(len(ids) + 1, 64), threads=2, pool=1)
    try:
        return float((engine.logits(ids) - expected).abs().max())
    finally:
        engine.close()


def report_json(report: ExportReport) -> str:
    return json.dumps({**asdict(report), "verified": report.verified}, indent=1, sort_keys=True)
