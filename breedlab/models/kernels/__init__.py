"""Weight-only kernels the serving stacks run on: ``half.py`` (fp16, fbgemm's packed GEMM) and ``int8.py``.

The lowest floor: they import only torch, so the operators (``ops/quantize.py``), the CMG's shape
search and a serving engine can all use them.
"""
