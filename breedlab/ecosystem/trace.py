"""A replayable query trace, built from held-out documents, in phases.

The demo (and any experiment on the ecosystem) needs traffic whose true
domain is known, drawn only from data no candidate trained on. A trace is a
list of windows; each window is a list of ``Query`` whose domains follow its
phase's mix. Queries are snippets of the ``<domain>/test`` splits: a few
consecutive sentences or lines, cut to at most ``max_chars`` characters, the
size of a question a user types. The trace is a pure function of the
registry's test splits, the phases and the seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from breedlab.data.read import iter_texts

UNIT = re.compile(r"(?<=[.!?])\s+|\n+")  # sentence ends, or line breaks (code, shell)


@dataclass(frozen=True)
class Phase:
    """``windows`` windows of traffic whose domains are drawn in the proportions of ``mix``."""

    name: str
    windows: int
    mix: dict[str, float]

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ValueError(f"phase {self.name!r}: windows must be at least 1")
        if not self.mix or any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError(f"phase {self.name!r}: mix needs non-negative weights with a positive sum")


@dataclass(frozen=True)
class Query:
    text: str
    domain: str
    """The true domain (the trace's label; the ecosystem never sees it)."""
    window: int
    phase: str
    shape: str = "snippet"
    """``snippet`` (cut from a held-out document) or ``query`` (the parent's question about one)."""


def snippets(texts: list[str], *, min_chars: int, max_chars: int, rng: random.Random) -> list[str]:
    """Cut documents into runs of 1-4 consecutive sentences or lines of ``min_chars``-``max_chars`` characters."""
    out = []
    for text in texts:
        units = [u.strip() for u in UNIT.split(text) if u and u.strip()]
        i = 0
        while i < len(units):
            n = rng.randint(1, 4)
            piece = " ".join(units[i:i + n])[:max_chars]
            i += n
            if len(piece) >= min_chars:
                out.append(piece)
    return out


def domain_pools(registry, domains: list[str], *, seed: int, split: str = "test", min_chars: int = 40,
                 max_chars: int = 400, max_docs: int = 400) -> dict[str, list[str]]:
    """Shuffled snippets of each domain's ``split`` (by default test: the held-out documents)."""
    pools = {}
    for domain in domains:
        found = registry.find(kind="dataset", name=f"{domain}/{split}")
        if not found:
            raise ValueError(f"no dataset {domain}/{split} registered: build the corpora first")
        texts = []
        for text in iter_texts(found[0].path):
            texts.append(text)
            if len(texts) >= max_docs:
                break
        rng = random.Random(f"{seed}-{domain}")
        pool = snippets(texts, min_chars=min_chars, max_chars=max_chars, rng=rng)
        if not pool:
            raise ValueError(f"{domain}/test has no snippet of at least {min_chars} characters")
        rng.shuffle(pool)
        pools[domain] = pool
    return pools


def with_queries(pools: dict[str, list[str]], queries: dict[str, list[str]], share: float) -> dict[str, list[str]]:
    """Each pool with ``queries`` of its domain spread through it, so that about ``share`` of what the
    trace draws from it is query-shaped (queries cycle when there are fewer than needed)."""
    out = {}
    for domain, pool in pools.items():
        asked = queries.get(domain, [])
        if not asked or share <= 0:
            out[domain] = list(pool)
            continue
        mixed, q = [], 0
        for text in pool:
            while q < share * (len(mixed) + 1):  # keep the running query share at ``share``
                mixed.append(asked[q % len(asked)])
                q += 1
            mixed.append(text)
        out[domain] = mixed
    return out


def build_trace(pools: dict[str, list[str]], phases: list[Phase], *, queries_per_window: int,
                seed: int, query_texts: frozenset = frozenset()) -> list[list[Query]]:
    """Windows of queries following each phase's mix; a pool is cycled if the trace outgrows it."""
    unknown = {d for p in phases for d in p.mix} - set(pools)
    if unknown:
        raise ValueError(f"phases name domains without snippets: {sorted(unknown)}")
    rng = random.Random(seed)
    cursor = dict.fromkeys(pools, 0)
    windows: list[list[Query]] = []
    for phase in phases:
        for _ in range(phase.windows):
            domains = _window_domains(phase, queries_per_window, rng)
            window = []
            for domain in domains:
                pool = pools[domain]
                text = pool[cursor[domain] % len(pool)]
                window.append(Query(text, domain, len(windows), phase.name,
                                    "query" if text in query_texts else "snippet"))
                cursor[domain] += 1
            windows.append(window)
    return windows


def _window_domains(phase: Phase, count: int, rng: random.Random) -> list[str]:
    """Exactly the mix's proportions (largest remainder), in a shuffled order."""
    total = sum(phase.mix.values())
    exact = {d: count * w / total for d, w in phase.mix.items()}
    counts = {d: int(x) for d, x in exact.items()}
    for d in sorted(exact, key=lambda d: (counts[d] - exact[d], d))[:count - sum(counts.values())]:
        counts[d] += 1
    domains = [d for d in sorted(counts) for _ in range(counts[d])]
    rng.shuffle(domains)
    return domains
