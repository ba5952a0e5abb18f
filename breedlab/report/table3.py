"""The paper's Table 3 and the analytic speed-up the report and the demo compare a run against."""

from __future__ import annotations

# Paper Table 3 ("Projected compute efficiency gains - NOT EXPERIMENTAL"):
# coverage of queries served by children -> {child/parent size ratio p: speed-up}.
# The paper says it is "derived analytically from Eq. 1", but Eq. 1 is the
# training-cost model C(K) = C_train + K * p * C_finetune, and the step from it
# to these coverage-dependent inference gains is not given. The simple analytic
# speed-up 1 / ((1 - c) + c * p) is shown next to it (it gives 2.27x at c=0.8,
# p=0.30, close to the table's 2.2x, but 6.9x at c=0.9, p=0.05 against 4.4x).
PAPER_TABLE3: dict[float, dict[float, float]] = {
    0.7: {0.30: 1.9, 0.15: 2.3, 0.10: 2.5, 0.05: 2.7},
    0.8: {0.30: 2.2, 0.15: 2.8, 0.10: 3.0, 0.05: 3.3},
    0.9: {0.30: 2.5, 0.15: 3.5, 0.10: 3.9, 0.05: 4.4},
}
PAPER_TABLE3_STATUS = "projected, not experimental"
TABLE3_MIN_COVERAGE = 0.65  # below this no row of the table is near enough to compare


def paper_table3(coverage: float, ratio: float) -> tuple[float | None, str]:
    """The nearest cell of the paper's Table 3 and its label, e.g. (2.2, "coverage 80%, p=0.30").

    Returns ``(None, reason)`` when coverage is below 0.65 (the table starts at 70%).
    """
    cell = nearest_cell(coverage, ratio)
    if cell is None:
        return None, f"coverage {coverage:.0%} is outside Table 3 (70-90%)"
    row, col = cell
    return PAPER_TABLE3[row][col], f"coverage {row:.0%}, p={col:.2f}"


def nearest_cell(coverage: float, ratio: float) -> tuple[float, float] | None:
    """(row coverage, column p) of the Table 3 cell nearest to the run, None below 0.65 coverage."""
    if coverage < TABLE3_MIN_COVERAGE:
        return None
    row = min(PAPER_TABLE3, key=lambda c: abs(c - coverage))
    return row, min(PAPER_TABLE3[row], key=lambda p: abs(p - ratio))


def analytic_speedup(coverage: float, ratio: float) -> float:
    """1 / ((1 - c) + c * p): the parent serves 1 - c of the queries, children at cost p the rest."""
    return 1.0 / ((1.0 - coverage) + coverage * ratio)
