"""Shared fixtures: a pico parent folder, a throw-away home and its registry.

Tests never touch the network or the user's real home: HF_HUB_OFFLINE is set
before anything imports huggingface_hub, and ``home`` lives under tmp_path.
Tests marked ``slow`` (the real SmolLM2 parent) run only with BREEDLAB_SLOW=1.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from breedlab.home import Home  # noqa: E402

SLOW_ENV = "BREEDLAB_SLOW"


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.slow`` tests unless BREEDLAB_SLOW=1."""
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow test: set {SLOW_ENV}=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pico_parent_dir(tmp_path_factory):
    """A saved pico Llama parent (4 layers, hidden 64, vocab 512), trained 20 steps.

    Session-scoped and shared: treat it as read-only (copy it to modify it).
    """
    from breedlab.models.pico import build_pico_parent

    return build_pico_parent(tmp_path_factory.mktemp("pico") / "pico-parent", train_steps=20)


@pytest.fixture()
def home(tmp_path) -> Home:
    """A fresh breedlab home folder under tmp_path."""
    return Home.resolve(tmp_path / "home")


@pytest.fixture()
def registry(home):
    """An empty registry inside ``home``."""
    from breedlab.registry import Registry

    return Registry.open(home.registry_dir)


@pytest.fixture(scope="module")
def pico(pico_parent_dir):
    """(model, tokenizer) of the shared pico parent, loaded once per test module."""
    import torch

    from breedlab.models.io import load_model

    torch.set_num_threads(1)
    return load_model(pico_parent_dir)


@pytest.fixture(scope="module")
def blocks(pico):
    """Eight (8, 32) token blocks of the pico's built-in text."""
    from breedlab.cmg.blocks import token_blocks
    from breedlab.models.pico import PICO_TEXTS

    return token_blocks(pico[1], PICO_TEXTS * 4, seq_len=32, max_blocks=8)
