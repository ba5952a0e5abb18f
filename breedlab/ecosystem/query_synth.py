"""Synthetic user queries written by the parent itself, cached as dataset artifacts.

The router has to recognise how people *ask* ("How do I reverse a list in Python?"),
not only how the corpus *reads*. The parent (an instruct model) is shown an excerpt
of each document and asked for one question or request a user might send about its
topic (the paper's future work, "a synthetic corpus from the parent model itself",
used here for routing). One worked example in the chat keeps the answer a bare
question. Sampling is seeded per batch, so the same parent, documents and recipe
give the same queries.

Generation costs ~1 s a query on 2 cores (batches of 16-24, 32 new tokens); the
result is registered as ``<domain>/<split>/queries`` with the recipe (prompts,
sampling, seed), the cost and the filter's counts, and found again by recipe.
The filter (``query_filter``) drops empty, degenerate, ungrounded and near-duplicate
generations and counts each reason.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from breedlab.data.cleaning import Document
from breedlab.data.read import iter_documents
from breedlab.data.shards import write_shards
from breedlab.ecosystem.query_filter import filter_generations
from breedlab.registry.atomic import atomic_write_bytes
from breedlab.registry.canonical import sha256_json

OPERATOR = "query-synth"
# Never shown to the parent: the privacy canary planted in every train split (data/build.py, lab/pico_home.py)
# is bait for the children's memorisation gate, not a topic; a query about it would carry the bait into
# router training data. Recognised by its source or by the configured secret in its text.
SKIP = "privacy canary"

SHOT_DOCUMENT = ("The json module encodes Python objects as JSON strings. json.dumps(obj, indent=2) returns "
                 "a pretty-printed string; json.loads(s) parses a string back into Python objects.")
SHOT_QUERY = "How do I pretty-print a dictionary as JSON in Python?"
ASK = ("Write one question a person might type into a chatbot about the topic of this text. "
       "Reply with the question only.\n\nText:\n")


@dataclass(frozen=True)
class QuerySynthRecipe:
    """How queries are written; every field is recorded in the dataset's recipe."""

    docs: int = 120
    """Documents per split, the first ones in id order, the privacy canary skipped (one query each)."""
    excerpt_chars: int = 400
    """The document's first characters shown to the parent."""
    ask: str = ASK
    shot_document: str = SHOT_DOCUMENT
    shot_query: str = SHOT_QUERY
    max_new_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 0.9
    batch_size: int = 16
    seed: int = 0


def chat_messages(recipe: QuerySynthRecipe, excerpt: str) -> list[dict]:
    """The prompt: the instruction with the worked example, then the same instruction on ``excerpt``."""
    return [{"role": "user", "content": recipe.ask + recipe.shot_document},
            {"role": "assistant", "content": recipe.shot_query},
            {"role": "user", "content": recipe.ask + excerpt}]


def generate_raw(model, tokenizer, excerpts: list[str], recipe: QuerySynthRecipe,
                 on_batch: Callable[[int], None] | None = None) -> tuple[list[str], int]:
    """One sampled generation per excerpt, and the tokens generated; batch b is seeded ``seed + b``."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs, generated = [], 0
    for b, start in enumerate(range(0, len(excerpts), recipe.batch_size)):
        batch = excerpts[start:start + recipe.batch_size]
        prompts = [_prompt_text(tokenizer, chat_messages(recipe, e)) for e in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True)
        torch.manual_seed(recipe.seed + b)
        with torch.no_grad():
            tokens = model.generate(**encoded, max_new_tokens=recipe.max_new_tokens, do_sample=True,
                                    temperature=recipe.temperature, top_p=recipe.top_p, pad_token_id=pad)
        new = tokens[:, encoded["input_ids"].shape[1]:]
        generated += int((new != pad).sum())
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
        if on_batch:
            on_batch(len(batch))
    return outputs, generated


def _prompt_text(tokenizer, messages: list[dict]) -> str:
    """The chat template when the tokenizer has one (the real parent); plain turns otherwise (pico)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"


def dataset_name(domain: str, split: str) -> str:
    return f"{domain}/{split}/queries"


def synthesize(registry, parent_id: str, domain: str, split: str, recipe: QuerySynthRecipe, *,
               model=None, tokenizer=None, cache_dir: Path | None = None,
               on_batch: Callable[[int], None] | None = None) -> Any:
    """The ``<domain>/<split>/queries`` dataset for this parent and recipe: found, or generated and registered."""
    source = registry.find(kind="dataset", name=f"{domain}/{split}")
    if not source:
        raise ValueError(f"no dataset {domain}/{split} registered: build the corpora first")
    full_recipe = {"domain": domain, "split": split, "source_dataset": source[0].id, "parent": parent_id,
                   "skip": SKIP, **asdict(recipe)}
    return _found_or_made(registry, dataset_name(domain, split), domain, full_recipe, parent_id, source[0].id,
                          cache_dir, lambda: _generate(registry, parent_id, source[0], domain, recipe, model,
                                                       tokenizer, on_batch))


def _found_or_made(registry, name: str, domain: str, full_recipe: dict, parent_id: str, source_id: str | None,
                   cache_dir: Path | None, generate: Callable[[], tuple[list, dict]]) -> Any:
    """The dataset ``name`` registered with ``full_recipe``; else the queries cached for that recipe (a fresh
    demo registry reuses them), else ``generate()``'s, cached; registered either way."""
    for artifact in registry.find(kind="dataset", name=name):
        if {k: artifact.manifest.recipe.get(k) for k in full_recipe} == full_recipe:
            return artifact
    stored = _cache_path(cache_dir, full_recipe)
    if stored is not None and stored.is_file():  # generated before for this parent, data and recipe
        saved = json.loads(stored.read_text(encoding="utf-8"))
        queries, metrics = [Document(**q) for q in saved["queries"]], saved["metrics"]
    else:
        queries, metrics = generate()
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(stored, json.dumps({"queries": [asdict(q) for q in queries],
                                                   "metrics": metrics}).encode())
    return _register(registry, name, domain, queries, full_recipe, metrics, parent_id, source_id, cache_dir)


def first_documents(path: Path, count: int) -> list[dict]:
    """The split's first ``count`` documents in id order, the privacy canary skipped (``SKIP``)."""
    from breedlab.data.config import load_config

    secret = load_config().canary_secret
    wanted = (d for d in iter_documents(path) if d.get("source") != "canary" and not (secret and secret in d["text"]))
    return [d for _, d in zip(range(count), wanted)]


def _generate(registry, parent_id, source, domain, recipe, model, tokenizer, on_batch, documents=None):
    documents = documents or first_documents(source.path, recipe.docs)
    if model is None:
        from breedlab.models.parent import load_parent

        model, tokenizer = load_parent(registry, parent_id)
    start = time.perf_counter()
    raw, generated = generate_raw(model, tokenizer, [d["text"][:recipe.excerpt_chars] for d in documents],
                                  recipe, on_batch)
    seconds = time.perf_counter() - start
    kept, counts = filter_generations(raw, [d["text"] for d in documents], avoid=[recipe.shot_query])
    queries = [Document(id=f"{documents[i]['id']}#q", group=documents[i]["id"], source=f"{OPERATOR}:{domain}",
                        text=text) for i, text in kept]
    metrics = {"docs": len(queries), "filter": counts, "generated_tokens": generated,
               "generation_s": round(seconds, 1),
               "s_per_kept_query": round(seconds / max(len(queries), 1), 2)}
    return queries, metrics


def _cache_path(cache_dir: Path | None, recipe: dict) -> Path | None:
    """Where the queries of this exact recipe are kept between runs (a fresh demo registry reuses them)."""
    return None if cache_dir is None else Path(cache_dir) / "queries" / f"{sha256_json(recipe)[:24]}.json"


def _register(registry, name, domain, queries, recipe, metrics, parent_id, source_id, cache_dir):
    scratch = Path(tempfile.mkdtemp(prefix="query-synth-", dir=cache_dir))
    try:
        files = write_shards(queries, domain, scratch, shard_docs=10_000)
        return registry.register("dataset", name, files, operator=OPERATOR, recipe=recipe, parents=(parent_id,),
                                 data=(source_id,) if source_id else (), metrics=metrics, move=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def query_texts(registry, domain: str, split: str, *, topics: bool = False) -> list[str]:
    """The newest ``<domain>/<split>/queries`` texts (``topic-queries`` with ``topics``), [] if none."""
    name = topic_dataset_name(domain, split) if topics else dataset_name(domain, split)
    found = registry.find(kind="dataset", name=name)
    return [d["text"] for d in iter_documents(found[0].path)] if found else []


# ----- questions about everyday topics: what the parent itself is for ---------------------

TOPICS_FILE = Path(__file__).resolve().parent.parent / "data" / "topics" / "everyday.txt"
TOPIC_ASK = ("Write one question a person might type into a chatbot about this topic. "
             "Reply with the question only.\n\nTopic:\n")
TOPIC_SHOT = "pretty-printing a dictionary as JSON in Python"


def everyday_topics(split: str, path: Path = TOPICS_FILE) -> list[str]:
    """The topic file's lines (comments and blanks skipped): even ones for train, odd ones otherwise."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    return lines[0::2] if split == "train" else lines[1::2]


def topic_dataset_name(domain: str, split: str) -> str:
    return f"{domain}/{split}/topic-queries"


def synthesize_topics(registry, parent_id: str, domain: str, split: str, *, samples: int = 4, seed: int = 0,
                      model=None, tokenizer=None, cache_dir: Path | None = None, on_batch=None) -> Any:
    """``samples`` of the parent's questions about each everyday topic of ``split``, registered as
    ``<domain>/<split>/topic-queries`` (the parent's own domain: these must stay on the parent).
    The corpus of a parent domain is books and manuals; people ask it about their day."""
    topics = everyday_topics(split)
    recipe = QuerySynthRecipe(docs=len(topics) * samples, ask=TOPIC_ASK, shot_document=TOPIC_SHOT, seed=seed)
    full_recipe = {"domain": domain, "split": split, "topics": topics, "samples": samples, "parent": parent_id,
                   **asdict(recipe)}
    documents = [{"id": f"topic-{i:03d}-{k}", "text": t} for i, t in enumerate(topics) for k in range(samples)]
    return _found_or_made(registry, topic_dataset_name(domain, split), domain, full_recipe, parent_id, None, cache_dir,
                          lambda: _generate(registry, parent_id, None, domain, recipe, model, tokenizer, on_batch,
                                            documents=documents))
