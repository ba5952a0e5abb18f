"""What a corpus build did: datasets registered per domain, and sources it could not get."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class UnavailableSource:
    """A source that could not be fetched or read, and how a person would fetch it."""

    domain: str
    name: str
    fetch_command: str
    reason: str


@dataclass(frozen=True)
class BuiltDomain:
    """One domain's registered splits."""

    domain: str
    artifacts: dict[str, str]
    """Split name -> dataset artifact id."""
    stats: dict[str, dict[str, int]]
    """Split name -> ``{docs, chars, approx_tokens, shards, source_documents}``."""
    reused: bool
    """True when the registry already held datasets with this exact recipe (nothing rebuilt)."""
    seconds: float
    dropped: dict[str, int] = field(default_factory=dict)
    """Documents removed while building: exact/near duplicates and over the ``max_docs`` cap."""


@dataclass
class BuildReport:
    """The outcome of ``build_corpora``; the CLI prints it with :func:`format_report`."""

    built: list[BuiltDomain] = field(default_factory=list)
    unavailable: list[UnavailableSource] = field(default_factory=list)
    skipped_domains: list[str] = field(default_factory=list)
    """Domains none of whose sources could be had: nothing registered for them."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every requested domain built from every one of its sources."""
        return not self.unavailable and not self.skipped_domains

    def to_dict(self) -> dict:
        return {
            "built": [vars(b) for b in self.built],
            "unavailable": [vars(u) for u in self.unavailable],
            "skipped_domains": list(self.skipped_domains),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
        }


def format_report(report: BuildReport) -> str:
    """Plain-text summary: one line per split, then every unavailable source with its fetch command."""
    lines = []
    for built in report.built:
        how = "already registered" if built.reused else f"built in {built.seconds:.1f} s"
        lines.append(f"{built.domain}: {how}")
        for split, artifact_id in built.artifacts.items():
            stats = built.stats.get(split, {})
            lines.append(
                f"  {split:<10} {artifact_id[:12]}  {stats.get('docs', 0):>6} docs"
                f"  {stats.get('chars', 0):>10,} chars  ~{stats.get('approx_tokens', 0):,} tokens"
            )
    for source in report.unavailable:
        lines.append(f"unavailable: {source.domain}/{source.name}: {source.reason}")
        lines.append(f"  fetch with: {source.fetch_command}")
    for domain in report.skipped_domains:
        lines.append(f"skipped {domain}: none of its sources could be had")
    lines += [f"note: {note}" for note in report.notes]
    lines.append(f"total {report.seconds:.1f} s")
    return "\n".join(lines)


def print_build_report(console: Console, report) -> None:
    """One row per registered split, then each unavailable source with its fetch command."""
    table = Table(title=f"corpora ({report.seconds:.1f} s)")
    for column in ("domain", "split", "dataset", "docs", "chars", "~tokens", "status"):
        table.add_column(column, justify="right" if column in ("docs", "chars", "~tokens") else "left",
                         no_wrap=True)
    for built in report.built:
        status = "cached" if built.reused else f"built {built.seconds:.1f}s"
        for split, artifact_id in built.artifacts.items():
            stats = built.stats.get(split, {})
            table.add_row(built.domain, split, artifact_id[:12], f"{stats.get('docs', 0):,}",
                          f"{stats.get('chars', 0):,}", f"{stats.get('approx_tokens', 0):,}", status)
    console.print(table)
    for source in report.unavailable:
        console.print(f"[yellow]unavailable[/] {source.domain}/{source.name}: {source.reason}\n"
                      f"  fetch with: [bold]{source.fetch_command}[/]")
    for domain in report.skipped_domains:
        console.print(f"[yellow]skipped[/] {domain}: none of its sources could be had")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
