"""Which model answers a request, and why: the served catalogue and the routing decision.

The catalogue is the parent plus every active child (shadow, canary, champion),
read from the registry. Each has a public name, its artifact name (with
``@<id12>`` appended when two active models share a name); a request may also
name a model by id prefix, and ``parent`` always means the parent.

``auto`` is decided by ``ecosystem.decide.decide``, the rule the demo's replay
(``Ecosystem.serve``) uses too. A shadow child never serves: it only answers
copies in the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from breedlab.ecosystem.decide import Decision
from breedlab.registry import Artifact

__all__ = ["PARENT_ALIAS", "Catalogue", "Decision", "ModelNotFound"]

PARENT_ALIAS = "parent"


class ModelNotFound(LookupError):
    """The request names no served model (code says which case: not found, ambiguous, in shadow)."""

    def __init__(self, message: str, code: str = "model_not_found"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Catalogue:
    """The served models at one moment: public name -> artifact, and the parent's id."""

    models: dict[str, Artifact]
    parent_id: str

    @classmethod
    def build(cls, registry, parent: Artifact, children: list[Artifact]) -> Catalogue:
        counts: dict[str, int] = {}
        for artifact in [parent, *children]:
            counts[artifact.manifest.name] = counts.get(artifact.manifest.name, 0) + 1
        models = {}
        for artifact in [parent, *children]:
            name = artifact.manifest.name
            models[name if counts[name] == 1 else f"{name}@{artifact.id[:12]}"] = artifact
        return cls(models, parent.id)

    def name_of(self, artifact_id: str) -> str:
        """Public name of a served model; the id's first 12 characters for one no longer listed."""
        return next((n for n, a in self.models.items() if a.id == artifact_id), artifact_id[:12])

    def find(self, requested: str) -> Artifact:
        """The model a request names: public name, artifact name, ``parent``, or an id prefix (6+ hex)."""
        if requested == PARENT_ALIAS:
            return next(a for a in self.models.values() if a.id == self.parent_id)
        if requested in self.models:
            return self._servable(self.models[requested])
        by_name = [a for a in self.models.values() if a.manifest.name == requested]
        by_id = [a for a in self.models.values() if len(requested) >= 6 and a.id.startswith(requested.lower())]
        matches = by_name or by_id
        if len(matches) > 1:
            raise ModelNotFound(f"model {requested!r} is ambiguous; use one of "
                                f"{', '.join(self.name_of(a.id) for a in matches)}", "model_ambiguous")
        if not matches:
            raise ModelNotFound(f"the model {requested!r} does not exist or is not served; "
                                f"GET /v1/models lists the served models, or use 'auto'")
        return self._servable(matches[0])

    def _servable(self, artifact: Artifact) -> Artifact:
        if artifact.state == "shadow":
            raise ModelNotFound(f"{artifact.manifest.name} is in shadow: it answers copies of live traffic in the "
                                "background and is never returned; use 'auto' or a served model", "model_in_shadow")
        return artifact

    def listing(self) -> list[dict]:
        """OpenAI ``model`` objects with lineage: ``parent`` (direct) and ``root`` (the frozen parent)."""
        return [self._entry(name, artifact) for name, artifact in self.models.items()]

    def _entry(self, name: str, artifact: Artifact) -> dict:
        parents = list(artifact.manifest.parents)
        is_parent = artifact.id == self.parent_id
        created = datetime.fromisoformat(artifact.manifest.created.replace("Z", "+00:00")).timestamp() \
            if artifact.manifest.created else 0
        return {"id": name, "object": "model", "created": int(created), "owned_by": "breedlab",
                "parent": None if is_parent else (self.name_of(parents[0]) if parents else None),
                "root": name if is_parent else self.name_of(self.parent_id),
                "breedlab": {"artifact_id": artifact.id, "kind": artifact.manifest.kind, "state": artifact.state,
                             "parents": parents, "domain": artifact.manifest.recipe.get("domain"),
                             "servable": artifact.state != "shadow"}}
