"""The backbone contract: what the GEM pathway needs from a vision-language model.

GEM runs a ViT block by block beside its original path, so a backbone cannot be
a black-box ``encode_image``. A backbone plugin hands over a
:class:`BackboneAdapter` that exposes, in one uniform shape, the pieces of its
own modules that docs/method.md §2 needs. GEM adds no weights: everything here is
a view on the backbone's parameters.

A plugin registers a :class:`BackboneSpec` under the ``vgem.backbones`` entry
point group. Names of the form ``family:variant`` (``openclip:ViT-B-16@openai``)
pass the part after the colon to the spec's ``load`` as ``variant``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

#: The settings a backbone may give defaults for (``BackboneSpec.defaults``): part of the
#: backbone contract, so :mod:`vgem.settings` reads it from here.
BACKBONE_SETTINGS = frozenset({"depth", "dynamic_layers", "static_weights"})

TokenOrder = Literal["frame-major", "patch-major"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """How pixels must look before :meth:`BackboneAdapter.embed`.

    A clip holds ``frames_per_clip`` frames taken ``clip step`` seconds apart;
    the frame being grounded sits at ``target_index``. Image backbones have one
    frame per clip and ``target_index`` 0.
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    frames_per_clip: int = 1
    target_index: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.target_index < self.frames_per_clip:
            raise ValueError("target_index must lie inside the clip")

    @property
    def frame_offsets(self) -> tuple[int, ...]:
        """Offsets, in clip steps, of each clip frame from the target frame."""
        return tuple(i - self.target_index for i in range(self.frames_per_clip))


@dataclass(frozen=True)
class TokenLayout:
    """Where each patch of each frame sits in the token sequence.

    ``frame-major``: all patches of frame 0, then frame 1, ... (image CLIP has
    one frame). ``patch-major``: for each patch, its frames in a row (ViCLIP).
    Prefix tokens (the class token) come first in both.
    """

    frames: int
    grid: tuple[int, int]
    prefix_tokens: int = 1
    order: TokenOrder = "frame-major"

    @property
    def patches_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.prefix_tokens + self.frames * self.patches_per_frame

    def patch_token_indices(self, frame: int) -> list[int]:
        """Token positions of ``frame``'s patches, in row-major grid order."""
        if not 0 <= frame < self.frames:
            raise IndexError(f"frame {frame} outside a {self.frames}-frame layout")
        patches = range(self.patches_per_frame)
        if self.order == "frame-major":
            return [self.prefix_tokens + frame * self.patches_per_frame + p for p in patches]
        return [self.prefix_tokens + p * self.frames + frame for p in patches]


@dataclass
class Block:
    """One pre-norm transformer block, as views on the backbone's own modules.

    ``x = x + ls_1(out_proj(attn(ln_1(x))))`` then ``x = x + ls_2(mlp(ln_2(x)))``
    with a fused in-projection ``ln_1(x) @ in_proj_weight.T + in_proj_bias``
    giving q, k, v. LayerScales are identities when the backbone has none.
    """

    ln_1: nn.Module
    in_proj_weight: torch.Tensor
    in_proj_bias: torch.Tensor | None
    num_heads: int
    out_proj: nn.Module
    ln_2: nn.Module
    mlp: nn.Module
    ls_1: nn.Module | None = None
    ls_2: nn.Module | None = None

    def layer_scale_1(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.ls_1 is None else self.ls_1(x)

    def layer_scale_2(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.ls_2 is None else self.ls_2(x)


class BackboneAdapter(ABC):
    """A loaded backbone, seen the way the GEM pathway needs it.

    Subclasses set ``name``, ``weights_source``, ``preprocessing`` and
    ``context_length`` and implement the abstract methods. ``module`` is the
    ``nn.Module`` that owns every parameter (moved by :meth:`to`).
    """

    name: str
    weights_source: str
    preprocessing: Preprocessing
    context_length: int
    module: nn.Module

    @property
    def is_video(self) -> bool:
        return self.preprocessing.frames_per_clip > 1

    @abstractmethod
    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, T, 3, S, S]`` (normalized) to tokens ``[B, N, C]``.

        Covers patch embedding, class token, positional (resampled to the grid
        of ``S``) and temporal embeddings and ``ln_pre``.
        """

    @property
    @abstractmethod
    def blocks(self) -> Sequence[Block]:
        """The L transformer blocks, first to last."""

    @abstractmethod
    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """``ln_post`` then ``proj``: tokens ``[..., C]`` to features ``[..., D]``."""

    @abstractmethod
    def token_layout(self) -> TokenLayout:
        """The layout of :meth:`embed`'s output for ``preprocessing.input_size``."""

    @abstractmethod
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts to embeddings ``[P, D]`` (not normalized)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with start and end tokens, before truncation."""

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """The model's own image/video embedding ``[B, D]``, via the plain path.

        Adapters backed by a model with its own ``encode_image`` should
        override this with a call to it, so the conformance tests compare the
        block-by-block path against an independent computation.
        """
        tokens = self.embed(clip)
        for block in self.blocks:
            tokens = run_block(block, tokens)
        return self.head(tokens[:, 0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        self.module.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device


def run_block(block: Block, tokens: torch.Tensor) -> torch.Tensor:
    """The plain forward of one block, with PyTorch's fused attention."""
    import torch.nn.functional as F

    batch, length, width = tokens.shape
    heads = block.num_heads
    qkv = F.linear(block.ln_1(tokens), block.in_proj_weight, block.in_proj_bias)
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    attended = F.scaled_dot_product_attention(q, k, v)
    attended = attended.transpose(1, 2).reshape(batch, length, width)
    tokens = tokens + block.layer_scale_1(block.out_proj(attended))
    return tokens + block.layer_scale_2(block.mlp(block.ln_2(tokens)))


@dataclass(frozen=True)
class HubFile:
    """A file a backbone needs from the Hugging Face hub (for ``vgem fetch``)."""

    repo_id: str
    filename: str
    gated: bool = False
    # Other names the same weights go by in the repository (a ``.bin`` beside
    # the preferred ``.safetensors``): a cached copy under any of them counts,
    # and they are fetched in order when the hub lacks the preferred one.
    alternatives: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.filename, *self.alternatives)


@dataclass(frozen=True)
class BackboneSpec:
    """What a ``vgem.backbones`` entry point resolves to.

    ``load(variant, weights)`` builds the adapter: ``variant`` is the text
    after ``family:`` (None for a plain name), ``weights`` a local path that
    replaces the default download (None: the hub cache).
    ``hub_files(variant)`` names what ``vgem fetch`` must download.
    ``summary`` is the one line ``vgem plugins`` shows for it.
    ``defaults``: the method settings this backbone grounds best with when
    the user sets none (``depth``, ``dynamic_layers``, ``static_weights``;
    see :mod:`vgem.settings`). A model with fewer blocks than the paper's
    depth of 7 must declare a depth that fits it, e.g.
    ``{"depth": 3, "dynamic_layers": 2}`` for a 4-block model.
    """

    summary: str
    load: Callable[[str | None, str | None], BackboneAdapter]
    takes_variant: bool = False
    hub_files: Callable[[str | None], list[HubFile]] = field(default=lambda variant: [])
    defaults: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.defaults) - BACKBONE_SETTINGS)
        if unknown:
            raise ValueError(
                f"BackboneSpec.defaults may set {', '.join(sorted(BACKBONE_SETTINGS))}, "
                f"not {', '.join(unknown)}"
            )
