"""The quantized folder: what ``quantize`` writes for each scheme, and the one loader that reads it.

Never a pickle: ``quantized.safetensors`` holds, for each quantized Linear,
``<module>.qweight`` (int8) and ``<module>.scale`` (float32, one per row) under
the ``symmetric`` scheme, or ``<module>.weight`` as float16 under ``fp16``, and
every other tensor unchanged. Beside it sit the source's ``config.json``,
generation config and tokenizer files (byte-identical copies) and
``quantization.json`` (format, scheme, modules, head). There is deliberately no
``model.safetensors``: plain ``from_pretrained`` fails loudly instead of
silently loading random weights where the quantized ones should go.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from breedlab.models.io import refuse_pickles, verify_files
from breedlab.models.kernels.half import PACKED, Fp16Linear, to_fp16
from breedlab.models.kernels.int8 import Int8Head, Int8Linear, dynamic_linear, quantize_weight

WEIGHTS_FILE = "quantized.safetensors"
SPEC_FILE = "quantization.json"
FORMATS = {"symmetric": "breedlab.int8/1", "fp16": "breedlab.fp16/1"}
KERNELS = {"symmetric": ("dequant", "dynamic"), "fp16": ("fp16",)}
"""Kernels that read each scheme's weights; the first is the default (see ``quantize.py``)."""
# The source's files that describe the model and its tokenizer (copied byte for byte).
COPIED_FILES = ("config.json", "generation_config.json", "chat_template.jinja", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
                "merges.txt", "tokenizer.model",
                "domain_head.safetensors")  # a child's domain head (cmg/domain_head.py) serves its copy too


def quantized_module_names(model, modules: tuple[str, ...]) -> list[str]:
    """Full names of the decoder Linears to quantize (never the LM head: it is not in a layer)."""
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.startswith("model.layers.")
            and name.rsplit(".", 1)[-1] in modules]


def quantized_tensors(model, names: list[str], head: str = "fp32", scheme: str = "symmetric") -> dict[str, torch.Tensor]:
    """The state dict to store: ``names`` (and the head unless fp32) in the scheme's storage, every
    other tensor as it is."""
    state = dict(model.state_dict())
    head_weight = state.pop("lm_head.weight")  # tied: the embedding matrix itself, already stored as that
    if head == "int8":
        state["lm_head.qweight"], state["lm_head.scale"] = quantize_weight(head_weight)
    elif head == "fp16":
        state["lm_head.weight"] = to_fp16(head_weight)  # the embedding keeps its fp32 matrix
    elif not model.config.tie_word_embeddings:
        state["lm_head.weight"] = head_weight
    for name in names:
        if scheme == "fp16":
            state[f"{name}.weight"] = to_fp16(state[f"{name}.weight"])
        else:
            state[f"{name}.qweight"], state[f"{name}.scale"] = quantize_weight(state.pop(f"{name}.weight"))
    return {key: tensor.detach().contiguous() for key, tensor in state.items()}


def write_quantized(directory: Path, source_dir: Path, model, recipe) -> dict[str, Path]:
    """Write the quantized folder for ``model`` (loaded from ``source_dir``); return name -> path."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS[recipe.scheme]
    names = quantized_module_names(model, recipe.modules)
    save_file(quantized_tensors(model, names, recipe.head, recipe.scheme), directory / WEIGHTS_FILE,
              metadata={"format": fmt})
    kept = "embedding (tied LM head), norms" if recipe.head == "fp32" else "embedding, norms"
    read = ("weight = qweight.float() * scale[:, None]" if recipe.scheme == "symmetric"
            else "weight = weight.float() (float16 storage)")
    spec = {"format": fmt, **recipe.to_dict(), "quantized": names, "head": recipe.head, "kept_fp32": kept,
            "dequantise": read}
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    for name in COPIED_FILES:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, directory / name)
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}


def read_spec(root: Path) -> dict:
    """The folder's ``quantization.json``, checked to name a known format."""
    spec = json.loads((root / SPEC_FILE).read_text())
    scheme = spec.get("scheme", "symmetric")
    if scheme not in FORMATS or spec.get("format") != FORMATS[scheme]:
        raise ValueError(f"{root} is not a quantized breedlab folder (format {spec.get('format')!r}, "
                         f"scheme {scheme!r}; known: {FORMATS})")
    return {**spec, "scheme": scheme}


def load_quantized(path: Path | str, *, kernel: str | None = None, expected_files: dict[str, str] | None = None):
    """(model, tokenizer) from a quantized folder: a LlamaForCausalLM whose quantized Linears run the
    scheme's kernel (``kernel``: one of ``KERNELS[scheme]``, default the first).

    ``expected_files`` (name -> sha256) re-hashes every file first, as for a frozen parent.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    root = Path(path)
    refuse_pickles(root)
    if expected_files is not None:
        verify_files(root, expected_files)
    spec = read_spec(root)
    kernels = KERNELS[spec["scheme"]]
    kernel = kernel or kernels[0]
    if kernel not in kernels:
        raise ValueError(f"kernel must be one of {kernels} for scheme {spec['scheme']!r}, got {kernel!r}")
    config = AutoConfig.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    with torch.random.fork_rng(devices=[]):  # initial weights are all overwritten; keep the caller's RNG
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_file(root / WEIGHTS_FILE)
    parts = ("qweight", "scale", "bias") if spec["scheme"] == "symmetric" else ("weight", "bias")
    stored = {name: [tensors.pop(f"{name}.{part}", None) for part in parts] for name in spec["quantized"]}
    head = _pop_head(tensors, spec["head"])
    _load_rest(model, tensors, stored, own_head=head is not None)
    if head is not None:
        model.lm_head = head  # unties it: the embedding keeps its fp32 matrix
    make = {"dequant": Int8Linear, "dynamic": dynamic_linear, "fp16": Fp16Linear}[kernel]
    for name, weights in stored.items():
        parent_name, attr = name.rsplit(".", 1)
        setattr(model.get_submodule(parent_name), attr, make(*weights))
    model.quantized_kernel = kernel if kernel != "fp16" else ("fp16-fbgemm" if PACKED else "fp16-fp32-copy")
    tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer


def _pop_head(tensors: dict[str, torch.Tensor], head: str):
    """The head module the folder stores apart from the embedding, or None (a tied fp32 head)."""
    if head == "int8":
        return Int8Head(tensors.pop("lm_head.qweight"), tensors.pop("lm_head.scale"))
    if head == "fp16":
        return Fp16Linear(tensors.pop("lm_head.weight"))
    return None


def _load_rest(model, tensors: dict[str, torch.Tensor], stored: dict[str, list], own_head: bool = False) -> None:
    """Load the float tensors strictly: only the quantized modules' weights (and a tied or separately
    stored head) may be absent."""
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    allowed = {f"{name}.{part}" for name, weights in stored.items()
               for part in ("weight", "bias") if part == "weight" or weights[-1] is not None}
    tied = model.config.tie_word_embeddings
    if tied or own_head:
        allowed.add("lm_head.weight")
    if set(missing) - allowed or unexpected:
        raise ValueError(f"quantized weights do not fit the config: missing {sorted(set(missing) - allowed)}, "
                         f"unexpected {sorted(unexpected)}")
    if tied and model.lm_head.weight is not model.get_input_embeddings().weight:
        raise ValueError("the LM head should be tied to the embedding but is not")
