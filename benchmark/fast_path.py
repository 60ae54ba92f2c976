"""The fast path's model settings (issue 16, point 2): ``torch.compile`` that leaves the feature
taps' hooks outside the compiled graphs, and whether bf16 autocast has hardware support here.

:func:`compile_model` compiles the forward of every maximal sub-tree of modules that carries no
forward hook: the taps' hooks (:class:`models.FeatureExtractor`) then run eagerly between
compiled graphs, so dynamo never traces their Python side effects (which would break graphs
and recompile on every tap name). The module tree, its parameters and ``state_dict`` keys are
unchanged; only instance ``forward`` attributes are replaced. On CUDA the graphs use CUDA graphs
(``mode="reduce-overhead"``). The math is the same as eager, not bit for bit (fused kernels).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


#: Graphs dynamo may keep per code object: enough for every block of a deep ResNet.
RECOMPILE_LIMIT = 512


def compile_options(device: torch.device) -> dict[str, Any]:
    """``torch.compile`` settings of ``--compile``: CUDA graphs (``reduce-overhead``) on CUDA,
    inductor's default elsewhere."""
    return {"mode": "reduce-overhead"} if device.type == "cuda" else {}


def _has_hooks(module: nn.Module) -> bool:
    return any(bool(getattr(m, name, None)) for m in module.modules()
               for name in ("_forward_hooks", "_forward_pre_hooks"))


def compile_model(model: nn.Module, device: torch.device) -> list[str]:
    """Compile ``model``'s hook-free sub-trees in place (module docstring); returns their
    qualified names (``""``: the whole model, when nothing is tapped)."""
    options = compile_options(device)
    compiled: list[str] = []
    # Every compiled block of one class shares its forward's code object, and dynamo keeps at
    # most ``recompile_limit`` graphs per code object (8) before running the rest eagerly.
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name),
                                                    RECOMPILE_LIMIT))

    def visit(name: str, module: nn.Module) -> None:
        if not _has_hooks(module):
            if any(True for _ in module.parameters()) or any(True for _ in module.children()):
                module.forward = torch.compile(module.forward, **options)
                compiled.append(name)
            return
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return compiled


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs on native bf16 hardware here: CUDA's check, or on CPU oneDNN's
    (AVX-512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check()) if check is not None else False
    return False
