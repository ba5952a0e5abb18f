"""The ``quantize`` operator: int8 weights for CPU inference, drift measured against the source.

Scheme: symmetric, per output channel. For every Linear ``W`` (out, in) of the
decoder layers (q, k, v, o, gate, up, down), ``scale[r] = max|W[r, :]| / 127``
and ``qweight = round(W / scale[:, None])`` in [-127, 127]; ``W ~ qweight * scale``.
One scale per row keeps an outlier row from flattening every other row's range.

The LM head is int8 too (``QuantizeRecipe.head``, default ``int8``), with one
scale per vocabulary row. It was kept fp32 at first, for fear its error would
not be averaged away by later layers, but measured on the real parent it is
small: on 2,048 held-out code tokens, adding the int8 head to the int8 layers
costs a KL of 0.0014 nats/token and +0.0019 nats of NLL (2.6051 -> 2.6070;
the fp32 parent's is 2.6027). And it is the largest tensor a decode step
reads: SmolLM2's tied 576 x 49,152 head is 113 MB in fp32, more than all the
int8 layers together. Quantizing it took the int8 parent's greedy decode from
31.3 to 36.2 tokens/s (fp32: 20.0; medians of 5 alternating rounds,
``benchmarks/int8_head_probe.py``). Tied to the embedding, the matrix is stored twice: the
embedding stays fp32 (an input lookup reads one row per token) and the head's
int8 copy sits beside it. ``head: fp32`` keeps the old layout and the old
artifacts' identities. The RMSNorm gains always stay fp32.

Format (never a pickle): ``quantized.safetensors`` holds ``<module>.qweight``
(int8) and ``<module>.scale`` (float32, one per row) for each quantized Linear
and every other tensor unchanged, beside the source's ``config.json``,
generation config and tokenizer files (byte-identical copies) and
``quantization.json`` (scheme, bits, granularity, modules). There is
deliberately no ``model.safetensors``: plain ``from_pretrained`` fails loudly
instead of silently loading random weights where the int8 ones should go.
``load_quantized`` is the loader.

Two kernels read the same int8 + scales (``load_quantized(kernel=...)``):
``dequant`` (default) is ``Int8Linear``, exact weight-only int8
(``x @ (q * scale).T``); ``dynamic`` packs them into ``torch.ao``'s dynamic
int8 Linear (fbgemm; activations are quantized per call too, to 7 bits).
Dynamic is faster on this 2-core CPU (SmolLM2's 1536x576 Linear on 256 tokens:
fp32 4.8 ms, dequant 5.1, dynamic 1.3) but SmolLM2's activation outliers ruin
it: on the real parent dynamic kept 43% top-1 agreement (KL 1.29 nats/token)
where weight-only kept 95% (KL 0.0046). So weight-only is the default and the
operator records the drift of both kernels.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..cmg.blocks import dataset_blocks, token_blocks
from ..cmg.inputs import load_frozen
from ..cmg.recipe import LORA_TARGETS, RunOptions
from ..home import Home
from ..modelio import refuse_pickles, verify_files, weights_digest
from ..operators import operator
from .int8 import Int8Head, Int8Linear, dynamic_linear, quantize_weight
from ..registry import Artifact, Registry, RegistryError

OPERATOR = "quantize"
FORMAT = "breedlab.int8/1"
WEIGHTS_FILE = "quantized.safetensors"
SPEC_FILE = "quantization.json"
KERNELS = ("dequant", "dynamic")
# The source's files that describe the model and its tokenizer (copied byte for byte).
COPIED_FILES = ("config.json", "generation_config.json", "chat_template.jinja", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
                "merges.txt", "tokenizer.model",
                "domain_head.safetensors")  # a child's domain head (cmg/domain_head.py) serves its int8 copy too
HEAD_MODES = ("int8", "fp32")
LEGACY_HEAD = "fp32"
DRIFT_TOKENS = 4096
DRIFT_SEQ_LEN = 128


@dataclass(frozen=True)
class QuantizeRecipe:
    """What to quantize and how: the whole identity of a quantized artifact besides its source."""

    scheme: str = "symmetric"
    """symmetric (zero point 0): the only scheme."""
    bits: int = 8
    """8: the only width (int8 storage and kernels)."""
    granularity: str = "per-output-channel"
    """One float32 scale per row of each weight matrix: the only granularity."""
    modules: tuple[str, ...] = LORA_TARGETS
    """Which Linear layers of each decoder layer to quantize (a subset of q,k,v,o,gate,up,down)."""
    head: str = "int8"
    """int8 (the LM head quantized too, see the module docstring) | fp32 (the head as it is)."""

    def __post_init__(self) -> None:
        if (self.scheme, self.bits, self.granularity) != ("symmetric", 8, "per-output-channel"):
            raise ValueError("only symmetric 8-bit per-output-channel quantization is implemented")
        if self.head not in HEAD_MODES:
            raise ValueError(f"head must be one of {HEAD_MODES}, got {self.head!r}")
        unknown = set(self.modules) - set(LORA_TARGETS)
        if unknown or not self.modules:
            raise ValueError(f"modules must be a non-empty subset of {LORA_TARGETS}, got {self.modules}")
        object.__setattr__(self, "modules", tuple(sorted(set(self.modules), key=LORA_TARGETS.index)))

    def to_dict(self) -> dict[str, Any]:
        values = {**asdict(self), "modules": list(self.modules)}
        if self.head == LEGACY_HEAD:  # artifacts made before the field existed had an fp32 head
            del values["head"]
        return values


@dataclass
class QuantizeOutcome:
    child: Artifact
    reused: bool = False


def quantized_module_names(model, modules: tuple[str, ...]) -> list[str]:
    """Full names of the decoder Linears to quantize (never the LM head: it is not in a layer)."""
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.startswith("model.layers.")
            and name.rsplit(".", 1)[-1] in modules]


def quantized_tensors(model, names: list[str], head: str = LEGACY_HEAD) -> dict[str, torch.Tensor]:
    """The state dict to store: int8 + scale for ``names`` (and the head), every other tensor as it is."""
    state = dict(model.state_dict())
    head_weight = state.pop("lm_head.weight")  # tied: the embedding matrix itself, already stored as that
    if head == "int8":
        state["lm_head.qweight"], state["lm_head.scale"] = quantize_weight(head_weight)
    elif not model.config.tie_word_embeddings:
        state["lm_head.weight"] = head_weight
    for name in names:
        state[f"{name}.qweight"], state[f"{name}.scale"] = quantize_weight(state.pop(f"{name}.weight"))
    return {key: tensor.detach().contiguous() for key, tensor in state.items()}


def write_quantized(directory: Path, source_dir: Path, model, recipe: QuantizeRecipe) -> dict[str, Path]:
    """Write the int8 folder for ``model`` (loaded from ``source_dir``); return name -> path."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    names = quantized_module_names(model, recipe.modules)
    tensors = quantized_tensors(model, names, recipe.head)
    save_file(tensors, directory / WEIGHTS_FILE, metadata={"format": FORMAT})
    kept = "embedding, norms" if recipe.head == "int8" else "embedding (tied LM head), norms"
    spec = {"format": FORMAT, **recipe.to_dict(), "quantized": names, "head": recipe.head, "kept_fp32": kept,
            "dequantise": "weight = qweight.float() * scale[:, None]"}
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    for name in COPIED_FILES:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, directory / name)
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}


def load_quantized(path: Path | str, *, kernel: str = "dequant", expected_files: dict[str, str] | None = None):
    """(model, tokenizer) from a quantized folder: a LlamaForCausalLM whose quantized Linears run int8.

    ``kernel`` picks the int8 Linear (see the module docstring); ``expected_files`` (name -> sha256)
    re-hashes every file first, as for a frozen parent.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    root = Path(path)
    refuse_pickles(root)
    if expected_files is not None:
        verify_files(root, expected_files)
    spec = json.loads((root / SPEC_FILE).read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"{root} is not a {FORMAT} folder (format {spec.get('format')!r})")
    config = AutoConfig.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    with torch.random.fork_rng(devices=[]):  # initial weights are all overwritten; keep the caller's RNG
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_file(root / WEIGHTS_FILE)
    int8 = {name: [tensors.pop(f"{name}.{part}", None) for part in ("qweight", "scale", "bias")]
            for name in spec["quantized"]}
    head = [tensors.pop(f"lm_head.{part}") for part in ("qweight", "scale")] if spec.get("head") == "int8" else None
    _load_rest(model, tensors, int8, int8_head=head is not None)
    if head is not None:
        model.lm_head = Int8Head(*head)  # unties it: the embedding keeps its fp32 matrix
    make = dynamic_linear if kernel == "dynamic" else Int8Linear
    for name, (qweight, scale, bias) in int8.items():
        parent_name, attr = name.rsplit(".", 1)
        setattr(model.get_submodule(parent_name), attr, make(qweight, scale, bias))
    tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer


def _load_rest(model, tensors: dict[str, torch.Tensor], int8: dict[str, list], int8_head: bool = False) -> None:
    """Load the float tensors strictly: only the int8 modules' weights (and a tied or int8 head) may be absent."""
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    allowed = {f"{name}.{part}" for name, (_, _, bias) in int8.items()
               for part in ("weight", "bias") if part == "weight" or bias is not None}
    tied = model.config.tie_word_embeddings
    if tied or int8_head:
        allowed.add("lm_head.weight")
    if set(missing) - allowed or unexpected:
        raise ValueError(f"quantized weights do not fit the config: missing {sorted(set(missing) - allowed)}, "
                         f"unexpected {sorted(unexpected)}")
    if tied and model.lm_head.weight is not model.get_input_embeddings().weight:
        raise ValueError("the LM head should be tied to the embedding but is not")


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
    from ..pico import PICO_TEXTS

    found = registry.find(kind="dataset", name=f"{domain}/test") if domain else []
    if found:
        return dataset_blocks(found[0].path, tokenizer, DRIFT_SEQ_LEN, DRIFT_TOKENS), found[0].id
    return token_blocks(tokenizer, PICO_TEXTS, seq_len=64), "builtin:breedlab.pico.PICO_TEXTS"


@operator(OPERATOR)
def quantize(registry: Registry, home: Home, source_id: str, recipe: QuantizeRecipe = QuantizeRecipe(),
             options: RunOptions = RunOptions(), *, drift_domain: str | None = None) -> QuantizeOutcome:
    """Register an int8 copy of ``source_id``; drift is measured on ``<domain>/test`` where there is one.

    The domain is ``drift_domain`` or the source's own (a child's or adapter's recipe names it).
    Only ``options.threads`` is used. The artifact depends on the source and the recipe alone.
    """
    if options.threads:
        torch.set_num_threads(options.threads)
    source = registry.get(source_id)
    if source.manifest.kind == "quantized":
        raise RegistryError(f"{source.id[:12]} is already quantized")
    full_recipe = {**recipe.to_dict(), "format": FORMAT, "source": source.id,
                   "versions": {"torch": torch.__version__}}
    name = f"{source.manifest.name}-int8"
    for found in registry.find(kind="quantized", name=name):
        if found.manifest.parents == (source.id,) and found.manifest.recipe == full_recipe:
            return QuantizeOutcome(found, reused=True)
    model, tokenizer = load_frozen(source)  # re-hashes the source's files first
    digest = weights_digest(model)
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        files = write_quantized(Path(scratch) / "q", source.path, model, recipe)
        blocks, drift_data = drift_blocks(registry, tokenizer, drift_domain or source.manifest.recipe.get("domain"))
        metrics = _metrics(source, model, Path(scratch) / "q", blocks, drift_data)
        if weights_digest(model) != digest:  # quantizing only reads the source
            raise RegistryError("the source's weights changed while quantizing; nothing was registered")
        artifact = registry.register("quantized", name, files, operator=OPERATOR, recipe=full_recipe,
                                     parents=[source.id], metrics=metrics, actor=options.actor, move=True)
    return QuantizeOutcome(artifact)


def _metrics(source: Artifact, model, folder: Path, blocks: torch.Tensor, drift_data: str) -> dict[str, Any]:
    """Bytes before/after and the drift of both kernels; the default kernel's drift at the top level."""
    drift = {kernel: measure_drift(model, load_quantized(folder, kernel=kernel)[0], blocks) for kernel in KERNELS}
    before = sum(e.size for n, e in source.manifest.files.items() if n.endswith(".safetensors") and "/" not in n)
    after = (folder / WEIGHTS_FILE).stat().st_size
    return {**drift["dequant"], "drift_kernel": "dequant", "dynamic_kernel_drift": drift["dynamic"],
            "drift_data": drift_data, "weight_bytes_source": before, "weight_bytes": after,
            "weight_bytes_ratio": after / before, "parent_unchanged": True}
