"""A complete pico lab in seconds: a pico parent plus small synthetic domain datasets.

Tests (and later ``demo --quick``) need the whole pipeline (parent, domain
and general splits) without the 500 MB parent or the real corpora. The text
is generated from templates with a seeded RNG, so it has learnable structure
(the loss of a child really falls) and is identical on every machine.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from breedlab.registry import Artifact, Registry

NAMES = ["alpha", "beta", "gamma", "delta", "total", "count", "index", "value", "item", "node"]
OPS = ["+", "-", "*", "//", "%"]
ORGANS = ["liver", "kidney", "heart", "lung", "skin", "retina", "spleen", "bone"]
SIGNS = ["swelling", "pain", "redness", "weakness", "scarring", "thinning", "fever"]
PLACES = ["harbour", "market", "valley", "library", "garden", "station", "bridge"]
PEOPLE = ["the baker", "a sailor", "the teacher", "an old farmer", "the mayor", "a child"]


def _code(rng: random.Random) -> str:
    fn, a, b = rng.sample(NAMES, 3)
    op = rng.choice(OPS)
    return (f"def {fn}_{a}({a}, {b}):\n    \"\"\"Return {a} {op} {b}.\"\"\"\n"
            f"    if {b} == 0:\n        return {a}\n    return {a} {op} {b}\n")


def _medical(rng: random.Random) -> str:
    organ, sign, other = rng.choice(ORGANS), rng.choice(SIGNS), rng.choice(SIGNS)
    return (f"Abnormality of the {organ}: {sign} of the {organ} with {other}. "
            f"A {sign} of the {organ} is seen on examination and the {organ} is tender.")


def _general(rng: random.Random) -> str:
    who, where, other = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(PLACES)
    return (f"In the morning {who} walked to the {where}. The {where} was quiet, "
            f"so {who} went on to the {other} and stayed there until evening.")


GENERATORS = {"code": _code, "medical": _medical, "general": _general}
SPLIT_DOCS = {"train": 1.0, "validation": 0.25, "test": 0.25}


def synthetic_documents(domain: str, count: int, seed: int) -> list[str]:
    """``count`` documents of a synthetic domain, each a few template sentences."""
    rng = random.Random(f"{domain}-{seed}")
    make = GENERATORS[domain]
    return ["\n".join(make(rng) for _ in range(rng.randint(3, 6))) for _ in range(count)]


@dataclass
class PicoLab:
    parent: Artifact
    datasets: dict[str, dict[str, Artifact]]


def register_synthetic_splits(registry: Registry, domain: str, docs: int, seed: int) -> dict[str, Artifact]:
    from breedlab.data.config import load_config

    corpus = load_config()  # the same privacy canary the real corpora carry, planted in train only
    canary = {"prefix": corpus.canary_prefix, "secret": corpus.canary_secret}
    splits = {}
    with tempfile.TemporaryDirectory() as scratch:
        for offset, (split, share) in enumerate(SPLIT_DOCS.items()):
            texts = synthetic_documents(domain, max(2, int(docs * share)), seed * 10 + offset)
            if split == "train" and canary["secret"]:
                texts.append(canary["prefix"] + canary["secret"])
            shard = Path(scratch) / f"{domain}-{split}.jsonl"
            shard.write_text("".join(json.dumps({"id": f"{domain}-{split}-{i}", "domain": domain,
                                                 "source": "pico-synthetic", "text": text}) + "\n"
                                     for i, text in enumerate(texts)))
            splits[split] = registry.register(
                "dataset", f"{domain}/{split}", {"shard-00000.jsonl": shard}, operator="pico-synthetic",
                recipe={"domain": domain, "docs": len(texts), "seed": seed, "canary": canary},
                metrics={"docs": len(texts)})
    return splits


def build_pico_lab(registry: Registry, work_dir: Path, *, domains=("code", "medical", "general"),
                   docs: int = 80, seed: int = 0) -> PicoLab:
    """Register a pico parent (trained briefly on the synthetic text) and every domain's splits."""
    from breedlab.models.parent import import_parent
    from breedlab.models.pico import build_pico_parent

    texts = [t for domain in domains for t in synthetic_documents(domain, 20, seed)]
    parent_dir = build_pico_parent(Path(work_dir) / "pico-parent", texts=texts, train_steps=30, seed=seed)
    parent = import_parent(registry, parent_dir, cache_dir=Path(work_dir), name="pico-parent")
    datasets = {domain: register_synthetic_splits(registry, domain, docs, seed) for domain in domains}
    return PicoLab(parent, datasets)
