"""Lifecycle states and the explicit transition table.

Models move candidate -> shadow -> canary -> champion -> retired; any
pre-champion state may be rejected. Forward jumps are allowed (``promote
--to champion`` from canary or shadow) because each promotion is separately
gated by evidence (the evaluation issue); what the table forbids is going
backwards without a named action: a rollback may bring a retired champion
back, a retired model may be promoted to shadow again on fresh evidence (a
spawn whose recipe re-derives a child pruned earlier gets that same,
content-addressed artifact: it starts over from live shadow traffic), and a
canary may be demoted to shadow, and so may a champion whose lease review finds its live quality
drifted (it must earn its place again). A rejected model stays rejected. champion -> champion
by ``promoted`` crowns a model in one more niche (a merged specialist serves
the niches of both models it replaced; niches are event data, not states). A state is never
stored in a manifest: it is the result of replaying state events.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.registry.errors import TransitionError
from breedlab.registry.manifest import MODEL_KINDS

STATES = ("candidate", "shadow", "canary", "champion", "retired", "rejected")
INITIAL_STATE = "candidate"

# state -> {next state: the event types that may make that move}
TRANSITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "candidate": {"shadow": ("promoted",), "canary": ("promoted",), "champion": ("promoted",),
                  "rejected": ("rejected",), "retired": ("retired",)},
    "shadow": {"canary": ("promoted",), "champion": ("promoted",),
               "rejected": ("rejected",), "retired": ("retired",)},
    "canary": {"champion": ("promoted",), "shadow": ("demoted", "rolled-back"),
               "rejected": ("rejected", "rolled-back"), "retired": ("retired", "rolled-back")},
    "champion": {"retired": ("retired", "rolled-back"), "champion": ("promoted",), "shadow": ("demoted",)},
    "retired": {"champion": ("rolled-back",), "shadow": ("promoted",)},
    "rejected": {},
}
STATE_EVENT_TYPES = ("promoted", "demoted", "rejected", "retired", "rolled-back")


def has_lifecycle(kind: str) -> bool:
    """Models have a lifecycle; datasets, suites, profiles and packets do not."""
    return kind in MODEL_KINDS or kind == "router-policy"


def check_transition(current: str | None, target: str, event_type: str, artifact: str) -> None:
    if current is None:
        raise TransitionError(f"{artifact[:12]} has no lifecycle (only models and router policies do)")
    if target not in STATES:
        raise TransitionError(f"unknown state {target!r}; states: {', '.join(STATES)}")
    allowed = TRANSITIONS[current].get(target)
    if not allowed or event_type not in allowed:
        options = ", ".join(f"{to} ({'/'.join(types)})" for to, types in TRANSITIONS[current].items()) or "none"
        raise TransitionError(
            f"{artifact[:12]}: {event_type} from {current} to {target} is not allowed; from {current}: {options}"
        )


@dataclass(frozen=True)
class Move:
    """One state change of ``Registry.transitions``: ``artifact`` to state ``to`` by an ``event_type`` event."""

    artifact: str
    to: str
    event_type: str
    actor: str
    reason: str
    data: dict | None = None
