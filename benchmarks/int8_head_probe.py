"""Does an int8 LM head (dequantised 1,024 rows at a time) speed up decode, and what does it cost?

Takes an int8 artifact quantized with ``head: fp32`` (the layers int8, the head fp32), adds
``Int8Head`` on a second copy, and reports KL, top-1 agreement and NLL on 2,048 held-out code
tokens, then greedy decode tokens/s of the fp32 parent, the fp32-head model and the int8-head model
with blocks of 4,096 and 1,024 rows, in alternating rounds (needs an otherwise idle machine):

    .venv/bin/python benchmarks/int8_head_probe.py FP32_HEAD_INT8_ID [ROUNDS]
"""
import statistics
import sys

import torch

torch.set_num_threads(2)
from breedlab.cmg.blocks import dataset_blocks
from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.models.kernels.int8 import Int8Head
from breedlab.operators import quantize as q
from breedlab.registry import Registry

reg = Registry.open(Home.resolve(None).registry_dir)
parent, tok = load_candidate(reg.find(kind="parent")[0])
int8, _ = load_candidate(reg.get(sys.argv[1]))
int8h, _ = load_candidate(reg.get(sys.argv[1]))
head = Int8Head(*q.quantize_weight(int8h.lm_head.weight.detach()), block_rows=4096)
int8h.lm_head = head
prompt = "def fibonacci(n):\n"
# quality: KL(int8 || int8+head) and top-1 agreement on held-out code blocks
blocks = dataset_blocks(reg.find(kind="dataset", name="code/test")[0].path, tok, 128, 2048)
with torch.no_grad():
    a = int8(input_ids=blocks).logits.double().log_softmax(-1)
    b = int8h(input_ids=blocks).logits.double().log_softmax(-1)
    p = parent(input_ids=blocks).logits.double().log_softmax(-1)
    lab = blocks[:, 1:]

    def nll(lp):
        return float(-lp[:, :-1].gather(-1, lab[..., None]).mean())

    print("KL(int8||int8+head)", float((a.exp() * (a - b)).sum(-1).mean()), "top1", float((a.argmax(-1) == b.argmax(-1)).float().mean()))
    print("NLL parent", nll(p), "int8", nll(a), "int8+head", nll(b))
del a, b, p
rows = {"fp32": [], "int8": [], "int8+head4096": [], "int8+head1024": []}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 4):
    rows["fp32"].append(generation_speed(parent, tok, prompt, 64, 1))
    rows["int8"].append(generation_speed(int8, tok, prompt, 64, 1))
    head.block_rows = 4096
    rows["int8+head4096"].append(generation_speed(int8h, tok, prompt, 64, 1))
    head.block_rows = 1024
    rows["int8+head1024"].append(generation_speed(int8h, tok, prompt, 64, 1))
    print(r, {k: round(v[-1], 1) for k, v in rows.items()}, flush=True)
print({k: round(statistics.median(v), 1) for k, v in rows.items()})
