"""A conformance kit for backbone adapters: run it in a plugin's own tests.

GEM runs a backbone block by block through the views an adapter hands over
(../ARCHITECTURE.md, "The backbone contract"). A wrong view rarely crashes: it
gives plausible-looking heatmaps that are simply wrong. Each check here turns
one such silent mistake into an ``AssertionError`` (:class:`ConformanceError`)
whose message names the problem and where to look::

    from vgem.testing import check_adapter

    def test_my_backbone_conforms():
        adapter = load_my_backbone(...)
        check_adapter(adapter, reference_text=lambda texts: my_model.encode_text(texts))

Every ``check_*`` function can also be called alone, and ``python -m
vgem.testing BACKBONE [--weights PATH]`` runs the kit on an installed backbone
without pytest. The checks run on random pixels, so tiny random-weight models
are enough; they need no GPU.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vgem.backbones.base import BackboneAdapter, TokenLayout, run_block

if TYPE_CHECKING:
    import torch

    from vgem.gem import GemConfig, VideoAttention

__all__ = [
    "CHECKS",
    "DEFAULT_PROMPTS",
    "DEFAULT_TOLERANCE",
    "CheckOutcome",
    "ConformanceError",
    "ConformanceReport",
    "check_adapter",
    "check_final_norm",
    "check_loader_refuses_code",
    "check_moves_with_module",
    "check_one_pass_serves_many_prompts",
    "check_original_path",
    "check_shapes",
    "check_text_encoder",
    "check_token_layout",
    "check_weights_only",
    "sample_clip",
]

DEFAULT_PROMPTS: tuple[str, ...] = (
    "a person cutting an onion",
    "a dog catching a frisbee in the park",
    "pour",
)
DEFAULT_TOLERANCE = 1e-4
# How much head() may change when its input tokens are scaled: a final
# LayerNorm/RMSNorm makes it scale-invariant up to its epsilon.
_FINAL_NORM_TOLERANCE = 1e-2
_TOKEN_SCALE = 3.0

TextReference = Callable[[list[str]], "torch.Tensor"]
ClipReference = Callable[["torch.Tensor"], "torch.Tensor"]


class ConformanceError(AssertionError):
    """An adapter breaks the backbone contract; ``problems`` lists each finding."""

    def __init__(self, problems: str | Sequence[str], adapter: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1 and adapter is None:
            message = self.problems[0]
        else:
            count = len(self.problems)
            head = f"adapter {adapter!r} does not conform" if adapter else "does not conform"
            lines = "\n".join(f"- {problem}" for problem in self.problems)
            message = f"{head} ({count} problem{'s' if count > 1 else ''}):\n{lines}"
        super().__init__(message)


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result; ``detail`` says what was (or was not) compared."""

    name: str
    status: Literal["passed", "failed", "skipped"]
    detail: str = ""


@dataclass
class ConformanceReport:
    """What :func:`check_adapter` ran, for printing when it passes."""

    adapter: str
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def __str__(self) -> str:
        width = max((len(outcome.name) for outcome in self.outcomes), default=0)
        lines = [f"conformance of {self.adapter}:"]
        for outcome in self.outcomes:
            detail = f"  {outcome.detail}" if outcome.detail else ""
            lines.append(f"  {outcome.name:<{width}}  {outcome.status}{detail}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def sample_clip(adapter: BackboneAdapter, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random normalized pixels ``[batch, T, 3, S, S]`` in the module's dtype and device."""
    import torch

    preprocessing = adapter.preprocessing
    size = preprocessing.input_size
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, preprocessing.frames_per_clip, 3, size, size)
    return torch.randn(shape, generator=generator).to(adapter.device, _module_dtype(adapter))


def _module_dtype(adapter: BackboneAdapter) -> torch.dtype:
    import torch

    for tensor in adapter.module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _original_path(adapter: BackboneAdapter, clip: torch.Tensor) -> torch.Tensor:
    """The final tokens of the plain path: embed, then every block through ``run_block``."""
    tokens = adapter.embed(clip)
    for block in adapter.blocks:
        tokens = run_block(block, tokens)
    return tokens


def _max_difference(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max absolute difference, the same relative to the largest expected value)."""
    difference = (actual.double() - expected.double()).abs().max().item()
    scale = max(expected.double().abs().max().item(), 1e-12)
    return difference, difference / scale


def _what(adapter: BackboneAdapter) -> str:
    return "video" if adapter.preprocessing.frames_per_clip > 1 else "image"


@contextlib.contextmanager
def _evaluating(adapter: BackboneAdapter) -> Iterator[None]:
    """No autograd, module in eval mode: how the Grounder runs an adapter."""
    import torch

    adapter.module.eval()
    with torch.no_grad():
        yield


def _gem_config(
    adapter: BackboneAdapter, removal_layers: int, video_attention: VideoAttention = "joint"
) -> GemConfig:
    """A GEM setting every adapter can run: the authors' depth capped at the model's."""
    from vgem.gem import GemConfig

    depth = min(GemConfig().depth, len(adapter.blocks))
    return GemConfig(
        depth=depth,
        removal_layers=min(removal_layers, depth),
        video_attention=video_attention,
    )


# --------------------------------------------------------------------------- the checks


def check_shapes(adapter: BackboneAdapter) -> str:
    """Each method returns the shapes the contract promises.

    Later checks assume these, so :func:`check_adapter` stops here when it fails.
    """
    problems: list[str] = []
    layout = adapter.token_layout()
    preprocessing = adapter.preprocessing
    blocks = list(adapter.blocks)
    if not blocks:
        raise ConformanceError("blocks is empty: GEM needs the model's transformer blocks")
    if layout.frames != preprocessing.frames_per_clip:
        problems.append(
            f"token_layout() has {layout.frames} frame(s) but preprocessing.frames_per_clip is "
            f"{preprocessing.frames_per_clip}: GEM reads the target frame's tokens by its "
            "index in the clip"
        )
    if not isinstance(adapter.context_length, int) or adapter.context_length < 2:
        problems.append(
            f"context_length must be an int of at least 2, not {adapter.context_length!r}"
        )
    with _evaluating(adapter):
        clip = sample_clip(adapter)
        tokens = adapter.embed(clip)
        expected = (clip.shape[0], layout.num_tokens)
        if tokens.ndim != 3 or tuple(tokens.shape[:2]) != expected:
            problems.append(
                f"embed() returned {list(tokens.shape)} but token_layout() describes "
                f"[{expected[0]}, {layout.num_tokens}, C] ({layout.prefix_tokens} prefix + "
                f"{layout.frames} frame(s) x {layout.grid[0]}x{layout.grid[1]} patches)"
            )
            raise ConformanceError(problems)
        width = tokens.shape[-1]
        for number, block in enumerate(blocks):
            problems.extend(_block_shape_problems(number, block, width))
        features = adapter.head(tokens[:, 0])
        if features.ndim != 2 or features.shape[0] != clip.shape[0]:
            problems.append(f"head() of [B, C] class tokens returned {list(features.shape)}")
        many = adapter.head(tokens[:, None, :3].expand(-1, 2, -1, -1))
        if tuple(many.shape[:3]) != (clip.shape[0], 2, 3):
            problems.append(
                "head() must act on tokens with any leading dimensions ([..., C] → [..., D]); "
                f"[B, 2, 3, C] gave {list(many.shape)}"
            )
    if problems:
        raise ConformanceError(problems)
    return f"{layout.num_tokens} tokens of width {width}, {len(blocks)} blocks"


def _block_shape_problems(number: int, block, width: int) -> list[str]:
    problems = []
    if width % block.num_heads:
        problems.append(
            f"block {number}: width {width} is not divisible by {block.num_heads} heads"
        )
    if tuple(block.in_proj_weight.shape) != (3 * width, width):
        problems.append(
            f"block {number}: in_proj_weight is {list(block.in_proj_weight.shape)}, expected "
            f"[{3 * width}, {width}] (q, k and v weights stacked in that order)"
        )
    if block.in_proj_bias is not None and tuple(block.in_proj_bias.shape) != (3 * width,):
        problems.append(
            f"block {number}: in_proj_bias is {list(block.in_proj_bias.shape)}, "
            f"expected [{3 * width}]"
        )
    return problems


def check_final_norm(adapter: BackboneAdapter) -> str:
    """``head()`` starts with the final norm (``ln_post``).

    A LayerNorm (or RMSNorm) makes ``head(a·x) == head(x)`` for any a > 0; a
    head that is only the projection scales with its input. The property is
    checked on the model's own final tokens, so it needs no reference.
    """
    with _evaluating(adapter):
        tokens = _original_path(adapter, sample_clip(adapter))[:, :4]
        plain = adapter.head(tokens)
        scaled = adapter.head(tokens * _TOKEN_SCALE)
    _, relative = _max_difference(scaled, plain)
    if relative > _FINAL_NORM_TOLERANCE:
        raise ConformanceError(
            f"missing final norm: head() changes by {relative:.3g} (relative) when its input "
            f"tokens are scaled by {_TOKEN_SCALE:g}, so it does not start with the final norm; "
            "head() must apply ln_post (the final LayerNorm) and then the projection"
        )
    return f"head() is scale-invariant (relative change {relative:.1e})"


def check_original_path(
    adapter: BackboneAdapter,
    *,
    reference_clip: ClipReference | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """embed → ``run_block`` over ``blocks`` → ``head`` of the class token reproduces
    the model's own image/video embedding.

    The reference is ``reference_clip(clip)`` if given, else ``adapter.encode_clip``,
    which an adapter must override with its model's own encode function:
    BackboneAdapter's default *is* the block path, so comparing against it
    would prove nothing.
    """
    independent = type(adapter).encode_clip is not BackboneAdapter.encode_clip
    if reference_clip is None and not independent:
        raise ConformanceError(
            "encode_clip() is BackboneAdapter's default, which is the block path itself, so "
            "nothing independent checks embed(), blocks and head(): override encode_clip() "
            "to call your model's own image/video encoder, or pass reference_clip="
        )
    reference = reference_clip or adapter.encode_clip
    what = _what(adapter)
    with _evaluating(adapter):
        clip = sample_clip(adapter)
        path = adapter.head(_original_path(adapter, clip)[:, 0])
        try:
            own = reference(clip)
        except Exception as error:
            raise ConformanceError(
                f"the model's own {what} embedding failed on a clip of "
                f"{list(clip.shape)} at the adapter's input size: {type(error).__name__}: "
                f"{error} (encode_clip must accept clips at preprocessing.input_size, "
                "positional embeddings resampled as embed() resamples them)"
            ) from error
    if tuple(path.shape) != tuple(own.shape):
        raise ConformanceError(
            f"the original path gives {what} features {list(path.shape)} but the model's own "
            f"{what} embedding is {list(own.shape)}: check head() (ln_post, then proj)"
        )
    absolute, relative = _max_difference(path, own)
    if relative > tolerance:
        hints = _path_hints(adapter, path, own, tolerance)
        raise ConformanceError(
            f"the original path does not reproduce the model's own {what} embedding (max diff "
            f"{absolute:.3g}, relative {relative:.3g}): check embed(), the blocks' order and "
            f"views (fused q/k/v in-projection, LayerScales) or head(){hints}"
        )
    return f"max relative difference {relative:.1e} against the model's own {what} embedding"


def _path_hints(adapter: BackboneAdapter, path, own, tolerance: float) -> str:
    import torch.nn.functional as F

    try:
        check_final_norm(adapter)
    except ConformanceError:
        return "; head() seems to skip the final norm (ln_post)"
    if _max_difference(F.normalize(path, dim=-1), own)[1] <= tolerance:
        return "; encode_clip() returns normalized embeddings, head() does not normalize"
    return ""


def check_text_encoder(
    adapter: BackboneAdapter,
    *,
    reference_text: TextReference | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """``encode_text`` gives projected embeddings that match the model's own.

    Always checked: one finite row per prompt, of the image features'
    dimension (a text encoder that skips the text projection usually has the
    text width instead), and that encoding prompts together gives each the
    embedding it gets alone (padding must not leak into the pooled token).
    With ``reference_text`` (the model's own text embedding, projection
    included, e.g. ``lambda texts: model.get_text_features(**tokenizer(texts, ...))``),
    the values are compared too.
    """
    import torch

    prompts = list(prompts)
    with _evaluating(adapter):
        together = adapter.encode_text(prompts)
        alone = torch.cat([adapter.encode_text([prompt]) for prompt in prompts])
        image_dimension = adapter.head(adapter.embed(sample_clip(adapter, batch=1))[:, 0]).shape[-1]
        reference = reference_text(prompts) if reference_text is not None else None
    if together.ndim != 2 or together.shape[0] != len(prompts):
        raise ConformanceError(
            f"encode_text() of {len(prompts)} prompts returned {list(together.shape)}, "
            f"expected [{len(prompts)}, D]"
        )
    if not torch.isfinite(together).all():
        raise ConformanceError("encode_text() returned non-finite values")
    dimension = together.shape[-1]
    if dimension != image_dimension:
        raise ConformanceError(
            f"text encoder skips the projection: encode_text() gives {dimension}-dim "
            f"embeddings but the image features are {image_dimension}-dim; encode_text() must "
            "end with the text projection, as the model's own text embedding does"
        )
    absolute, relative = _max_difference(alone, together)
    if relative > tolerance:
        raise ConformanceError(
            f"encode_text() gives a prompt a different embedding when it is encoded together "
            f"with others (max diff {absolute:.3g}): pool at the end token and keep padding out "
            "of it"
        )
    if reference is None:
        return "shapes and batching only (pass reference_text= to compare values)"
    if reference.shape[-1] != dimension:
        raise ConformanceError(
            f"text encoder skips the projection: encode_text() gives {dimension}-dim embeddings "
            f"but the reference text embedding is {reference.shape[-1]}-dim"
        )
    absolute, relative = _max_difference(together, reference.to(together))
    if relative > tolerance:
        raise ConformanceError(
            f"encode_text() does not match the model's own text embedding (max diff "
            f"{absolute:.3g}, relative {relative:.3g}): check the tokenizer (ids, start and end "
            "tokens, context length), the end-token pooling, ln_final and that the text "
            "projection is applied"
        )
    return f"max relative difference {relative:.1e} against reference_text"


def check_token_layout(adapter: BackboneAdapter, *, seed: int = 0) -> str:
    """A planted patch ends up where ``token_layout()`` says, and in the heatmap.

    Noise is planted in one patch of one frame at a time. Right after
    ``embed()`` (before attention mixes tokens), the token that changes most
    must be the one ``token_layout().patch_token_indices(frame)`` names for
    that patch; this fails for a wrong token order (frame-major vs
    patch-major), a transposed grid or a wrong prefix count. Then, through
    ``gem_forward``, the target frame's GEM features must change most at that
    grid cell, i.e. where the heatmap reads it.
    """
    import torch

    layout = adapter.token_layout()
    preprocessing = adapter.preprocessing
    rows, columns = layout.grid
    size = preprocessing.input_size
    if size % rows or size % columns:
        raise ConformanceError(
            f"token_layout() grid {rows}x{columns} does not tile the {size}-pixel input"
        )
    cells = _probe_cells(rows, columns)
    probes = [(frame, row, column) for frame in range(layout.frames) for row, column in cells]
    with _evaluating(adapter):
        clean = sample_clip(adapter, batch=1, seed=seed)
        planted = torch.cat([_plant(clean, probe, layout, size, seed) for probe in probes])
        change = (adapter.embed(planted) - adapter.embed(clean)).norm(dim=-1)
    problems = []
    for probe, token_change in zip(probes, change, strict=True):
        found = int(token_change.argmax())
        frame, row, column = probe
        expected = layout.patch_token_indices(frame)[row * columns + column]
        if found != expected:
            problems.append(_layout_problem(layout, probe, found, expected))
    if problems:
        raise ConformanceError(problems[:3])
    _check_planted_heatmap(adapter, clean, cells, layout, size, seed)
    return f"{len(probes)} planted patches found at their tokens and heatmap cells"


def _probe_cells(rows: int, columns: int) -> list[tuple[int, int]]:
    """Cells whose index changes under a transposed grid or another token order."""
    cells = [(0, columns - 1), (rows - 1, min(1, columns - 1))]
    return list(dict.fromkeys(cells))


def _plant(clean, probe, layout: TokenLayout, size: int, seed: int):
    import torch

    frame, row, column = probe
    height, width = size // layout.grid[0], size // layout.grid[1]
    generator = torch.Generator().manual_seed(seed + 1 + row * 1000 + column)
    noise = 3.0 * torch.randn((3, height, width), generator=generator)
    planted = clean.clone()
    planted[
        0, frame, :, row * height : (row + 1) * height, column * width : (column + 1) * width
    ] = noise.to(clean)
    return planted


def _layout_problem(layout: TokenLayout, probe, found: int, expected: int) -> str:
    frame, row, column = probe
    where = f"frame {frame}, patch row {row}, column {column}"
    head = (
        f"token layout: changing the pixels of {where} changed token {found} most, but "
        f"token_layout() ({layout.order}) places that patch at token {expected}"
    )
    if found < layout.prefix_tokens:
        return f"{head}; a prefix token changed: check prefix_tokens"
    other = "patch-major" if layout.order == "frame-major" else "frame-major"
    alternative = TokenLayout(layout.frames, layout.grid, layout.prefix_tokens, other)
    rows, columns = layout.grid
    transposed = TokenLayout(layout.frames, (columns, rows), layout.prefix_tokens, layout.order)
    if found == _token_of(alternative, frame, row, column):
        return f"{head}; embed() gives {other} tokens but token_layout() says {layout.order}"
    if found == _token_of(transposed, frame, column, row):
        return f"{head}; the patch grid is transposed (embed() orders patches column by column)"
    return f"{head}; check token_layout() (order, grid, prefix tokens) against embed()"


def _token_of(layout: TokenLayout, frame: int, row: int, column: int) -> int | None:
    rows, columns = layout.grid
    if not (0 <= row < rows and 0 <= column < columns):
        return None
    return layout.patch_token_indices(frame)[row * columns + column]


def _check_planted_heatmap(adapter, clean, cells, layout: TokenLayout, size: int, seed: int):
    """The target frame's GEM features change most at the planted cell."""
    import torch

    from vgem.gem import gem_forward

    target = adapter.preprocessing.target_index
    probes = [(target, row, column) for row, column in cells]
    clips = torch.cat([clean, *(_plant(clean, probe, layout, size, seed) for probe in probes)])
    with _evaluating(adapter):
        gem_pass = gem_forward(adapter, clips, _gem_config(adapter, 0), target)
        features = adapter.head(gem_pass.terms.sum(dim=0))  # plain GEM: every term weighs 1
    change = (features[1:] - features[:1]).norm(dim=-1)
    columns = layout.grid[1]
    for (_, row, column), cell_change in zip(probes, change, strict=True):
        found = int(cell_change.argmax())
        if found != row * columns + column:
            raise ConformanceError(
                f"token layout: noise planted in target frame {target} at patch row {row}, "
                f"column {column} changed the GEM features most at row {found // columns}, "
                f"column {found % columns} of the heatmap grid: check token_layout() against "
                "embed()"
            )


def check_moves_with_module(adapter: BackboneAdapter, *, tolerance: float = 1e-3) -> str:
    """Everything the adapter hands over moves with ``adapter.to()``.

    ``to()`` moves ``adapter.module``; a tensor the adapter built once and kept
    (a fused in-projection concatenated at construction, say) would stay
    behind on the old device. Changing the dtype is the CPU-only stand-in for
    a device move: the path must run in float64 and give the float32 result.
    The module is moved back afterwards.
    """
    import torch

    dtype = _module_dtype(adapter)
    if dtype != torch.float32:
        return f"skipped: the module is {dtype}, the check needs float32"
    with _evaluating(adapter):
        clip = sample_clip(adapter, batch=1)
        before = _original_path(adapter, clip)
        try:
            adapter.to(dtype=torch.float64)
            after = _original_path(adapter, clip.double())
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
    _, relative = _max_difference(after, before)
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
            f"({_first_line(error)}): keep only tensors in it"
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
                    f"which users see as a traceback: {_first_line(refusal)}"
                ) from refusal
    return "code-running pickles refused in both formats"


def _ran_code(file_format: str) -> str:
    return (
        f"the loader ran code from a {file_format} checkpoint: read checkpoints with "
        "safetensors or torch.load(weights_only=True) (vgem.checkpoints.read_checkpoint)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_one_pass_serves_many_prompts(
    adapter: BackboneAdapter,
    *,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Maps read for prompts A and B together equal A alone and B alone.

    vgem runs one visual pass per clip and mixes its K+1 layer terms per
    prompt (../METHOD.md §3). That holds only if ``head()`` acts on each token
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
    attention = "released" if adapter.token_layout().frames > 1 else "joint"
    config = _gem_config(adapter, removal_layers=3, video_attention=attention)
    target = adapter.preprocessing.target_index
    with _evaluating(adapter):
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
    absolute, relative = _max_difference(together, alone)
    if relative > tolerance:
        raise ConformanceError(
            f"one visual pass does not serve many prompts: the maps of prompts read together "
            f"differ from each read alone or from a second pass (max diff {absolute:.3g}); "
            "head() must act on each token independently and the model must be deterministic "
            "in eval mode"
        )
    return f"two prompts from one pass match each alone (max relative difference {relative:.1e})"


# --------------------------------------------------------------------------- all of them

CHECKS: tuple[str, ...] = (
    "shapes",
    "final-norm",
    "original-path",
    "text",
    "token-layout",
    "moves-with-module",
    "weights-only",
    "loader",
    "one-pass",
)


def check_adapter(
    adapter: BackboneAdapter,
    *,
    reference_clip: ClipReference | None = None,
    reference_text: TextReference | None = None,
    load_weights: Callable[[Path], Any] | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
    skip: Sequence[str] = (),
) -> ConformanceReport:
    """Run every check; raise one :class:`ConformanceError` listing all failures.

    ``reference_clip``/``reference_text``: the model's own embeddings (see
    :func:`check_original_path`, :func:`check_text_encoder`). ``load_weights``:
    the adapter's loader for :func:`check_loader_refuses_code` (skipped
    without it). ``skip``: names from :data:`CHECKS`. Returns the report when
    everything passes.
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    runs: dict[str, Callable[[], str]] = {
        "shapes": lambda: check_shapes(adapter),
        "final-norm": lambda: check_final_norm(adapter),
        "original-path": lambda: check_original_path(
            adapter, reference_clip=reference_clip, tolerance=tolerance
        ),
        "text": lambda: check_text_encoder(
            adapter, reference_text=reference_text, prompts=prompts, tolerance=tolerance
        ),
        "token-layout": lambda: check_token_layout(adapter),
        "moves-with-module": lambda: check_moves_with_module(adapter),
        "weights-only": lambda: check_weights_only(adapter),
        "loader": (
            (lambda: check_loader_refuses_code(load_weights))
            if load_weights is not None
            else (lambda: "skipped: pass load_weights= to check the loader")
        ),
        "one-pass": lambda: check_one_pass_serves_many_prompts(
            adapter, prompts=prompts, tolerance=tolerance
        ),
    }
    report = ConformanceReport(adapter=getattr(adapter, "name", type(adapter).__name__))
    problems: list[str] = []
    for name in CHECKS:
        if name in skip or (problems and report.outcomes[0].status == "failed"):
            report.outcomes.append(CheckOutcome(name, "skipped"))
            continue
        try:
            detail = runs[name]()
        except ConformanceError as failure:
            problems.extend(f"{name}: {problem}" for problem in failure.problems)
            report.outcomes.append(CheckOutcome(name, "failed", "; ".join(failure.problems)))
        except Exception as error:  # a crash inside an adapter method is a finding too
            problem = f"{name}: crashed with {type(error).__name__}: {_first_line(error)}"
            problems.append(problem)
            report.outcomes.append(CheckOutcome(name, "failed", problem))
        else:
            status = "skipped" if detail.startswith("skipped") else "passed"
            report.outcomes.append(CheckOutcome(name, status, detail))
    if problems:
        raise ConformanceError(problems, adapter=report.adapter)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vgem.testing BACKBONE [--weights PATH]``: the kit without pytest."""
    import argparse

    from vgem.backbones import load_backbone
    from vgem.errors import VgemError

    parser = argparse.ArgumentParser(
        prog="python -m vgem.testing", description="Check a backbone adapter against the contract."
    )
    parser.add_argument("backbone", help="a vgem.backbones name, e.g. hf-clip:FOLDER")
    parser.add_argument("--weights", help="a local checkpoint instead of the hub cache")
    options = parser.parse_args(argv)
    try:
        adapter = load_backbone(options.backbone, options.weights)
        report = check_adapter(adapter)
    except VgemError as error:
        print(f"error: {error}")
        return 2
    except ConformanceError as failure:
        print(failure)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
