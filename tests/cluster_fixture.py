"""A pristine pico lab home copied per test, pico recipes, and one local Ray cluster per module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from breedlab.cluster.recipes import CandidateRecipe
from breedlab.home import Home
from breedlab.lab.run import LabConfig
from breedlab.registry import Registry

SMALL = dict(batch_size=4, seq_len=64, warmup_steps=2, seed=0)
CMG_SMALL = {**SMALL, "profile_tokens": 1024, "proxy_tokens": 512, "rehearsal_pool_tokens": 8192}
RECIPES = [
    CandidateRecipe("cmg-p50", "cmg", "compact", {**CMG_SMALL, "ratio": 0.5, "tokens": 4096, "pool_tokens": 4096}),
    CandidateRecipe("cmg-p70", "cmg", "compact", {**CMG_SMALL, "ratio": 0.7, "tokens": 2048, "pool_tokens": 2048}),
    CandidateRecipe("lora", "adapter-finetune", None, {**SMALL, "tokens": 1024, "pool_tokens": 1024,
                                                       "rehearsal_pool_tokens": 8192, "lora_rank": 8,
                                                       "lora_alpha": 16}),
]


def pico_config(niche: str) -> LabConfig:
    return LabConfig(niche=niche, pico=True, lm_cases=8, cloze_cases=12, retention_cases=6, passage_tokens=32,
                     engine="")


def build_pristine(root: Path) -> Path:
    from breedlab.lab.pico_home import build_pico_lab
    from breedlab.lab.setup import LAB_ACTOR, crown_parent

    home = Home.resolve(root)
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir, domains=("code", "general"), docs=60)
    crown_parent(registry, pico.parent, actor=LAB_ACTOR)
    return root


def copy_home(pristine: Path, target: Path) -> tuple[Home, Registry]:
    shutil.copytree(pristine, target, symlinks=True)
    home = Home.resolve(target)
    return home, Registry.open(home.registry_dir)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of 2 CPUs, shared by the module's tests (ray_session leaves it running)."""
    import ray

    from breedlab.cluster.runner import WORKER_ENV

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
    yield ray
    ray.shutdown()
