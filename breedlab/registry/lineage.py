"""Ancestry of an artifact as a tree: the artifact, its parents, theirs, and so on."""

from __future__ import annotations

from rich.tree import Tree

from breedlab.registry.store import Artifact, Registry

STATE_STYLE = {"champion": "bold green", "candidate": "yellow", "retired": "dim", "rejected": "red"}


def describe(artifact: Artifact) -> str:
    state = artifact.state or "-"
    style = STATE_STYLE.get(state, "cyan")
    return (f"[bold]{artifact.manifest.kind}[/] {artifact.manifest.name} "
            f"[dim]{artifact.id[:12]}[/] [{style}]{state}[/] via {artifact.manifest.operator}")


def ancestry_tree(registry: Registry, artifact_id: str, *, show_data: bool = True) -> Tree:
    """A rich Tree rooted at the artifact whose branches are its ancestors."""
    artifact = registry.get(artifact_id)
    tree = Tree(describe(artifact))
    _add_ancestors(registry, artifact, tree, show_data, seen={artifact.id})
    return tree


def _add_ancestors(registry: Registry, artifact: Artifact, node: Tree, show_data: bool, seen: set[str]) -> None:
    for parent_id in artifact.manifest.parents:
        parent = registry.get(parent_id)
        branch = node.add(describe(parent))
        if parent.id not in seen:  # a merge can reach one ancestor by two paths
            _add_ancestors(registry, parent, branch, show_data, seen | {parent.id})
    if show_data:
        for data_id in artifact.manifest.data:
            data = registry.get(data_id)
            node.add(f"[magenta]data[/] {data.manifest.name} [dim]{data.id[:12]}[/]")


def generations(registry: Registry, artifact_id: str) -> int:
    """Length of the longest parent chain ending at this artifact (a root is 1)."""
    artifact = registry.get(artifact_id)
    return 1 + max((generations(registry, p) for p in artifact.manifest.parents), default=0)


def descendants_tree(registry: Registry, root_id: str) -> Tree:
    """A rich Tree rooted at ``root_id`` whose branches are its children, grandchildren, ..."""
    root = registry.get(root_id)
    tree = Tree(describe(root))
    _add_descendants(registry, root.id, tree, seen={root.id})
    return tree


def _add_descendants(registry: Registry, artifact_id: str, node: Tree, seen: set[str]) -> None:
    for child_id in registry.children(artifact_id):
        branch = node.add(describe(registry.get(child_id)))
        if child_id not in seen:
            _add_descendants(registry, child_id, branch, seen | {child_id})


def full_precision(registry: Registry, artifact: Artifact) -> Artifact:
    """A quantized stack's full-precision source (the model whose weights it stores in int8 or fp16), else
    the artifact itself. A stack's recipe is the quantization's: what it is for (its domain, its p) and
    what a descendant is bred from are its source's."""
    while artifact.manifest.kind == "quantized" and artifact.manifest.parents:
        artifact = registry.get(artifact.manifest.parents[0])
    return artifact
