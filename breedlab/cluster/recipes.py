"""A population's candidate recipes: a typed YAML file, or the lab's own recipes.

    candidates:
      - name: cmg-p50          # unique; the row of the live table and of the fitness table
        operator: cmg          # any operator of the table (``breedlab operate --list``)
        preset: compact        # cmg only: the named recipe the fields go on top of
        ratio: 0.5             # the rest are the operator's recipe fields, checked by its class
        tokens: 8192
      - name: lora
        operator: adapter-finetune
        tokens: 4096

``domain`` is the niche's, so the same file breeds every niche of ``--niche``. An unknown field, a wrong
type or a value the recipe refuses is an error naming the file and the candidate, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breedlab.lab.run import LabConfig
from breedlab.lab.steps import STACKS, lab_recipes
from breedlab.registry import Registry
from breedlab.typed_config import expect_mapping, read_yaml

RESERVED = ("name", "operator", "preset")


@dataclass(frozen=True)
class CandidateRecipe:
    name: str
    operator: str
    preset: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def recipe_for(self, niche: str):
        """The operator's recipe object for ``niche``."""
        from breedlab.cmg.recipe import preset_recipe
        from breedlab.operators.table import build_recipe

        if "domain" in self.fields:
            raise ValueError(f"candidate {self.name!r}: 'domain' comes from --niche, not the recipe file")
        if self.preset is not None:
            if self.operator != "cmg":
                raise ValueError(f"candidate {self.name!r}: presets are cmg recipes, not {self.operator!r}")
            return preset_recipe(self.preset, niche, **self.fields)
        return build_recipe(self.operator, {"domain": niche, **self.fields})


def load_recipes(path: Path | str) -> list[CandidateRecipe]:
    """The candidates of a recipes file, each checked against its operator's recipe class."""
    from breedlab.operators.table import operator_entry

    body = expect_mapping(read_yaml(path), str(path))
    if set(body) != {"candidates"} or not isinstance(body["candidates"], list) or not body["candidates"]:
        raise ValueError(f"{path}: expected one key, 'candidates', holding a non-empty list")
    candidates = []
    for number, raw in enumerate(body["candidates"], 1):
        entry = expect_mapping(raw, f"{path}: candidate {number}")
        where = f"{path}: candidate {number} ({entry.get('name', 'unnamed')})"
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("operator"), str):
            raise ValueError(f"{where}: needs a 'name' and an 'operator'")
        try:
            operator_entry(entry["operator"])
            candidate = CandidateRecipe(entry["name"], entry["operator"], entry.get("preset"),
                                        {k: v for k, v in entry.items() if k not in RESERVED})
            candidate.recipe_for("check")  # every field checked now, not after an hour of breeding
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{where}: {error}") from None
        candidates.append(candidate)
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: candidate names must be unique: {names}")
    return candidates


@dataclass(frozen=True)
class BuiltCandidate:
    """A candidate whose recipe is already built for its niche: one of the lab's own (``lab_recipes``)."""

    name: str
    operator: str
    recipe: Any

    def recipe_for(self, niche: str):
        return self.recipe


def lab_candidates(registry: Registry, config_for, niche: str) -> list[BuiltCandidate]:
    """The home's lab candidates (``lab.yaml``), less those stacked on the CMG child (a population breeds
    every candidate from the champion, at once). The lab's candidate names are its operators' names."""
    config: LabConfig = config_for(niche)
    recipes = lab_recipes(registry, config)
    return [BuiltCandidate(name, name, recipes[name]) for name in config.candidates if name not in STACKS]
