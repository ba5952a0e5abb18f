"""The demo's narrator: closes each window through the ecosystem and prints what happened.

The approver here is the first identity of ``approvers`` in governance.yaml;
it acts only on evidence (the lab's release packet, then the rollout's live
numbers) and never breeds: spawns run as the ``breeder`` identity.
"""

from __future__ import annotations

import time
from dataclasses import replace

from rich.console import Console
from rich.progress import Progress

from breedlab.cmg.progress import SharedDisplay
from breedlab.ecosystem.runner import Ecosystem
from breedlab.ecosystem.spawn import reevaluate, run_spawn
from breedlab.ecosystem.steward import Authority, close_window
from breedlab.governance.config import load_governance
from breedlab.registry import Registry

STYLE = {"spawn-requested": "bold yellow", "promoted": "bold green", "retired": "magenta", "rejected": "red",
         "rolled-back": "red", "flagged": "yellow", "revalidated": "green", "registered": "cyan"}


class Story:
    def __init__(self, console: Console, home, registry: Registry, profile, parts, bar: Progress | None = None):
        self.console, self.home, self.registry, self.profile = console, home, registry, profile
        self.bar = bar
        """The replay's live bar: a spawn's lab draws its steps and breed bars into it."""
        self.eco = Ecosystem(parts)
        self.governance = load_governance(home.root)
        self.lab_config = profile.lab_config(profile.niches[0])
        self.windows: list[dict] = []
        self.events: list[dict] = []
        self.fitness: dict = {}
        self._log_start = len(registry.log.read()[0])
        self._started = time.perf_counter()
        self.authority = Authority(self.governance, self.governance.approvers[0], self._spawn, self._reevaluate,
                                   merge=self._consider_merge)

    def _spawn(self, request):
        """The lab's full output goes to a log file; the console shows its steps and breed bars live
        (tokens/s, ETA), and one line per candidate at the end."""
        log = self.home.logs_dir / f"spawn-{request.domain}-day{len(self.windows) + 1}.log"
        self.console.print(f"        [yellow]breeding for {request.domain}[/] (lab log: {log})", highlight=False)
        display = None if self.bar is None else SharedDisplay(self.console, self.bar, label=f"{request.domain} lab")
        with open(log, "w", encoding="utf-8") as stream:
            lab_console = Console(file=stream, width=160, force_terminal=False)
            result = run_spawn(self.registry, self.home, request, self.lab_config, self.governance,
                               self.eco.parts.parent_id, approver=self.authority.approver, console=lab_console,
                               display=display)
        self.fitness.update(result.fitness)
        parent = result.fitness.get(self.eco.parts.parent_id)
        for model_id, f in result.fitness.items():
            if model_id != self.eco.parts.parent_id:
                self.console.print(f"        candidate {self._name(model_id)}: domain PPL {_num(f.domain_ppl)} "
                                   f"(parent {_num(parent and parent.domain_ppl)}), general PPL "
                                   f"{_num(f.general_regression, '+.2f')}", highlight=False)
        return result

    def _reevaluate(self, niche: str, child_id: str):
        config = replace(self.lab_config, niche=niche)
        return reevaluate(self.registry, self.home, child_id, self.eco.parts.parent_id, config,
                          console=self.console)

    def _consider_merge(self, a_id: str, b_id: str, similarity: float):
        from breedlab.ecosystem.merge.review import consider_merge

        return consider_merge(self.registry, self.home, a_id, b_id, centroid_similarity=similarity,
                              config=self.eco.parts.merge, governance=self.governance,
                              approver=self.authority.approver, breeder=self.governance.breeder,
                              console=self.console)

    def close(self, index: int, phase: str) -> None:
        from breedlab.demo.timeline import story_events

        now = (index + 1) * self.profile.window_seconds
        record = close_window(self.eco, self.authority, index=index, phase=phase, now=now)
        events, self._log_start = story_events(self.registry, self._log_start, index)
        self.windows.append(record)
        self.events.extend(events)
        self._print(record, events)

    def _print(self, record: dict, events: list[dict]) -> None:
        names = {m: self._name(m) for m in record["served"]}
        mix = " ".join(f"{d} {n}" for d, n in record["mix"].items())
        served = " ".join(f"{names[m]} {n}" for m, n in record["served"].items())
        sigma = " ".join(f"{d} {s:.2f}" for d, s in record["sigma"].items() if d not in self.profile.parent_domains)
        saving = record["flops"]["parent_only"] / max(1.0, record["flops"]["served"])
        elapsed = time.perf_counter() - self._started
        self.console.print(f"[bold]day {record['index'] + 1:2d}[/] [dim]{record['phase']:<14}[/] mix: {mix} | "
                           f"served: {served} | sigma: {sigma} | FLOPs saved {saving:.2f}x [dim]({elapsed:.0f} s)[/]",
                           highlight=False)
        for event in events:
            style = STYLE.get(event["type"], "white")
            target = self._name(event["artifact"])
            self.console.print(f"        [{style}]{event['type']}[/] {target} by {event['actor']}: {event['reason']}",
                               highlight=False)

    def _name(self, model: str) -> str:
        if model == "parent":
            return "parent"
        artifact = self.registry.get(model)
        return f"{artifact.manifest.name} {artifact.id[:8]}"


def _num(value, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)
