"""A registered Llama model as one GGUF file: weights, tokenizer, chat template and lineage.

Written with the ``gguf`` package's own writer, tensor-name map, quantizers and
``SpecialVocab`` (the pieces llama.cpp's ``convert_hf_to_gguf.py`` is built
from); breedlab adds only what that script does for a Llama: the Q/K row
permutation (HF stores rotary pairs as halves, GGUF interleaved) and the
vocabulary's token types. transformers' GGUF loader undoes the permutation, so
a round trip through ``from_pretrained(gguf_file=...)`` gives the same logits
(``tests/test_engines_gguf.py``).

Quantization applies to 2-D weights whose rows split into the type's blocks
(32 values); a weight that does not is kept in f16 (as llama.cpp's converter
does) and counted in ``fallback_tensors``. Norm gains stay f32.

A pruned child's FFN width is rarely a multiple of 32 (the CMG keeps 1,126 of
SmolLM2's 1,536 neurons), which would leave every ``ffn_down`` in f16 and cost
the child its speed on llama.cpp. For a block quantization the FFN is padded to
the next multiple of the block with zero neurons: zero gate and up rows give
silu(0) * 0 = 0 and zero ``ffn_down`` columns add nothing, so the function is
unchanged and every weight quantizes (``padded_ffn``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from breedlab.registry.atomic import fsync_dir, temp_path

QUANT_TYPES = {  # --quant -> (tensor type name, llama file type name)
    "f32": ("F32", "ALL_F32"), "f16": ("F16", "MOSTLY_F16"), "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"), "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"), "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
}
WRITER_VERSION = 2
"""Bumped when the same model would be written differently (2: FFN padded to the quantization block), so
a cached conversion from an older writer is made again rather than reused."""
LINEAGE_KEYS = ("breedlab.artifact_id", "breedlab.parent_id", "breedlab.recipe_sha256", "breedlab.kind")
KNOWN_PRE_TOKENIZERS = {
    # sha256 of the byte-level vocabulary and merges (``vocabulary_sha256``) -> llama.cpp's pre-tokenizer name
    "8dd3e4d05f52e9f47c030f31d57e17f8beec7c0b50a89c259c67ecf275d27e89": "smollm",  # SmolLM2 (its own GGUF says smollm)
}


def lineage_of(folder) -> dict[str, str]:
    """The lineage keys of a ``ModelFolder``: its artifact id, parents, recipe hash and kind."""
    import hashlib

    recipe_sha = hashlib.sha256(json.dumps(folder.recipe, sort_keys=True).encode()).hexdigest()
    return {"artifact_id": folder.id, "parent_id": ",".join(folder.parents), "recipe_sha256": recipe_sha,
            "kind": folder.kind}


def export_unsupported(config: dict, folder: Path) -> str | None:
    """Why this model folder cannot be written as a llama.cpp GGUF; None when it can."""
    if config.get("architectures") != ["LlamaForCausalLM"]:
        return f"llama.cpp's llama graph runs LlamaForCausalLM, not {config.get('architectures')}"
    if config.get("hidden_act", "silu") != "silu":
        return f"hidden_act {config.get('hidden_act')!r}: llama.cpp's llama graph is SwiGLU (silu) only"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "attention or MLP biases: this exporter writes bias-free Llama blocks only"
    scaling = config.get("rope_scaling") or {}
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        return f"rope scaling {scaling!r} is not written by this exporter"
    if (folder / "quantization.json").is_file() or config.get("quantization_config"):
        return "breedlab's own int8/fp16 weight files: export the fp32 model it was made from"
    if not sorted(folder.glob("model*.safetensors")):
        return "no safetensors weights in the folder (collected by a gc?)"
    return None


def write_gguf(folder: Path, target: Path, quant: str, lineage: dict[str, str], name: str) -> dict[str, Any]:
    """Write ``folder`` (an HF Llama folder) to ``target`` atomically; return what was written."""
    import gguf

    if quant not in QUANT_TYPES:
        raise ValueError(f"unknown GGUF quantization {quant!r}; known: {', '.join(QUANT_TYPES)}")
    config = json.loads((folder / "config.json").read_text())
    reason = export_unsupported(config, folder)
    if reason is not None:
        raise ValueError(f"cannot export to GGUF: {reason}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = temp_path(target.parent, ".gguf")
    try:
        writer = gguf.GGUFWriter(scratch, "llama")
        _write_hparams(writer, config, name, quant)
        pre = _write_vocabulary(writer, folder, config["vocab_size"])
        for key in LINEAGE_KEYS:  # the writer drops empty strings: a model without parents says "none"
            writer.add_string(key, str(lineage.get(key.split(".", 1)[1]) or "none"))
        facts = _write_tensors(writer, folder, config, quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(scratch, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(scratch, target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return {"quantization": quant, "pre_tokenizer": pre, "writer": WRITER_VERSION, **facts}


def head_dim(config: dict) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def rope_theta(config: dict) -> float:
    return float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta") or 10000.0)


def _write_hparams(writer, config: dict, name: str, quant: str) -> None:
    import gguf

    heads = int(config["num_attention_heads"])
    writer.add_name(name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(padded_ffn(config, quant))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(head_dim(config))
    if head_dim(config) * heads != int(config["hidden_size"]):  # pruned heads: say the head width outright
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(int(getattr(gguf.LlamaFileType, QUANT_TYPES[quant][1])))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def vocabulary_sha256(tokenizer_json: dict) -> str:
    """sha256 of a byte-level BPE's vocabulary and merges: which known tokenizer this is."""
    import hashlib

    model = tokenizer_json["model"]
    body = json.dumps([sorted(model["vocab"].items(), key=lambda kv: kv[1]), model.get("merges", [])])
    return hashlib.sha256(body.encode()).hexdigest()


def _write_vocabulary(writer, folder: Path, vocab_size: int) -> str:
    """tokens, token types, merges, special ids and the chat template; returns the pre-tokenizer name."""
    import gguf

    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    if tokenizer_json["model"].get("type") != "BPE":
        raise ValueError(f"cannot export to GGUF: tokenizer model {tokenizer_json['model'].get('type')!r} "
                         "is not a byte-level BPE (gpt2)")
    by_id = {index: token for token, index in tokenizer_json["model"]["vocab"].items()}
    added = {entry["id"]: entry for entry in tokenizer_json.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(vocab_size):
        if index in added:
            tokens.append(added[index]["content"])
            types.append(gguf.TokenType.CONTROL if added[index].get("special") else gguf.TokenType.USER_DEFINED)
        elif index in by_id:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
        else:  # an id the embedding has but the tokenizer never emits
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
    pre = KNOWN_PRE_TOKENIZERS.get(vocabulary_sha256(tokenizer_json), "default")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    special.add_to_gguf(writer, quiet=True)
    if special.chat_template is None:
        template = json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")
        if template:
            writer.add_chat_template(template)
    return pre


def permute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotate-half row order to GGUF's interleaved pairs (llama.cpp's ``LlamaModel.permute``)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def padded_ffn(config: dict, quant: str) -> int:
    """The FFN width written: the model's, rounded up to the quantization's block for a block type."""
    import gguf

    width = int(config["intermediate_size"])
    qtype = getattr(gguf.GGMLQuantizationType, QUANT_TYPES[quant][0])
    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return width
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    return -(-width // block) * block


def pad_ffn(hf_name: str, data: np.ndarray, width: int) -> np.ndarray:
    """Zero neurons up to ``width``: rows of gate/up (out = FFN), columns of down (in = FFN)."""
    if hf_name.endswith(("mlp.gate_proj.weight", "mlp.up_proj.weight")) and data.shape[0] < width:
        return np.concatenate([data, np.zeros((width - data.shape[0], data.shape[1]), data.dtype)], axis=0)
    if hf_name.endswith("mlp.down_proj.weight") and data.shape[1] < width:
        return np.concatenate([data, np.zeros((data.shape[0], width - data.shape[1]), data.dtype)], axis=1)
    return data


def _write_tensors(writer, folder: Path, config: dict, quant: str) -> dict[str, Any]:
    import gguf
    from safetensors.numpy import load_file

    layers = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    qtype = getattr(gguf.GGMLQuantizationType, QUANT_TYPES[quant][0])
    heads, kv_heads = int(config["num_attention_heads"]), int(config.get("num_key_value_heads") or 0)
    counts: dict[str, int] = {}
    fallback = []
    for path in sorted(folder.glob("model*.safetensors")):
        for hf_name, data in sorted(load_file(path).items()):
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise ValueError(f"cannot export to GGUF: no llama tensor is called {hf_name!r}")
            data = pad_ffn(hf_name, data.astype(np.float32), padded_ffn(config, quant))
            if hf_name.endswith("q_proj.weight"):
                data = permute_rotary(data, heads)
            elif hf_name.endswith("k_proj.weight"):
                data = permute_rotary(data, kv_heads or heads)
            kind = _tensor_type(data, qtype)
            if kind != qtype and data.ndim == 2:
                fallback.append(name)
            stored = data if kind == gguf.GGMLQuantizationType.F32 else gguf.quants.quantize(data, kind)
            writer.add_tensor(name, stored, raw_dtype=kind)
            counts[kind.name] = counts.get(kind.name, 0) + 1
    return {"tensor_types": counts, "fallback_tensors": fallback,
            "ffn_padded": [int(config["intermediate_size"]), padded_ffn(config, quant)]}


def _tensor_type(data: np.ndarray, qtype):
    """The type a tensor is stored as: 1-D gains in f32; a 2-D weight in ``qtype`` when its rows fit the blocks."""
    import gguf

    if data.ndim < 2 or qtype == gguf.GGMLQuantizationType.F32:
        return gguf.GGMLQuantizationType.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    return qtype if data.shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


def modelfile(gguf_name: str, chat_template: str | None) -> str:
    """An Ollama Modelfile for the exported file (a ChatML template when the model speaks ChatML)."""
    lines = [f"FROM ./{gguf_name}"]
    if chat_template and "<|im_start|>" in chat_template:
        lines += ['TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}',
                  '{{ .Content }}<|im_end|>', '{{ end }}<|im_start|>assistant', '"""',
                  'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"']
    return "\n".join(lines) + "\n"
