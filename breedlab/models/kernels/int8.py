"""int8 kernels: weights stored as int8 plus one float32 scale per output row, and the modules that run them.

``quantize.py`` (the operator) writes and loads these; they are kept apart so a
serving engine can use the kernels without the operator's registry code.
"""

from __future__ import annotations

import torch

QMAX = 127  # symmetric: -128 is never used, so q and -q are both representable
HEAD_BLOCK_ROWS = 1024
"""Vocabulary rows the int8 head dequantises at a time: 1,024 x 576 fp32 is 2.4 MB, which stays in
cache; the whole 113 MB head would be written out and read back on every decode step."""


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(qweight int8 (out, in), scale float32 (out,)) with ``weight ~ qweight * scale[:, None]``."""
    absmax = weight.detach().float().abs().amax(dim=1)  # (out,)
    scale = torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))  # an all-zero row stays 0
    qweight = torch.round(weight.detach().float() / scale[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return qweight, scale


class Int8Linear(torch.nn.Module):
    """A Linear whose weight is int8 + a float32 scale per output row, dequantised on the fly."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) float32
        self.register_buffer("bias", bias)  # (out,) or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        # x @ (q * s).T == (x @ q.T) * s: scaling the output columns costs (..., out), not (out, in)
        y = torch.nn.functional.linear(x, self.qweight.to(x.dtype)) * self.scale.to(x.dtype)
        return y if self.bias is None else y + self.bias


class Int8Head(torch.nn.Module):
    """The LM head as int8 + one float32 scale per vocabulary row, dequantised a block of rows at a time."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, block_rows: int = HEAD_BLOCK_ROWS):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)  # (V, D) int8
        self.register_buffer("scale", scale)  # (V,) float32
        self.block_rows = block_rows

    @property
    def weight(self) -> torch.Tensor:  # (V, D): what code reading a head's rows (the domain head) sees
        return self.qweight.float() * self.scale[:, None]

    def rows(self, ids: torch.Tensor) -> "Int8Head":
        """The head of rows ``ids`` alone, still int8 (a domain head's kept and dropped parts)."""
        return Int8Head(self.qweight[ids].clone(), self.scale[ids].clone(), self.block_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., V)
        blocks = [torch.nn.functional.linear(x, self.qweight[start:start + self.block_rows].to(x.dtype))
                  for start in range(0, self.out_features, self.block_rows)]
        return torch.cat(blocks, dim=-1) * self.scale.to(x.dtype)


def dynamic_linear(qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
    """``torch.ao``'s dynamic int8 Linear (fbgemm) holding exactly the stored int8 weights and scales."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    out_features, in_features = qweight.shape
    # Re-quantizing q * s with the same scales gives q back exactly (|error| << 0.5 before rounding).
    weight = torch.quantize_per_channel(qweight.float() * scale[:, None], scale.double(),
                                        torch.zeros(out_features, dtype=torch.long), 0, torch.qint8)
    if not torch.equal(weight.int_repr(), qweight):
        raise ValueError("the dynamic kernel cannot represent these int8 weights exactly")
    module = DynamicLinear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
    module.set_weight_bias(weight, bias)
    return module
