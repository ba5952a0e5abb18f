"""Terminal renderings of registry objects (tables, manifests, verify results)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from breedlab.registry import Artifact, Registry, verify


def human_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def artifact_table(artifacts: list[Artifact]) -> Table:
    table = Table(title=f"{len(artifacts)} artifacts")
    for column in ("id", "kind", "name", "state", "operator", "size", "created (UTC)"):
        table.add_column(column, no_wrap=column in ("id", "name", "size"))
    for art in artifacts:
        size = sum(entry.size for entry in art.manifest.files.values())
        table.add_row(art.id[:12], art.manifest.kind, art.manifest.name, art.state or "-",
                      art.manifest.operator, human_bytes(size), art.manifest.created[:16].replace("T", " "))
    return table


def print_artifact(console: Console, registry: Registry, artifact: Artifact) -> None:
    console.print(f"[bold]{artifact.manifest.kind} {artifact.manifest.name}[/]  state: {artifact.state or '-'}")
    console.print(f"id   {artifact.id}\npath {artifact.path}")
    console.print_json(json.dumps({"id": artifact.id, **artifact.manifest.to_dict()}))
    events = Table(title="events")
    for column in ("seq", "time (UTC)", "type", "actor", "reason"):
        events.add_column(column)
    for event in registry.events(artifact.id):
        events.add_row(str(event.seq), event.ts[:19], event.type, event.actor, event.reason)
    console.print(events)


def history_table(registry: Registry, niche: str) -> Table:
    from breedlab.governance.niche import current_champion, niche_events

    champion = current_champion(registry, niche)
    title = f"niche {niche}: champion {champion.manifest.name} {champion.id[:12]}" if champion \
        else f"niche {niche}: served by the parent (no child champion)"
    table = Table(title=title)
    for column in ("seq", "time (UTC)", "event", "model", "from -> to", "who", "why"):
        table.add_column(column, no_wrap=column in ("event", "from -> to"))
    for event in niche_events(registry, niche):
        name = registry.get(event.artifact).manifest.name
        table.add_row(str(event.seq), event.ts[:19].replace("T", " "), event.type, f"{name} {event.artifact[:12]}",
                      f"{event.data.get('from')} -> {event.data.get('to')}", event.actor, event.reason)
    return table


def run_verify(console: Console, root: Path, anchor: str | None = None, expect_head: str | None = None) -> int:
    """Print every finding; return the number of problems (notes are not problems)."""
    with Progress(TextColumn("verifying"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("hash", total=_object_bytes(root))
        findings = verify(root, on_bytes=lambda n: progress.advance(task, n), anchor=anchor, expect_head=expect_head)
    problems = [f for f in findings if f.level == "problem"]
    for finding in findings:
        colour = "red" if finding.level == "problem" else "yellow"
        console.print(f"[{colour}]{finding.level}[/] {finding.subject}: {finding.message}")
    if not problems:
        console.print("[green]registry verified[/]: every object, manifest, event and signature checks out")
    return len(problems)


def _object_bytes(root: Path) -> int:
    objects = root / "objects"
    return sum(p.stat().st_size for p in objects.glob("??/*")) if objects.is_dir() else 0


def costs_tables(rows, eq) -> list[Table]:
    """``registry costs``: one row per breed, then Equation 1's terms and crossovers."""
    from breedlab.governance.costs import equation_terms, shown

    breeds = Table("artifact", "name", "operator", "p", "CPU-s", "FLOPs", "runs", title="measured breed costs")
    for r in sorted(rows, key=lambda r: (r.operator, r.name)):
        breeds.add_row(r.artifact[:12], r.name, r.operator, shown(r.p, ".3f"), f"{r.cpu_seconds:,.1f}",
                       f"{r.flops:.3g}", str(r.runs))
    terms = Table("term", "value", "how", title="Equation 1: C_Genesis(K) = C_train + K·p·C_finetune (CPU-s)")
    for row in equation_terms(eq):
        terms.add_row(*row)
    return [breeds, terms]
