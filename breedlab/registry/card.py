"""Human-readable model/dataset cards written beside the files of an artifact.

The card uses the Hugging Face front matter conventions (``base_model`` and
``base_model_relation``) with registry ids in place of hub names, so tools
that read HF cards see the lineage. It is generated from the identity fields
only (no timestamps), so the same artifact always gets the same card bytes.
"""

from __future__ import annotations

import json

from breedlab.registry.manifest import MODEL_KINDS, Manifest

# The HF vocabulary for how a model derives from its base.
RELATION_BY_KIND = {"adapter": "adapter", "quantized": "quantized", "merged": "merge", "child": "finetune"}
MAX_RECIPE_CHARS = 6000


def render_card(manifest: Manifest) -> str:
    """The README.md text for ``manifest`` (YAML front matter, then Markdown)."""
    return _front_matter(manifest) + _body(manifest)


def _front_matter(manifest: Manifest) -> str:
    lines = ["---", "library_name: breedlab", f"tags: [breedlab, {manifest.kind}]"]
    if manifest.kind in MODEL_KINDS:
        lines.append("pipeline_tag: text-generation")
    if manifest.parents:
        lines.append("base_model:")
        lines += [f"- breedlab:{parent}" for parent in manifest.parents]
        relation = RELATION_BY_KIND.get(manifest.kind)
        if relation:
            lines.append(f"base_model_relation: {relation}")
    if manifest.data:
        lines.append("datasets:")
        lines += [f"- breedlab:{data_id}" for data_id in manifest.data]
    lines.append("---")
    return "\n".join(lines) + "\n\n"


def _body(manifest: Manifest) -> str:
    recipe = json.dumps(manifest.recipe, indent=2, sort_keys=True)
    if len(recipe) > MAX_RECIPE_CHARS:
        recipe = recipe[:MAX_RECIPE_CHARS] + "\n... (truncated; the manifest has it all)"
    files = "\n".join(
        f"| `{name}` | {entry.size:,} | `{entry.sha256[:16]}` |"
        for name, entry in sorted(manifest.files.items())
        if name != "README.md"
    )
    parents = ", ".join(f"`{p[:12]}`" for p in manifest.parents) or "none (a root)"
    return (
        f"# {manifest.name}\n\n"
        f"A breedlab **{manifest.kind}** made by the `{manifest.operator}` operator.\n"
        f"Parents: {parents}. Files are content-addressed; "
        "`breedlab registry verify` re-checks every hash.\n\n"
        f"## Files\n\n| file | bytes | sha256 |\n|---|---:|---|\n{files}\n\n"
        f"## Recipe\n\n```json\n{recipe}\n```\n"
    )
