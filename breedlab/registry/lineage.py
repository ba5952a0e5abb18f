"""Lineage questions every layer asks of a model artifact."""

from __future__ import annotations

from .store import Artifact, Registry


def full_precision(registry: Registry, artifact: Artifact) -> Artifact:
    """A quantized stack's full-precision source (the model whose weights it stores in int8 or fp16), else
    the artifact itself. A stack's recipe is the quantization's: what it is for (its domain, its p) and
    what a descendant is bred from are its source's."""
    while artifact.manifest.kind == "quantized" and artifact.manifest.parents:
        artifact = registry.get(artifact.manifest.parents[0])
    return artifact
