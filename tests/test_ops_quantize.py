"""The ``quantize`` operator: int8 per-channel weights, its own format and loader, measured drift."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from breedlab.cmg.domain_head import DomainHead
from breedlab.cmg.recipe import LORA_TARGETS, RunOptions
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import FrozenModelTampered, load_model
from breedlab.operators.quantize import (
    Fp16Linear,
    Int8Head,
    Int8Linear,
    QuantizeRecipe,
    drift_blocks,
    dynamic_linear,
    load_quantized,
    quantize,
    quantize_weight,
)
from breedlab.registry import Registry, RegistryError

OPTIONS = RunOptions(progress=False, threads=1)
INT8 = QuantizeRecipe(scheme="symmetric")
LAYERS = 4  # the pico parent's decoder layers


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("quantize-lab"))
    registry = Registry.open(home.registry_dir)
    return home, registry, build_pico_lab(registry, home.cache_dir)


@pytest.fixture(scope="module")
def quantized(lab):
    home, registry, pico = lab
    return quantize(registry, home, pico.parent.id, INT8, OPTIONS, drift_domain="code").child


def test_per_channel_symmetric_int8_is_within_half_a_step():
    weight = torch.randn(16, 8)
    weight[3] = 0.0  # an all-zero row must not divide by zero
    qweight, scale = quantize_weight(weight)
    assert qweight.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (16,)
    assert int(qweight.abs().max()) == 127 and torch.all(qweight[3] == 0)
    error = (qweight.float() * scale[:, None] - weight).abs()
    assert torch.all(error <= scale[:, None] / 2 + 1e-7)


def test_both_int8_kernels_compute_x_times_the_dequantised_weight():
    torch.manual_seed(0)
    weight, bias, x = torch.randn(24, 16), torch.randn(24), torch.randn(2, 5, 16)
    qweight, scale = quantize_weight(weight)
    expected = torch.nn.functional.linear(x, qweight.float() * scale[:, None], bias)  # (2, 5, 24)
    assert torch.allclose(Int8Linear(qweight, scale, bias)(x), expected, atol=1e-5)
    dynamic = dynamic_linear(qweight, scale, bias)
    assert torch.equal(dynamic.weight().int_repr(), qweight)  # exactly the stored int8, not re-derived
    # activations are quantized per call too (7-bit on fbgemm): close, not exact
    assert (dynamic(x) - expected).abs().max() < 0.02 * expected.abs().max()


def test_the_folder_is_int8_safetensors_beside_the_source_config_and_tokenizer(lab, quantized):
    _, _, pico = lab
    files = set(quantized.manifest.files)
    assert {"quantized.safetensors", "quantization.json", "config.json", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    assert (quantized.path / "config.json").read_bytes() == (pico.parent.path / "config.json").read_bytes()
    spec = json.loads((quantized.path / "quantization.json").read_text())
    assert (spec["scheme"], spec["bits"], spec["granularity"]) == ("symmetric", 8, "per-output-channel")
    assert spec["modules"] == list(LORA_TARGETS) and len(spec["quantized"]) == LAYERS * len(LORA_TARGETS)
    with safe_open(quantized.path / "quantized.safetensors", "pt") as stored:
        q = stored.get_tensor("model.layers.0.mlp.down_proj.qweight")
        assert q.dtype == torch.int8 and stored.get_tensor("model.layers.0.mlp.down_proj.scale").shape == (q.shape[0],)
        assert stored.get_tensor("model.embed_tokens.weight").dtype == torch.float32
        assert "lm_head.weight" not in stored.keys()  # noqa: SIM118 (safe_open has no `in`)
        assert stored.get_tensor("lm_head.qweight").dtype == torch.int8
    assert spec["head"] == "int8" and "lm_head" not in spec["quantized"]


def test_the_int8_head_is_x_times_the_dequantised_head_across_its_row_blocks():
    torch.manual_seed(0)
    weight, x = torch.randn(37, 16), torch.randn(2, 3, 16)
    qweight, scale = quantize_weight(weight)
    head = Int8Head(qweight, scale, block_rows=8)  # 37 rows: four full blocks and a short one
    expected = x @ (qweight.float() * scale[:, None]).T
    assert head(x).shape == (2, 3, 37) and torch.allclose(head(x), expected, atol=1e-5)
    assert torch.equal(head.weight, qweight.float() * scale[:, None])


def test_a_domain_head_over_an_int8_head_keeps_its_logits_on_the_fast_path():
    torch.manual_seed(0)
    qweight, scale = quantize_weight(torch.randn(40, 8))
    full = Int8Head(qweight, scale, block_rows=16)
    kept = torch.tensor([1, 5, 7, 30])
    # a very low "other" estimate: every position takes the fast path
    head = DomainHead(full, {"kept_ids": kept, "other_weight": torch.zeros(8), "other_bias": torch.tensor([-1e9]),
                             "margin": torch.zeros(1)})
    head.greedy = True
    hidden = torch.randn(3, 1, 8)
    with torch.no_grad():
        fast = head(hidden)
    assert head.fast_positions == 3 and head.fallbacks == 0
    assert torch.allclose(fast[..., kept], full(hidden)[..., kept], atol=1e-5)
    head.other_bias.fill_(1e9)  # now every position falls back: kept + dropped rows are the full head
    with torch.no_grad():
        assert torch.allclose(head(hidden), full(hidden), atol=1e-5) and head.fallbacks == 3


def test_head_fp32_keeps_the_tied_layout_and_the_identity_artifacts_had_before_the_field(lab):
    home, registry, pico = lab
    assert "head" not in QuantizeRecipe(scheme="symmetric", head="fp32").to_dict() and INT8.to_dict()["head"] == "int8"
    legacy = quantize(registry, home, pico.parent.id, QuantizeRecipe(scheme="symmetric", head="fp32"), OPTIONS,
                      drift_domain="code").child
    model, _ = load_quantized(legacy.path)
    assert model.lm_head.weight is model.get_input_embeddings().weight
    with pytest.raises(ValueError, match="head"):
        QuantizeRecipe(scheme="symmetric", head="int4")


def test_plain_from_pretrained_refuses_it_but_load_quantized_loads_it(quantized):
    from transformers import AutoModelForCausalLM

    with pytest.raises(OSError):  # a different format: no model.safetensors to load silently wrong
        AutoModelForCausalLM.from_pretrained(quantized.path)
    model, tokenizer = load_quantized(quantized.path, kernel="dequant")
    int8 = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert len(int8) == LAYERS * len(LORA_TARGETS)
    assert isinstance(model.lm_head, Int8Head)  # the default: the head is int8, the embedding stays fp32
    assert model.get_input_embeddings().weight.dtype == torch.float32
    ids = torch.tensor([tokenizer("def alpha(beta):")["input_ids"]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_drift_is_small_and_weight_bytes_drop(lab, quantized):
    _, _, pico = lab
    metrics = quantized.manifest.metrics
    assert metrics["drift_data"] == pico.datasets["code"]["test"].id and metrics["drift_kernel"] == "dequant"
    assert metrics["top1_agreement"] >= 0.97 and metrics["kl_mean"] < 1e-2
    assert metrics["dynamic_kernel_drift"]["top1_agreement"] >= 0.95
    assert metrics["kl_mean"] <= metrics["dynamic_kernel_drift"]["kl_mean"]  # weight-only is the smaller error
    assert metrics["weight_bytes"] < 0.5 * metrics["weight_bytes_source"]


def test_drift_falls_back_to_built_in_text_without_a_test_split(lab):
    _, registry, pico = lab
    _, tokenizer = load_model(pico.parent.path)
    blocks, label = drift_blocks(registry, tokenizer, "no-such-domain")
    assert label.startswith("builtin:") and blocks.ndim == 2 and blocks.numel() > 0


def test_a_tampered_file_is_refused_when_hashes_are_given(quantized, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(quantized.path, copy)
    expected = {name: entry.sha256 for name, entry in quantized.manifest.files.items()}
    load_quantized(copy, expected_files=expected)
    target = copy / "quantized.safetensors"
    target.chmod(0o644)
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 1
    target.write_bytes(bytes(raw))
    with pytest.raises(FrozenModelTampered):
        load_quantized(copy, expected_files=expected)


def test_recipes_are_checked_and_a_quantized_model_is_not_requantized(lab, quantized):
    home, registry, _ = lab
    with pytest.raises(ValueError):
        QuantizeRecipe(bits=4)
    with pytest.raises(ValueError):
        QuantizeRecipe(modules=("lm_head",))
    assert QuantizeRecipe(modules=("up_proj", "q_proj")).modules == ("q_proj", "up_proj")
    with pytest.raises(RegistryError, match="already quantized"):
        quantize(registry, home, quantized.id, INT8, OPTIONS)


# --- fp16: weight-only half precision through fbgemm's packed GEMM ---------------------------------

def test_fp16_linear_is_x_times_the_half_rounded_weight_in_fp32(monkeypatch):
    from breedlab.models.kernels import half

    torch.manual_seed(0)
    weight, bias, x = torch.randn(24, 16), torch.randn(24), torch.randn(2, 5, 16) * 50  # large activations stay fp32
    expected = torch.nn.functional.linear(x, weight.half().float(), bias)
    packed = Fp16Linear(weight.half(), bias)
    assert torch.allclose(packed(x), expected, rtol=1e-5, atol=1e-3)
    assert torch.equal(packed.weight, weight.half().float()) and torch.equal(packed.bias, bias)
    rows = packed.rows(torch.tensor([3, 0, 17]))
    assert torch.allclose(rows(x), expected[..., [3, 0, 17]], rtol=1e-5, atol=1e-3)
    monkeypatch.setattr(half, "PACKED", False)  # where fbgemm is missing: the same product, unpacked
    plain = Fp16Linear(weight.half(), bias)
    assert plain._packed is None and torch.allclose(plain(x), expected, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="float16"):
        Fp16Linear(weight)
    with pytest.raises(ValueError, match="does not fit"):
        half.to_fp16(torch.tensor([[1e6]]))


def test_fp16_recipes_take_their_scheme_shape_and_int8_identities_are_unchanged():
    recipe = QuantizeRecipe()  # fp16 is the default scheme
    assert recipe.scheme == "fp16" and (recipe.bits, recipe.granularity, recipe.head, recipe.suffix) == (16, "none", "fp16", "-fp16")
    # the int8 recipe's dict is exactly what artifacts made before the fp16 scheme recorded
    assert INT8.to_dict() == {"scheme": "symmetric", "bits": 8, "granularity": "per-output-channel",
                                          "modules": list(LORA_TARGETS), "head": "int8"}
    assert QuantizeRecipe(scheme="fp16", head="fp32").to_dict()["head"] == "fp32"
    for bad in ({"scheme": "fp16", "bits": 8}, {"scheme": "fp16", "head": "int8"}, {"scheme": "int4"},
                {"scheme": "symmetric", "bits": 16}, {"scheme": "symmetric", "granularity": "none"}):
        with pytest.raises(ValueError):
            QuantizeRecipe(**bad)


@pytest.fixture(scope="module")
def quantized_fp16(lab):
    home, registry, pico = lab
    return quantize(registry, home, pico.parent.id, QuantizeRecipe(scheme="fp16"), OPTIONS, drift_domain="code").child


def test_the_fp16_folder_stores_half_weights_and_loads_them_packed(lab, quantized_fp16):
    _, _, pico = lab
    assert quantized_fp16.manifest.name.endswith("-fp16")
    spec = json.loads((quantized_fp16.path / "quantization.json").read_text())
    assert (spec["format"], spec["scheme"], spec["head"]) == ("breedlab.fp16/1", "fp16", "fp16")
    with safe_open(quantized_fp16.path / "quantized.safetensors", "pt") as stored:
        assert stored.get_tensor("model.layers.0.mlp.down_proj.weight").dtype == torch.float16
        assert stored.get_tensor("lm_head.weight").dtype == torch.float16
        assert stored.get_tensor("model.embed_tokens.weight").dtype == torch.float32
    model, tokenizer = load_quantized(quantized_fp16.path)
    assert sum(isinstance(m, Fp16Linear) for m in model.modules()) == LAYERS * len(LORA_TARGETS) + 1  # + the head
    source, _ = load_model(pico.parent.path)
    ids = torch.tensor([tokenizer("def alpha(beta):")["input_ids"]])
    with torch.no_grad():
        assert (model(input_ids=ids).logits - source(input_ids=ids).logits).abs().max() < 1e-2
    with pytest.raises(ValueError, match="kernel"):
        load_quantized(quantized_fp16.path, kernel="dequant")  # an int8 kernel cannot read half weights


def test_fp16_drift_is_smaller_than_int8s_and_bytes_halve(quantized, quantized_fp16):
    metrics = quantized_fp16.manifest.metrics
    assert metrics["drift_kernel"] == "fp16" and metrics["top1_agreement"] >= 0.99
    assert metrics["kl_mean"] < quantized.manifest.metrics["kl_mean"]
    assert 0.45 < metrics["weight_bytes_ratio"] < 0.75  # the fp32 embedding stays beside the half weights


def test_a_domain_head_over_an_fp16_head_keeps_its_logits_on_both_paths():
    torch.manual_seed(0)
    full = Fp16Linear(torch.randn(40, 8).half())
    kept = torch.tensor([1, 5, 7, 30])
    head = DomainHead(full, {"kept_ids": kept, "other_weight": torch.zeros(8), "other_bias": torch.tensor([-1e9]),
                             "margin": torch.zeros(1)})
    head.greedy = True
    hidden = torch.randn(3, 1, 8)
    with torch.no_grad():
        assert torch.allclose(head(hidden)[..., kept], full(hidden)[..., kept], atol=1e-5)
        head.other_bias.fill_(1e9)
        assert torch.allclose(head(hidden), full(hidden), atol=1e-5) and head.fallbacks == 3
