"""The teacher cache: what the parent says about a dataset, computed once.

On a CPU the frozen parent's forward pass dominates a distillation step
(SmolLM2-135M takes about 5 s for 8 x 256 tokens), and it computes the same
thing for every child bred on the same data. So the parent runs once per
(parent, dataset blocks, k, T), and what the top-k KD loss needs
(``breedlab.cmg.losses.kd_loss_topk``) is stored as a registry artifact:

    input_ids    int32   (N, S)     the token blocks the parent saw
    topk_ids     int32   (N, S, k)  the parent's k most likely next tokens
    topk_logits  float32 (N, S, k)  their raw logits
    lse          float32 (N, S)     logsumexp(logits / T) over the FULL vocabulary

That is the ``topk`` format. With lse the top-k probabilities at temperature T and the rest mass are exact,
which is what makes the top-k loss an exact KL over k + 1 buckets. Logits are
kept in float32 (k = 32: 264 bytes per token, 252 MiB per million tokens).
float16 would save a quarter (200 bytes per token) and rounds SmolLM2's top
logits (20-44) by up to 0.016, which moved the top-k KD loss by under 1e-5
relative in a measurement; at a few hundred parent tokens per second on this
CPU a cache of a few million tokens is the most anyone computes, so the bytes
are not worth the lost precision. The lse stays float32 in any case: it is
subtracted from the logits.

The ``topk`` bound is loose at the paper's T = 4 on a 49k vocabulary: the
tempered parent is nearly flat (entropy 10.43 of at most 10.80 nats on
SmolLM2), so its top 32 tokens hold 1.6% of the mass and the bound keeps only
about 5% of the full KL. The default ``hidden`` format is exact instead:

    input_ids    int32   (N, S)
    hidden       float16 (N, S, D)  the parent's final hidden state (after its last norm)

and the trainer recomputes the full logits as ``lm_head(hidden)``: one
(D x V) matmul, about a fifth of a parent forward, with a relative error of
about 1e-6 from the float16 rounding (1,156 bytes per token for SmolLM2).

Files are safetensors (never pickle), split by rows into shards of at most
``SHARD_BYTES``; each shard carries one metadata key, ``breedlab``, holding
canonical JSON (safetensors 0.8 writes several metadata keys in a random
order, which would change the file hashes and so the artifact id).
"""

from __future__ import annotations

import bisect
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from breedlab.registry.canonical import canonical_json

OPERATOR = "teacher-logits"
SCHEMA = "breedlab.teacher-cache/1"
SHARD_BYTES = 64 * 1024 * 1024
SHARD_NAME = "teacher-{:05d}.safetensors"
FORMATS = {  # format -> tensor name -> dtype
    "topk": {"input_ids": torch.int32, "topk_ids": torch.int32, "topk_logits": torch.float32, "lse": torch.float32},
    "hidden": {"input_ids": torch.int32, "hidden": torch.float16},
}
HIDDEN_CHECK_ATOL = 1e-3  # lm_head(final hidden) must reproduce the logits, or the model is not Llama-like


def cache_format(tensors: dict[str, torch.Tensor]) -> str:
    for name, dtypes in FORMATS.items():
        if set(tensors) == set(dtypes):
            return name
    raise ValueError(f"a teacher cache holds one of {[tuple(d) for d in FORMATS.values()]}, got {sorted(tensors)}")


def final_hidden_states(model: torch.nn.Module, blocks: torch.Tensor, batch_size: int = 4):
    """Yield (batch (b, S), the model's final normed hidden states (b, S, D)) over ``blocks`` (N, S).

    Call under ``no_grad``. The teacher cache, the proxy search and the domain head all read these.
    """
    for start in range(0, blocks.size(0), batch_size):
        batch = blocks[start : start + batch_size].long()  # (b, S)
        yield batch, model.model(input_ids=batch, use_cache=False).last_hidden_state  # (b, S, D)


@torch.no_grad()
def compute_hidden_cache(parent_model: torch.nn.Module, blocks: torch.Tensor, *, batch_size: int = 4,
                         progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Run the frozen parent's decoder over ``blocks`` (N, S) and keep its final hidden states (fp16)."""
    if blocks.dim() != 2 or blocks.numel() == 0:
        raise ValueError(f"blocks must be a non-empty (N, S) tensor, got shape {tuple(blocks.shape)}")
    parent_model.eval()
    states = []
    for index, (batch, hidden) in enumerate(final_hidden_states(parent_model, blocks, batch_size)):
        if index == 0:
            _check_head_reproduces_logits(parent_model, batch, hidden)
        states.append(hidden.to(torch.float16))
        if progress is not None:
            progress(batch.numel())
    return {"input_ids": blocks.to(torch.int32).contiguous(), "hidden": torch.cat(states).contiguous()}


def _check_head_reproduces_logits(parent_model, batch: torch.Tensor, hidden: torch.Tensor) -> None:
    """Caching hidden states is exact only if logits = lm_head(hidden): check it once per cache."""
    logits = parent_model(input_ids=batch[:1], use_cache=False).logits  # (1, S, V)
    rebuilt = parent_model.lm_head(hidden[:1])  # (1, S, V)
    if not torch.allclose(logits, rebuilt, atol=HIDDEN_CHECK_ATOL):
        raise ValueError("this parent's logits are not lm_head(final hidden state); use teacher='topk' or 'live'")


def teacher_logits(parent_model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Full parent logits (B, S, V) for a ``hidden``-format batch: the LM head applied to cached states."""
    return parent_model.lm_head(batch["hidden"].to(parent_model.lm_head.weight.dtype))


@torch.no_grad()
def compute_teacher_cache(
    parent_model: torch.nn.Module,
    blocks: torch.Tensor,
    *,
    k: int = 32,
    temperature: float = 4.0,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Run the frozen parent over ``blocks`` (N, S) and keep its top-k logits and lse.

    ``progress``, if given, is called after each batch with the number of
    tokens that batch added. The parent is put in eval mode and never gets
    gradients; its weights are not touched.
    """
    if blocks.dim() != 2 or blocks.numel() == 0:
        raise ValueError(f"blocks must be a non-empty (N, S) tensor, got shape {tuple(blocks.shape)}")
    if k < 1 or temperature <= 0 or batch_size < 1:
        raise ValueError("k and batch_size must be positive and temperature above zero")
    parent_model.eval()
    ids, values, lses = [], [], []
    for start in range(0, blocks.size(0), batch_size):
        batch = blocks[start : start + batch_size].long()  # (b, S)
        logits = parent_model(input_ids=batch, use_cache=False).logits.float()  # (b, S, V)
        top = logits.topk(min(k, logits.size(-1)), dim=-1)  # (b, S, k), sorted by logit
        ids.append(top.indices.to(torch.int32))
        values.append(top.values)  # topk returns fresh (b, S, k) tensors, not views of the logits
        lses.append(torch.logsumexp(logits / temperature, dim=-1))  # (b, S)
        # The full logits are (b, S, V) fp32, 400 MB for 8 x 256 x 49k: drop them
        # before the next forward so peak memory stays one batch of logits.
        del logits, top
        if progress is not None:
            progress(batch.numel())
    return {
        "input_ids": blocks.to(torch.int32).contiguous(),
        "topk_ids": torch.cat(ids).contiguous(),
        "topk_logits": torch.cat(values).contiguous(),
        "lse": torch.cat(lses).contiguous(),
    }


def write_shards(tensors: dict[str, torch.Tensor], directory: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """Save ``tensors`` as row-sliced safetensors shards of at most SHARD_BYTES; return name -> path."""
    _check_tensors(tensors)
    names = tuple(FORMATS[cache_format(tensors)])
    rows = tensors["input_ids"].size(0)
    row_bytes = sum(t[0].numel() * t.element_size() for t in tensors.values())
    per_shard = max(1, SHARD_BYTES // row_bytes)
    files: dict[str, Path] = {}
    for number, start in enumerate(range(0, rows, per_shard)):
        stop = min(rows, start + per_shard)
        part = {name: tensors[name][start:stop].contiguous() for name in names}
        header = {**meta, "schema": SCHEMA, "row_start": start, "rows": stop - start}
        name = SHARD_NAME.format(number)
        files[name] = Path(directory) / name
        save_file(part, str(files[name]), metadata={"breedlab": canonical_json(header).decode()})
    return files


def register_teacher_cache(registry, tensors: dict[str, torch.Tensor], *, name: str, parent_id: str,
                           data_id: str, recipe: dict[str, Any]):
    """Save the cache as shards and register it (kind ``dataset``, operator ``teacher-logits``).

    ``recipe`` is what was asked for and is stored exactly as given, so
    ``find_teacher_cache`` with the same dict finds it: it must hold k,
    temperature and seq_len (k and seq_len are checked against ``tensors``),
    plus whatever else picks the blocks (a token budget, the tokenizer's
    sha256). What came out, the actual blocks and tokens, goes in the metrics;
    the tokens themselves are in the files, so they are part of the id anyway.
    Registering the same cache twice returns the same artifact.
    """
    _check_recipe(tensors, recipe)
    blocks, seq_len = tensors["input_ids"].shape
    scratch = Path(tempfile.mkdtemp(prefix="teacher-cache-"))
    try:
        meta = {"format": cache_format(tensors), "k": recipe.get("k", 0),
                "temperature": float(recipe["temperature"]), "seq_len": seq_len}
        files = write_shards(tensors, scratch, meta)
        size = sum(path.stat().st_size for path in files.values())
        tokens = blocks * seq_len
        return registry.register(
            kind="dataset", name=name, files=files, operator=OPERATOR, recipe=recipe,
            parents=[parent_id], data=[data_id],
            metrics={"blocks": blocks, "tokens": tokens, "bytes": size,
                     "bytes_per_token": round(size / tokens, 2)},
            move=True,  # the scratch shards are thrown away anyway
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def find_teacher_cache(registry, *, parent_id: str, data_id: str, recipe: dict[str, Any],
                       name: str | None = None):
    """The registered cache for this parent, data and exact recipe (and name, if given), or None."""
    wanted = canonical_json(recipe)
    for artifact in registry.find(kind="dataset", name=name):
        manifest = artifact.manifest
        if (
            manifest.operator == OPERATOR
            and tuple(manifest.parents) == (parent_id,)
            and tuple(manifest.data) == (data_id,)
            and canonical_json(manifest.recipe) == wanted
        ):
            return artifact
    return None


def _check_tensors(tensors: dict[str, torch.Tensor]) -> None:
    """Names, dtypes and shapes as in the module docstring, or ValueError."""
    dtypes = FORMATS[cache_format(tensors)]
    n, s = tensors["input_ids"].shape
    if "topk_ids" in tensors:
        k = tensors["topk_ids"].size(-1)
        expected = {"input_ids": (n, s), "topk_ids": (n, s, k), "topk_logits": (n, s, k), "lse": (n, s)}
    else:
        expected = {"input_ids": (n, s), "hidden": (n, s, tensors["hidden"].size(-1))}
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape or tensors[key].dtype != dtypes[key]:
            raise ValueError(
                f"teacher cache tensor {key} is {tensors[key].dtype} {tuple(tensors[key].shape)}, "
                f"expected {dtypes[key]} {shape}"
            )


def _check_recipe(tensors: dict[str, torch.Tensor], recipe: dict[str, Any]) -> None:
    _check_tensors(tensors)
    seq_len = tensors["input_ids"].size(1)
    found = {"seq_len": seq_len}
    if "topk_ids" in tensors:
        found["k"] = tensors["topk_ids"].size(-1)
    wrong = {key: (recipe.get(key), value) for key, value in found.items() if recipe.get(key) != value}
    if wrong or not isinstance(recipe.get("temperature"), (int, float)):
        problem = wrong or "no temperature"
        raise ValueError(f"recipe does not describe these tensors (recipe, tensors): {problem}")


@dataclass
class TeacherCache:
    """A registered teacher cache opened for training: random access to rows of blocks.

    Shards are opened with ``safe_open`` (memory-mapped), so only the rows a
    batch asks for are read; nothing is unpickled.
    """

    k: int
    temperature: float
    seq_len: int
    starts: list[int]  # first row of each shard
    handles: list[Any] = field(repr=False)
    format: str = "topk"

    def __len__(self) -> int:
        return self.starts[-1]

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``indices`` (B,) as {"input_ids" (B, S) int64, "topk_ids" (B, S, k) int64,
        "topk_logits" (B, S, k) float32, "lse" (B, S) float32}, in the order asked."""
        rows = [int(i) for i in indices.reshape(-1)]
        if any(not 0 <= row < len(self) for row in rows):
            raise IndexError(f"teacher cache rows must be in [0, {len(self)}), got {rows}")
        names = tuple(FORMATS[self.format])
        picked: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        for row in rows:
            shard = bisect.bisect_right(self.starts, row) - 1
            local = row - self.starts[shard]
            for name in names:
                picked[name].append(self.handles[shard].get_slice(name)[local : local + 1])
        out = {name: torch.cat(parts) for name, parts in picked.items()}
        # int64 ids: what embedding lookups and gather take without another cast.
        out["input_ids"] = out["input_ids"].long()
        if "topk_ids" in out:
            out["topk_ids"] = out["topk_ids"].long()
        return out


def load_teacher_cache(artifact_path: Path) -> TeacherCache:
    """Open the shards of a registered teacher cache; check they form one consistent cache."""
    paths = sorted(Path(artifact_path).glob("teacher-*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"no teacher-*.safetensors shards in {artifact_path}: not a teacher cache")
    handles, starts, metas = [], [0], []
    for path in paths:
        handle = safe_open(str(path), framework="pt")
        meta = json.loads((handle.metadata() or {}).get("breedlab", "{}"))
        if meta.get("schema") != SCHEMA or meta.get("row_start") != starts[-1]:
            raise ValueError(f"{path.name} is not the next shard of a {SCHEMA} cache (metadata {meta})")
        handles.append(handle)
        metas.append({"format": meta.get("format", "topk"), **{key: meta[key] for key in ("k", "temperature", "seq_len")}})
        starts.append(starts[-1] + meta["rows"])
    if any(meta != metas[0] for meta in metas):
        raise ValueError(f"shards of {artifact_path} disagree on k, temperature or seq_len")
    return TeacherCache(starts=starts, handles=handles, **metas[0])
