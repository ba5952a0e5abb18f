"""``breedlab demo``: the main job on the embedded default, end to end.

Today it imports the real parent, builds the domain corpora and shows the
registry; later stages (breeding, evaluation, the ecosystem) extend this same
straight-line script. Every step is idempotent: a second run reuses what is
already registered and takes seconds.
"""

from __future__ import annotations

from rich.console import Console

from .home import Home
from .registry import Artifact, Registry
from .registry.lineage import descendants_tree

DEMO_ACTOR = "breedlab-demo"


def run_demo(console: Console, home: Home, *, parent_source: str = "smollm2") -> None:
    from .data.build import build_corpora
    from .parent import import_parent
    from .views import artifact_table, print_build_report, run_verify

    console.print(f"[bold]breedlab demo[/]  home: {home.root}")
    registry = Registry.open(home.registry_dir)

    console.rule("1. the frozen parent")
    parent = crown_parent(registry, import_parent(registry, parent_source, cache_dir=home.cache_dir))
    console.print(f"parent {parent.manifest.name} [cyan]{parent.id[:12]}[/] ({parent.state}), "
                  f"{parent.manifest.metrics.get('parameters', 0) / 1e6:.1f}M parameters")

    console.rule("2. domain corpora")
    print_build_report(console, build_corpora(home, registry))

    console.rule("3. the registry")
    console.print(artifact_table(registry.find()))

    console.rule("4. lineage")
    console.print(descendants_tree(registry, parent.id))

    console.rule("5. verify")
    run_verify(console, home.registry_dir)


def ensure_parent_and_data(console: Console, home: Home, registry: Registry, *, domains: list[str] | None = None,
                           parent_source: str = "smollm2") -> Artifact:
    """The champion parent (imported and crowned if needed) and the corpora the caller needs."""
    from .data.build import build_corpora
    from .parent import import_parent
    from .views import print_build_report

    parents = registry.find(kind="parent", state="champion")
    parent = parents[0] if parents else crown_parent(
        registry, import_parent(registry, parent_source, cache_dir=home.cache_dir))
    missing = [d for d in (domains or []) if not registry.find(kind="dataset", name=f"{d}/test")]
    if missing or domains is None:
        print_build_report(console, build_corpora(home, registry, domains=missing or None))
    return parent


def crown_parent(registry: Registry, parent: Artifact) -> Artifact:
    """A freshly imported parent becomes the champion: the route every query takes until a child earns one."""
    if parent.state == "candidate":
        registry.transition(parent.id, "champion", event_type="promoted", actor=DEMO_ACTOR,
                            reason="imported parent is the general champion and the no-op route")
    return registry.get(parent.id)
