"""Static cost of a candidate: forward FLOPs per token (analytical) and weight bytes.

FLOPs per token, for a Llama-family decoder (gated MLP, grouped-query attention),
counting 2 FLOPs per multiply-add and ignoring norms, activations, RoPE and the
softmax (each O(hidden), well under 1% at these sizes)::

    matmul  = layers * (h*nh*hd            # q_proj
                        + 2*h*nkv*hd       # k_proj, v_proj
                        + nh*hd*h          # o_proj
                        + 3*h*ffn)         # gate_proj, up_proj, down_proj
              + h*V                        # LM head (a matmul even when tied to the embedding)
    attn    = layers * 2*nh*hd*T           # q.k over T keys, then the weighted sum of T values
    flops   = 2 * (matmul + attn)

T is the suite's context length: the cost of a token that attends to T
positions (the last token of an lm passage), an upper bound on the average
over a block. The embedding lookup is a gather, not a matmul, so it costs 0.
This is Kaplan et al. (2020, Table 1) ``2N + 2 n_layer n_ctx d_attn`` with the
attention term counting both the score and the value products.
"""

from __future__ import annotations

from breedlab.registry import Manifest


def flops_per_token(config, context: int) -> float:
    """Forward FLOPs for one token at context length ``context`` (formula in the module docstring)."""
    h = config.hidden_size
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    ffn = config.intermediate_size
    per_layer = h * heads * head_dim + 2 * h * kv_heads * head_dim + heads * head_dim * h + 3 * h * ffn
    matmul = layers * per_layer + h * config.vocab_size
    attention = layers * 2 * heads * head_dim * context
    return float(2 * (matmul + attention))


def weight_bytes(manifest: Manifest) -> int:
    """Bytes of the top-level ``*.safetensors`` files: what loading the model for inference reads.

    Sub-folders are left out on purpose: a child's ``adapter/`` holds a copy of its
    LoRA weights for provenance, already merged into the top-level weights.
    """
    return sum(entry.size for name, entry in manifest.files.items()
               if name.endswith(".safetensors") and "/" not in name)
