"""The report's breeding-cost section: every breed's measured cost and Equation 1 from them.

Seed 002 prices K specialisations at ``C_Genesis(K) = C_train + K·p·C_finetune`` and puts the crossover
with per-domain fine-tuning at K* ~ 16 for p = 0.10, without measuring anything; this section puts the
home's measured numbers beside that claim (``governance/costs.py`` computes them).
"""

from __future__ import annotations

from breedlab.report.style import esc


def breed_costs_section(t: dict) -> str:
    costs = t.get("breed_costs")
    if costs is None:
        body = '<p class="muted">No breed costs were recorded in this run.</p>'
    else:
        body = '<div class="pair">' + _breeds_table(costs["rows"]) + _terms_table(costs["terms"]) + "</div>"
    return ('<section id="costs"><h2>Breeding cost and Equation 1</h2><p class="lead">Measured: the CPU-seconds '
            "each breed spent (summed over resumes) and its training FLOPs (6&middot;N&middot;D); Equation 1's "
            "terms are computed from them, beside the paper's analytical K*.</p>" + body + "</section>")


def _breeds_table(rows: list[dict]) -> str:
    cells = "".join(
        f"<tr><td>{esc(r['name'])}</td><td>{esc(r['operator'])}</td>"
        f"<td class=\"n\">{'-' if r['p'] is None else format(r['p'], '.3f')}</td>"
        f"<td class=\"n\">{r['cpu_seconds']:,.1f}</td><td class=\"n\">{r['flops']:.3g}</td></tr>"
        for r in sorted(rows, key=lambda r: (r["operator"], r["name"])))
    return ("<table><caption class=\"muted\" style=\"text-align:left\">measured breed costs</caption><thead><tr>"
            "<th>model</th><th>operator</th><th>p</th><th>CPU-s</th><th>FLOPs</th></tr></thead>"
            f"<tbody>{cells}</tbody></table>")


def _terms_table(terms: list[list[str]]) -> str:
    cells = "".join(f"<tr><td>{esc(term)}</td><td class=\"n\">{esc(value)}</td><td class=\"muted\">{esc(how)}</td>"
                    "</tr>" for term, value, how in terms)
    return ("<table><caption class=\"muted\" style=\"text-align:left\">Equation 1: C_Genesis(K) = C_train + "
            "K&middot;p&middot;C_finetune (CPU-s)</caption><thead><tr><th>term</th><th>value</th><th>how</th>"
            f"</tr></thead><tbody>{cells}</tbody></table>")
