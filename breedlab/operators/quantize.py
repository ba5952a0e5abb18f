"""The ``quantize`` operator: cheaper weights for CPU inference, drift measured against the source.

Two schemes (``QuantizeRecipe.scheme``), both weight-only over the Linears of
the decoder layers (q, k, v, o, gate, up, down) and, by default, the LM head:

``fp16`` (``kernels/half.py``): weights rounded to IEEE half and multiplied in fp32 by
fbgemm's packed fp16 GEMM. It is the faster and the more exact of the two on
this CPU: the fp16 SmolLM2 parent decoded at 1.80-1.86x the fp32 one (one
thread, 5 alternating rounds, two runs) with +0.0002 nats/token of NLL on
2,048 held-out code tokens, where int8 decoded at 0.82-1.31x with +0.0051
(``benchmarks/fp16_probe.py``, docs/results/fp16-probe.txt). It is the default, and the lab stacks it
on its children (``cmg-fp16``).

``symmetric`` (int8, ``kernels/int8.py``): per output channel, ``scale[r] = max|W[r, :]| / 127``
and ``qweight = round(W / scale[:, None])`` in [-127, 127]; ``W ~ qweight * scale``.
One scale per row keeps an outlier row from flattening every other row's range.
Its LM head is int8 too (``head: int8``, the default), one scale per vocabulary
row: on 2,048 held-out code tokens that costs a KL of 0.0014 nats/token and
+0.0019 nats of NLL against the int8-layers model, and the 113 MB fp32 head is
the largest tensor a decode step reads (``benchmarks/int8_head_probe.py``).
Tied to the embedding, the head's matrix is stored twice: the embedding stays
fp32 (an input lookup reads one row per token) and the head's copy sits beside
it. ``head: fp32`` keeps the old layout and the old artifacts' identities.
Two kernels read the same int8 + scales (``load_quantized(kernel=...)``):
``dequant`` (default) is ``Int8Linear``, exact weight-only int8; ``dynamic``
packs them into ``torch.ao``'s dynamic int8 Linear, which quantizes the
activations per call too, and SmolLM2's activation outliers ruin it (43% top-1
agreement against weight-only's 95% on the real parent). The operator records
the drift of every kernel of the scheme. The RMSNorm gains always stay fp32.

The folder and its loader are in ``quantized_folder.py``.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from breedlab.cmg.blocks import dataset_blocks, token_blocks
from breedlab.cmg.inputs import load_frozen
from breedlab.cmg.recipe import LORA_TARGETS, RunOptions
from breedlab.home import Home
from breedlab.models.io import weights_digest
from breedlab.models.kernels.half import Fp16Linear
from breedlab.models.kernels.int8 import Int8Head, Int8Linear, dynamic_linear, quantize_weight
from breedlab.operators.quantized_folder import (
    FORMATS,
    KERNELS,
    WEIGHTS_FILE,
    load_quantized,
    quantized_module_names,
    quantized_tensors,
    write_quantized,
)
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry, RegistryError

__all__ = ["Fp16Linear", "Int8Head", "Int8Linear", "QuantizeRecipe", "dynamic_linear", "load_quantized",
           "quantize", "quantize_weight", "quantized_module_names", "quantized_tensors", "write_quantized"]

OPERATOR = "quantize"
HEAD_MODES = {"symmetric": ("int8", "fp32"), "fp16": ("fp16", "fp32")}
SHAPES = {"symmetric": (8, "per-output-channel"), "fp16": (16, "none")}
"""Each scheme's (bits, granularity): the only ones implemented."""
LEGACY_HEAD = "fp32"
DRIFT_TOKENS = 4096
DRIFT_SEQ_LEN = 128


@dataclass(frozen=True)
class QuantizeRecipe:
    """What to quantize and how: the whole identity of a quantized artifact besides its source."""

    scheme: str = "fp16"
    """fp16 (IEEE half weights, fp32 activations: the faster and more exact one here, see the module
    docstring) | symmetric (int8, zero point 0: a quarter of the fp32 bytes where memory is what counts)."""
    bits: int | None = None
    """The scheme's width (8 or 16); None takes it from the scheme."""
    granularity: str | None = None
    """symmetric: one float32 scale per row (per-output-channel); fp16: none. None takes the scheme's."""
    modules: tuple[str, ...] = LORA_TARGETS
    """Which Linear layers of each decoder layer to quantize (a subset of q,k,v,o,gate,up,down)."""
    head: str | None = None
    """The LM head in the scheme's storage too (int8 | fp16, the default) or as it is (fp32)."""

    def __post_init__(self) -> None:
        if self.scheme not in SHAPES:
            raise ValueError(f"scheme must be one of {sorted(SHAPES)}, got {self.scheme!r}")
        bits, granularity = SHAPES[self.scheme]
        for name, value in (("bits", bits), ("granularity", granularity), ("head", HEAD_MODES[self.scheme][0])):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if (self.bits, self.granularity) != (bits, granularity):
            raise ValueError(f"scheme {self.scheme!r} is {bits}-bit with granularity {granularity!r} only, "
                             f"got {self.bits}-bit {self.granularity!r}")
        if self.head not in HEAD_MODES[self.scheme]:
            raise ValueError(f"head must be one of {HEAD_MODES[self.scheme]} for scheme {self.scheme!r}, "
                             f"got {self.head!r}")
        unknown = set(self.modules) - set(LORA_TARGETS)
        if unknown or not self.modules:
            raise ValueError(f"modules must be a non-empty subset of {LORA_TARGETS}, got {self.modules}")
        object.__setattr__(self, "modules", tuple(sorted(set(self.modules), key=LORA_TARGETS.index)))

    @property
    def suffix(self) -> str:
        """What the quantized artifact's name adds to its source's: -int8 or -fp16."""
        return "-int8" if self.scheme == "symmetric" else "-fp16"

    def to_dict(self) -> dict[str, Any]:
        values = {**asdict(self), "modules": list(self.modules)}
        if self.scheme == "symmetric" and self.head == LEGACY_HEAD:
            del values["head"]  # int8 artifacts made before the field existed had an fp32 head
        return values


@dataclass
class QuantizeOutcome:
    child: Artifact
    reused: bool = False


@torch.no_grad()
def measure_drift(source, quantized, blocks: torch.Tensor, batch_size: int = 4) -> dict[str, float]:
    """Per-token mean KL(source || quantized), max |logit difference| and top-1 agreement on ``blocks`` (N, S).

    Every position counts (``tokens`` = N * S). Float64 logits: 4 x 128 x 49,152 of them is 200 MB.
    """
    kl_sum, agree, max_abs = 0.0, 0, 0.0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start:start + batch_size]  # (B, S)
        p_logits = source(input_ids=batch).logits.double()  # (B, S, V): float64 so a tiny KL is not noise
        q_logits = quantized(input_ids=batch).logits.double()
        log_p, log_q = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
        kl_sum += float((log_p.exp() * (log_p - log_q)).sum())
        agree += int((p_logits.argmax(-1) == q_logits.argmax(-1)).sum())
        max_abs = max(max_abs, float((p_logits - q_logits).abs().max()))
    tokens = blocks.numel()
    return {"kl_mean": kl_sum / tokens, "max_abs_logit_diff": max_abs, "top1_agreement": agree / tokens,
            "tokens": tokens}


def drift_blocks(registry: Registry, tokenizer, domain: str | None) -> tuple[torch.Tensor, str]:
    """Held-out blocks: ``<domain>/test`` if registered, else fixed built-in text; and what they are."""
    from breedlab.models.pico import PICO_TEXTS

    found = registry.find(kind="dataset", name=f"{domain}/test") if domain else []
    if found:
        return dataset_blocks(found[0].path, tokenizer, DRIFT_SEQ_LEN, DRIFT_TOKENS), found[0].id
    return token_blocks(tokenizer, PICO_TEXTS, seq_len=64), "builtin:breedlab.models.pico.PICO_TEXTS"


@operator(OPERATOR, recipe=QuantizeRecipe)
def quantize(registry: Registry, home: Home, source_id: str, recipe: QuantizeRecipe = QuantizeRecipe(),
             options: RunOptions = RunOptions(), *, drift_domain: str | None = None) -> QuantizeOutcome:
    """Register a quantized copy of ``source_id`` (int8 or fp16: ``recipe.scheme``); drift is measured on ``<domain>/test`` where there is one.

    The domain is ``drift_domain`` or the source's own (a child's or adapter's recipe names it).
    Only ``options.threads`` is used. The artifact depends on the source and the recipe alone.
    """
    if options.threads:
        torch.set_num_threads(options.threads)
    source = registry.get(source_id)
    if source.manifest.kind == "quantized":
        raise RegistryError(f"{source.id[:12]} is already quantized")
    full_recipe = {**recipe.to_dict(), "format": FORMATS[recipe.scheme], "source": source.id,
                   "versions": {"torch": torch.__version__}}
    name = f"{source.manifest.name}{recipe.suffix}"
    for found in registry.find(kind="quantized", name=name):
        if found.manifest.parents == (source.id,) and found.manifest.recipe == full_recipe:
            return QuantizeOutcome(found, reused=True)
    model, tokenizer = load_frozen(source)  # re-hashes the source's files first
    digest = weights_digest(model)
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        files = write_quantized(Path(scratch) / "q", source.path, model, recipe)
        blocks, drift_data = drift_blocks(registry, tokenizer, drift_domain or source.manifest.recipe.get("domain"))
        metrics = _metrics(source, model, Path(scratch) / "q", blocks, drift_data, recipe.scheme)
        if weights_digest(model) != digest:  # quantizing only reads the source
            raise RegistryError("the source's weights changed while quantizing; nothing was registered")
        artifact = registry.register("quantized", name, files, operator=OPERATOR, recipe=full_recipe,
                                     parents=[source.id], metrics=metrics, actor=options.actor, move=True)
    return QuantizeOutcome(artifact)


def _metrics(source: Artifact, model, folder: Path, blocks: torch.Tensor, drift_data: str,
             scheme: str) -> dict[str, Any]:
    """Bytes before/after and the drift of every kernel of the scheme; the default kernel's at the top level."""
    kernels = KERNELS[scheme]
    drift = {kernel: measure_drift(model, load_quantized(folder, kernel=kernel)[0], blocks) for kernel in kernels}
    before = sum(e.size for n, e in source.manifest.files.items() if n.endswith(".safetensors") and "/" not in n)
    after = (folder / WEIGHTS_FILE).stat().st_size
    others = {f"{kernel}_kernel_drift": drift[kernel] for kernel in kernels[1:]}
    return {**drift[kernels[0]], "drift_kernel": kernels[0], **others,
            "drift_data": drift_data, "weight_bytes_source": before, "weight_bytes": after,
            "weight_bytes_ratio": after / before, "parent_unchanged": True}
