"""Frozen evaluation suites: registry artifacts the evaluator re-checks before every use.

A suite (kind ``eval-suite``, name ``<domain>/<kind>``) holds two files:
``cases.jsonl`` (one canonical JSON case per line) and ``suite.json``::

    {"kind", "scorer": {"name", "version"}, "domain", "source_dataset", "cases": N,
     "tokenizer", "seed", "settings", "content_sha256"}

``content_sha256`` is the sha256 of the canonical JSON of everything a scorer
reads: kind, scorer, settings, tokenizer fingerprint and every case. Suites
are built only from a registered ``<domain>/test`` split, deterministically
from a seed, so building twice gives the same artifact id. ``load_suite``
re-hashes the files against the manifest and recomputes ``content_sha256``;
any mismatch raises SuiteTampered. The scorer is looked up by name and version
in the scorer registry (``scorers.py``), never taken from the candidate.

Kinds: ``lm`` (passages of domain text: accuracy, perplexity), ``cloze``
(multiple choice: utility), ``retention`` (an lm suite on ``general/test``), ``task``
(an examples niche's held-out ``<domain>/examples/test`` examples, answers generated and
scored by the task's metric: utility; ``task_suite.py``).
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.data.read import iter_documents
from breedlab.evaluation import cloze, passages, task_suite
from breedlab.evaluation.scorers import SuiteRefused, SuiteResult, get_scorer
from breedlab.registry import Artifact, Registry
from breedlab.registry.canonical import canonical_json, sha256_bytes, sha256_json

SUITE_SCORERS = {"lm": ("lm-next-token", 1), "retention": ("lm-next-token", 1), "cloze": ("cloze-loglik", 1),
                 "task": ("task-generate", 1)}
"""Suite kind -> the scorer (name, version) new suites of that kind are built with."""
RETENTION_DOMAIN = "general"
CASES_FILE, SUITE_FILE = "cases.jsonl", "suite.json"


class SuiteTampered(SuiteRefused):
    """A suite's files or cases no longer match the hashes they were registered with."""


class TokenizerMismatch(SuiteRefused):
    """A per-token suite met a model whose tokenizer is not the suite's: its scores would not compare."""


@dataclass(frozen=True)
class Suite:
    """A loaded, verified suite: what ``run_suite`` scores a model on."""

    id: str
    kind: str
    domain: str
    scorer: str
    scorer_version: int
    source_dataset: str
    """Id of the ``<domain>/test`` dataset artifact the cases were cut from."""
    tokenizer: str
    """tokenizer_fingerprint of the tokenizer that fixed the token lengths."""
    seed: int
    settings: dict[str, Any]
    content_sha256: str
    cases: list[dict]


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full serialisation (vocabulary, merges, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return sha256_bytes(backend.to_str().encode("utf-8"))
    return sha256_json(sorted(tokenizer.get_vocab().items()))  # slow tokenizers: the vocabulary alone


def content_sha256(kind: str, scorer: dict, settings: dict, tokenizer: str, cases: list[dict]) -> str:
    """The hash over everything a scorer reads (the brief's kind, scorer and cases, plus settings, tokenizer)."""
    return sha256_json({"kind": kind, "scorer": scorer, "settings": settings, "tokenizer": tokenizer,
                        "cases": cases})


def held_out_split(registry: Registry, domain: str, source: str | None = None, kind: str = "lm") -> Artifact:
    """The held-out ``<domain>/test`` dataset (a task suite: ``<domain>/examples/test``), newest or ``source``;
    anything else is refused."""
    name = f"{domain}/examples/test" if kind == "task" else f"{domain}/test"
    if source is not None:
        artifact = registry.get(source)
        if artifact.manifest.kind != "dataset" or artifact.manifest.name != name:
            raise SuiteRefused(f"{source[:12]} is {artifact.manifest.kind} {artifact.manifest.name!r}, "
                               f"not the held-out {name!r} split: suites are cut from test splits only")
        return artifact
    found = registry.find(kind="dataset", name=name)
    if not found:
        raise SuiteRefused(f"no dataset {name!r} is registered; build the corpora first")
    return found[0]


def build_suite(registry: Registry, kind: str, domain: str, *, tokenizer, cases: int, seed: int = 0,
                tokens: int = 128, context_tokens: int = 64, continuation_tokens: int = 24,
                distractors: int = 3, source: str | None = None, max_new_tokens: int = 48) -> Artifact:
    """Build (or reuse) the ``kind`` suite of ``domain`` from its test split; return the artifact.

    ``tokens`` is the lm/retention passage length; ``context_tokens``, ``continuation_tokens`` and
    ``distractors`` shape cloze cases; ``max_new_tokens`` bounds a task suite's generated answers (its
    task kind is the examples dataset's). The same arguments and data always give the same artifact.
    """
    if kind not in SUITE_SCORERS:
        raise ValueError(f"unknown suite kind {kind!r}; known: {', '.join(SUITE_SCORERS)}")
    if kind == "retention" and domain != RETENTION_DOMAIN:
        raise ValueError(f"a retention suite measures the {RETENTION_DOMAIN!r} corpus, not {domain!r}")
    dataset = held_out_split(registry, domain, source, kind)
    name, version = SUITE_SCORERS[kind]
    scorer_ref = {"name": name, "version": version}
    settings = ({"context_tokens": context_tokens, "continuation_tokens": continuation_tokens,
                 "distractors": distractors} if kind == "cloze" else {"tokens": tokens})
    if kind == "task":
        settings = {"task": dataset.manifest.recipe["task"], "max_new_tokens": max_new_tokens}
    fingerprint = tokenizer_fingerprint(tokenizer)
    recipe = {"kind": kind, "domain": domain, "source_dataset": dataset.id, "tokenizer": fingerprint,
              "requested_cases": cases, "seed": seed, "settings": settings, "scorer": scorer_ref}
    for existing in registry.find(kind="eval-suite", name=f"{domain}/{kind}"):
        if existing.manifest.recipe == recipe:
            return existing  # content is a function of the recipe and the data: nothing to rebuild
    chosen = _make_cases(kind, list(iter_documents(dataset.path)), tokenizer, cases, seed, settings)
    header = {"kind": kind, "scorer": scorer_ref, "domain": domain, "source_dataset": dataset.id,
              "cases": len(chosen), "tokenizer": fingerprint, "seed": seed, "settings": settings,
              "content_sha256": content_sha256(kind, scorer_ref, settings, fingerprint, chosen)}
    with tempfile.TemporaryDirectory() as scratch:
        files = {CASES_FILE: Path(scratch) / CASES_FILE, SUITE_FILE: Path(scratch) / SUITE_FILE}
        files[CASES_FILE].write_bytes(b"".join(canonical_json(case) + b"\n" for case in chosen))
        files[SUITE_FILE].write_bytes(canonical_json(header) + b"\n")
        return registry.register("eval-suite", f"{domain}/{kind}", files, operator="suite-build", recipe=recipe,
                                 data=[dataset.id], metrics={"cases": len(chosen)})


def _make_cases(kind: str, documents: list[dict], tokenizer, count: int, seed: int,
                settings: dict[str, Any]) -> list[dict]:
    # A string seed is hashed (sha512) by random.Random: stable across runs and Python versions.
    rng = random.Random(f"breedlab-suite/{kind}/{seed}")
    if kind == "cloze":
        return cloze.cloze_cases(documents, tokenizer, count=count, rng=rng, **settings)
    if kind == "task":
        return task_suite.task_cases(documents, count, rng)
    return passages.lm_cases(documents, tokenizer, count=count, tokens=settings["tokens"], rng=rng)


def _checked_bytes(artifact: Artifact) -> dict[str, bytes]:
    """Every file of the suite read once and hashed against the manifest (read, hash, then parse)."""
    contents = {}
    for name, entry in sorted(artifact.manifest.files.items()):
        try:
            raw = (artifact.path / name).read_bytes()
        except FileNotFoundError:
            raise SuiteTampered(f"suite {artifact.id[:12]} ({artifact.manifest.name}): {name} is missing") from None
        if hashlib.sha256(raw).hexdigest() != entry.sha256:
            raise SuiteTampered(f"suite {artifact.id[:12]} ({artifact.manifest.name}): {name} does not match "
                                f"its recorded sha256 {entry.sha256[:12]}; the evaluator refuses it")
        contents[name] = raw
    return contents


def load_suite(registry: Registry, suite_id: str) -> Suite:
    """Load and verify a suite; raise SuiteTampered or UnknownScorer (both SuiteRefused) if it fails."""
    artifact = registry.get(suite_id)
    label = f"suite {artifact.id[:12]} ({artifact.manifest.name})"
    if artifact.manifest.kind != "eval-suite":
        raise SuiteRefused(f"{artifact.id[:12]} is a {artifact.manifest.kind}, not an eval-suite")
    contents = _checked_bytes(artifact)
    if CASES_FILE not in contents or SUITE_FILE not in contents:
        raise SuiteTampered(f"{label} lacks {CASES_FILE} or {SUITE_FILE}")
    try:
        header = json.loads(contents[SUITE_FILE])
        cases = [json.loads(line) for line in contents[CASES_FILE].splitlines() if line.strip()]
        digest = content_sha256(header["kind"], header["scorer"], header["settings"], header["tokenizer"], cases)
    except (ValueError, KeyError, TypeError) as exc:
        raise SuiteRefused(f"{label} is malformed ({exc!r})") from exc
    if digest != header["content_sha256"] or len(cases) != header["cases"]:
        raise SuiteTampered(f"{label}: its cases hash to {digest[:12]}, not to the recorded "
                            f"{str(header['content_sha256'])[:12]} ({len(cases)} cases, {header['cases']} recorded)")
    if header["source_dataset"] not in artifact.manifest.data:
        raise SuiteTampered(f"{label}: source dataset {header['source_dataset'][:12]} is not in its manifest")
    held_out_split(registry, header["domain"], header["source_dataset"], header["kind"])  # never train data
    get_scorer(header["scorer"]["name"], header["scorer"]["version"], header["kind"])
    return Suite(id=artifact.id, kind=header["kind"], domain=header["domain"], scorer=header["scorer"]["name"],
                 scorer_version=header["scorer"]["version"], source_dataset=header["source_dataset"],
                 tokenizer=header["tokenizer"], seed=header["seed"], settings=header["settings"],
                 content_sha256=digest, cases=cases)


def run_suite(suite: Suite, model, tokenizer) -> SuiteResult:
    """Score ``model`` on a loaded suite with the suite's registered scorer."""
    if suite.kind not in ("cloze", "task") and tokenizer_fingerprint(tokenizer) != suite.tokenizer:
        raise TokenizerMismatch(f"suite {suite.id[:12]} was built with tokenizer {suite.tokenizer[:12]}; "
                                "per-token accuracy and perplexity need that same tokenizer")
    found = get_scorer(suite.scorer, suite.scorer_version, suite.kind)
    return found.fn(model, tokenizer, suite.cases, suite.settings)
