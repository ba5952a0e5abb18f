"""The lineage graph of the ecosystem report: a layered tree drawn as inline SVG.

The frozen parent sits on top; a model's layer is one below its deepest
known parent, so a merged model (two parents) sits under both and gets an
edge from each. Within a layer, nodes are ordered by the mean x of their
parents (the barycentre heuristic) so edges cross as little as a tree allows.
"""

from __future__ import annotations

from breedlab.report.style import esc, short_id, state_color

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 214, 66, 28, 62, 18
MERGE_EDGE = "#0891b2"  # edges into a model with two or more parents


def lineage_svg(parent: dict, models: list[dict]) -> str:
    """The tree of ``parent`` and ``models`` (timeline schema) as one ``<svg>`` element."""
    root = parent["id"]
    nodes = {root: {"id": root, "name": parent["name"], "state": "parent",
                    "operator": "frozen parent", "domain": None, "ratio": None, "parents": []}}
    nodes.update({m["id"]: m for m in models if m["id"] != root})
    layers = _layers(root, nodes)
    pos = _place(layers, nodes)
    width = max(len(layer) for layer in layers) * (NODE_W + GAP_X) - GAP_X + 2 * PAD
    height = len(layers) * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD
    body = [_DEFS]
    for node_id, node in nodes.items():
        body.extend(_edges(node_id, _known_parents(node, nodes, root), pos))
    body.extend(_node(nodes[node_id], *pos[node_id]) for node_id in pos)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" aria-label="lineage graph" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">' + "".join(body) + "</svg>")


def _known_parents(node: dict, nodes: dict, root: str) -> list[str]:
    """Parents drawn as edges; a model whose parents are all unknown hangs off the root."""
    if node["id"] == root:
        return []
    known = [p for p in node["parents"] if p in nodes and p != node["id"]]
    return known or [root]


def _layers(root: str, nodes: dict) -> list[list[str]]:
    depth: dict[str, int] = {root: 0}

    def visit(node_id: str, path: frozenset) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in path:  # a cycle in a malformed lineage: cut it here
            return 0
        parents = _known_parents(nodes[node_id], nodes, root)
        depth[node_id] = 1 + max(visit(p, path | {node_id}) for p in parents)
        return depth[node_id]

    for node_id in nodes:
        visit(node_id, frozenset())
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node_id in nodes:  # keeps the timeline's order inside a layer before sorting
        layers[depth[node_id]].append(node_id)
    return [layer for layer in layers if layer]


def _place(layers: list[list[str]], nodes: dict) -> dict[str, tuple[float, float]]:
    """Top-left corner of every node, each layer centred in the widest layer's width."""
    root = layers[0][0]
    widest = max(len(layer) for layer in layers) * (NODE_W + GAP_X) - GAP_X
    pos: dict[str, tuple[float, float]] = {}
    for depth, layer in enumerate(layers):
        def centre(node_id: str) -> float:
            xs = [pos[p][0] for p in _known_parents(nodes[node_id], nodes, root) if p in pos]
            return sum(xs) / len(xs) if xs else 0.0

        ordered = sorted(layer, key=centre)
        span = len(ordered) * (NODE_W + GAP_X) - GAP_X
        x0 = PAD + (widest - span) / 2
        for k, node_id in enumerate(ordered):
            pos[node_id] = (x0 + k * (NODE_W + GAP_X), PAD + depth * (NODE_H + GAP_Y))
    return pos


def _edges(node_id: str, parents: list[str], pos: dict) -> list[str]:
    x2, y2 = pos[node_id][0] + NODE_W / 2, pos[node_id][1]
    merged = len(parents) > 1
    color, marker = (MERGE_EDGE, "arrow-merge") if merged else ("#94a3b8", "arrow")
    out = []
    for p in parents:
        x1, y1 = pos[p][0] + NODE_W / 2, pos[p][1] + NODE_H
        mid = (y1 + y2) / 2
        out.append(f'<path class="edge" d="M{x1:.1f} {y1:.1f} C{x1:.1f} {mid:.1f} {x2:.1f} {mid:.1f} '
                   f'{x2:.1f} {y2 - 3:.1f}" fill="none" stroke="{color}" stroke-width="1.8" '
                   f'marker-end="url(#{marker})"/>')
    return out


def _node(node: dict, x: float, y: float) -> str:
    state = node["state"]
    color = state_color(state)
    dash = ' stroke-dasharray="5 3"' if state in ("retired", "rejected") else ""
    name = node["name"] if len(node["name"]) <= 24 else node["name"][:23] + "\u2026"
    detail = " \u00b7 ".join(part for part in (node.get("operator"), node.get("domain"),
                                               None if node.get("ratio") is None else f"p={node['ratio']:g}")
                             if part)
    detail = detail if len(detail) <= 34 else detail[:33] + "\u2026"
    pill_w = 8 + 6.4 * len(state)
    return (f'<g class="node" data-id="{esc(node["id"])}" data-state="{esc(state)}">'
            f'<title>{esc(node["name"])}\n{esc(node["id"])}\nstate: {esc(state)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="9" fill="{color}" '
            f'fill-opacity="0.09" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{x + 12:.1f}" y="{y + 22:.1f}" font-size="13.5" font-weight="650" fill="#0f172a">'
            f'{esc(name)}</text>'
            f'<text x="{x + 12:.1f}" y="{y + 39:.1f}" font-size="11.5" fill="#475569" '
            f'font-family="ui-monospace, DejaVu Sans Mono, monospace">{esc(short_id(node["id"]))}</text>'
            f'<text x="{x + 12:.1f}" y="{y + 56:.1f}" font-size="11.5" fill="#334155">{esc(detail)}</text>'
            f'<rect x="{x + NODE_W - pill_w - 8:.1f}" y="{y + 30:.1f}" width="{pill_w:.1f}" height="17" '
            f'rx="8.5" fill="{color}"/><text x="{x + NODE_W - pill_w / 2 - 8:.1f}" y="{y + 42.5:.1f}" '
            f'font-size="10.5" font-weight="600" fill="#fff" text-anchor="middle">{esc(state)}</text></g>')


_DEFS = ('<defs>'
         '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#94a3b8"/></marker>'
         f'<marker id="arrow-merge" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         f'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="{MERGE_EDGE}"/></marker></defs>')
