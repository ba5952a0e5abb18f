"""The lab's verdict: gates and paired tests per candidate, evidence packets, the population, the release."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from breedlab.registry import Registry


def judge(registry: Registry, result, config, evaluation, governance, console: Console) -> dict[str, list[str]]:
    """An evidence packet per candidate (gates first, then the paired tests); return budget problems."""
    from breedlab.evaluation.decision import Decision, check_budget, decide
    from breedlab.evaluation.duplicates import duplicate_of
    from breedlab.evaluation.gates import evaluate_gates
    from breedlab.evaluation.packets import write_evidence_packet
    from breedlab.governance.niche import active_children, active_weight_bytes

    champion = result.fitness[result.champion.id]
    active, weights = len(active_children(registry, config.niche)), active_weight_bytes(registry)
    budgets, rows = {}, []
    seen = {result.champion.id: champion, **active_fitness(registry, config.niche, champion.suites)}
    for candidate in result.candidates:
        fitness = result.fitness[candidate.id]
        gates = evaluate_gates(fitness, evaluation)
        budgets[candidate.id] = check_budget(
            fitness, active_children_in_niche=active, max_children_per_niche=governance.max_children_per_niche,
            total_weight_bytes_active=weights, max_total_weight_bytes=governance.max_total_weight_bytes)
        duplicate = duplicate_of(fitness, seen, evaluation.duplicate_tolerance)
        decision = Decision("reject", [f"duplicate of {duplicate[0][:12]}: {duplicate[1]}, and no smaller"],
                            {"duplicate_of": duplicate[0]}) if duplicate else \
            decide(champion, fitness, evaluation, budget_problems=budgets[candidate.id])
        seen[candidate.id] = fitness
        packet = write_evidence_packet(registry, champion, fitness, gates, decision, niche=config.niche,
                                       evaluator=governance.evaluator)
        result.evidence[candidate.id] = packet.id
        rows.append((candidate, fitness, gates, decision, packet))
    console.print(fitness_table(result, rows))
    return budgets


def active_fitness(registry: Registry, niche: str, suites: dict[str, str]) -> dict:
    """The niche's active children as their newest evidence packet measured them on these same suites."""
    from breedlab.evaluation.fitness import FitnessVector
    from breedlab.evaluation.packets import PacketError, load_packet
    from breedlab.governance.niche import active_children

    found = {}
    for child in active_children(registry, niche):
        for packet in map(registry.get, registry.children(child.id, kind="packet")):  # indexed, newest first
            try:
                body = load_packet(registry, packet.id)
            except PacketError:
                continue
            measured = body.get("fitness", {}).get("candidate", {})
            if body.get("candidate") == child.id and measured.get("suites") == suites:
                found[child.id] = FitnessVector.from_dict(measured)
                break
    return found


def select_and_release(registry: Registry, result, config, evaluation, budgets, console: Console,
                       evaluator: str = "evaluator") -> None:
    from breedlab.evaluation.decision import select_population
    from breedlab.evaluation.packets import write_release_packet

    fitness = [result.fitness[c.id] for c in result.candidates]
    operators = {c.id: c.manifest.operator for c in result.candidates}
    result.selection = select_population(result.fitness[result.champion.id], fitness, evaluation,
                                         operators=operators, budget_problems=budgets)
    result.release = write_release_packet(registry, result.selection, list(result.evidence.values()),
                                          niche=config.niche, rollback_target=result.champion.id,
                                          evaluator=evaluator)
    _print_selection(registry, result, config, console)


def fitness_table(result, rows) -> Table:
    champion = result.fitness[result.champion.id]
    table = Table(title=f"fitness vectors (champion {result.champion.manifest.name})")
    for column in ("model", "operator", "utility", "domain ppl", "general +PPL", "token ms p50/p95",
                   "peak RSS MB", "weights MB", "GFLOP/tok", "gates", "decision"):
        table.add_column(column)
    table.add_row(*_cells(result.champion, champion), "-", "champion")
    for candidate, fitness, gates, decision, _ in rows:
        failed = [g.name for g in gates if not g.passed]
        table.add_row(*_cells(candidate, fitness), "pass" if not failed else "FAIL " + ",".join(failed),
                      decision.outcome)
    return table


def _cells(artifact, f) -> list[str]:
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    return [f"{artifact.manifest.name} {artifact.id[:8]}", f.operator, num(f.utility, ".3f"), num(f.domain_ppl, ".2f"),
            num(f.general_regression, "+.2f"),
            f"{num(f.latency_token_ms_p50, '.1f')}/{num(f.latency_token_ms_p95, '.1f')}",
            num(f.peak_rss_bytes and f.peak_rss_bytes / 2**20, ".0f"), num(f.weight_bytes and f.weight_bytes / 2**20, ".0f"),
            num(f.flops_per_token and f.flops_per_token / 1e9, ".3f")]


def _print_selection(registry: Registry, result, config, console: Console) -> None:
    selection, names = result.selection, {a.id: a.manifest.name for a in (result.champion, *result.candidates)}
    console.print(f"champion (kept, rollback target): {names[selection.champion]} {selection.champion[:12]}")
    for role in ("useful_specialist", "diverse_challenger"):
        chosen = getattr(selection, role)
        console.print(f"{role.replace('_', ' ')}: " + (f"{names[chosen]} {chosen[:12]}" if chosen else "none"))
    console.print(f"no-op: {selection.no_op}")
    for reason in selection.reasons:
        console.print(f"  - {reason}")
    console.print(f"release packet {result.release.id[:12]}: {result.release.path / 'packet.md'}")
    if selection.useful_specialist:
        console.print(f"an approver may now run: breedlab promote {selection.useful_specialist[:12]} "
                      f"--to shadow --niche {config.niche} --as <approver>")
