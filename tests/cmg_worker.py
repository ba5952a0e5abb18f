"""A breeding process the CMG tests kill with SIGKILL once it has checkpointed."""

import sys
from dataclasses import replace
from pathlib import Path

import torch
from test_cmg_breed import QUICK

from breedlab.cmg.recipe import RunOptions
from breedlab.home import Home
from breedlab.operators.cmg import breed_child
from breedlab.registry import Registry

KILLED_RECIPE = replace(QUICK, seed=7, steps=400)


if __name__ == "__main__":
    torch.set_num_threads(1)
    home = Home.resolve(Path(sys.argv[1]))
    breed_child(Registry.open(home.registry_dir), home, sys.argv[2], KILLED_RECIPE,
                RunOptions(progress=False, checkpoint_every=5))
