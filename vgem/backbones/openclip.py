"""CLIP and OpenCLIP image backbones, through open_clip.

Named variants are thin: ``clip-b16`` is OpenAI's ViT-B/16 (QuickGELU, as its
weights need), ``openclip-b16`` is LAION-2B ViT-B/16, and ``openclip:ARCH@TAG``
reaches any open_clip vision transformer. GEM runs at 448 × 448 (its authors'
resolution), so positional embeddings are resampled from the trained grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    BackboneAdapter,
    BackboneSpec,
    Block,
    HubFile,
    Preprocessing,
    TokenLayout,
)
from vgem.errors import PluginError, SettingsError
from vgem.quiet import quieted

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

GEM_INPUT_SIZE = 448


def resample_position_embedding(
    position_embedding: torch.Tensor, grid: tuple[int, int], prefix_tokens: int = 1
) -> torch.Tensor:
    """Positional embeddings ``[prefix + h0*w0, C]`` resampled to ``grid``.

    Bicubic with antialiasing, the class row kept as is: what GEM does, so the
    heatmaps match its released code.
    """
    import math

    import torch
    import torch.nn.functional as F

    prefix, patches = position_embedding[:prefix_tokens], position_embedding[prefix_tokens:]
    side = math.isqrt(patches.shape[0])
    if (side, side) == tuple(grid):
        return position_embedding
    width = patches.shape[-1]
    image = patches.reshape(1, side, side, width).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=grid, mode="bicubic", antialias=True)
    patches = image.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], width)
    return torch.cat([prefix, patches], dim=0)


class OpenClipAdapter(BackboneAdapter):
    """An open_clip ``CLIP`` model seen block by block."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        name: str,
        weights_source: str,
        input_size: int = GEM_INPUT_SIZE,
    ) -> None:
        _check_supported(model, name)
        # open_clip's VisionTransformer (checked above); open_clip ships no types.
        visual: Any = model.visual
        self.module = model.eval()
        self.visual = visual
        self.tokenizer = tokenizer
        self.name = name
        self.weights_source = weights_source
        self.context_length = int(getattr(model, "context_length", tokenizer.context_length))
        patch = visual.patch_size[0]
        if input_size % patch:
            raise SettingsError(f"Input size {input_size} is not a multiple of the patch {patch}.")
        config = getattr(visual, "preprocess_cfg", {}) or {}
        self.preprocessing = Preprocessing(
            input_size=input_size,
            mean=tuple(config.get("mean", OPENAI_CLIP_MEAN)),
            std=tuple(config.get("std", OPENAI_CLIP_STD)),
        )
        self._blocks = [
            Block(
                ln_1=block.ln_1,
                in_proj_weight=block.attn.in_proj_weight,
                in_proj_bias=block.attn.in_proj_bias,
                num_heads=block.attn.num_heads,
                out_proj=block.attn.out_proj,
                ln_2=block.ln_2,
                mlp=block.mlp,
                ls_1=block.ls_1,
                ls_2=block.ls_2,
            )
            for block in visual.transformer.resblocks
        ]

    @property
    def blocks(self) -> Sequence[Block]:
        return self._blocks

    @property
    def _clip_model(self) -> Any:
        """``module`` as the open_clip CLIP model it is (open_clip ships no types)."""
        return self.module

    def token_layout(self) -> TokenLayout:
        side = self.preprocessing.input_size // self.visual.patch_size[0]
        return TokenLayout(frames=1, grid=(side, side), prefix_tokens=1, order="frame-major")

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        import torch

        if clip.ndim != 5 or clip.shape[1] != 1:
            raise ValueError(f"image backbones take clips [B, 1, 3, S, S], not {tuple(clip.shape)}")
        visual = self.visual
        patches = visual.conv1(clip[:, 0].to(visual.conv1.weight.dtype))
        grid = tuple(patches.shape[-2:])
        patches = patches.flatten(2).transpose(1, 2)
        class_token = visual.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([class_token, patches], dim=1)
        position = resample_position_embedding(visual.positional_embedding, grid)
        return visual.ln_pre(tokens + position.to(tokens.dtype))

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(tokens) @ self.visual.proj

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        token_ids = self.tokenizer(list(texts)).to(self.device)
        return self._clip_model.encode_text(token_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + 2

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """open_clip's own ``encode_image``, with the positional embedding it
        sees resampled for the call as :meth:`embed` does (at 448 px its stored
        224 px table would not fit)."""
        from torch import nn

        visual = self.visual
        stored = visual.positional_embedding
        side = self.preprocessing.input_size // visual.patch_size[0]
        resampled = resample_position_embedding(stored, (side, side))
        if resampled is stored:
            return self._clip_model.encode_image(clip[:, 0])
        try:
            visual.positional_embedding = nn.Parameter(resampled, requires_grad=False)
            return self._clip_model.encode_image(clip[:, 0])
        finally:
            visual.positional_embedding = stored


def _check_supported(model, name: str) -> None:
    """GEM needs a plain ViT with class-token pooling and fused attention."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    visual = getattr(model, "visual", None)
    reasons = []
    if not isinstance(visual, VisionTransformer):
        reasons.append("its image tower is not a vision transformer")
    else:
        if visual.attn_pool is not None or visual.pool_type != "tok":
            reasons.append("it does not pool the class token")
        if getattr(visual, "final_ln_after_pool", False):
            reasons.append("it normalizes after pooling")
        if visual.proj is None:
            reasons.append("it has no image projection")
        if not all(isinstance(b, ResidualAttentionBlock) for b in visual.transformer.resblocks):
            reasons.append("its blocks are not plain pre-norm attention blocks")
    if reasons:
        raise SettingsError(f"Backbone {name} cannot run GEM: {'; '.join(reasons)}.")


def parse_variant(variant: str | None) -> tuple[str, str | None]:
    """``ARCH@TAG`` → (arch, tag); the tag may be omitted when local weights are given."""
    if not variant:
        raise PluginError(
            "Give an open_clip model as openclip:ARCH@TAG, e.g. openclip:ViT-B-16@openai."
        )
    arch, _, tag = variant.partition("@")
    return arch, tag or None


def _hub_location(arch: str, tag: str) -> tuple[str, list[str]]:
    """The hub repository and candidate file names (safetensors first)."""
    import open_clip

    config = open_clip.get_pretrained_cfg(arch, tag)
    hub = config.get("hf_hub", "") if config else ""
    if not hub:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise PluginError(
            f"open_clip has no pretrained weights '{tag}' for {arch} on the Hugging Face hub "
            f"(known tags: {known}); give a local checkpoint as `weights` instead.",
            settings=["weights"],
        )
    if hub.endswith("/"):
        return hub.rstrip("/"), ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    repo_id, _, filename = hub.rpartition("/")
    return repo_id, [filename]


def load_openclip(
    arch: str, tag: str | None, weights: str | None, *, name: str, input_size: int = GEM_INPUT_SIZE
) -> OpenClipAdapter:
    """Build ``arch`` and fill it from ``weights`` or the hub cache (``tag``)."""
    import open_clip

    from vgem.checkpoints import (
        check_state_dict,
        hub_download_first,
        read_checkpoint,
        unwrap_state_dict,
    )

    if arch not in open_clip.list_models():
        raise PluginError(f"open_clip has no model architecture '{arch}' ({name}).")
    if weights is None and tag is None:
        raise PluginError(
            f"Say which weights {name} should use: openclip:{arch}@TAG, or a local "
            "checkpoint as `weights`.",
            settings=["weights"],
        )
    # The weights first: a missing file should fail before seconds of model building.
    path: str | Path
    if weights is not None:
        path, source = weights, str(weights)
    else:
        assert tag is not None  # refused above when neither is given
        repo_id, filenames = _hub_location(arch, tag)
        hint = (
            f"fetch them with `vgem fetch` (backbone {name}) where there is network, "
            "or give a local checkpoint as `weights`"
        )
        path = hub_download_first(repo_id, filenames, what=f"{name} ({tag})", fetch_hint=hint)
        source = f"hf-hub:{repo_id}"
    # open_clip warns that the model has no weights; they are loaded right below.
    with quieted():
        model = open_clip.create_model(arch, pretrained=None)
    state = unwrap_state_dict(read_checkpoint(path), path)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if "logit_scale" in state and state["logit_scale"].ndim != len(expected["logit_scale"]):
        state["logit_scale"] = state["logit_scale"].reshape(expected["logit_scale"])
    check_state_dict(expected, state, path, name)
    model.load_state_dict(state)
    tokenizer = open_clip.get_tokenizer(arch)
    return OpenClipAdapter(
        model, tokenizer, name=name, weights_source=source, input_size=input_size
    )


def _spec(arch: str | None, tag: str | None, summary: str, name: str) -> BackboneSpec:
    def load(variant: str | None, weights: str | None) -> OpenClipAdapter:
        if arch is None:
            chosen_arch, chosen_tag = parse_variant(variant)
            return load_openclip(chosen_arch, chosen_tag, weights, name=f"openclip:{variant}")
        return load_openclip(arch, tag, weights, name=name)

    def hub_files(variant: str | None) -> list[HubFile]:
        chosen_arch, chosen_tag = (arch, tag) if arch else parse_variant(variant)
        if chosen_tag is None:
            return []
        repo_id, filenames = _hub_location(chosen_arch, chosen_tag)
        preferred, *others = filenames
        return [HubFile(repo_id, preferred, alternatives=tuple(others))]

    return BackboneSpec(summary=summary, load=load, takes_variant=arch is None, hub_files=hub_files)


CLIP_B16 = _spec(
    "ViT-B-16-quickgelu", "openai", "OpenAI CLIP ViT-B/16 (image backbone, 448 px)", "clip-b16"
)
OPENCLIP_B16 = _spec(
    "ViT-B-16",
    "laion2b_s34b_b88k",
    "OpenCLIP ViT-B/16 LAION-2B (image backbone, 448 px)",
    "openclip-b16",
)
OPENCLIP_ANY = _spec(None, None, "any open_clip ViT: openclip:ARCH@TAG", "openclip")
