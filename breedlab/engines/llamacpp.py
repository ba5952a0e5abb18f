"""The ``llamacpp`` backend: llama.cpp through ``llama-cpp-python``, on a GGUF that breedlab writes itself.

The model folder is exported once per quantization into the home's engine cache
(``gguf_export.write_gguf``); the file's sha256 is what an engine check records,
and a load re-hashes it, so a changed or half-written cache file is re-made,
never served. Token ids come from the model's HF tokenizer, so llama.cpp's own
tokenizer is never on the serving path (the GGUF still carries it, for users).

llama.cpp keeps one KV cache per context, so a context serves one sequence at
a time: the engine keeps a small pool of contexts over one memory-mapped file
(the weights are shared through the page cache, each context owns only its KV
cache). The KV cache is kept in f32 so that at f32 weights the engine is the
hf reference to float rounding; quantization then changes the weights only.
A scoring context (every position's logits) is separate, since asking a
serving context for all logits would run the LM head over every prompt token.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import torch

from breedlab.engines.base import Backend, DecodeSession, LogitsEngine, ModelFolder, backend, importable
from breedlab.engines.conversions import cached_conversion
from breedlab.engines.gguf_export import QUANT_TYPES, WRITER_VERSION, export_unsupported, lineage_of, write_gguf
from breedlab.registry.canonical import sha256_file

GGUF_NAME = "model.gguf"
MAX_CONTEXT = 4096
"""KV cache positions per serving context, at most: an f32 cache of SmolLM2 at 4,096 positions is 189 MB
(30 layers x K and V x 192 x 4 bytes each), so a pool of two stays under 400 MB; the server bounds prompt
plus answer by it (``Engine.context``)."""
GGML_TYPE_F32 = 0


@backend
class LlamaCppBackend(Backend):
    name = "llamacpp"
    quantizations = tuple(QUANT_TYPES)
    architectures = ("LlamaForCausalLM",)
    supports = ("pruned head counts, head widths and FFN sizes (uniform across layers, as the CMG makes them); "
                "a domain head is not carried: the full head runs, exact; not breedlab's int8/fp16 artifacts")

    def version(self) -> str:
        import llama_cpp

        return f"llama-cpp-python-{llama_cpp.__version__}"

    def unsupported(self, folder: ModelFolder, quantization: str) -> str | None:
        if not importable("llama_cpp"):
            return "llama-cpp-python is not installed (make setup builds it)"
        if quantization not in QUANT_TYPES:
            return f"unknown quantization {quantization!r}; llama.cpp takes {', '.join(QUANT_TYPES)}"
        return export_unsupported(folder.config, folder.path)

    def load(self, folder: ModelFolder, quantization: str, cache: Path, *, threads: int) -> "LlamaCppEngine":
        path, files = ensure_gguf(folder, quantization, cache)
        context = min(int(folder.config.get("max_position_embeddings", 2048)), MAX_CONTEXT)
        return LlamaCppEngine(path, quantization, context, threads, files=files)


def ensure_gguf(folder: ModelFolder, quantization: str, cache: Path) -> tuple[Path, dict[str, str]]:
    """The folder's GGUF at ``quantization`` in ``cache`` and its sha256 record, written (atomically) unless an
    unchanged one from this writer is there (``conversions.cached_conversion``)."""
    target = cache / GGUF_NAME
    stamp = {"source": folder.id, "quantization": quantization, "writer": WRITER_VERSION}
    files = cached_conversion(cache, cache, stamp, lambda: write_gguf(folder.path, target, quantization,
                                                                     lineage_of(folder), name=folder.id[:12]))
    return target, files


class LlamaCppEngine(LogitsEngine):
    """A GGUF on llama.cpp: a pool of serving contexts and one scoring context, made on first use."""

    backend = "llamacpp"

    def __init__(self, path: Path, quantization: str, context: int, threads: int, pool: int = 2,
                 files: dict[str, str] | None = None):
        self.path, self.quantization, self.context, self.threads = path, quantization, context, threads
        self.files = files if files is not None else {GGUF_NAME: sha256_file(path)}  # hashed once, by the cache
        self._free: queue.Queue = queue.Queue()
        self._made, self._limit, self._lock = 0, pool, threading.Lock()
        self._scorer, self._scorer_context = None, 0
        self._free.put(self._context(logits_all=False))  # load once now: a bad file fails here, not mid-request
        self._made = 1

    def _context(self, *, logits_all: bool, positions: int | None = None):
        from llama_cpp import Llama

        return Llama(model_path=str(self.path), n_ctx=positions or self.context, n_batch=512, n_threads=self.threads,
                     n_threads_batch=self.threads, logits_all=logits_all, type_k=GGML_TYPE_F32,
                     type_v=GGML_TYPE_F32, verbose=False)

    def _session(self) -> "LlamaCppSession":
        with self._lock:
            if self._free.empty() and self._made < self._limit:
                self._free.put(self._context(logits_all=False))
                self._made += 1
        return LlamaCppSession(self._free.get(), self._free)

    def logits(self, ids: list[int]) -> torch.Tensor:
        with self._lock:
            if self._scorer_context < len(ids):  # sized to what is scored: every position's logits are kept
                if self._scorer is not None:
                    self._scorer.close()
                self._scorer_context = max(512, len(ids))
                self._scorer = self._context(logits_all=True, positions=self._scorer_context)
            self._scorer.reset()
            self._scorer.eval(list(ids))
            return torch.from_numpy(np.array(self._scorer.scores[:len(ids)], dtype=np.float32))  # (T, V)

    def close(self) -> None:
        while not self._free.empty():
            self._free.get().close()
        if self._scorer is not None:
            self._scorer.close()


class LlamaCppSession(DecodeSession):
    """One sequence on a pooled context; closing returns the context to the pool."""

    def __init__(self, llm, pool: queue.Queue):
        self.llm, self.pool = llm, pool
        llm.reset()

    def feed(self, ids: list[int]) -> torch.Tensor:
        self.llm.eval(list(ids))
        # llama-cpp-python keeps no logits without logits_all; read the last position's from the context
        row = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),))
        return torch.from_numpy(row.copy())  # (V,) float32

    def close(self) -> None:
        self.pool.put(self.llm)
