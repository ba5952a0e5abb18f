"""A router policy in shadow: its route for every live query is computed and recorded, never used.

The champion policy decides where a query goes; the shadow policy decides too, on the
same text (and the same cached embedding), and both decisions are written to a SQLite
log with the monitor's label for the query when it has one. After ``min_queries``
the verdict compares the two on the labelled queries: a decision is right when it
serves the label's niche, or keeps on the parent a query labelled with a parent
domain. The shadow is crowned when it is right at least as often as the champion
(within ``margin``), and rejected otherwise.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS shadow_routes (
    id INTEGER PRIMARY KEY, policy TEXT NOT NULL, champion_domain TEXT, champion_served INTEGER NOT NULL,
    shadow_domain TEXT, shadow_served INTEGER NOT NULL, label TEXT)"""


@dataclass(frozen=True)
class ShadowSummary:
    queries: int
    agreement: float
    labelled: int
    champion_right: int
    shadow_right: int


class PolicyShadow:
    """Records the shadow policy ``policy_id``'s routes beside the champion's (see the module docstring)."""

    def __init__(self, path: Path | str, policy_id: str, policy):
        self.policy_id, self.policy = policy_id, policy
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.conn.execute(SCHEMA)
        self.conn.commit()

    def observe(self, text: str, champion_route, champion_policy, label: str | None) -> None:
        """Compute the shadow's route for ``text`` and record it; the caller serves the champion's."""
        shadow = self.policy.route([text], {})[0]
        row = (self.policy_id, champion_route.domain,
               int(champion_policy.leaves_parent(champion_route.domain, champion_route.confidence)),
               shadow.domain, int(self.policy.leaves_parent(shadow.domain, shadow.confidence)), label)
        self.conn.execute("INSERT INTO shadow_routes (policy, champion_domain, champion_served, shadow_domain, "
                          "shadow_served, label) VALUES (?, ?, ?, ?, ?, ?)", row)
        self.conn.commit()

    def summary(self, niches: list[str]) -> ShadowSummary:
        rows = self.conn.execute("SELECT champion_domain, champion_served, shadow_domain, shadow_served, label "
                                 "FROM shadow_routes WHERE policy = ?", (self.policy_id,)).fetchall()
        decision = lambda domain, served: domain if served else None  # noqa: E731 (None: the parent)
        agree = sum(decision(a, b) == decision(c, d) for a, b, c, d, _ in rows)
        right = lambda domain, served, label: decision(domain, served) == (label if label in niches else None)  # noqa: E731
        labelled = [r for r in rows if r[4] is not None]
        return ShadowSummary(len(rows), agree / len(rows) if rows else 0.0, len(labelled),
                             sum(right(a, b, lab) for a, b, _, _, lab in labelled),
                             sum(right(c, d, lab) for _, _, c, d, lab in labelled))


def shadow_verdict(summary: ShadowSummary, *, min_queries: int, margin: float) -> str:
    """hold (too few queries), promote, or reject."""
    if summary.queries < min_queries or summary.labelled == 0:
        return "hold"
    lead = (summary.shadow_right - summary.champion_right) / summary.labelled
    return "promote" if lead >= -margin else "reject"
