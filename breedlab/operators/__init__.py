"""Operators the lab needs besides the CMG, one module each, registered by decorator.

| operator | module | input -> output |
|---|---|---|
| ``adapter-finetune`` | ``adapter_finetune.py`` | model -> ``adapter``: LoRA on the model itself, CMG loop |
| ``quantize`` | ``quantize.py`` | model -> ``quantized``: fp16 (default) or int8 weight-only, drift measured |

Every operator has the CMG's signature, ``(registry, home, input_id, recipe, options) -> outcome``
with ``outcome.child`` the registered artifact; ``tests/test_operators_contract.py`` runs each
of them through the same checks. Importing this package does not import torch.
"""
