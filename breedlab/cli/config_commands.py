"""``breedlab config show [SECTION]``: the effective settings and where each came from.

A value is the home's (``<home>/configs/<file>``, read over the shipped file), the shipped file's,
or its dataclass default, as ``git config --show-origin`` says which file set what.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from breedlab.cli.common import HomeOption, console, fail
from breedlab.home import Home

config_app = typer.Typer(no_args_is_help=True, help="The effective configuration and where it comes from.")


def sections() -> dict[str, tuple[Path, str | None, type]]:
    """Section name -> (shipped file, the section in it or None for the whole file, its dataclass)."""
    from breedlab.demo.profiles import PROFILES, DemoProfile
    from breedlab.ecosystem.config import SHIPPED, PopulationConfig
    from breedlab.ecosystem.detector import DetectorConfig
    from breedlab.ecosystem.lifecycle import LifecycleConfig
    from breedlab.ecosystem.merge.config import MergeConfig
    from breedlab.ecosystem.monitor import MonitorConfig
    from breedlab.ecosystem.rollout import RolloutConfig
    from breedlab.ecosystem.router.evidence import RouterConfig
    from breedlab.evaluation.gate_config import DEFAULT_CONFIG_PATH, EvaluationConfig
    from breedlab.server.config import ServerConfig

    ecosystem = {"monitor": MonitorConfig, "detector": DetectorConfig, "rollout": RolloutConfig,
                 "lifecycle": LifecycleConfig, "merge": MergeConfig, "router": RouterConfig, "server": ServerConfig,
                 "population": PopulationConfig}
    return {**{name: (SHIPPED, name, cls) for name, cls in ecosystem.items()},
            "evaluation": (DEFAULT_CONFIG_PATH, None, EvaluationConfig),
            "demo.quick": (PROFILES, "quick", DemoProfile), "demo.full": (PROFILES, "full", DemoProfile)}


@config_app.command("show")
def config_show(
    section: Annotated[Optional[str], typer.Argument(help="one section (default: all)")] = None,
    home: HomeOption = None,
) -> None:
    """Print every setting's effective value and its origin: home, shipped or default."""
    from breedlab.typed_config import layered_section

    resolved = Home.resolve(home)  # makes <home>/configs the overrides
    known = sections()
    if section is not None and section not in known:
        fail(f"no config section {section!r}; sections: {', '.join(known)}")
    for name in [section] if section else list(known):
        path, part, cls = known[name]
        values, origins = layered_section(cls, path, part)
        table = Table("key", "value", "origin", title=f"{name}  ({path.name}{': ' + part if part else ''})")
        for item in dataclasses.fields(cls):
            if item.name in values:
                home_file = origins[item.name] != str(path)
                origin = f"home: {origins[item.name]}" if home_file else f"shipped: {path}"
                table.add_row(item.name, repr(values[item.name]), origin)
            elif item.default is not dataclasses.MISSING:
                table.add_row(item.name, repr(item.default), "default")
        console.print(table)
    console.print(f"home: {resolved.root} (overrides go in {resolved.root / 'configs'}/<file>.yaml)", highlight=False)
