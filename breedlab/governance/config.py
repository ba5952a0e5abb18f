"""The governance configuration: identities with authority, budgets, leases.

The breeding side and the approving side are separate identities on purpose
(seed 000: "candidate generation and evaluator governance must be separate
authority domains"). A home may carry its own ``governance.yaml``; otherwise
the shipped ``breedlab/configs/governance.yaml`` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from breedlab.typed_config import from_mapping, read_yaml

SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "governance.yaml"
HOME_FILE = "governance.yaml"


@dataclass(frozen=True)
class GovernanceConfig:
    breeder: str = "breeder"
    """Identity that breeding runs record as the creator of each candidate."""
    evaluator: str = "evaluator"
    """Identity that measures candidates and writes (in a signed home: signs) the evidence packets."""
    approvers: tuple[str, ...] = ("approver",)
    """Identities allowed to promote, roll back and retire."""
    max_children_per_niche: int = 2
    """Active children (shadow, canary, champion) per niche."""
    max_active_children: int = 4
    """Active children of every niche together: the population budget."""
    max_total_weight_bytes: int = 2_000_000_000
    """Weight bytes of every active model together."""
    lease_days: int = 30
    """Days until a promoted child's lease (review date) ends."""

    def __post_init__(self) -> None:
        if self.breeder in self.approvers:
            raise ValueError(f"the breeding identity {self.breeder!r} must not also be an approver")
        if self.evaluator in (self.breeder, *self.approvers):
            raise ValueError(f"the evaluating identity {self.evaluator!r} must be neither the breeder nor an approver")
        if min(self.max_children_per_niche, self.max_active_children, self.max_total_weight_bytes,
               self.lease_days) < 1:
            raise ValueError("budgets and lease must be positive")


def load_governance(home_root: Path | None = None) -> GovernanceConfig:
    """The home's governance.yaml if present, else the shipped one; unknown keys are errors."""
    path = home_root / HOME_FILE if home_root and (home_root / HOME_FILE).is_file() else SHIPPED
    return from_mapping(GovernanceConfig, read_yaml(path) or {}, str(path), keys="governance keys")
