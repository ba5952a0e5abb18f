"""``breedlab niche add``: a niche from a user's own files and examples, registered like any domain.

    --docs PATH...      -> <niche>/{train,validation,test}: the corpus build's own pipeline over the
                           ``local-files`` source (clean, near-dedup, seeded split by file, shards, hashes)
    --examples FILE     -> <niche>/examples/{train,validation,test}: checked line by line first (a bad
                           line refuses the whole add, nothing registered), split by example id with
                           ``EXAMPLE_SPLIT`` (held-out shares large enough for a task suite)

A niche given only examples gets its document splits from them (each example's prompt and output
as one document, in the same split as the example), so the task monitor, the router and the lab
find ``<niche>/<split>`` as they do for a built-in domain. Everything stays in the home: the files
are read where they lie, and the registry holds the cleaned text and its hashes.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from breedlab.data.cleaning import Document
from breedlab.data.examples import TASKS, Example, read_examples
from breedlab.data.split import SPLITS, SplitFractions, split_documents
from breedlab.home import Home
from breedlab.registry.canonical import sha256_file

OPERATOR = "niche-add"
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
EXAMPLE_SPLIT = SplitFractions(0.7, 0.1, 0.2)
EXAMPLES_SHARD = "shard-00000.jsonl"


class NicheError(ValueError):
    """A niche that cannot be added as asked; nothing was registered."""


@dataclass
class NicheReport:
    name: str
    task: str | None
    datasets: dict[str, str] = field(default_factory=dict)
    """Dataset name -> artifact id."""
    examples: dict[str, int] = field(default_factory=dict)
    """Split -> examples in it."""
    repeats: int = 0
    notes: list[str] = field(default_factory=list)


def add_niche(home: Home, registry, name: str, *, docs: list[str] | None = None, examples: Path | None = None,
              task: str | None = None, origin: dict | None = None) -> NicheReport:
    """Register the niche's datasets (see the module docstring); the same inputs give the same ids.
    ``origin`` (a shipped niche's builder, sources, limit and seed) is recorded in the examples' recipe."""
    from breedlab.data.config import load_config

    config = load_config(None)
    _check(name, docs, examples, task, {d.name for d in config.domains})
    parsed, repeats = read_examples(examples) if examples else ([], 0)  # refuses before anything is written
    report = NicheReport(name, task or "lm", repeats=repeats)
    if docs:
        _register_docs(home, registry, name, docs, config, report)
    if parsed:
        splits = _split_examples(parsed, config.seed)
        recipe = {"niche": name, "task": task, "examples_sha256": sha256_file(examples), "seed": config.seed,
                  "split_fractions": asdict(EXAMPLE_SPLIT), "repeats_dropped": repeats,
                  **({"origin": origin} if origin else {})}
        _register_examples(home, registry, name, splits, recipe, report)
        if not docs:
            _register_example_docs(home, registry, name, splits, recipe, report)
    return report


def _check(name: str, docs, examples, task, builtin: set[str]) -> None:
    if not NAME.match(name):
        raise NicheError(f"niche name {name!r} must be lower-case letters and digits joined by '-'")
    if name in builtin:
        raise NicheError(f"{name!r} is a built-in domain (configs/domains.yaml); choose another niche name")
    if not docs and not examples:
        raise NicheError("a niche needs --docs, --examples or both")
    if examples and task not in TASKS:
        raise NicheError(f"examples need --task, one of {', '.join(TASKS)}")
    if task and not examples:
        raise NicheError("--task judges generated answers against held-out examples: give --examples too")


def _register_docs(home: Home, registry, name: str, docs: list[str], config, report: NicheReport) -> None:
    from breedlab.data.build import build_domain
    from breedlab.data.config import DomainConfig, SourceSpec
    from breedlab.data.report import BuildReport
    from breedlab.data.sources import SourceContext
    from breedlab.data.sources.local_files import LocalFilesParams

    spec = SourceSpec("local-files", LocalFilesParams(tuple(str(Path(p).expanduser()) for p in docs)))
    domain = DomainConfig(name=name, sources=(spec,), description="a user's own files", min_chars=40)
    build = BuildReport()
    ctx = SourceContext(cache_dir=home.cache_dir / "sources")
    built = build_domain(domain, config, registry, ctx, home, build)
    report.notes += list(dict.fromkeys(ctx.notes)) + [f"{u.name}: {u.reason}" for u in build.unavailable]
    if built is None:
        raise NicheError(f"no documents in {', '.join(docs)}: " + "; ".join(report.notes or ["nothing readable"]))
    report.datasets.update({f"{name}/{split}": artifact for split, artifact in built.artifacts.items()})


def _split_examples(examples: list[Example], seed: int) -> dict[str, list[Example]]:
    by_id = {e.id: e for e in examples}
    docs = [Document(id=e.id, group=e.id, source="examples", text=e.input) for e in examples]
    return {split: [by_id[d.id] for d in chosen] for split, chosen in
            split_documents(docs, EXAMPLE_SPLIT, seed).items()}


def _register_examples(home: Home, registry, name: str, splits, recipe: dict, report: NicheReport) -> None:
    from breedlab.data.example_shards import write_example_shard

    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        for split in SPLITS:
            path = write_example_shard(splits[split], name, Path(scratch) / split / EXAMPLES_SHARD)
            artifact = registry.register(kind="dataset", name=f"{name}/examples/{split}", files={EXAMPLES_SHARD: path},
                                         operator=OPERATOR, recipe={**recipe, "split": split},
                                         metrics={"examples": len(splits[split])}, move=True)
            report.datasets[f"{name}/examples/{split}"] = artifact.id
            report.examples[split] = len(splits[split])


def _register_example_docs(home: Home, registry, name: str, splits, recipe: dict, report: NicheReport) -> None:
    """Document splits from the examples themselves (prompt, then output), split as the examples are."""
    from breedlab.data.shards import split_stats, write_shards

    scratch = Path(tempfile.mkdtemp(prefix=f"niche-{name}-", dir=home.cache_dir))
    try:
        for split in SPLITS:
            docs = [Document(id=e.id, group=e.id, source="examples", text=f"{e.input}\n\n{e.output}")
                    for e in splits[split]]
            files = write_shards(docs, name, scratch / split, 1000)
            artifact = registry.register(kind="dataset", name=f"{name}/{split}", files=files, operator=OPERATOR,
                                         recipe={**recipe, "split": split, "documents": "examples"},
                                         metrics=split_stats(docs, len(files)), move=True)
            report.datasets[f"{name}/{split}"] = artifact.id
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def registered_niches(registry) -> dict[str, dict]:
    """Every user niche in the registry: its task, and its datasets by name (newest first per name)."""
    niches: dict[str, dict] = {}
    for artifact in registry.find(kind="dataset"):
        recipe = artifact.manifest.recipe
        local = any(s.get("type") == "local-files" for s in recipe.get("domain", {}).get("sources", []))
        if artifact.manifest.operator != OPERATOR and not local:
            continue
        name = artifact.manifest.name.split("/")[0]
        niche = niches.setdefault(name, {"task": None, "datasets": {}})
        niche["task"] = niche["task"] or recipe.get("task")
        niche["datasets"].setdefault(artifact.manifest.name, artifact)
    return dict(sorted(niches.items()))
