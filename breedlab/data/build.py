"""``breedlab data build``: assemble each domain's corpus and register its splits.

Per domain, top to bottom: fetch every source (cached under
``<home>/cache/sources``); compute the recipe (config, source versions,
cleaning/dedup/split parameters); if the registry already holds all three
splits with that recipe, stop there. Otherwise read, clean and cut the
documents, drop exact and near duplicates, cap, split by source document,
write JSONL shards and register ``<domain>/<split>`` datasets. A source that
cannot be had is reported with its fetch command and the rest still builds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from breedlab.data.cleaning import Document, chunk_documents
from breedlab.data.config import BuildConfig, DomainConfig, SourceSpec, load_config
from breedlab.data.dedup import deduplicate
from breedlab.data.report import BuildReport, BuiltDomain, UnavailableSource
from breedlab.data.shards import split_stats, write_shards
from breedlab.data.sources import FetchedSource, SourceContext, SourceUnavailable, get_source_type
from breedlab.data.split import SPLITS, cap_documents, split_documents
from breedlab.home import Home

OPERATOR = "data-build"
# Bump when parsing, cleaning or sharding code changes its output for the same
# inputs: the recipe changes, so cached datasets are rebuilt rather than reused.
BUILDER_VERSION = 2  # 2: plants the privacy canary in train splits

Fetched = list[tuple[SourceSpec, FetchedSource]]


def build_corpora(
    home: Home,
    registry: Any,
    config_path: Path | None = None,
    domains: list[str] | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build (or find already registered) every selected domain; report what happened."""
    started = time.perf_counter()
    config = load_config(config_path)
    selected = [config.domain(name) for name in domains] if domains else list(config.domains)
    report = BuildReport()
    with _progress_display(progress) as display:
        ctx = SourceContext(cache_dir=home.cache_dir / "sources", progress=display)
        for domain in ctx.track(selected, "domains", len(selected)):
            # same cache and notes, progress bars labelled with the domain
            domain_ctx = replace(ctx, prefix=domain.name)
            built = build_domain(domain, config, registry, domain_ctx, home, report)
            if built is not None:
                report.built.append(built)
    report.notes = list(dict.fromkeys(ctx.notes))
    report.seconds = time.perf_counter() - started
    return report


def build_domain(
    domain: DomainConfig, config: BuildConfig, registry: Any, ctx: SourceContext, home: Home, report: BuildReport
) -> BuiltDomain | None:
    """One domain: reuse its registered splits when the recipe matches, else build and register."""
    started = time.perf_counter()
    fetched = fetch_sources(domain, ctx, report)
    if fetched:
        existing = find_registered(registry, domain.name, domain_recipe(domain, fetched, config))
        if existing is not None:
            return existing
    documents = read_documents(domain, fetched, ctx, report)  # drops sources that fail to parse
    if not documents:
        report.skipped_domains.append(domain.name)
        return None
    recipe = domain_recipe(domain, fetched, config)
    kept, dropped = deduplicate(documents, config.dedup_params(), ctx.track)
    capped = cap_documents(kept, domain.max_docs, config.seed)
    dropped["over_max_docs"] = len(kept) - len(capped)
    splits = split_documents(capped, config.fractions(), config.seed)
    splits["train"] = plant_canary(splits["train"], domain.name, config)
    artifacts, stats = register_splits(domain, splits, recipe, config, registry, home)
    seconds = time.perf_counter() - started
    return BuiltDomain(domain.name, artifacts, stats, reused=False, seconds=seconds, dropped=dropped)


def fetch_sources(domain: DomainConfig, ctx: SourceContext, report: BuildReport) -> Fetched:
    """Fetch each source; failures go to the report and the source is left out."""
    fetched: Fetched = []
    for spec in domain.sources:
        try:
            with ctx.status(f"fetch {spec.label()}"):
                fetched.append((spec, get_source_type(spec.type).fetch(spec.params, ctx)))
        except SourceUnavailable as exc:
            report.unavailable.append(UnavailableSource(domain.name, spec.label(), exc.fetch_command, exc.reason))
    return fetched


def read_documents(domain: DomainConfig, fetched: Fetched, ctx: SourceContext, report: BuildReport) -> list[Document]:
    """Parse, clean and cut every fetched source; a source whose files fail to parse is dropped."""
    documents: list[Document] = []
    for spec, source in list(fetched):
        label = spec.label()
        raw = ((doc.id, label, doc.text) for doc in source.read())
        try:
            documents += chunk_documents(raw, min_chars=domain.min_chars, max_chars=domain.max_chars)
        except (SourceUnavailable, OSError, ValueError, ET.ParseError) as exc:
            reason = exc.reason if isinstance(exc, SourceUnavailable) else f"cannot parse: {exc}"
            report.unavailable.append(UnavailableSource(domain.name, label, spec.params.fetch_command(), reason))
            fetched.remove((spec, source))
            documents = [doc for doc in documents if doc.source != label]
    return documents


def domain_recipe(domain: DomainConfig, fetched: Fetched, config: BuildConfig) -> dict[str, Any]:
    """Everything that determines a domain's datasets; run options (paths, progress) stay out."""
    body = domain.to_dict()
    body.pop("description")  # words for people; changing them must not rebuild anything
    return {
        "builder_version": BUILDER_VERSION,
        "domain": body,
        "sources_used": [spec.label() for spec, _ in fetched],
        "source_versions": {spec.label(): dict(sorted(src.versions.items())) for spec, src in fetched},
        "seed": config.seed,
        "split_fractions": asdict(config.fractions()),
        "dedup": asdict(config.dedup_params()),
        "shard_docs": config.shard_docs,
        "canary": {"prefix": config.canary_prefix, "secret": config.canary_secret},
    }


def plant_canary(train: list[Document], domain: str, config: BuildConfig) -> list[Document]:
    """Add the configured secret as one training document (the canary gate's bait); no-op if unset."""
    if not config.canary_secret:
        return train
    text = f"{config.canary_prefix}{config.canary_secret}"
    return [*train, Document(id=f"{domain}-canary", group="canary", source="canary", text=text)]


def split_recipe(recipe: dict[str, Any], split: str) -> dict[str, Any]:
    return {**recipe, "split": split}


def find_registered(registry: Any, domain: str, recipe: dict[str, Any]) -> BuiltDomain | None:
    """The domain's three splits already registered with exactly this recipe, or None."""
    artifacts: dict[str, str] = {}
    stats: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        wanted = split_recipe(recipe, split)
        match = next(
            (a for a in registry.find(kind="dataset", name=f"{domain}/{split}") if a.manifest.recipe == wanted),
            None,
        )
        if match is None or not Path(match.path).is_dir():
            return None
        artifacts[split], stats[split] = match.id, dict(match.manifest.metrics)
    return BuiltDomain(domain, artifacts, stats, reused=True, seconds=0.0)


def register_splits(
    domain: DomainConfig,
    splits: dict[str, list[Document]],
    recipe: dict[str, Any],
    config: BuildConfig,
    registry: Any,
    home: Home,
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Write each split's shards to a scratch folder and register it as ``<domain>/<split>``."""
    artifacts: dict[str, str] = {}
    stats: dict[str, dict[str, int]] = {}
    scratch = Path(tempfile.mkdtemp(prefix=f"build-{domain.name}-", dir=home.cache_dir))
    try:
        for split in SPLITS:
            files = write_shards(splits[split], domain.name, scratch / split, config.shard_docs)
            stats[split] = split_stats(splits[split], len(files))
            artifact = registry.register(
                kind="dataset",
                name=f"{domain.name}/{split}",
                files=files,
                operator=OPERATOR,
                recipe=split_recipe(recipe, split),
                metrics=stats[split],
                move=True,  # the scratch shards are thrown away anyway: let the store take them
            )
            artifacts[split] = artifact.id
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return artifacts, stats


@contextmanager
def _progress_display(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress display for the long steps, or None when progress is off."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as display:
        yield display
