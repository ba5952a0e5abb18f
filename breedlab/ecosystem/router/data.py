"""What a router policy learns from and is judged on: snippets, query-shaped text, live labels.

Training and calibration sets (``routing_sets``) mix, per domain, query-sized snippets
of the corpus (``trace.domain_pools``) with the parent's synthetic queries about the
same split (``query_synth``; for the parent's own domain also its questions about
everyday topics, so that "how do I bake bread?" has somewhere to go), the queries repeated until they are ``query_share`` of the
domain's rows: a few hundred questions must not drown under thousands of snippets, or
the policy learns how the corpus reads and not how people ask. Labelled live traffic
(``labels``) joins the training side when a policy is refitted.

The frozen routing suite (``build_routing_suite``) is a registered ``eval-suite`` of
held-out cases in four groups: test-split snippets, test-split synthetic queries
(never from a training document), the hand-written questions in the repository, and
out-of-domain text. A case's ``domain`` is its true niche, or ``parent`` for a case
that must stay on the parent (the parent's own domains, and every question set of a
domain the policy does not serve).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from breedlab.data.questions import load_questions, question_domains
from breedlab.ecosystem.query_synth import query_texts
from breedlab.ecosystem.trace import domain_pools
from breedlab.registry import Artifact, Registry

PARENT = "parent"
GROUPS = ("snippets", "queries", "questions", "out-of-domain")
SUITE_NAME = "router/routing-suite"


def mixed(snippets: list[str], queries: list[str], query_share: float) -> list[str]:
    """``snippets`` plus ``queries`` repeated (whole copies, then a prefix) to ``query_share`` of the rows."""
    if not queries or query_share <= 0:
        return list(snippets)
    wanted = int(round(query_share * len(snippets) / max(1.0 - query_share, 1e-9)))
    copies = max(wanted, len(queries))
    return list(snippets) + [queries[i % len(queries)] for i in range(copies)]


def asked(registry: Registry, domain: str, split: str) -> list[str]:
    """Every query-shaped text of a split: about its documents, and (a parent domain) about everyday topics."""
    return query_texts(registry, domain, split) + query_texts(registry, domain, split, topics=True)


def routing_sets(registry: Registry, domains: list[str], *, seed: int, query_share: float = 0.3,
                 train_snippets: int = 3000, validation_snippets: int = 200) -> dict[str, dict[str, list[str]]]:
    """{"train": {domain: texts}, "validation": {domain: snippets}, "train_queries": {domain: queries}}.

    Training rows mix snippets and synthetic queries (the hybrid's shape gate learns which rows are
    which from "train_queries"). Precision is calibrated on validation snippets alone: the synthetic
    queries' labels are too noisy to certify it (tried and measured: docs/RESULTS.md, issue 12); the
    out-of-domain sets are ``router.candidates.out_of_domain_sets``."""
    train_queries = {d: asked(registry, d, "train") for d in domains}
    train = domain_pools(registry, list(domains), seed=seed, split="train", max_docs=3000)
    validation = domain_pools(registry, list(domains), seed=seed, split="validation", max_docs=400)
    return {"train": {d: mixed(train[d][:train_snippets], train_queries[d], query_share) for d in domains},
            "validation": {d: validation[d][:validation_snippets] for d in domains},
            "train_queries": train_queries}


def suite_cases(registry: Registry, niches: list[str], parent_domains: list[str], *, seed: int,
                snippets_per_domain: int = 100, questions: bool = True) -> list[dict]:
    """The held-out cases: {text, domain (a niche or 'parent'), group, source}."""
    cases = []
    pools = domain_pools(registry, [*niches, *parent_domains], seed=seed, split="test")
    for domain in [*niches, *parent_domains]:
        truth = domain if domain in niches else PARENT
        cases += [{"text": t, "domain": truth, "group": "snippets", "source": f"{domain}/test"}
                  for t in pools[domain][:snippets_per_domain]]
        cases += [{"text": t, "domain": truth, "group": "queries", "source": f"{domain}/test/queries"}
                  for t in query_texts(registry, domain, "test")]
    for name in question_domains() if questions else ():
        truth = name if name in niches else PARENT
        group = "questions" if name in niches else "out-of-domain"
        cases += [{"text": q.text, "domain": truth, "group": group, "source": f"questions/{name}"}
                  for q in load_questions(name)]
    return cases


def build_routing_suite(registry: Registry, niches: list[str], parent_domains: list[str], *,
                        seed: int = 0, questions: bool = True) -> Artifact:
    """Register (or find, same content = same id) the frozen routing suite for these niches.

    The hand-written question sets are left out with ``questions=False`` and for a pico lab's synthetic
    domains (operator ``pico-synthetic``): they are about the real built-in domains only."""
    synthetic = any(a.manifest.operator == "pico-synthetic" for d in [*niches, *parent_domains]
                    for a in registry.find(kind="dataset", name=f"{d}/test")[:1])
    questions = questions and not synthetic
    cases = suite_cases(registry, list(niches), list(parent_domains), seed=seed, questions=questions)
    sources = sorted({a.id for d in [*niches, *parent_domains] for s in ("test", "test/queries")
                      for a in registry.find(kind="dataset", name=f"{d}/{s}")[:1]})
    recipe = {"suite": "routing", "niches": sorted(niches), "parent_domains": sorted(parent_domains),
              "seed": seed, "groups": list(GROUPS), "cases": len(cases), "questions": questions}
    with tempfile.TemporaryDirectory(prefix="routing-suite-") as scratch:
        path = Path(scratch) / "cases.jsonl"
        path.write_text("".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in cases),
                        encoding="utf-8")
        return registry.register("eval-suite", SUITE_NAME, {"cases.jsonl": path}, operator="routing-suite",
                                 recipe=recipe, data=sources)


def load_routing_suite(artifact: Artifact) -> dict[str, dict[str, list[str]]]:
    """{group: {true domain or 'parent': texts}}; a malformed line is refused with its number."""
    if artifact.manifest.kind != "eval-suite" or artifact.manifest.recipe.get("suite") != "routing":
        raise ValueError(f"{artifact.id[:12]} is not a routing suite")
    groups: dict[str, dict[str, list[str]]] = {g: {} for g in GROUPS}
    lines = (artifact.path / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            case = json.loads(line)
            groups[case["group"]].setdefault(case["domain"], []).append(case["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{artifact.id[:12]} cases.jsonl line {number}: not a routing case ({exc})") from exc
    return groups
