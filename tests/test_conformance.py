"""The conformance kit: built-in backbones pass it, broken adapters fail it by name."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from tests.backbones.viclip_fixtures import TINY, random_model
from tests.tiny_models import TINY_ARCH, tiny_openclip_adapter
from vgem.backbones.base import BackboneAdapter, TokenLayout
from vgem.backbones.openclip import OpenClipAdapter, resample_position_embedding
from vgem.backbones.viclip.adapter import ViCLIPAdapter
from vgem.errors import WeightsError
from vgem.testing import (
    CHECKS,
    ConformanceError,
    check_adapter,
    check_final_norm,
    check_loader_refuses_code,
    check_moves_with_module,
    check_original_path,
    check_text_encoder,
    check_token_layout,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def openclip_native():
    return tiny_openclip_adapter(input_size=32)


@pytest.fixture(scope="module")
def openclip_64():
    return tiny_openclip_adapter(input_size=64)


@pytest.fixture(scope="module")
def viclip():
    return ViCLIPAdapter(random_model(), "random")


def openclip_reference_text(adapter: OpenClipAdapter):
    """open_clip's own text embedding: its tokenizer, then CLIP.encode_text."""
    import open_clip

    tokenizer = open_clip.get_tokenizer(TINY_ARCH)
    return lambda texts: adapter.module.encode_text(tokenizer(texts))


def openclip_own_image_embedding(adapter: OpenClipAdapter):
    """open_clip's own encode_image at the adapter's size, positions resampled as GEM does.

    open_clip's forward adds its positional embedding as stored, so at a size
    other than the trained one it is swapped, for the call only, for the
    resampled one; everything else is the model's own forward.
    """
    visual = adapter.module.visual

    def encode(clip: torch.Tensor) -> torch.Tensor:
        grid = clip.shape[-1] // visual.patch_size[0]
        stored = visual.positional_embedding
        resampled = resample_position_embedding(stored.detach(), (grid, grid))
        visual.positional_embedding = nn.Parameter(resampled, requires_grad=False)
        try:
            return adapter.module.encode_image(clip[:, 0])
        finally:
            visual.positional_embedding = stored

    return encode


def viclip_reference_text(adapter: ViCLIPAdapter):
    """ViCLIP's text tower on ids from open_clip's tokenizer (not vgem's)."""
    import open_clip

    return lambda texts: adapter.model.text_encoder(
        open_clip.tokenize(texts, context_length=TINY.context_length)
    )


# --- the built-in backbones pass ------------------------------------------------------------


def test_tiny_openclip_at_its_native_size_passes(openclip_native):
    report = check_adapter(openclip_native, reference_text=openclip_reference_text(openclip_native))
    assert [outcome.name for outcome in report.outcomes] == list(CHECKS)
    assert not report.failures


def test_tiny_openclip_at_64_px_passes_against_its_own_resampled_forward(openclip_64):
    check_adapter(
        openclip_64,
        reference_clip=openclip_own_image_embedding(openclip_64),
        reference_text=openclip_reference_text(openclip_64),
    )


def test_openclip_encode_clip_works_at_a_resampled_size(openclip_64):
    """encode_image sees the resampled positional table (GEM's 448 for clip-b16)."""
    check_original_path(openclip_64)


def test_tiny_viclip_passes(viclip):
    check_adapter(viclip, reference_text=viclip_reference_text(viclip))


def test_the_loader_check_passes_vgems_own_checkpoint_reader():
    from vgem.checkpoints import read_checkpoint

    assert "refused" in check_loader_refuses_code(read_checkpoint)


# --- broken adapters fail, naming the problem ------------------------------------------------


class FrameMajorViCLIP(ViCLIPAdapter):
    """Claims frame-major tokens; ViCLIP's embed() is patch-major."""

    def token_layout(self) -> TokenLayout:
        layout = super().token_layout()
        return TokenLayout(layout.frames, layout.grid, layout.prefix_tokens, "frame-major")


class TransposedGrid(OpenClipAdapter):
    """Orders patch tokens column by column while the layout says row-major."""

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        tokens = super().embed(clip)
        batch, _, width = tokens.shape
        rows, columns = self.token_layout().grid
        patches = tokens[:, 1:].reshape(batch, rows, columns, width).transpose(1, 2)
        return torch.cat([tokens[:, :1], patches.reshape(batch, -1, width)], dim=1)


class WithoutFinalNorm(OpenClipAdapter):
    """head() is the projection alone: ln_post forgotten."""

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens @ self.visual.proj


class TextWithoutProjection(OpenClipAdapter):
    """encode_text() stops at the pooled end token, before the text projection."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        model = self.module
        token_ids = self.tokenizer(list(texts))
        tokens = model.token_embedding(token_ids) + model.positional_embedding
        tokens = model.ln_final(model.transformer(tokens, attn_mask=model.attn_mask))
        return tokens[torch.arange(tokens.shape[0]), token_ids.argmax(dim=-1)]


class FusedOnce(OpenClipAdapter):
    """Keeps a copy of the in-projection made at construction, which to() cannot move."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for block in self._blocks:
            block.in_proj_weight = block.in_proj_weight.detach().clone()


def rebuilt(adapter: OpenClipAdapter, cls: type[OpenClipAdapter]) -> OpenClipAdapter:
    return cls(
        adapter.module,
        adapter.tokenizer,
        name=f"broken-{cls.__name__}",
        weights_source="random",
        input_size=adapter.preprocessing.input_size,
    )


def _failure(check, *args, **kwargs) -> str:
    with pytest.raises(ConformanceError) as caught:
        check(*args, **kwargs)
    return str(caught.value)


def test_wrong_token_order_is_named(viclip):
    broken = FrameMajorViCLIP(viclip.model, "random")
    message = _failure(check_token_layout, broken)
    assert "embed() gives patch-major tokens but token_layout() says frame-major" in message


def test_wrong_token_order_fails_the_whole_kit(viclip):
    broken = FrameMajorViCLIP(viclip.model, "random")
    message = _failure(check_adapter, broken)
    assert "token-layout:" in message and "patch-major" in message
    assert "original-path" not in message  # the embedding itself is right


def test_a_transposed_grid_is_named(openclip_64):
    message = _failure(check_token_layout, rebuilt(openclip_64, TransposedGrid))
    assert "the patch grid is transposed" in message


def test_a_missing_final_norm_is_named(openclip_native):
    broken = rebuilt(openclip_native, WithoutFinalNorm)
    assert "missing final norm" in _failure(check_final_norm, broken)
    message = _failure(check_adapter, broken)
    assert "final-norm: missing final norm" in message
    assert "original-path: the original path does not reproduce" in message
    assert "head() seems to skip the final norm (ln_post)" in message


def test_a_text_encoder_without_projection_is_named_by_its_dimension(openclip_native):
    broken = rebuilt(openclip_native, TextWithoutProjection)
    message = _failure(check_text_encoder, broken)
    assert "text encoder skips the projection" in message
    assert "32-dim" in message and "16-dim" in message


def test_a_text_encoder_without_projection_is_caught_by_the_reference_when_widths_agree():
    """Text width = embedding width: only the model's own text embedding can tell."""
    import open_clip

    from tests.tiny_models import TINY_OPENCLIP

    arch = "vgem-tiny-vit-square-text"
    config = {**TINY_OPENCLIP, "embed_dim": TINY_OPENCLIP["text_cfg"]["width"]}
    open_clip.factory._MODEL_CONFIGS.setdefault(arch, config)
    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None).eval()
    broken = TextWithoutProjection(
        model, open_clip.get_tokenizer(arch), name="square", weights_source="random", input_size=32
    )
    check_text_encoder(broken)  # shapes alone cannot see it
    message = _failure(check_text_encoder, broken, reference_text=openclip_reference_text(broken))
    assert "does not match the model's own text embedding" in message
    assert "text projection" in message


def test_views_that_to_cannot_move_are_named(openclip_native):
    message = _failure(check_moves_with_module, rebuilt(openclip_native, FusedOnce))
    assert "not moved by to()" in message


def test_an_encode_clip_that_is_the_block_path_itself_is_refused(openclip_native):
    class NoOwnEncoder(OpenClipAdapter):
        encode_clip = BackboneAdapter.encode_clip

    message = _failure(check_original_path, rebuilt(openclip_native, NoOwnEncoder))
    assert "override encode_clip()" in message


def test_a_loader_that_unpickles_everything_is_caught():
    def careless(path):
        with contextlib.suppress(Exception):
            return torch.load(path, weights_only=False)

    assert "ran code" in _failure(check_loader_refuses_code, careless)


def test_a_loader_that_refuses_with_a_traceback_is_named():
    def raw(path):
        return torch.load(path, weights_only=True)

    assert "rather than a VgemError" in _failure(check_loader_refuses_code, raw)


def test_a_loader_that_raises_weights_error_passes():
    def strict(path):
        raise WeightsError(f"refused {path}")

    check_loader_refuses_code(strict)


def test_unknown_check_names_are_refused(openclip_native):
    with pytest.raises(ValueError, match="unknown checks"):
        check_adapter(openclip_native, skip=["shape"])


KIT_BACKBONE = """
    from vgem.backbones.base import BackboneSpec

    def _load(variant, weights):
        import torch

        from tests.backbones.viclip_fixtures import random_model
        from vgem.backbones.viclip.adapter import ViCLIPAdapter
        from vgem.checkpoints import read_checkpoint

        if weights is not None:
            {read_weights}
        return ViCLIPAdapter(random_model(), "random")

    SPEC = BackboneSpec(summary="tiny ViCLIP (tests)", load=_load)
"""


@pytest.mark.parametrize(
    ("read_weights", "exit_code"),
    [
        ("read_checkpoint(weights)", 0),  # vgem's safe reader refuses code
        ("torch.load(weights, weights_only=False)", 1),  # would run code: a finding
    ],
)
def test_the_kit_runs_without_pytest(plugin_site, capsys, read_weights, exit_code):
    """``python -m vgem.testing NAME`` runs every check, the spec's loader included."""
    from vgem.testing.__main__ import main

    plugin_site.install(
        f"vgem-tiny-test-{exit_code}",
        {"vgem.backbones": {"tiny-viclip": "vgem_tiny_test_backbone:SPEC"}},
        {"vgem_tiny_test_backbone": KIT_BACKBONE.replace("{read_weights}", read_weights)},
    )
    assert main(["tiny-viclip"]) == exit_code
    printed = capsys.readouterr().out
    if exit_code == 0:
        assert re.search(r"loader\s+passed", printed)
    else:
        assert "loader:" in printed
    assert main(["no-such-backbone"]) == 2
