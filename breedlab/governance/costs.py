"""Equation 1 from measured costs: what breeding children cost against fine-tuning the parent per domain.

The seed paper (002) prices K specialisations at ``C_Genesis(K) = C_train + K·p·C_finetune`` and puts
the crossover with repeated fine-tuning (``K·C_finetune``) at ``K* ≈ 16 for p = 0.10``, without
measuring anything. Here every term is read from the registry's ``breed-cost`` events
(``operators/breed_cost.py``): ``C_finetune`` is the mean cost of the adapter fine-tunes, p the mean
parameter ratio of the CMG children to their parent, and each child's own measured cost stands beside
the ``p·C_finetune`` the equation assumes for it. ``C_train`` is the one-off cost paid before the first
child: breedlab imports a pretrained parent, so it is 0 unless the caller names one (the parent's own
training cost, say). Two crossovers follow: Equation 1's, ``K* = C_train / ((1 - p)·C_finetune)``, and
the measured one, ``C_train / (C_finetune - C_child)``, which does not exist when a child costs more
than a fine-tune.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.registry import Registry

CHILD_OPERATORS = ("cmg",)
FINETUNE_OPERATORS = ("adapter-finetune",)
PAPER_K_STAR = (16, 0.10)


@dataclass(frozen=True)
class CostRow:
    artifact: str
    name: str
    operator: str
    cpu_seconds: float
    flops: float
    runs: int
    p: float | None
    """Parameters as a share of the first parent's (None when unknown)."""


def breed_costs(registry: Registry) -> list[CostRow]:
    """One row per bred artifact: the sum of its ``breed-cost`` events (a re-breed after gc adds one)."""
    sums: dict[str, list] = {}
    for event in registry.events():
        if event.type == "breed-cost":
            entry = sums.setdefault(event.artifact, [event.data.get("operator", "?"), 0.0, 0.0, 0])
            entry[1] += event.data.get("cpu_seconds", 0.0)
            entry[2] += event.data.get("flops", 0.0)
            entry[3] += event.data.get("runs", 0)
    rows = []
    for artifact_id, (operator, cpu, flops, runs) in sums.items():
        artifact = registry.get(artifact_id)
        rows.append(CostRow(artifact_id, artifact.manifest.name, operator, cpu, flops, runs,
                            _parameter_ratio(registry, artifact)))
    return rows


def _parameter_ratio(registry: Registry, artifact) -> float | None:
    params = artifact.manifest.metrics.get("parameters")
    if not params or not artifact.manifest.parents:
        return None
    parent = registry.get(artifact.manifest.parents[0]).manifest.metrics.get("parameters")
    return params / parent if parent else None


@dataclass(frozen=True)
class EquationOne:
    c_train: float
    c_finetune: float | None
    children: int
    p: float | None
    c_child: float | None
    """The children's mean measured cost."""

    @property
    def assumed_child(self) -> float | None:
        """What Equation 1 charges per child: p·C_finetune."""
        return self.p * self.c_finetune if self.p is not None and self.c_finetune else None

    def genesis(self, k: int, measured: bool) -> float | None:
        per_child = self.c_child if measured else self.assumed_child
        return None if per_child is None else self.c_train + k * per_child

    @property
    def k_star_equation(self) -> float | None:
        if not self.c_finetune or self.p is None or self.p >= 1:
            return None
        return self.c_train / ((1 - self.p) * self.c_finetune)

    @property
    def k_star_measured(self) -> float | None:
        """None when a child costs at least a fine-tune: breeding never catches up."""
        if not self.c_finetune or self.c_child is None or self.c_child >= self.c_finetune:
            return None
        return self.c_train / (self.c_finetune - self.c_child)


def equation_one(rows: list[CostRow], c_train: float = 0.0) -> EquationOne:
    """Equation 1's terms in CPU-seconds from the measured rows."""
    finetunes = [r.cpu_seconds for r in rows if r.operator in FINETUNE_OPERATORS]
    children = [r for r in rows if r.operator in CHILD_OPERATORS]
    ratios = [r.p for r in children if r.p is not None]
    return EquationOne(
        c_train=c_train,
        c_finetune=sum(finetunes) / len(finetunes) if finetunes else None,
        children=len(children),
        p=sum(ratios) / len(ratios) if ratios else None,
        c_child=sum(r.cpu_seconds for r in children) / len(children) if children else None,
    )


def equation_terms(eq: EquationOne) -> list[tuple[str, str, str]]:
    """Equation 1's terms as (term, value, how) rows, CPU-seconds: what ``registry costs`` and the report show."""
    k = eq.children
    never = "never: a child costs at least a fine-tune" if eq.c_child is not None and eq.c_finetune else "-"
    return [
        ("C_train", f"{eq.c_train:,.1f}", "one-off, before any child (--c-train)"),
        ("C_finetune", shown(eq.c_finetune, ",.1f"), "mean measured adapter fine-tune"),
        ("p", shown(eq.p, ".3f"), "mean measured child/parent parameters"),
        ("p·C_finetune", shown(eq.assumed_child, ",.1f"), "what Equation 1 charges per child"),
        ("C_child", shown(eq.c_child, ",.1f"), "mean measured child (CMG) breed"),
        (f"C_Genesis(K={k}), Equation 1", shown(eq.genesis(k, measured=False), ",.1f"), "C_train + K·p·C_finetune"),
        (f"C_Genesis(K={k}), measured", shown(eq.genesis(k, measured=True), ",.1f"), "C_train + K·C_child"),
        (f"K·C_finetune (K={k})", shown(eq.c_finetune * k if eq.c_finetune else None, ",.1f"),
         "fine-tuning the parent per domain"),
        ("K*, Equation 1", shown(eq.k_star_equation, ".2f"), "C_train / ((1 - p)·C_finetune)"),
        ("K*, measured", shown(eq.k_star_measured, ".2f", never), "C_train / (C_finetune - C_child)"),
        ("K*, the paper", "~16 at p = 0.10", "seed 002, analytical, not measured"),
    ]


def shown(value: float | None, spec: str, missing: str = "-") -> str:
    """``value`` formatted by ``spec``, or ``missing`` when it was not measured."""
    return missing if value is None else format(value, spec)


def costs_panel(rows: list[CostRow], c_train: float = 0.0) -> dict:
    """The breeds and Equation 1's terms as the report's timeline carries them (``breed_costs``)."""
    return {"rows": [{"name": r.name, "operator": r.operator, "cpu_seconds": r.cpu_seconds, "flops": r.flops,
                      "p": r.p} for r in rows],
            "terms": [list(term) for term in equation_terms(equation_one(rows, c_train))]}
