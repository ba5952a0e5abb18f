"""Where does a child lose? Parent vs child NLL by how held-out text is sampled, and by position.

    .venv/bin/python benchmarks/stage1_positions.py HOME DOMAIN CHILD_NAME
"""
import random, sys, json, torch
torch.set_num_threads(2)
from breedlab.home import Home
from breedlab.registry import Registry
from breedlab.cmg.inputs import dataset
from breedlab.cmg.blocks import dataset_blocks
from breedlab.data.read import iter_documents
from breedlab.evaluation.passages import lm_cases, case_blocks
from breedlab.evaluation.measure import load_candidate
from transformers import AutoTokenizer

home = Home.resolve(sys.argv[1]); reg = Registry.open(home.registry_dir)
domain, child_name = sys.argv[2], sys.argv[3]
parent = reg.find(kind="parent")[0]
child = next(a for a in reg.find() if a.manifest.name == child_name)
tok = AutoTokenizer.from_pretrained(parent.path)
sets = {}
for split in (domain, "general"):
    docs = list(iter_documents(dataset(reg, f"{split}/test").path))
    for T in (128, 256):
        cases = lm_cases(docs, tok, count=64, tokens=T, rng=random.Random(0))
        sets[f"{split}-sampled{T}"] = case_blocks(tok, cases, T)
    sets[f"{split}-stream256"] = dataset_blocks(dataset(reg, f"{split}/test").path, tok, 256, 16384)
print({k: tuple(v.shape) for k, v in sets.items()}, flush=True)

@torch.no_grad()
def pos_nll(model, blocks):
    out = []
    for s in range(0, len(blocks), 8):
        b = blocks[s:s+8]
        lg = model(input_ids=b).logits[:, :-1].float()
        out.append(torch.nn.functional.cross_entropy(lg.transpose(1, 2), b[:, 1:], reduction="none"))
    return torch.cat(out)  # (N, S-1)

res = {}
for name, art in (("parent", parent), ("child", child)):
    model, _ = load_candidate(art); model.eval()
    res[name] = {k: pos_nll(model, v) for k, v in sets.items()}
    del model
for k in sets:
    p, c = res["parent"][k], res["child"][k]
    S = p.shape[1]
    buckets = [(0, 8), (8, 32), (32, 64), (64, 128), (128, S)]
    line = " ".join(f"[{a}:{b}] {float((c[:, a:b]-p[:, a:b]).mean()):+.3f}" for a, b in buckets if a < S)
    print(f"{k:22s} parent {float(p.mean()):.3f} child {float(c.mean()):.3f} diff {float((c-p).mean()):+.3f} "
          f"ppl-ratio {float(torch.exp((c-p).mean())):.3f} | {line}", flush=True)
