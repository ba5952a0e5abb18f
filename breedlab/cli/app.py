"""The ``breedlab`` command line: a thin table of commands over library functions.

Heavy modules (torch, transformers) are imported inside the commands that
need them, so ``breedlab --help`` and registry commands start fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from breedlab.cli import breed_commands, cluster_commands
from breedlab.cli.common import HomeOption, KeysOption, console, fail
from breedlab.cli.config_commands import config_app
from breedlab.cli.engine_commands import engine_app, export
from breedlab.cli.key_commands import key_app
from breedlab.cli.niche_commands import niche_app
from breedlab.cli.store_commands import data_app, parent_app, registry_app
from breedlab.cli.tokens import token_app
from breedlab.home import Home

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Breed small specialist language models from a frozen parent, prove each earns its place, route queries to them.",
)
app.add_typer(parent_app, name="parent")
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")
app.add_typer(token_app, name="token")
app.add_typer(niche_app, name="niche")
app.add_typer(config_app, name="config")
app.add_typer(key_app, name="keys")
app.add_typer(engine_app, name="engines")
app.command()(export)
app.command()(breed_commands.breed)
app.command()(breed_commands.operate)
app.command()(breed_commands.lab)
app.command()(cluster_commands.population)
app.command()(cluster_commands.search)
app.command()(breed_commands.promote)
app.command("router-variant")(breed_commands.router_variant_command)
app.command()(breed_commands.rollback)


@app.command()
def demo(home: HomeOption = None,
         quick: bool = typer.Option(False, "--quick", help="A pico parent and synthetic domains (~2 minutes).")
         ) -> None:
    """Replay a phased query trace through the living ecosystem; write timeline.json and report.html.

    The default profile uses the real SmolLM2 parent and corpora; --quick a pico parent.
    """
    from breedlab.demo.run import run_demo

    run_demo(console, Home.resolve(home), profile_name="quick" if quick else "full")


@app.command()
def serve(home: HomeOption = None,
          host: Annotated[Optional[str], typer.Option(help="interface [default: server.host, 127.0.0.1]")] = None,
          port: Annotated[Optional[int], typer.Option(help="port [default: server.port]")] = None,
          keys: KeysOption = None,
          ray: Annotated[Optional[str], typer.Option(help="serve on Ray Serve: local, auto or a cluster address")] = None,
          replicas: Annotated[int, typer.Option(help="with --ray: read replicas (one writer besides)")] = 2) -> None:
    """Serve the ecosystem over an OpenAI-compatible API (model "auto" routes every request).

    Settings: the server section of configs/ecosystem.yaml. A demo run folder is itself a home:
    breedlab serve --home ~/.cache/breedlab/demo/quick/latest. In a signed home the server signs each
    admin write with the key of the token's identity, read from --keys.
    """
    import os
    from dataclasses import replace

    import uvicorn

    from breedlab.registry.keys import KEYS_ENV
    from breedlab.server.app import create_app
    from breedlab.server.config import load_server_config
    from breedlab.server.setup import check_servable, signing_report

    config = load_server_config()
    config = replace(config, host=host or config.host, port=port or config.port)
    resolved = Home.resolve(home)
    check_servable(resolved)
    if keys:
        os.environ[KEYS_ENV] = str(keys)  # where the server's registry finds the token identities' keys
    for line in signing_report(resolved, config.lifecycle.actor):
        console.print(line)
    console.print(f"breedlab serving {resolved.root}\n  OpenAI base URL: [bold]http://{config.host}:{config.port}/v1[/]"
                  f"\n  dashboard: http://{config.host}:{config.port}/   metrics: http://{config.host}:{config.port}/metrics")
    if ray:
        return serve_on_ray(resolved, config, ray, replicas)
    # uvicorn's access log prints the request line and status only, never headers (no Authorization).
    uvicorn.run(create_app(resolved, config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=int(config.drain_timeout_s))


def serve_on_ray(home: Home, config, address: str, replicas: int) -> None:
    """``serve --ray``: deploy the replicas and the writer, then hold the cluster until interrupted."""
    import signal
    import time

    from ray import serve as ray_serve

    from breedlab.cluster.runner import ClusterOptions, ray_session
    from breedlab.server.ray_serve import deploy

    if replicas < 1:
        fail("--replicas must be at least 1")

    def interrupted(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # a stopped service takes its deployments down too
    with ray_session(ClusterOptions(ray=address)):
        deploy(str(home.root), config, replicas)
        console.print(f"  Ray Serve: {replicas} read replicas and one writer (Ctrl-C stops them)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            ray_serve.shutdown()


def main() -> None:
    from breedlab.registry import RegistryError

    try:
        app()
    except (RegistryError, ValueError) as exc:  # refusals and bad input: a clear message, never a traceback
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
