"""Step 1 of the CMG (Genesis V1, section VI.A): task profiling.

The frozen parent reads token blocks from a domain's training split while
forward hooks record how much each part of it contributes to the residual
stream. Importance is that contribution's magnitude, averaged over tokens:

- layer ``l``: ``||layer_out - layer_in|| / ||layer_in||``, the relative size
  of the whole decoder layer's residual update (attention + MLP);
- query head ``h`` of layer ``l``: ``||W_o[:, h*hd:(h+1)*hd] @ a_h||``, the norm
  of what that head alone writes into the residual stream (``a_h`` is its slice
  of the input to ``o_proj``; hooking that input makes GQA irrelevant, since
  kv heads are shared before ``o_proj`` and every query head has its own slice);
- MLP neuron ``j`` of layer ``l``: ``|act(gate_j) * up_j| * ||W_down[:, j]||``,
  the norm of that neuron's write (its activation times its output column);
- block influence of layer ``l`` (ShortGPT, arXiv 2403.03853, Eq. 1):
  ``1 - cos(layer_in, layer_out)`` per token: how much the layer turns the
  residual stream. A layer that leaves the direction unchanged is the one
  depth pruning drops first.

Measuring writes to the residual stream, rather than raw activations, is what
makes copying by importance sensible: a part whose write is small can be
dropped with the least change to what every later layer reads. Hooks only
read; they are removed afterwards and no weight is ever touched.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from breedlab.registry.canonical import canonical_json

PROFILE_FILE = "profile.safetensors"
PROFILE_FORMAT = "breedlab-profile/1"
# The name of the importance measure above, for callers to put in the recipe
# (so that a change of definition changes the profile's id).
IMPORTANCE_MEASURE = "residual-contribution"
_TENSORS = ("layer_importance", "head_importance", "neuron_importance", "block_influence")


@dataclass
class Profile:
    """How much each part of a parent writes into the residual stream on one domain."""

    layer_importance: torch.Tensor  # (L,) mean relative residual update per decoder layer
    head_importance: torch.Tensor  # (L, H) mean norm of each query head's o_proj write
    neuron_importance: torch.Tensor  # (L, I) mean norm of each MLP neuron's down_proj write
    tokens: int  # tokens averaged over
    block_influence: torch.Tensor | None = None  # (L,) mean 1 - cos(layer in, layer out); None in old profiles

    def ranked_layers(self) -> list[int]:
        """Layer indices, most important first (ties: lower index first)."""
        scores = self.layer_importance.tolist()
        return sorted(range(len(scores)), key=lambda i: (-scores[i], i))

    def summary(self, top: int = 5) -> dict[str, Any]:
        """Plain-JSON metrics for a manifest: token count and the layer ranking."""
        return {
            "tokens": self.tokens,
            "layers": len(self.layer_importance),
            "top_layers": self.ranked_layers()[:top],
            "layer_importance": [round(float(v), 6) for v in self.layer_importance],
            **({"block_influence": [round(float(v), 6) for v in self.block_influence]}
               if self.block_influence is not None else {}),
        }


def _decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of a Llama-family causal LM (``model.model.layers``)."""
    layers = getattr(model.base_model, "layers", None)
    if layers is None:
        raise TypeError(f"{type(model).__name__} has no base_model.layers: not a Llama-family decoder")
    return layers


class _Recorder:
    """Hooks that sum each part's residual contribution over every token seen."""

    def __init__(self, model: torch.nn.Module):
        config = model.config
        self.layers = _decoder_layers(model)
        self.heads = config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        neurons = self.layers[0].mlp.down_proj.in_features
        count = len(self.layers)
        # float64 sums: millions of small terms must not lose precision.
        self.layer_sum = torch.zeros(count, dtype=torch.float64)
        self.influence_sum = torch.zeros(count, dtype=torch.float64)
        self.head_sum = torch.zeros(count, self.heads, dtype=torch.float64)
        self.neuron_sum = torch.zeros(count, neurons, dtype=torch.float64)

    def _layer_hook(self, index: int) -> Callable:
        def hook(module, args, kwargs, output):
            before = args[0] if args else kwargs["hidden_states"]  # (B, T, D)
            after = output[0] if isinstance(output, tuple) else output  # (B, T, D)
            ratio = (after - before).norm(dim=-1) / before.norm(dim=-1).clamp_min(1e-12)  # (B, T)
            self.layer_sum[index] += ratio.sum().double().cpu()
            cosine = torch.nn.functional.cosine_similarity(after, before, dim=-1)  # (B, T)
            self.influence_sum[index] += (1 - cosine).sum().double().cpu()
        return hook

    def _head_hook(self, index: int) -> Callable:
        def hook(module, args):
            mixed = args[0]  # (B, T, H*hd): heads' outputs, concatenated
            per_head = mixed.unflatten(-1, (self.heads, self.head_dim))  # (B, T, H, hd)
            weight = module.weight.unflatten(1, (self.heads, self.head_dim))  # (D, H, hd)
            writes = torch.einsum("bthk,dhk->bthd", per_head, weight)  # (B, T, H, D)
            self.head_sum[index] += writes.norm(dim=-1).sum(dim=(0, 1)).double().cpu()
        return hook

    def _neuron_hook(self, index: int) -> Callable:
        def hook(module, args):
            acts = args[0]  # (B, T, I): act(gate) * up
            self.neuron_sum[index] += acts.abs().sum(dim=(0, 1)).double().cpu()
        return hook

    @contextmanager
    def attached(self) -> Iterator[None]:
        """Install the hooks for the duration of the block, then remove every one."""
        handles = []
        try:
            for i, layer in enumerate(self.layers):
                handles.append(layer.register_forward_hook(self._layer_hook(i), with_kwargs=True))
                handles.append(layer.self_attn.o_proj.register_forward_pre_hook(self._head_hook(i)))
                handles.append(layer.mlp.down_proj.register_forward_pre_hook(self._neuron_hook(i)))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def result(self, tokens: int) -> Profile:
        """Means over ``tokens``; neuron activations scaled by their output column norms."""
        columns = torch.stack([
            layer.mlp.down_proj.weight.detach().double().cpu().norm(dim=0) for layer in self.layers
        ])  # (L, I): ||W_down[:, j]|| of each layer
        return Profile(
            layer_importance=(self.layer_sum / tokens).float(),
            head_importance=(self.head_sum / tokens).float(),
            neuron_importance=(self.neuron_sum * columns / tokens).float(),
            tokens=tokens,
            block_influence=(self.influence_sum / tokens).float(),
        )


def profile_model(
    model: torch.nn.Module,
    blocks: torch.Tensor,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Profile:
    """Profile a frozen Llama-family causal LM on ``blocks`` (N, S) of token ids.

    Runs the decoder only (eval mode, no_grad): the LM head's (B, S, vocab)
    logits are not needed and would dominate memory. ``progress`` is called
    with the number of tokens of each finished batch.
    """
    if blocks.ndim != 2 or blocks.numel() == 0:
        raise ValueError(f"blocks must be a non-empty (N, S) tensor of token ids, got shape {tuple(blocks.shape)}")
    recorder = _Recorder(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with recorder.attached(), torch.no_grad():
            for start in range(0, len(blocks), batch_size):
                batch = blocks[start : start + batch_size].to(device)  # (B, S)
                model.base_model(input_ids=batch, use_cache=False)
                if progress is not None:
                    progress(batch.numel())
    finally:
        model.train(was_training)
    return recorder.result(blocks.numel())


def save_profile(profile: Profile, path: Path | str) -> Path:
    """Write ``profile`` as safetensors, byte-for-byte deterministic.

    The token count travels in one metadata entry of canonical JSON: safetensors
    writes its metadata map in arbitrary order, so two keys would make the same
    profile hash differently from one save to the next.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: getattr(profile, name).float().contiguous() for name in _TENSORS
               if getattr(profile, name) is not None}
    header = {"format": PROFILE_FORMAT, "tokens": profile.tokens}
    save_file(tensors, str(path), metadata={"breedlab": canonical_json(header).decode()})
    return path


def load_profile(path: Path | str) -> Profile:
    """Read a profile written by ``save_profile`` (safetensors only, never pickle)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        try:
            header = json.loads((handle.metadata() or {})["breedlab"])
        except (KeyError, ValueError):
            header = {}
        if header.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{path} is not a breedlab profile (format {header.get('format')!r})")
        tensors = {name: handle.get_tensor(name) for name in _TENSORS if name in handle.keys()}
    return Profile(**tensors, tokens=int(header["tokens"]))


def register_profile(registry, profile: Profile, *, name: str, parent_id: str, data_ids: list[str], recipe: dict):
    """Register ``profile`` as a ``profile`` artifact of the parent and the data it read.

    ``recipe`` is stored as given: it should say how the blocks were made
    (seq_len, token budget, tokenizer) and name the measure (IMPORTANCE_MEASURE).
    """
    with tempfile.TemporaryDirectory(prefix="breedlab-profile-") as tmp:
        path = save_profile(profile, Path(tmp) / PROFILE_FILE)
        return registry.register(
            "profile", name, {PROFILE_FILE: path}, operator="profile",
            recipe=recipe,
            parents=[parent_id], data=list(data_ids), metrics=profile.summary(), move=True,
        )
