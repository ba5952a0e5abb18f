"""GGUF export on a pico parent: the round trip through transformers and llama.cpp, lineage, Modelfile, refusals,
and a check killed halfway leaves nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gguf
import pytest

from breedlab.engines.export import export_gguf
from breedlab.engines.gguf_export import LINEAGE_KEYS, pad_ffn, permute_rotary, write_gguf
from breedlab.engines.loading import model_folder
from breedlab.evaluation.engine_check import CHECK_KIND
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.registry import Registry
from breedlab.registry.verify import verify


@pytest.fixture(scope="module")
def pico_home(tmp_path_factory):
    home = Home.resolve(tmp_path_factory.mktemp("gguf") / "home")
    registry = Registry.open(home.registry_dir)
    lab = build_pico_lab(registry, home.cache_dir, domains=("general",), docs=30)
    return home, registry, lab.parent


def _fields(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {key: field.contents() for key, field in reader.fields.items()
            if key.startswith(("breedlab.", "general.", "tokenizer.ggml.pre", "tokenizer.chat_template"))}


def test_an_f32_export_round_trips_exactly_and_carries_its_lineage(pico_home, tmp_path):
    _, _, parent = pico_home
    report = export_gguf(model_folder(parent), tmp_path, "f32", name="pico-parent")
    assert report.verified and report.transformers_max_logit_diff < 1e-5 and report.llamacpp_max_logit_diff < 1e-4
    fields = _fields(report.gguf)
    assert set(LINEAGE_KEYS) <= set(fields) and fields["breedlab.artifact_id"] == parent.id
    assert fields["breedlab.kind"] == "parent" and fields["breedlab.parent_id"] == "none" and len(fields["breedlab.recipe_sha256"]) == 64
    assert "<|im_start|>" in fields["tokenizer.chat_template"]
    modelfile = (tmp_path / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./pico-parent.f32.gguf") and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_a_q8_0_export_stays_within_its_tolerance(pico_home, tmp_path):
    _, _, parent = pico_home
    report = export_gguf(model_folder(parent), tmp_path, "q8_0", name="pico-parent")
    assert report.verified and 0 < report.transformers_max_logit_diff <= report.tolerance
    assert report.facts["tensor_types"]["Q8_0"] > 0 and report.facts["fallback_tensors"] == []


def test_the_rotary_permutation_is_llama_cpps():
    import numpy as np

    weight = np.arange(2 * 8 * 3, dtype=np.float32).reshape(16, 3)  # 2 heads of 8 rows
    permuted = permute_rotary(weight, heads=2)
    # head 0's rows (0..7) become pairs (0, 4), (1, 5), (2, 6), (3, 7): rotate-half to interleaved
    assert [int(r[0]) // 3 for r in permuted[:8]] == [0, 4, 1, 5, 2, 6, 3, 7]


def test_a_model_llama_cpp_cannot_represent_is_refused_before_anything_is_written(pico_home, tmp_path):
    _, _, parent = pico_home
    folder = model_folder(parent)
    odd = tmp_path / "odd"
    odd.mkdir()
    for path in folder.path.iterdir():
        if path.is_file():
            (odd / path.name).write_bytes(path.read_bytes())
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="SwiGLU"):
        write_gguf(odd, tmp_path / "out.gguf", "q8_0", {}, name="odd")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".tmp-*"))


def test_an_unknown_quantization_is_a_clear_error(pico_home, tmp_path):
    _, _, parent = pico_home
    with pytest.raises(ValueError, match="unknown GGUF quantization 'q3_xyz'"):
        write_gguf(parent.path, tmp_path / "x.gguf", "q3_xyz", {}, name="x")


KILLED_CHECK = """
import sys
from breedlab.evaluation.engine_check import CheckSettings, run_check
from breedlab.registry import Registry
from breedlab.home import Home
home = Home.resolve(sys.argv[1])
registry = Registry.open(home.registry_dir)
run_check(registry, home.cache_dir, sys.argv[2], "llamacpp", "f16", None,
          CheckSettings(prompts=2, prompt_tokens=8, new_tokens=4, threads=1))
print("done", flush=True)
"""


def test_a_killed_check_leaves_no_half_written_artifact(pico_home):
    home, registry, parent = pico_home
    from breedlab.evaluation.suites import build_suite

    build_suite(registry, "retention", "general", tokenizer=load_model(parent.path)[1], cases=4, tokens=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for delay in (0.5, 2.0, 4.0):
        process = subprocess.Popen([sys.executable, "-c", KILLED_CHECK, str(home.root), parent.id], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert [f for f in verify(home.registry_dir) if f.level == "problem"] == []
        reopened = Registry.open(home.registry_dir)
        for check in reopened.find(kind=CHECK_KIND):
            assert (check.path / "check.json").is_file()  # an engine-check is all there or not there at all
    finished = subprocess.run([sys.executable, "-c", KILLED_CHECK, str(home.root), parent.id], env=env,
                              capture_output=True, text=True, timeout=300)
    assert finished.stdout.strip() == "done", finished.stderr[-2000:]
    checks = Registry.open(home.registry_dir).find(kind=CHECK_KIND)
    assert len(checks) == 1 and checks[0].manifest.metrics["passed"]


def test_breedlab_export_and_engines_check_from_the_command_line(pico_home, tmp_path):
    from typer.testing import CliRunner

    from breedlab.cli.app import app

    home, _, parent = pico_home
    run = CliRunner().invoke(app, ["export", parent.id[:12], "--quant", "f16", "--out", str(tmp_path / "out"),
                                   "--home", str(home.root)], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert report["verified"] and report["quantization"] == "f16" and (tmp_path / "out" / "Modelfile").is_file()
    assert (tmp_path / "out" / "pico-parent.f16.gguf").stat().st_size == report["bytes"]
    refused = CliRunner().invoke(app, ["export", parent.id[:12], "--format", "onnx", "--home", str(home.root)])
    assert refused.exit_code == 1 and "unknown export format 'onnx'" in refused.output
    listed = CliRunner().invoke(app, ["engines", "list", "--home", str(home.root)], catch_exceptions=False)
    assert listed.exit_code == 0 and "llamacpp/f16" in listed.output  # the killed-check test's finished check


def test_a_pruned_ffn_is_padded_with_zero_neurons_so_every_weight_quantizes(tmp_path):
    import torch

    from breedlab.engines.base import ModelFolder
    from breedlab.models.pico import build_pico_parent

    folder_path = build_pico_parent(tmp_path / "pruned", intermediate=51, train_steps=5)  # as the CMG leaves them
    config = json.loads((folder_path / "config.json").read_text())
    folder = ModelFolder(id="f" * 64, path=folder_path, config=config, kind="child", recipe={})
    report = export_gguf(folder, tmp_path / "out", "q8_0", name="pruned")
    assert report.facts["fallback_tensors"] == [] and report.facts["ffn_padded"] == [51, 64]
    assert report.verified  # the zero neurons change nothing beyond Q8_0's own rounding
    exact = export_gguf(folder, tmp_path / "exact", "f32", name="pruned")
    assert exact.facts["ffn_padded"] == [51, 51] and exact.transformers_max_logit_diff < 1e-5
    # the padding alone is exact: the same weights with 13 zero neurons compute the same logits
    from transformers import LlamaConfig, LlamaForCausalLM

    model, _ = load_model(folder_path)
    wide = LlamaForCausalLM(LlamaConfig(**{**model.config.to_dict(), "intermediate_size": 64})).eval()
    wide.load_state_dict({k: torch.from_numpy(pad_ffn(k, v.numpy(), 64)) for k, v in model.state_dict().items()})
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(wide(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6, rtol=0)
