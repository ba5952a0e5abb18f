"""Promotion and rollback: separate authority, evidence required, budgets enforced, every step an event.

``promote`` refuses unless (1) the acting identity is a configured approver,
(2) it is not the identity that bred the candidate, (3) a registered evidence
packet for this candidate and niche passed every gate and decided
``promote``, and (4) the niche and weight budgets still hold. Crowning a new
champion retires the previous child champion in the same command; the parent
is never retired (it is the no-op route). ``rollback`` retires the current
champion and restores the previous one, both as ``rolled-back`` events.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from breedlab.governance.config import GovernanceConfig
from breedlab.governance.niche import (
    ACTIVE_STATES,
    active_children,
    active_weight_bytes,
    all_active_children,
    breeder_of,
    current_champion,
    previous_champion,
)
from breedlab.registry import Event, Registry, RegistryError
from breedlab.registry.lifecycle import Move


class AuthorityError(RegistryError):
    """The acting identity may not do this."""


class EvidenceError(RegistryError):
    """No passing evidence packet supports this promotion."""


class BudgetError(RegistryError):
    """The promotion would break a population or resource budget."""


def check_approver(config: GovernanceConfig, identity: str) -> None:
    if identity not in config.approvers:
        raise AuthorityError(f"{identity!r} is not an approver (approvers: {', '.join(config.approvers)})")


def promote(registry: Registry, config: GovernanceConfig, candidate_id: str, to: str, *, niche: str,
            approver: str, reason: str, now: datetime | None = None) -> list[Event]:
    if to not in ACTIVE_STATES:
        raise RegistryError(f"promote --to must be one of {ACTIVE_STATES}")
    check_approver(config, approver)
    candidate = registry.get(candidate_id)
    if breeder_of(registry, candidate.id) == approver:
        raise AuthorityError(f"{approver!r} bred {candidate.id[:12]}; the breeding side cannot promote its own work")
    packet_id = passing_evidence(registry, candidate.id, niche)
    _check_budgets(registry, config, candidate, niche)
    now = now or datetime.now(timezone.utc)
    lease = (now + timedelta(days=config.lease_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = current_champion(registry, niche) if to == "champion" else None
    data = {"niche": niche, "evidence": packet_id, "lease_until": lease,
            "previous_champion": previous.id if previous else None}
    moves = [Move(candidate.id, to, "promoted", approver, reason, data)]
    if previous is not None and previous.id != candidate.id and previous.manifest.kind != "parent":
        moves.append(Move(previous.id, "retired", "retired", approver, f"superseded by {candidate.id[:12]} in {niche}",
                          {"niche": niche, "successor": candidate.id}))
    return registry.transitions(moves)  # one append: a crash never leaves two champions


def rollback(registry: Registry, config: GovernanceConfig, niche: str, *, approver: str, reason: str) -> list[Event]:
    """Retire the niche's champion and restore the one before it (or the parent's no-op route)."""
    check_approver(config, approver)
    current = current_champion(registry, niche)
    if current is None:
        raise RegistryError(f"niche {niche!r} has no champion to roll back (the parent already serves it)")
    previous = previous_champion(registry, niche, current)
    restored = previous.id if previous else None
    moves = [Move(current.id, "retired", "rolled-back", approver, reason, {"niche": niche, "restored": restored})]
    if previous is not None:
        moves.append(Move(previous.id, "champion", "rolled-back", approver, reason,
                          {"niche": niche, "replaces": current.id}))
    return registry.transitions(moves)  # one append: a crash never leaves the niche half rolled back


def passing_evidence(registry: Registry, candidate_id: str, niche: str) -> str:
    """The id of the newest evidence packet for this candidate and niche that passed and decided promote,
    and that ``packet_authority.refusal`` accepts (unaltered, under the evaluation config in force, and in
    a signed home signed by an evaluator who did not breed the candidate)."""
    from breedlab.evaluation.packet_authority import refusal
    from breedlab.evaluation.packets import PacketError, load_packet

    breeder, refused = breeder_of(registry, candidate_id), []
    for packet in map(registry.get, registry.children(candidate_id, kind="packet")):  # indexed, newest first
        try:
            body = load_packet(registry, packet.id)
        except PacketError as exc:
            refused.append(f"{packet.id[:12]}: {exc}")  # verify reports it too; here it is simply no evidence
            continue
        if body.get("type") in ("evidence", "routing") and body.get("niche") == niche and body.get("candidate") == candidate_id \
                and body.get("decision", {}).get("outcome") == "promote" \
                and all(g.get("passed") for g in body.get("gates", [])):
            reason = refusal(registry, packet, body, breeder)
            if reason is None:
                return packet.id
            refused.append(f"{packet.id[:12]}: {reason}")
    raise EvidenceError(f"no passing evidence packet promotes {candidate_id[:12]} in niche {niche!r}"
                        + (f" (refused: {'; '.join(refused)})" if refused else "; evaluate it first (breedlab lab)"))


def _check_budgets(registry: Registry, config: GovernanceConfig, candidate, niche: str) -> None:
    active = active_children(registry, niche)
    if candidate.manifest.kind != "parent" and candidate.id not in {a.id for a in active}:
        if len(active) + 1 > config.max_children_per_niche:
            raise BudgetError(f"niche {niche!r} already has {len(active)} active children "
                              f"(budget {config.max_children_per_niche}); retire one first")
        population = all_active_children(registry)
        if candidate.id not in {a.id for a in population} and len(population) + 1 > config.max_active_children:
            raise BudgetError(f"the population already has {len(population)} active children "
                              f"(budget {config.max_active_children}); prune or merge first")
        weights = sum(e.size for n, e in candidate.manifest.files.items() if n.endswith(".safetensors"))
        total = active_weight_bytes(registry) + weights
        if total > config.max_total_weight_bytes:
            raise BudgetError(f"active weights would total {total:,} bytes "
                              f"(budget {config.max_total_weight_bytes:,})")
