"""Is int8 decode slow on some runs because each call allocates (and page-faults) a fresh fp32 weight?

Times greedy decoding of the fp32 parent, the int8 model as shipped, and the same with one reused
scratch buffer per weight shape, in alternating rounds (needs an otherwise idle machine):

    .venv/bin/python benchmarks/int8_kernel_probe.py INT8_ARTIFACT_ID [ROUNDS]
"""
import statistics
import sys

import torch

torch.set_num_threads(2)
from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.operators import quantize as q
from breedlab.registry import Registry

reg = Registry.open(Home.resolve(None).registry_dir)
parent, tok = load_candidate(reg.find(kind="parent")[0])
int8, _ = load_candidate(reg.get(sys.argv[1]))
prompt = "Patients with type 2 diabetes"
orig = q.Int8Linear.forward
_buffers = {}

def scratch_forward(self, x):
    key = (tuple(self.qweight.shape), x.dtype)
    buf = _buffers.get(key)
    if buf is None:
        buf = _buffers[key] = torch.empty(self.qweight.shape, dtype=x.dtype)
    buf.copy_(self.qweight)
    y = torch.nn.functional.linear(x, buf) * self.scale.to(x.dtype)
    return y if self.bias is None else y + self.bias

rows = {"fp32 parent": [], "int8 alloc": [], "int8 scratch": []}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 4):
    rows["fp32 parent"].append(generation_speed(parent, tok, prompt, 64, 1))
    q.Int8Linear.forward = orig
    rows["int8 alloc"].append(generation_speed(int8, tok, prompt, 64, 1))
    q.Int8Linear.forward = scratch_forward
    rows["int8 scratch"].append(generation_speed(int8, tok, prompt, 64, 1))
    print(r, {k: round(v[-1], 1) for k, v in rows.items()}, flush=True)
print({k: round(statistics.median(v), 1) for k, v in rows.items()})
