"""``breedlab engines backends/check/list`` and ``breedlab export``: where models run, and proof they run right."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from breedlab.cli.common import HomeOption, KeysOption, console, fail, open_registry, open_registry_as
from breedlab.home import Home

engine_app = typer.Typer(no_args_is_help=True, help="Engines: hf (the reference), llama.cpp and CTranslate2.")


@engine_app.command("backends")
def engines_backends() -> None:
    """Every backend, whether it is installed here, and the quantizations it takes."""
    from breedlab.engines import BACKENDS, load_plugins

    load_plugins()
    table = Table("backend", "installed", "quantizations", "architectures", "supports")
    for name, cls in sorted(BACKENDS.items()):
        try:
            version = cls().version()
        except ImportError:
            version = "[red]not installed[/]"
        table.add_row(name, version, ", ".join(cls.quantizations), ", ".join(cls.architectures), cls.supports)
    console.print(table)


@engine_app.command("check")
def engines_check(
    model: Annotated[str, typer.Argument(help="model artifact id (a prefix will do)")],
    backend: Annotated[str, typer.Option(help="llamacpp | ctranslate2 | hf")] = "llamacpp",
    quant: Annotated[str, typer.Option(help="f32 | f16 | q8_0 | q4_1 ... (llamacpp); float32 | int8 ...")] = "q8_0",
    suite: Annotated[Optional[str], typer.Option(help="lm suite id [default: the model's niche's lm suite]")] = None,
    bound: Annotated[float, typer.Option(help="largest |NLL difference| in nats/token that may serve")] = 0.01,
    identity: Annotated[str, typer.Option("--as", envvar="BREEDLAB_IDENTITY",
                                          help="the evaluator who records the check")] = "evaluator",
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Check an engine against hf on the model's frozen lm suite and record the check (passed or not)."""
    from breedlab.engines import EngineUnavailable
    from breedlab.evaluation.engine_check import CheckSettings, run_check

    registry = open_registry_as(home, identity, keys)
    try:
        check = run_check(registry, Home.resolve(home).cache_dir, registry.get(model).id, backend, quant, suite,
                          CheckSettings(nll_bound=bound), actor=identity)
    except (EngineUnavailable, ValueError) as error:
        fail(str(error))
    metrics = check.manifest.metrics
    verdict = "[green]passed[/]" if metrics["passed"] else "[red]refused for serving[/]"
    console.print(f"{backend}/{quant} on {model[:12]}: {verdict}: {metrics['reason']}", highlight=False)
    console.print(f"decode {metrics['decode_tok_s']:.1f} tokens/s against hf {metrics['hf_decode_tok_s']:.1f} "
                  f"({metrics['decode_ratio_vs_hf']:.2f}x); check [cyan]{check.id[:12]}[/]", highlight=False)


@engine_app.command("list")
def engines_list(model: Annotated[Optional[str], typer.Argument(help="one model's checks")] = None,
                 home: HomeOption = None) -> None:
    """Recorded engine checks, newest first: which engine may serve which model, and how fast it was."""
    registry = open_registry(home)
    checks = registry.find(kind="engine-check")
    if model is not None:
        wanted = registry.get(model).id
        checks = [c for c in checks if wanted in c.manifest.parents]
    table = Table("check", "model", "engine", "passed", "NLL delta", "greedy identical", "decode tok/s", "vs hf")
    for check in checks:
        m, r = check.manifest.metrics, check.manifest.recipe
        table.add_row(check.id[:12], check.manifest.parents[0][:12], f"{r['backend']}/{r['quantization']}",
                      "yes" if m["passed"] else "[red]no[/]", f"{m['nll_delta']:+.4f}", f"{m['greedy_identical']:.0%}",
                      f"{m['decode_tok_s']:.1f}", f"{m['decode_ratio_vs_hf']:.2f}x")
    console.print(table)


def export(
    model: Annotated[str, typer.Argument(help="model artifact id (a prefix will do)")],
    format: Annotated[str, typer.Option("--format", help="gguf (the only format so far)")] = "gguf",
    quant: Annotated[str, typer.Option(help="f32 | f16 | q8_0 | q5_1 | q5_0 | q4_1 | q4_0")] = "q8_0",
    out: Annotated[Optional[Path], typer.Option(help="folder to write into [default: ./export-<id12>]")] = None,
    home: HomeOption = None,
) -> None:
    """Write a model as GGUF (weights, tokenizer, chat template, lineage) with an Ollama Modelfile, verified."""
    from breedlab.engines.export import export_gguf, report_json
    from breedlab.engines.loading import model_folder

    if format != "gguf":
        fail(f"unknown export format {format!r}; breedlab writes gguf")
    registry = open_registry(home)
    artifact = registry.get(model)
    try:
        report = export_gguf(model_folder(artifact), out or Path(f"export-{artifact.id[:12]}"), quant,
                             name=artifact.manifest.name.replace("/", "-"))
    except ValueError as error:
        fail(str(error))
    (Path(report.gguf).parent / "export.json").write_text(report_json(report) + "\n")
    console.print(f"{report.gguf} ({report.bytes / 2**20:.1f} MiB, sha256 {report.sha256[:12]}) and {report.modelfile}",
                  highlight=False)
    console.print(f"round trip: transformers max |logit diff| {report.transformers_max_logit_diff:.2e}, "
                  f"llama.cpp {report.llamacpp_max_logit_diff:.2e} (tolerance {report.tolerance})", highlight=False)
    if not report.verified:
        fail("the export does not reload within its tolerance; do not ship it")
