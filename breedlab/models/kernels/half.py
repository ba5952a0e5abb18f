"""fp16 weight-only kernels: weights stored as IEEE half, activations and accumulation in float32.

Why a second scheme beside int8 (``int8.py``): at batch 1 a decode step is bound by the bytes of
weight it reads, and PyTorch's CPU build ships a packed fp16 GEMM (fbgemm's ``FbgemmFP16``,
``torch.ops.quantized.linear_dynamic_fp16``) that reads half-precision weights directly. The int8
weight-only path has no such kernel here: ``Int8Linear`` dequantises into a fresh fp32 matrix on
every call, and ``torch._weight_int8pack_mm`` was 8x slower than fp32 on this AMD host. Measured on
one thread with 30 distinct weights per shape (so none stays in cache), one token
(``benchmarks/fp16_probe.py``, docs/results/fp16-probe.txt):

    576 -> 1536:    fp32 388 us, int8 dequant 173 us, fp16 packed 121 us
    1536 -> 576:    fp32 257 us, int8 dequant 162 us, fp16 packed 118 us
    576 -> 49,152:  fp32 10.5 ms, int8 head 6.4 ms,   fp16 packed 2.7 ms (the head)

Only the weights are rounded (to 11 significant bits against int8's 8, with no scale to share a
row's range); the activations stay fp32, checked to 7e-5 against ``x @ w.half().float().T``. On
2,048 held-out code tokens the fp16 parent's NLL moved by +0.0002 nats/token (int8: +0.0051).
``PACKED`` is False where fbgemm is not built in; the modules then compute the same product with an
fp32 copy of the weight (exact, not fast), and the loader records which kernel ran.
"""

from __future__ import annotations

import torch

PACKED = "fbgemm" in torch.backends.quantized.supported_engines


class Fp16Linear(torch.nn.Module):
    """A Linear whose weight is fp16, multiplied in fp32 by fbgemm's packed fp16 GEMM."""

    def __init__(self, weight16: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        if weight16.dtype != torch.float16:
            raise ValueError(f"Fp16Linear takes a float16 weight, got {weight16.dtype}")
        self.out_features, self.in_features = weight16.shape
        bias = None if bias is None else bias.detach().float()
        # The packed copy is the only copy kept: ``weight`` unpacks it when someone reads it.
        self._packed = torch.ops.quantized.linear_prepack_fp16(weight16.float(), bias) if PACKED else None
        self.register_buffer("_weight16", None if PACKED else weight16.detach().clone(), persistent=False)
        self.register_buffer("_bias", None if PACKED else bias, persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # (out, in) float32, exactly the fp16 values
        if self._packed is None:
            return self._weight16.float()
        return torch.ops.quantized.linear_unpack_fp16(self._packed)[0]

    @property
    def bias(self) -> torch.Tensor | None:
        return self._bias if self._packed is None else torch.ops.quantized.linear_unpack_fp16(self._packed)[1]

    def rows(self, ids: torch.Tensor) -> "Fp16Linear":
        """Rows ``ids`` alone, still fp16 (a domain head's kept and dropped parts)."""
        bias = self.bias
        return Fp16Linear(self.weight[ids].half(), None if bias is None else bias[ids])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        if self._packed is None:
            return torch.nn.functional.linear(x, self._weight16.to(x.dtype), self._bias)
        flat = x.reshape(-1, self.in_features).float()  # the kernel takes a 2-D fp32 matrix
        return torch.ops.quantized.linear_dynamic_fp16(flat, self._packed).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed={self._packed is not None}"


def to_fp16(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as float16, refusing values beyond fp16's range rather than saturating them silently."""
    finite = float(weight.detach().abs().max()) if weight.numel() else 0.0
    if finite > torch.finfo(torch.float16).max:
        raise ValueError(f"a weight of magnitude {finite:.3g} does not fit in float16")
    return weight.detach().to(torch.float16).contiguous()
