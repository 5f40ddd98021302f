"""The fitted transform as a torch module, to put in front of a model for serving.

`TransformModule(load_transform(out, fold=None))` computes, in float64, exactly what the Spark and
numpy appliers compute (sparkprep.transform), so training and serving never skew. It is
TorchScript-scriptable (`torch.jit.script(module)`): numbers travel as tensors, categorical
values as lists of strings (a value the vocabulary does not know, or "" for a missing one, goes
to the unknown bucket 0).

>>> transform = torch.jit.script(TransformModule(load_transform("/data/prepared", fold=None)))
>>> out = transform({"num_0": torch.tensor([1.0, float("nan")])}, {"cat_0": ["a", "never-seen"]}, {})
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from sparkprep.transform import UNKNOWN, TransformParams


def _column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


class TransformModule(nn.Module):
    """forward(numeric, categorical, arrays) -> the transformed columns of those given (float64;
    categorical "index" as int64, "onehot" as float64 rows). Parameters are buffers, so `.to(device)`
    moves them.

    Args:
        params: the fitted transform of one training set (load_transform).
    """

    def __init__(self, params: TransformParams) -> None:
        super().__init__()
        numeric = params.numeric
        self.numeric_names: List[str] = [p.column for p in numeric]
        self.log1p: List[bool] = [p.log1p for p in numeric]
        for name in ("fill", "lower", "upper", "center", "scale"):
            self.register_buffer(f"numeric_{name}", _column([getattr(p, name) for p in numeric]))
        self.unknown: int = UNKNOWN  # TorchScript reads module attributes, not module globals
        self.vocabulary: Dict[str, Dict[str, int]] = {
            p.column: {v: i + 1 for i, v in enumerate(p.vocabulary)} for p in params.categorical}
        self.one_hot_width: Dict[str, int] = {
            p.column: p.width if p.encoding == "onehot" else 0 for p in params.categorical}
        # Arrays padded into one (arrays, max width) buffer; widths say how much of a row is real.
        self.array_names: List[str] = [p.column for p in params.arrays]
        self.array_widths: List[int] = [len(p.center) for p in params.arrays]
        width = max(self.array_widths, default=0)
        self.register_buffer("array_center", torch.zeros(len(params.arrays), width, dtype=torch.float64))
        self.register_buffer("array_scale", torch.ones(len(params.arrays), width, dtype=torch.float64))
        for i, p in enumerate(params.arrays):
            self.array_center[i, : len(p.center)] = _column(list(p.center))
            self.array_scale[i, : len(p.scale)] = _column(list(p.scale))

    def forward(self, numeric: Dict[str, torch.Tensor], categorical: Dict[str, List[str]],
                arrays: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The transformed columns of those given that the transform knows.

        Args:
            numeric: numeric columns, NaN where missing.
            categorical: categorical columns as strings ("" where missing).
            arrays: array columns as (rows, width) tensors.
        """
        out: Dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.numeric_names):
            if name in numeric:
                x = numeric[name].to(torch.float64)
                v = torch.sign(x) * torch.log1p(torch.abs(x)) if self.log1p[i] else x
                v = torch.where(torch.isfinite(x), v, self.numeric_fill[i])
                v = torch.minimum(torch.maximum(v, self.numeric_lower[i]), self.numeric_upper[i])
                out[name] = (v - self.numeric_center[i]) / self.numeric_scale[i]
        for name, values in categorical.items():
            if name in self.vocabulary:
                lookup = self.vocabulary[name]
                index = torch.tensor([lookup.get(v, self.unknown) for v in values], dtype=torch.int64)
                width = self.one_hot_width[name]
                out[name] = index if width == 0 else nn.functional.one_hot(index, width).to(torch.float64)
        for i, name in enumerate(self.array_names):
            if name in arrays:
                x = arrays[name].to(torch.float64)
                center = self.array_center[i, : self.array_widths[i]]
                v = torch.where(torch.isfinite(x), x, center)
                out[name] = (v - center) / self.array_scale[i, : self.array_widths[i]]
        return out
