"""Does batch-1 decode on this host want one torch thread or two?

Times greedy decoding (64 tokens) of the fp32 parent and one other model (an int8 copy, say) at 2
and at 1 torch threads, in 6 alternating rounds (needs an otherwise idle machine):

    .venv/bin/python benchmarks/decode_threads_probe.py ARTIFACT_ID
"""
import statistics
import sys

import torch

from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.registry import Registry

reg = Registry.open(Home.resolve(None).registry_dir)
parent, tok = load_candidate(reg.find(kind="parent")[0])
model, _ = load_candidate(reg.get(sys.argv[1]))
rows = {"fp32 t2": [], "int8 t2": [], "fp32 t1": [], "int8 t1": []}
for r in range(6):
    for name, m in (("fp32", parent), ("int8", model)):
        for t in (2, 1):
            torch.set_num_threads(t)
            rows[f"{name} t{t}"].append(generation_speed(m, tok, "def fibonacci(n):\n", 64, 1))
    print(r, {k: round(v[-1], 1) for k, v in rows.items()}, flush=True)
print("median", {k: round(statistics.median(v), 1) for k, v in rows.items()})
