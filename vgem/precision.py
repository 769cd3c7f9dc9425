"""Which number format a grounding runs in, and how the model is made ready for it.

fp32 is the reference: it reproduces the authors' maps. bf16 (and fp16 on
CUDA) runs the transformer blocks' matrix products in 16 bits under autocast,
while norms, the softmax inside the fused attention, the residual stream, the
patch embedding, the text tower and everything after the visual pass stay in
fp32 (:func:`full_precision` says why for the embedding and the text).

Autocast alone would convert every block weight to 16 bits again on each
forward pass (its cast cache lives only as long as one ``autocast`` context):
that is a read of all fp32 weights and a write of half as much per clip, for
nothing. :func:`prepare_blocks` converts the weights of the transformer
blocks' matrix products once, in place, to exactly the values autocast would
have made, so the maps are bit-identical and those weights take half the memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import SettingsError

if TYPE_CHECKING:
    import torch

    from vgem.backbones.base import Block

#: The 16-bit format of each reduced precision.
REDUCED = {"bf16": "bfloat16", "fp16": "float16"}


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """The precision a run uses: ``auto`` becomes bf16 where the hardware runs it
    fast (:func:`fast_bf16`), fp32 elsewhere; any other choice is kept."""
    if precision != "auto":
        return precision
    import torch

    resolved = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return "bf16" if fast_bf16(resolved) else "fp32"


def resolve_device(choice: str) -> torch.device:
    """``auto``: the CUDA GPU where PyTorch sees one, else the CPU."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            "`device` cuda was asked for, but PyTorch sees no CUDA GPU.", settings=["device"]
        )
    return torch.device(choice)


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matrix products natively: a CUDA GPU with bf16,
    or a CPU with AMX-BF16 tiles. (Without them PyTorch emulates bf16 on the CPU,
    up to a hundred times slower than fp32.)"""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has_amx_bf16()
    return False


def cpu_has_amx_bf16() -> bool:
    """AMX-BF16 on this CPU, usable by this process: PyTorch's own probe where it
    has one, else the Linux CPU flags."""
    import torch

    probe = getattr(torch._C._cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False


def slow_precision_warning(precision: str, device: torch.device) -> str | None:
    """A sentence for a run asked to use bf16 where it is emulated, else None."""
    if precision != "bf16" or device.type != "cpu" or fast_bf16(device):
        return None
    return (
        "bf16 was asked for, but this CPU has no AMX-BF16: PyTorch emulates bf16 here, "
        "which is several times slower than fp32 (precision auto chooses fp32 on it)"
    )


def autocast_factory(device: torch.device, precision: str) -> Callable[[], Any]:
    """A context factory: autocast to bf16/fp16 where asked, nothing for fp32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise SettingsError(
            "`precision` fp16 needs a CUDA GPU; use bf16 on the CPU.", settings=["precision"]
        )
    dtype = getattr(torch, REDUCED[precision])
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off, for the parts that run in fp32 at every precision.

    Measured with random weights (clip-b16, bf16 against fp32): the patch
    embedding in bf16 rounds every input pixel to 8 significant bits, and with
    it the text tower in bf16 made most of the maps' error (largest map error
    0.0015 → 0.0004 with both in fp32), while they take under 1 % of the time.
    """
    import torch

    return torch.autocast(device_type=device.type, enabled=False)


def prepare_blocks(blocks: Sequence[Block], precision: str) -> list[torch.Tensor]:
    """Ready the blocks' weights for ``precision``: lowered once for bf16/fp16
    (:func:`lower_weights`); for fp32, refuse weights an earlier lowering
    left (:func:`refuse_lowered`). Returns the weight tensors, for later checks."""
    weights = list(_matmul_weights(blocks))
    if precision in REDUCED:
        import torch

        lower_weights(weights, getattr(torch, REDUCED[precision]))
    else:
        refuse_lowered(weights)
    return weights


def refuse_lowered(weights: Sequence[torch.Tensor]) -> None:
    """An fp32 run cannot use block weights a bf16/fp16 Grounder lowered in place."""
    lowered = {str(tensor.dtype).removeprefix("torch.") for tensor in weights}
    lowered -= {"float32", "float64"}
    if lowered:
        raise SettingsError(
            f"This backbone's block weights are in {', '.join(sorted(lowered))} (a bf16 or fp16 "
            "Grounder lowered them in place), so it cannot run in fp32: load it again for "
            "`precision` fp32.",
            settings=["precision"],
        )


def lower_weights(weights: Sequence[torch.Tensor], dtype: torch.dtype) -> None:
    """Convert the blocks' matrix-product weights and biases (fused in-projection,
    out-projection, MLP linears: :func:`prepare_blocks` gathers them) to ``dtype``.

    In place (``parameter.data``), so every view on the backbone — its own
    modules, the adapter's :class:`~vgem.backbones.base.Block` — sees the same
    tensors. Norms, embeddings and heads keep their format: autocast runs them
    in fp32, and they are a small part of the weights.
    """
    for tensor in weights:
        if tensor.dtype != dtype and tensor.is_floating_point():
            tensor.data = tensor.data.to(dtype)


def _matmul_weights(blocks: Sequence[Block]) -> Iterator[torch.Tensor]:
    from torch import nn

    for block in blocks:
        yield from (t for t in (block.in_proj_weight, block.in_proj_bias) if t is not None)
        for owner in (block.out_proj, block.mlp):
            for module in owner.modules():
                if isinstance(module, nn.Linear):
                    yield from (t for t in (module.weight, module.bias) if t is not None)
