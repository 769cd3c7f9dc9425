"""Checks of how an adapter runs and loads: devices, weights_only, one pass for many prompts."""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import BackboneAdapter
from vgem.errors import first_line
from vgem.testing.common import (
    DEFAULT_PROMPTS,
    DEFAULT_TOLERANCE,
    ConformanceError,
    evaluating,
    gem_settings,
    max_difference,
    module_dtype,
    original_path,
    sample_clip,
)

if TYPE_CHECKING:
    from vgem.gem import VideoAttention


def check_moves_with_module(adapter: BackboneAdapter, *, tolerance: float = 1e-3) -> str:
    """Everything the adapter hands over moves with ``adapter.to()``.

    ``to()`` moves ``adapter.module``; a tensor the adapter built once and kept
    (a fused in-projection concatenated at construction, say) would stay
    behind on the old device. Changing the dtype is the CPU-only stand-in for
    a device move: the path must run in float64 and give the float32 result.
    The module is moved back afterwards.
    """
    import torch

    dtype = module_dtype(adapter)
    if dtype != torch.float32:
        return f"skipped: the module is {dtype}, the check needs float32"
    with evaluating(adapter):
        clip = sample_clip(adapter, batch=1)
        before = original_path(adapter, clip)
        try:
            adapter.to(dtype=torch.float64)
            after = original_path(adapter, clip.double())
        except Exception as error:
            raise ConformanceError(
                "after adapter.to(dtype=float64) the original path fails "
                f"({type(error).__name__}: {error}): a tensor the adapter hands over is not "
                "moved by to(); build views from adapter.module's own tensors when blocks is "
                "read, or register them on the module"
            ) from error
        finally:
            adapter.to(dtype=dtype)
    if after.dtype != torch.float64:
        raise ConformanceError(
            f"after adapter.to(dtype=float64) embed() and the blocks still compute in "
            f"{after.dtype}: something the adapter hands over is not moved by to()"
        )
    _, relative = max_difference(after, before)
    if relative > tolerance:
        raise ConformanceError(
            f"after adapter.to(dtype=float64) the original path changes (relative {relative:.3g})"
        )
    return "the path runs in float64 after to() and matches float32"


def check_weights_only(adapter: BackboneAdapter) -> str:
    """The model's weights are plain tensors that ``torch.load(weights_only=True)`` reads.

    vgem reads checkpoints only from safetensors or with weights-only
    unpickling, so a model whose state dict holds other objects could not be
    shipped safely. The state dict is saved with ``torch.save`` and read back
    with ``weights_only=True``, in memory; every tensor must come back equal.
    Whether the adapter's *loader* refuses a code-running pickle is
    :func:`check_loader_refuses_code`.
    """
    import torch

    state = adapter.module.state_dict()
    if not state:
        raise ConformanceError(
            "adapter.module has an empty state dict: module must be the nn.Module that owns "
            "every parameter"
        )
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConformanceError(
            "the module's state dict cannot be read back with torch.load(weights_only=True) "
            f"({first_line(error)}): keep only tensors in it"
        ) from error
    changed = [
        key
        for key, value in state.items()
        if key not in loaded or not torch.equal(loaded[key], value.cpu())
    ]
    if changed:
        raise ConformanceError(f"weights-only round trip changed {', '.join(changed[:5])}")
    return f"{len(state)} tensors round-trip through torch.load(weights_only=True)"


class _RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: a harmless, visible side effect."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def check_loader_refuses_code(load: Callable[[Path], Any], *, filename: str = "weights.pt") -> str:
    """``load(path)`` refuses a checkpoint whose pickle would run code, without running it.

    The kit writes, in a fresh folder, ``filename`` holding a tensor and an
    object whose unpickling creates a marker folder, once as a legacy pickle
    and once in ``torch.save``'s zip format, and calls ``load(path)``: it
    must raise a ``VgemError`` (one clear line for the user, e.g. vgem's
    ``WeightsError``) and the marker must not exist. Put what else your
    loader needs (a config file) next to ``path`` inside ``load``.
    """
    import torch

    from vgem.errors import VgemError

    with tempfile.TemporaryDirectory(prefix="vgem-conformance-") as folder:
        for file_format in ("pickle", "torch-zip"):
            directory = Path(folder) / file_format
            directory.mkdir()
            marker = directory / "code-ran"
            payload = {"weight": torch.zeros(2), "payload": _RunsCode(marker)}
            path = directory / filename
            if file_format == "pickle":
                path.write_bytes(pickle.dumps(payload, protocol=2))
            else:
                torch.save(payload, path)
            refusal: Exception | None = None
            try:
                load(path)
            except Exception as error:  # judged below: only the marker and the type matter
                refusal = error
            if marker.exists():
                raise ConformanceError(_ran_code(file_format)) from refusal
            if refusal is None:
                raise ConformanceError(
                    f"the loader accepted a {file_format} checkpoint that is not a plain "
                    "state dict of tensors"
                )
            if not isinstance(refusal, VgemError):
                raise ConformanceError(
                    f"the loader refused a code-running {file_format} checkpoint, but with "
                    f"{type(refusal).__name__} rather than a VgemError (such as WeightsError), "
                    f"which users see as a traceback: {first_line(refusal)}"
                ) from refusal
    return "code-running pickles refused in both formats"


def _ran_code(file_format: str) -> str:
    return (
        f"the loader ran code from a {file_format} checkpoint: read checkpoints with "
        "safetensors or torch.load(weights_only=True) (vgem.checkpoints.read_checkpoint)"
    )


def check_one_pass_serves_many_prompts(
    adapter: BackboneAdapter,
    *,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Maps read for prompts A and B together equal A alone and B alone.

    vgem runs one visual pass per clip and mixes its K+1 layer terms per
    prompt (docs/method.md §3). That holds only if ``head()`` acts on each token
    on its own and the model has no randomness left in eval mode; a second
    pass must give the same maps.
    """
    import torch
    import torch.nn.functional as F

    from vgem.gem import gem_forward, similarity_maps
    from vgem.weighting import layer_weights

    if len(prompts) < 2:
        raise ValueError("give at least two prompts")
    # The Grounder's defaults: the authors' released variant for video backbones.
    attention: VideoAttention = "released" if adapter.token_layout().frames > 1 else "joint"
    config = gem_settings(adapter, removal_layers=3, video_attention=attention)
    target = adapter.preprocessing.target_index
    with evaluating(adapter):
        clip = sample_clip(adapter)
        text = F.normalize(adapter.encode_text(list(prompts[:2])).float(), dim=-1)

        def maps(gem_pass, rows):
            chosen = text[rows]
            weights = layer_weights(
                "combined",
                terms=gem_pass.terms.shape[0],
                removal_embeddings=gem_pass.removal_embeddings,
                text_embeddings=chosen,
                dynamic_layers=config.removal_layers,
            )
            return similarity_maps(adapter, gem_pass, weights, chosen)

        first = gem_forward(adapter, clip, config, target)
        together = maps(first, [0, 1])
        alone = torch.cat(
            [maps(first, [0]), maps(gem_forward(adapter, clip, config, target), [1])], 1
        )
    absolute, relative = max_difference(together, alone)
    if relative > tolerance:
        raise ConformanceError(
            f"one visual pass does not serve many prompts: the maps of prompts read together "
            f"differ from each read alone or from a second pass (max diff {absolute:.3g}); "
            "head() must act on each token independently and the model must be deterministic "
            "in eval mode"
        )
    return f"two prompts from one pass match each alone (max relative difference {relative:.1e})"
