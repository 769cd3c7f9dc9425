"""ViCLIP backbone: model, tokenizer, loader and adapter, on tiny random weights."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vgem import plugins
from vgem.backbones.base import IMAGENET_MEAN, IMAGENET_STD, run_block
from vgem.backbones.viclip import VICLIP_B16, VICLIP_L14, loader
from vgem.backbones.viclip.adapter import ViCLIPAdapter, load_viclip
from vgem.backbones.viclip.model import (
    VICLIP_CONFIGS,
    ViCLIP,
    resample_positional_embedding,
    resize_temporal_embedding,
)
from vgem.backbones.viclip.tokenizer import count_tokens, tokenize
from vgem.errors import SettingsError, WeightsError

from .viclip_fixtures import (
    TINY,
    official_state,
    random_clip,
    random_model,
    save_pth,
    save_safetensors,
)

START_OF_TEXT, END_OF_TEXT = 49406, 49407


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return official_state(random_model())


@pytest.fixture
def tiny_viclip(tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> ViCLIPAdapter:
    """Loaded through the real loader from an official-layout ``.pth``."""
    return load_viclip(TINY, str(save_pth(tiny_state, tmp_path / "tiny.pth")))


def assert_same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


# --- plugin surface -------------------------------------------------------------------------


def test_importing_the_package_does_not_import_torch() -> None:
    probe = "import sys, vgem.backbones.viclip; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("name", "spec"), [("viclip-b16", VICLIP_B16), ("viclip-l14", VICLIP_L14)])
def test_entry_points_resolve_to_the_specs(name: str, spec: object) -> None:
    assert plugins.load("vgem.backbones", name) is spec


@pytest.mark.parametrize(
    ("spec", "repo"),
    [(VICLIP_B16, "OpenGVLab/ViCLIP-B-16-hf"), (VICLIP_L14, "OpenGVLab/ViCLIP-L-14-hf")],
)
def test_hub_files_name_the_safetensors_release(spec, repo: str) -> None:
    [hub_file] = spec.hub_files(None)
    assert (hub_file.repo_id, hub_file.filename, hub_file.gated) == (
        repo,
        "model.safetensors",
        False,
    )


def test_spec_rejects_a_variant() -> None:
    with pytest.raises(SettingsError, match="takes no variant"):
        VICLIP_B16.load("large", None)


# --- architecture -----------------------------------------------------------------------------


def clip_tower_shapes(prefix: str, width: int, layers: int) -> dict[str, list[int]]:
    shapes = {}
    for index in range(layers):
        block = f"{prefix}.transformer.resblocks.{index}."
        shapes |= {
            block + "attn.in_proj_weight": [3 * width, width],
            block + "attn.in_proj_bias": [3 * width],
            block + "attn.out_proj.weight": [width, width],
            block + "attn.out_proj.bias": [width],
            block + "ln_1.weight": [width],
            block + "ln_1.bias": [width],
            block + "mlp.c_fc.weight": [4 * width, width],
            block + "mlp.c_fc.bias": [4 * width],
            block + "mlp.c_proj.weight": [width, 4 * width],
            block + "mlp.c_proj.bias": [width],
            block + "ln_2.weight": [width],
            block + "ln_2.bias": [width],
        }
    return shapes


def released_shapes(vision: int, layers: int, patch: int, embed: int, text: int):
    """The state-dict table of docs/method.md §8.1, for either size."""
    grid = 224 // patch
    shapes = {
        "temp": [],
        "vision_encoder.class_embedding": [vision],
        "vision_encoder.positional_embedding": [grid * grid + 1, vision],
        "vision_encoder.temporal_positional_embedding": [1, 8, vision],
        "vision_encoder.conv1.weight": [vision, 3, 1, patch, patch],
        "vision_encoder.ln_pre.weight": [vision],
        "vision_encoder.ln_pre.bias": [vision],
        "vision_encoder.ln_post.weight": [vision],
        "vision_encoder.ln_post.bias": [vision],
        "vision_encoder.proj": [vision, embed],
        "text_encoder.token_embedding.weight": [49408, text],
        "text_encoder.positional_embedding": [32, text],
        "text_encoder.ln_final.weight": [text],
        "text_encoder.ln_final.bias": [text],
        "text_encoder.text_projection": [text, embed],
    }
    shapes |= clip_tower_shapes("vision_encoder", vision, layers)
    return shapes | clip_tower_shapes("text_encoder", text, 12)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("viclip-b16", released_shapes(vision=768, layers=12, patch=16, embed=512, text=512)),
        ("viclip-l14", released_shapes(vision=1024, layers=24, patch=14, embed=768, text=768)),
    ],
)
def test_full_size_parameters_match_the_released_layout(name: str, expected) -> None:
    with torch.device("meta"):
        model = ViCLIP(VICLIP_CONFIGS[name])
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert shapes == expected


def test_layer_norms_use_clips_epsilon() -> None:
    with torch.device("meta"):
        model = ViCLIP(VICLIP_CONFIGS["viclip-b16"])
    norms = [module for module in model.modules() if isinstance(module, nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 2 + 2 * 12 + 1
    assert {norm.eps for norm in norms} == {1e-5}


@pytest.mark.parametrize(("name", "grid"), [("viclip-b16", (14, 14)), ("viclip-l14", (16, 16))])
def test_adapter_describes_the_full_size_models(name: str, grid: tuple[int, int]) -> None:
    with torch.device("meta"):
        adapter = ViCLIPAdapter(ViCLIP(VICLIP_CONFIGS[name]), "meta")
    prep = adapter.preprocessing
    assert (prep.input_size, prep.mean, prep.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    assert (prep.frames_per_clip, prep.target_index) == (8, 4)
    assert adapter.context_length == 32
    assert adapter.name == name
    layout = adapter.token_layout()
    assert (layout.frames, layout.grid, layout.prefix_tokens, layout.order) == (
        8,
        grid,
        1,
        "patch-major",
    )
    assert len(adapter.blocks) == VICLIP_CONFIGS[name].vision_layers


# --- vision path ------------------------------------------------------------------------------


def test_each_block_view_reproduces_the_models_block(tiny_viclip: ViCLIPAdapter) -> None:
    tokens = tiny_viclip.embed(random_clip())
    modules = tiny_viclip.model.vision_encoder.transformer.resblocks
    with torch.no_grad():
        for view, module in zip(tiny_viclip.blocks, modules, strict=True):
            torch.testing.assert_close(run_block(view, tokens), module(tokens), atol=1e-5, rtol=0)
            tokens = module(tokens)


def test_plain_block_path_equals_the_models_video_embedding(tiny_viclip: ViCLIPAdapter) -> None:
    clip = random_clip()
    with torch.no_grad():
        tokens = tiny_viclip.embed(clip)
        for block in tiny_viclip.blocks:
            tokens = run_block(block, tokens)
        plain = tiny_viclip.head(tokens[:, 0])
        own = tiny_viclip.encode_clip(clip)
    assert plain.shape == (2, TINY.embed_dim)
    torch.testing.assert_close(plain, own, atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [8, 1])
def test_tokens_are_patch_major_with_embeddings_added_by_patch_and_frame(frames: int) -> None:
    model = random_model()
    model.vision_encoder.ln_pre = nn.Identity()  # expose the raw token sum
    vision = model.vision_encoder
    clip = random_clip(batch=1)[:, :frames]
    with torch.no_grad():
        tokens = vision.embed(clip)[0]
        temporal = vision.temporal_positional_embedding[0]
        frame_rows = temporal if frames == 8 else temporal.mean(dim=0, keepdim=True)
        patch, grid = TINY.patch_size, TINY.grid_size
        assert tokens.shape == (1 + grid * grid * frames, TINY.vision_width)
        torch.testing.assert_close(
            tokens[0], vision.class_embedding + vision.positional_embedding[0]
        )
        for frame in range(frames):
            for row in range(grid):
                for col in range(grid):
                    index = row * grid + col
                    rows = slice(row * patch, (row + 1) * patch)
                    cols = slice(col * patch, (col + 1) * patch)
                    pixels = clip[0, frame, :, rows, cols]
                    projected = (vision.conv1.weight[:, :, 0] * pixels).sum((1, 2, 3))
                    position = vision.positional_embedding[1 + index]
                    expected = projected + position + frame_rows[frame]
                    torch.testing.assert_close(tokens[1 + index * frames + frame], expected)


def test_a_planted_patch_lands_where_the_layout_says() -> None:
    model = random_model()
    vision = model.vision_encoder
    with torch.no_grad():
        for table in (vision.class_embedding, vision.positional_embedding):
            table.zero_()
        vision.temporal_positional_embedding.zero_()
        vision.ln_pre.bias.zero_()
    planted_frame, planted_patch = 2, 5
    grid, patch = TINY.grid_size, TINY.patch_size
    row, col = divmod(planted_patch, grid)
    clip = torch.zeros(1, TINY.frames, 3, TINY.input_size, TINY.input_size)
    clip[0, planted_frame, :, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch] = 1
    with torch.no_grad():
        tokens = vision.embed(clip)[0]
    lit = tokens.abs().sum(dim=-1).nonzero().flatten().tolist()
    patch_major = 1 + planted_patch * TINY.frames + planted_frame
    frame_major = 1 + planted_frame * grid * grid + planted_patch
    assert patch_major != frame_major
    assert lit == [patch_major]
    layout = ViCLIPAdapter(model, "test").token_layout()
    assert layout.patch_token_indices(planted_frame)[planted_patch] == patch_major


def bicubic_reference(table: torch.Tensor, side: int, new_side: int) -> torch.Tensor:
    """Grid rows placed into an image cell by cell, resampled, and read back the same way."""
    width = table.shape[1]
    image = torch.zeros(1, width, side, side)
    for row in range(side):
        for col in range(side):
            image[0, :, row, col] = table[1 + row * side + col]
    resampled = torch.nn.functional.interpolate(
        image, size=(new_side, new_side), mode="bicubic", antialias=True, align_corners=False
    )
    rows = [resampled[0, :, row, col] for row in range(new_side) for col in range(new_side)]
    return torch.cat([table[:1], torch.stack(rows)])


@pytest.mark.parametrize("input_size", [48, 24], ids=["larger", "smaller"])
def test_other_input_sizes_resample_the_spatial_embedding(input_size: int) -> None:
    model = random_model()
    vision = model.vision_encoder
    with torch.no_grad():
        vision.conv1.weight.zero_()
        vision.temporal_positional_embedding.zero_()
    vision.ln_pre = nn.Identity()
    new_side = input_size // TINY.patch_size
    with torch.no_grad():
        clip = random_clip(dataclasses.replace(TINY, input_size=input_size), batch=1)
        tokens = vision.embed(clip)[0]
        resampled = resample_positional_embedding(vision.positional_embedding, (new_side,) * 2)
        reference = bicubic_reference(vision.positional_embedding, TINY.grid_size, new_side)
    torch.testing.assert_close(resampled, reference, atol=1e-6, rtol=0)
    assert torch.equal(resampled[0], vision.positional_embedding[0])
    assert tokens.shape == (1 + new_side**2 * TINY.frames, TINY.vision_width)
    for index in (0, new_side + 1, new_side**2 - 1):
        torch.testing.assert_close(tokens[1 + index * TINY.frames + 3], resampled[1 + index])


def test_a_clip_of_another_frame_count_is_refused_at_run_time() -> None:
    model = random_model()
    with pytest.raises(ValueError, match="built for 8 frames, got 5"):
        model.encode_video(random_clip()[:, :5])


# --- temporal embedding resize ---------------------------------------------------------------


def linear_resize_reference(table: torch.Tensor, frames: int) -> torch.Tensor:
    """Linear interpolation with half-pixel centres, written out row by row."""
    old = table.shape[1]
    rows = []
    for position in range(frames):
        source = max((position + 0.5) * old / frames - 0.5, 0.0)
        lower = min(math.floor(source), old - 1)
        upper = min(lower + 1, old - 1)
        weight = source - lower
        rows.append((1 - weight) * table[0, lower] + weight * table[0, upper])
    return torch.stack(rows)[None]


def test_more_frames_interpolate_the_temporal_embedding_linearly() -> None:
    table = torch.randn(1, 4, 6)
    torch.testing.assert_close(
        resize_temporal_embedding(table, 8), linear_resize_reference(table, 8)
    )


def test_fewer_frames_keep_the_first_temporal_rows() -> None:
    table = torch.randn(1, 8, 6)
    assert torch.equal(resize_temporal_embedding(table, 3), table[:, :3])
    assert resize_temporal_embedding(table, 8) is table


@pytest.mark.parametrize("frames", [4, 12])
def test_loading_for_another_frame_count_resizes_the_temporal_embedding(
    tmp_path: Path, tiny_state: dict[str, torch.Tensor], frames: int
) -> None:
    config = dataclasses.replace(TINY, frames=frames)
    adapter = load_viclip(config, str(save_pth(tiny_state, tmp_path / "tiny.pth")))
    table = tiny_state["vision_encoder.temporal_positional_embedding"]
    expected = table[:, :frames] if frames < 8 else linear_resize_reference(table, frames)
    torch.testing.assert_close(
        adapter.model.vision_encoder.temporal_positional_embedding.detach(), expected
    )
    assert adapter.preprocessing.frames_per_clip == frames
    assert adapter.embed(random_clip(config)).shape[1] == adapter.token_layout().num_tokens


# --- text path --------------------------------------------------------------------------------


def manual_text_embedding(model: ViCLIP, token_ids: torch.Tensor) -> torch.Tensor:
    """CLIP's text tower written out in float64, one query position at a time."""
    weights = {key: value.double() for key, value in model.text_encoder.state_dict().items()}
    width, heads = TINY.text_width, TINY.text_heads
    head_width = width // heads

    def layer_norm(hidden: torch.Tensor, name: str) -> torch.Tensor:
        mean = hidden.mean(dim=-1, keepdim=True)
        variance = ((hidden - mean) ** 2).mean(dim=-1, keepdim=True)
        normed = (hidden - mean) / torch.sqrt(variance + 1e-5)
        return normed * weights[name + ".weight"] + weights[name + ".bias"]

    prompts, length = token_ids.shape
    hidden = weights["token_embedding.weight"][token_ids] + weights["positional_embedding"][:length]
    for layer in range(TINY.text_layers):
        block = f"transformer.resblocks.{layer}."
        normed = layer_norm(hidden, block + "ln_1")
        qkv = normed @ weights[block + "attn.in_proj_weight"].T
        qkv = qkv + weights[block + "attn.in_proj_bias"]
        queries, keys, values = qkv.split(width, dim=-1)
        attended = torch.zeros_like(hidden)
        for prompt in range(prompts):
            for head in range(heads):
                part = slice(head * head_width, (head + 1) * head_width)
                for position in range(length):  # sees itself and earlier tokens only
                    visible_keys = keys[prompt, : position + 1, part]
                    scores = visible_keys @ queries[prompt, position, part] / math.sqrt(head_width)
                    mix = torch.softmax(scores, dim=0)
                    attended[prompt, position, part] = mix @ values[prompt, : position + 1, part]
        out_proj = attended @ weights[block + "attn.out_proj.weight"].T
        hidden = hidden + out_proj + weights[block + "attn.out_proj.bias"]
        expanded = layer_norm(hidden, block + "ln_2") @ weights[block + "mlp.c_fc.weight"].T
        expanded = expanded + weights[block + "mlp.c_fc.bias"]
        activated = expanded * torch.sigmoid(1.702 * expanded)
        contracted = activated @ weights[block + "mlp.c_proj.weight"].T
        hidden = hidden + contracted + weights[block + "mlp.c_proj.bias"]
    hidden = layer_norm(hidden, "ln_final")
    ends = [row.tolist().index(END_OF_TEXT) for row in token_ids]
    pooled = torch.stack([hidden[prompt, end] for prompt, end in enumerate(ends)])
    return pooled @ weights["text_projection"]


def test_text_embedding_equals_a_written_out_computation(tiny_viclip: ViCLIPAdapter) -> None:
    texts = ["a person cutting an onion", "pour the water into the pot slowly"]
    with torch.no_grad():
        embeddings = tiny_viclip.encode_text(texts)
        reference = manual_text_embedding(tiny_viclip.model, tokenize(texts))
    assert embeddings.shape == (2, TINY.embed_dim)
    torch.testing.assert_close(embeddings.double(), reference, atol=1e-5, rtol=0)


def test_tokens_have_start_and_end_and_zero_padding() -> None:
    [row] = tokenize(["cut onion"]).tolist()
    assert len(row) == 32
    assert row[0] == START_OF_TEXT
    end = row.index(END_OF_TEXT)
    assert end == count_tokens("cut onion") - 1
    assert row[end + 1 :] == [0] * (32 - end - 1)


def test_long_text_is_cut_to_32_tokens_with_the_end_token_last() -> None:
    text = " ".join(["slowly"] * 60)
    [row] = tokenize([text]).tolist()
    assert count_tokens(text) == 62
    assert len(row) == 32
    assert (row[0], row[-1]) == (START_OF_TEXT, END_OF_TEXT)
    assert END_OF_TEXT not in row[:-1]


def test_adapter_counts_tokens_before_truncation(tiny_viclip: ViCLIPAdapter) -> None:
    assert tiny_viclip.count_tokens(" ".join(["slowly"] * 60)) == 62


# --- loading ----------------------------------------------------------------------------------


def without(state: dict[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    return {name: value for name, value in state.items() if name != key}


CHECKPOINT_LAYOUTS = {
    "official pth": lambda state, folder: save_pth(state, folder / "ViCLIP-B_InternVid.pth"),
    "bare state dict": lambda state, folder: save_pth(state, folder / "bare.pth", wrap=False),
    "hub safetensors": lambda state, folder: save_safetensors(state, folder / "model.safetensors"),
    "prefixed safetensors": lambda state, folder: save_safetensors(
        state, folder / "model.safetensors", prefix="model."
    ),
    "safetensors under another name": lambda state, folder: save_safetensors(
        state, folder / "weights.bin"
    ),
}


@pytest.mark.parametrize("layout", CHECKPOINT_LAYOUTS)
def test_every_release_layout_loads_exactly(
    tmp_path: Path, tiny_state: dict[str, torch.Tensor], layout: str
) -> None:
    path = CHECKPOINT_LAYOUTS[layout](tiny_state, tmp_path)
    adapter = load_viclip(TINY, str(path))
    assert_same_state(adapter.model, tiny_state)
    assert adapter.weights_source == str(path)


def test_a_checkpoint_without_temp_loads(tmp_path: Path, tiny_state) -> None:
    path = save_safetensors(without(tiny_state, "temp"), tmp_path / "model.safetensors")
    model = load_viclip(TINY, str(path)).model
    assert model.temp.item() == pytest.approx(0.01)
    assert torch.equal(model.vision_encoder.proj, tiny_state["vision_encoder.proj"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda state: without(state, "vision_encoder.proj"),
            r"1 missing key \(vision_encoder\.proj\)",
        ),
        (
            lambda state: state | {"vision_encoder.extra.weight": torch.zeros(1)},
            r"1 unexpected key \(vision_encoder\.extra\.weight\)",
        ),
        (
            lambda state: {key: value for key, value in state.items() if "text_encoder" not in key},
            r"\d+ missing keys \(text_encoder\.[^)]*, \.\.\.\)",
        ),
        (
            lambda state: state | {"vision_encoder.proj": torch.zeros(32, 8)},
            r"vision_encoder\.proj is \[32, 8\] in the file but the model needs \[32, 16\]",
        ),
    ],
    ids=["missing", "unexpected", "many missing", "wrong shape"],
)
def test_checkpoints_that_do_not_fit_are_refused_by_name(
    tmp_path: Path, tiny_state, change, message: str
) -> None:
    path = save_pth(change(tiny_state), tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=message) as refused:
        load_viclip(TINY, str(path))
    assert str(path) in str(refused.value)
    assert "\n" not in str(refused.value)


class WritesAMarker:
    """Unpickling this runs code: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_pickle_that_would_run_code_is_refused_unrun(
    tmp_path: Path, tiny_state, zip_format: bool
) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    payload = {"model": tiny_state, "hook": WritesAMarker(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(WeightsError, match="would run code") as refused:
        load_viclip(TINY, str(path))
    message = str(refused.value)
    assert str(path) in message
    assert "model.safetensors" in message and "OpenGVLab/ViCLIP-B-16-hf" in message
    assert "\n" not in message
    assert not marker.exists()


def test_a_damaged_pickle_is_refused_without_being_called_malicious(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pth"
    path.write_bytes(b"\x80\x02" + bytes(range(7, 200)))
    with pytest.raises(WeightsError, match="weights-only unpickling") as refused:
        load_viclip(TINY, str(path))
    assert "would run code" not in str(refused.value)


def write_text(folder: Path) -> Path:
    path = folder / "notes.pth"
    path.write_text("these are not weights\n")
    return path


def write_empty(folder: Path) -> Path:
    path = folder / "empty.pth"
    path.touch()
    return path


def write_truncated(folder: Path) -> Path:
    whole = save_pth(official_state(random_model()), folder / "whole.pth").read_bytes()
    path = folder / "truncated.pth"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def write_truncated_safetensors(folder: Path) -> Path:
    whole = save_safetensors(official_state(random_model()), folder / "whole.safetensors")
    path = folder / "truncated.safetensors"
    path.write_bytes(whole.read_bytes()[:4096])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (write_text, "neither a PyTorch checkpoint nor a safetensors file"),
        (write_empty, "is empty"),
        (write_truncated, "could not be read as a PyTorch checkpoint"),
        (write_truncated_safetensors, "could not be read as safetensors"),
        (lambda folder: folder / "absent.pth", "not found"),
        (lambda folder: folder, "is a directory"),
    ],
    ids=["text", "empty", "truncated zip", "truncated safetensors", "missing", "directory"],
)
def test_unusable_local_files_end_in_one_line_naming_the_path(
    tmp_path: Path, make, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(WeightsError, match=message) as refused:
        load_viclip(TINY, str(path))
    assert str(path) in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache under ``tmp_path`` with offline mode on.

    huggingface_hub reads the environment once at import, so its constants
    are patched as well as the variables.
    """
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_with_an_empty_cache_says_what_to_fetch(offline_hub: Path) -> None:
    with pytest.raises(WeightsError) as refused:
        VICLIP_B16.load(None, None)
    message = str(refused.value)
    assert message.startswith("ViCLIP-B/16 weights are not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE" in message
    assert "`vgem fetch` (backbone viclip-b16)" in message
    assert "as `weights`" in message and refused.value.settings == ("weights",)
    assert "\n" not in message


def test_offline_loads_from_the_hub_cache(
    offline_hub: Path, monkeypatch: pytest.MonkeyPatch, tiny_state
) -> None:
    repo_folder = offline_hub / "models--vgem-test--ViCLIP-tiny"
    revision = "0" * 40
    snapshot = repo_folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    save_safetensors(tiny_state, snapshot / "model.safetensors")
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(revision)
    monkeypatch.setitem(loader.HUB_REPOS, TINY.name, "vgem-test/ViCLIP-tiny")
    adapter = load_viclip(TINY)
    assert adapter.weights_source == "hf-hub:vgem-test/ViCLIP-tiny"
    assert_same_state(adapter.model, tiny_state)


def test_a_config_without_a_hub_release_asks_for_a_path() -> None:
    with pytest.raises(WeightsError, match=r"no published weights.*as `weights`"):
        load_viclip(TINY)
