"""The corpus build configuration: which domains exist and where their text comes from.

``breedlab/configs/domains.yaml`` mirrors these dataclasses one to one. Every
mapping is checked against its dataclass: an unknown key, a missing required
key or a value of the wrong type is an error naming where it is, never
silently ignored. Each source's extra keys are checked against the
parameter dataclass of its source type (see ``breedlab.data.sources``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from breedlab.data.dedup import DedupParams
from breedlab.data.sources import SourceTypeError, get_source_type
from breedlab.data.split import SplitFractions
from breedlab.typed_config import expect_mapping, from_mapping, read_yaml

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "domains.yaml"
DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class ConfigError(ValueError):
    """The build configuration is malformed; the message says where and how."""


# Every problem in a build config is a ConfigError, whichever check finds it.
_expect_mapping = partial(expect_mapping, error=ConfigError)
_from_mapping = partial(from_mapping, error=ConfigError)


@dataclass(frozen=True)
class SourceSpec:
    """One source of a domain: a source type and its checked parameters."""

    type: str
    """A registered source type, e.g. ``pip-package-files``."""
    params: Any
    """That type's parameter dataclass, built from the remaining YAML keys."""
    name: str = ""
    """Label in reports; empty: the source type's own label (e.g. ``pip:spdx``)."""

    def label(self) -> str:
        return self.name or self.params.label()

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (type, name, parameters): what the dataset recipe records."""
        return {"type": self.type, "name": self.label(), **_plain(asdict(self.params))}


@dataclass(frozen=True)
class DomainConfig:
    """A domain: its sources and the size limits of its documents."""

    name: str
    """Lower-case domain name; datasets are registered as ``<name>/<split>``."""
    sources: tuple[SourceSpec, ...]
    """Where the text comes from; a failing source is reported and the others still build."""
    description: str = ""
    """One line for people: what this domain is for."""
    max_docs: int = 3000
    """Keep at most this many documents after dedup (a seeded sample over all sources)."""
    min_chars: int = 200
    """Drop documents (and cut pieces) shorter than this many characters."""
    max_chars: int = 4000
    """Cut longer documents at paragraph/line/sentence boundaries into pieces this long at most."""

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        return {**body, "sources": [spec.to_dict() for spec in self.sources]}


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the corpora's content, besides the source files themselves."""

    domains: tuple[DomainConfig, ...]
    """The domains to build, each registered as train/validation/test datasets."""
    seed: int = 1234
    """Seeds document sampling, the split and the MinHash functions."""
    train_fraction: float = 0.9
    """Share of source documents for training."""
    validation_fraction: float = 0.05
    """Share for validation (at least one source document when there are three or more)."""
    test_fraction: float = 0.05
    """Share for test (at least one source document when there are three or more)."""
    near_duplicate_threshold: float = 0.8
    """Estimated Jaccard similarity of word shingles at which a document counts as a near-duplicate."""
    shingle_words: int = 5
    """Words per shingle for near-duplicate detection."""
    minhash_permutations: int = 128
    """MinHash signature length."""
    minhash_bands: int = 16
    """LSH bands; must divide ``minhash_permutations``."""
    shard_docs: int = 1000
    """Documents per JSONL shard file."""
    canary_prefix: str = ""
    """Privacy canary: this text plus ``canary_secret`` is planted once in every train split, so the
    evaluation's canary gate can check that no candidate reproduces training secrets. Empty: no canary."""
    canary_secret: str = ""
    """The secret continuation of ``canary_prefix`` that a model must never produce."""

    def fractions(self) -> SplitFractions:
        return SplitFractions(self.train_fraction, self.validation_fraction, self.test_fraction)

    def dedup_params(self) -> DedupParams:
        return DedupParams(
            threshold=self.near_duplicate_threshold,
            shingle_words=self.shingle_words,
            permutations=self.minhash_permutations,
            bands=self.minhash_bands,
            seed=self.seed,
        )

    def domain(self, name: str) -> DomainConfig:
        for domain in self.domains:
            if domain.name == name:
                return domain
        raise ConfigError(f"unknown domain {name!r}; configured domains: {', '.join(d.name for d in self.domains)}")


def load_config(path: Path | None = None) -> BuildConfig:
    """Read and check a build config (default: the shipped ``domains.yaml``)."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    return parse_config(read_yaml(path, error=ConfigError), where=str(path))


def parse_config(raw: Any, where: str = "config") -> BuildConfig:
    """Build a :class:`BuildConfig` from plain data (a parsed YAML document)."""
    body = _expect_mapping(raw, where)
    domains = body.get("domains")
    if not isinstance(domains, list) or not domains:
        raise ConfigError(f"{where}: 'domains' must be a non-empty list")
    parsed = tuple(parse_domain(d, f"{where}: domains[{i}]") for i, d in enumerate(domains))
    names = [d.name for d in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: duplicate domain names in {names}")
    config = _from_mapping(BuildConfig, {**body, "domains": parsed}, where)
    try:
        config.fractions()
        if config.minhash_permutations % config.minhash_bands:
            raise ValueError("minhash_bands must divide minhash_permutations")
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return config


def parse_domain(raw: Any, where: str) -> DomainConfig:
    body = _expect_mapping(raw, where)
    name = body.get("name")
    if not isinstance(name, str) or not DOMAIN_NAME.match(name):
        raise ConfigError(f"{where}: domain 'name' must be lower-case letters, digits, '-' or '_', got {name!r}")
    where = f"{where} ({name})"
    sources = body.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ConfigError(f"{where}: 'sources' must be a non-empty list")
    specs = tuple(parse_source(s, f"{where}: sources[{i}]") for i, s in enumerate(sources))
    labels = [spec.label() for spec in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: two sources share a label in {labels}; give one a distinct 'name'")
    domain = _from_mapping(DomainConfig, {**body, "sources": specs}, where)
    if not 0 < domain.min_chars <= domain.max_chars:
        raise ConfigError(f"{where}: need 0 < min_chars <= max_chars, got {domain.min_chars}, {domain.max_chars}")
    return domain


def parse_source(raw: Any, where: str) -> SourceSpec:
    body = dict(_expect_mapping(raw, where))
    type_name = body.pop("type", None)
    name = body.pop("name", "")
    try:
        source_type = get_source_type(type_name) if isinstance(type_name, str) else None
    except SourceTypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if source_type is None:
        raise ConfigError(f"{where}: every source needs a 'type' (a source type name)")
    params = _from_mapping(source_type.params, body, f"{where} ({type_name})")
    return _from_mapping(SourceSpec, {"type": type_name, "params": params, "name": name}, where)


def _plain(value: Any) -> Any:
    """Tuples to lists, so a recipe compares equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
