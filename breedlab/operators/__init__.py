"""Operators: each turns registered artifacts into a new one, registered by name with its recipe class.

| operator | module | input -> output |
|---|---|---|
| ``cmg`` | ``cmg.py`` | parent -> ``child``: the four CMG steps (profile, prune, distil, rehearse) |
| ``prune`` | ``prune.py`` | model -> ``child``: the CMG's steps 1-2 alone, no training (heal it separately) |
| ``adapter-finetune`` | ``adapter_finetune.py`` | model -> ``adapter``: LoRA on the model itself, CMG loop |
| ``quantize`` | ``quantize.py`` | model -> ``quantized``: fp16 (default) or int8 weight-only, drift measured |
| ``merge`` | ``merge.py`` | models -> ``merged``: weight arithmetic, methods are plug-ins (``merge_methods.py``) |
| ``merge-distill`` | ``merge_distill.py`` | models -> ``merged``: specialists distilled into one student |

Every operator has the signature ``(registry, home, input_id, recipe, options) -> outcome`` with
``outcome.child`` the registered artifact; the training ones run ``skeleton.run_job``.
``tests/test_operators_contract.py`` runs each registered operator through the same checks.
Importing this package registers the built-in operators (the table is ``table.py``).
"""

from breedlab.operators import adapter_finetune, cmg, merge, merge_distill, prune, quantize  # noqa: F401
