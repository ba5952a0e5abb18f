"""Cleaning the parent's generated queries: extract the question, drop what a user would not send.

Each generation is first reduced to its question (a small model often wraps it:
``A user might ask: "How ...?"``), then checked in order; the first failed check
names the reason it is dropped, and every reason is counted:

- ``empty``: nothing left after extraction;
- ``length``: under 12 or over 200 characters (a query, not a word or an essay);
- ``degenerate``: under half of its words distinct (repetition loops);
- ``copied_example``: the prompt's worked example repeated (or nearly);
- ``ungrounded``: shares no content word (4+ letters, not a stop word) with the
  document it was written about, so its label would be a guess;
- ``near_duplicate``: character 4-gram Jaccard >= 0.7 with a query already kept.

The filter never looks at a domain label, so it cannot make a router look better
by keeping only the easy cases.
"""

from __future__ import annotations

import re

WORDS = re.compile(r"[a-z0-9]+")
QUOTED = re.compile(r"[\"“]([^\"”]{8,}?[?.!]?)[\"”]")
PREFIX = re.compile(r"^(?:question|q|user|a user (?:might|would|could) ask)\s*[:,-]\s*", re.IGNORECASE)
STOP = frozenset("""about above after again also another because been before being between both
could does doing down during each from further have having here into itself just like more most
much only other over same should some such than that their them then there these they this those
through under until very what when where which while whom will with would your yours you what's
how's give tell explain please know want need make used using user text""".split())
MIN_CHARS, MAX_CHARS = 12, 200
NEAR_DUPLICATE = 0.7
REASONS = ("empty", "length", "degenerate", "copied_example", "ungrounded", "near_duplicate")


def extract_query(generation: str) -> str:
    """The question inside a generation: a quoted question if there is one, else the first line."""
    text = generation.strip()
    quoted = [q for q in QUOTED.findall(text) if q.rstrip().endswith("?")]
    if quoted:
        return quoted[0].strip()
    first = text.split("\n", 1)[0].strip().strip('"“”').strip()
    return PREFIX.sub("", first).strip()


def content_words(text: str) -> set[str]:
    return {w for w in WORDS.findall(text.lower()) if len(w) >= 4 and w not in STOP}


def shingles(text: str, n: int = 4) -> set[str]:
    collapsed = " ".join(WORDS.findall(text.lower()))
    return {collapsed[i:i + n] for i in range(max(len(collapsed) - n + 1, 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(len(a | b), 1)


def rejection(query: str, document: str, avoid: list[set], kept: list[set]) -> str | None:
    """Why ``query`` is dropped (the first failed check), or None to keep it."""
    if not query:
        return "empty"
    if not MIN_CHARS <= len(query) <= MAX_CHARS:
        return "length"
    words = WORDS.findall(query.lower())
    if len(set(words)) < 0.5 * len(words):
        return "degenerate"
    grams = shingles(query)
    if any(jaccard(grams, a) >= NEAR_DUPLICATE for a in avoid):
        return "copied_example"
    if not content_words(query) & content_words(document):
        return "ungrounded"
    if any(jaccard(grams, k) >= NEAR_DUPLICATE for k in kept):
        return "near_duplicate"
    return None


def filter_generations(generations: list[str], documents: list[str], *,
                       avoid: list[str] = ()) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(index, query) pairs kept, in order, and the counts: generated, kept, and one per reason."""
    counts = {"generated": len(generations), "kept": 0, **dict.fromkeys(REASONS, 0)}
    avoid_grams = [shingles(a) for a in avoid]
    kept: list[tuple[int, str]] = []
    kept_grams: list[set] = []
    for index, (generation, document) in enumerate(zip(generations, documents, strict=True)):
        query = extract_query(generation)
        reason = rejection(query, document, avoid_grams, kept_grams)
        if reason:
            counts[reason] += 1
            continue
        kept.append((index, query))
        kept_grams.append(shingles(query))
    counts["kept"] = len(kept)
    return kept, counts
