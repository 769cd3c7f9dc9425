"""Runtime options: batching, bf16 autocast, devices."""

from __future__ import annotations

import pytest
import torch

from tests.backbones.viclip_fixtures import TINY, random_model
from tests.tiny_models import tiny_openclip_adapter
from vgem import precision as precision_module
from vgem.backbones.viclip.adapter import ViCLIPAdapter
from vgem.errors import SettingsError
from vgem.grounder import Grounder
from vgem.precision import fast_bf16, resolve_precision

QUERIES = ["cut onion", "BrushingTeeth"]


def _clips(adapter, count, seed=0):
    size = adapter.preprocessing.input_size
    frames = adapter.preprocessing.frames_per_clip
    return torch.randn(count, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["openclip", "viclip"])
def adapter(request):
    if request.param == "openclip":
        return tiny_openclip_adapter(64)
    return ViCLIPAdapter(random_model(TINY, seed=2), "random")


def _grounder(adapter, **settings):
    depth = len(adapter.blocks)
    return Grounder(
        adapter=adapter, extractor="label", depth=depth, dynamic_layers=min(3, depth), **settings
    )


def test_a_batch_gives_what_clips_one_by_one_give(adapter):
    clips = _clips(adapter, 3)
    grounder = _grounder(adapter)
    together = grounder.ground_pixels(clips, QUERIES)
    for index in range(3):
        alone = grounder.ground_pixels(clips[index : index + 1], QUERIES)
        torch.testing.assert_close(
            together.similarity[index], alone.similarity[0], atol=1e-5, rtol=0
        )
        # points agree up to near-ties that batching's rounding can flip: every
        # prompt's arg-max in the batch is a (near-)maximum of the clip alone, and
        # where no prompt's arg-max flipped, the final point is the same
        for query, point in enumerate(together.points[index]):
            for role in range(3):
                px, py = together.prompt_points[index, query, role].tolist()
                heatmap = alone.heatmaps[0, query, role]
                assert heatmap[py, px] >= heatmap.max() - 1e-4
            if torch.equal(together.prompt_points[index, query], alone.prompt_points[0, query]):
                assert point == alone.points[0][query]


def test_bf16_maps_follow_fp32(adapter):
    clips = _clips(adapter, 2, seed=3)
    full = _grounder(adapter).ground_pixels(clips, QUERIES).similarity.flatten(2)
    reduced = _grounder(adapter, precision="bf16").ground_pixels(clips, QUERIES).similarity
    reduced = reduced.flatten(2)
    assert reduced.dtype == torch.float32  # maps leave autocast in fp32
    rows = zip(
        full.reshape(-1, full.shape[-1]), reduced.reshape(-1, reduced.shape[-1]), strict=True
    )
    for a, b in rows:
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99
    assert (full - reduced).abs().max() > 0  # it did run in lower precision


def _twin_adapters(kind):
    """Two adapters with the same random weights."""
    if kind == "openclip":
        return tiny_openclip_adapter(64), tiny_openclip_adapter(64)
    return (ViCLIPAdapter(random_model(TINY, seed=2), "random") for _ in range(2))


@pytest.mark.parametrize("kind", ["openclip", "viclip"])
def test_bf16_weights_lowered_once_give_autocasts_own_maps(monkeypatch, kind):
    lowered_adapter, plain_adapter = _twin_adapters(kind)
    clips = _clips(lowered_adapter, 2, seed=5)
    lowered = _grounder(lowered_adapter, precision="bf16")
    for block in lowered_adapter.blocks:
        assert block.in_proj_weight.dtype == torch.bfloat16
        assert all(p.dtype == torch.bfloat16 for p in block.mlp.parameters())
        assert all(p.dtype == torch.float32 for p in block.ln_1.parameters())
    expected_maps = lowered.ground_pixels(clips, QUERIES).similarity
    monkeypatch.setattr("vgem.grounder.prepare_blocks", lambda blocks, precision: None)
    autocast_only = _grounder(plain_adapter, precision="bf16")
    assert plain_adapter.blocks[0].in_proj_weight.dtype == torch.float32
    # autocast rounds the fp32 weights to exactly the values lowered once
    assert torch.equal(autocast_only.ground_pixels(clips, QUERIES).similarity, expected_maps)


def test_an_adapter_lowered_to_bf16_is_refused_for_fp32():
    adapter = tiny_openclip_adapter(32)
    _grounder(adapter, precision="bf16")
    with pytest.raises(SettingsError, match=r"bfloat16.*load it again") as caught:
        _grounder(adapter, precision="fp32")
    assert list(caught.value.settings) == ["precision"]


def test_an_fp32_grounder_whose_adapter_a_bf16_one_lowered_later_says_so():
    adapter = tiny_openclip_adapter(32)
    fp32 = _grounder(adapter, precision="fp32")
    clips = _clips(adapter, 1)
    fp32.ground_pixels(clips, QUERIES)
    _grounder(adapter, precision="bf16")
    with pytest.raises(SettingsError, match=r"bfloat16.*load it again"):
        fp32.ground_pixels(clips, QUERIES)


@pytest.mark.parametrize("amx", [True, False])
def test_bf16_where_it_is_emulated_says_so_in_every_querys_warnings(monkeypatch, amx):
    monkeypatch.setattr(precision_module, "cpu_has_amx_bf16", lambda: amx)
    grounder = _grounder(tiny_openclip_adapter(32), device="cpu", precision="bf16")
    slow = [w for w in grounder.warnings if "no AMX-BF16" in w]
    assert len(slow) == (0 if amx else 1)
    fp32 = _grounder(tiny_openclip_adapter(32), device="cpu", precision="fp32")
    assert fp32.warnings == []


@pytest.mark.parametrize(("amx", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_on_a_cpu_with_amx_and_fp32_without(monkeypatch, amx, expected):
    monkeypatch.setattr(precision_module, "cpu_has_amx_bf16", lambda: amx)
    grounder = _grounder(tiny_openclip_adapter(32), device="cpu", precision="auto")
    assert grounder.settings.precision == expected
    assert grounder.effective_settings["precision"] == expected  # what the JSON records
    assert resolve_precision("auto", "cpu") == expected


def test_auto_precision_on_cuda_follows_the_gpus_bf16_support(monkeypatch):
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert fast_bf16(torch.device("cuda")) is supported
    monkeypatch.setattr(precision_module, "cpu_has_amx_bf16", lambda: True)
    assert fast_bf16(torch.device("mps")) is False  # no probe there: fp32


def test_chosen_precisions_are_kept_whatever_the_hardware(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_amx_bf16", lambda: True)
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert _grounder(tiny_openclip_adapter(32), precision="fp32").settings.precision == "fp32"
    monkeypatch.setattr(precision_module, "cpu_has_amx_bf16", lambda: False)
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_the_amx_probe_reads_the_cpu_flags(monkeypatch, tmp_path):
    monkeypatch.delattr(torch._C._cpu, "_is_amx_tile_supported", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    original = precision_module.Path

    def fake_path(name, *rest):
        return cpuinfo if str(name) == "/proc/cpuinfo" else original(name, *rest)

    monkeypatch.setattr(precision_module, "Path", fake_path)
    cpuinfo.write_text("model name\t: x\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert precision_module.cpu_has_amx_bf16() is True
    cpuinfo.write_text("flags\t\t: fpu avx2 fma\n")
    assert precision_module.cpu_has_amx_bf16() is False
    cpuinfo.unlink()
    assert precision_module.cpu_has_amx_bf16() is False


def test_the_amx_probe_prefers_pytorchs_own(monkeypatch):
    for supported in (True, False):
        probe = lambda supported=supported: supported  # noqa: E731
        monkeypatch.setattr(torch._C._cpu, "_is_amx_tile_supported", probe, raising=False)
        assert precision_module.cpu_has_amx_bf16() is supported


def test_fp16_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SettingsError, match="fp16 needs a CUDA GPU"):
        _grounder(tiny_openclip_adapter(32), precision="fp16")


def test_cuda_device_without_a_gpu_is_one_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SettingsError, match="no CUDA GPU"):
        _grounder(tiny_openclip_adapter(32), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_matches_cpu(precision):
    cpu = _grounder(tiny_openclip_adapter(64), device="cpu")
    gpu = _grounder(tiny_openclip_adapter(64), device="cuda", precision=precision)
    clips = _clips(cpu.adapter, 2)
    expected = cpu.ground_pixels(clips, QUERIES).similarity
    measured = gpu.ground_pixels(clips, QUERIES).similarity.cpu()
    tolerance = 1e-4 if precision == "fp32" else 5e-2
    torch.testing.assert_close(measured, expected, atol=tolerance, rtol=0)


def test_bf16_runs_the_patch_embedding_and_the_text_tower_in_fp32(monkeypatch, adapter):
    # rounding the pixels and the prompts to 8 significant bits made most of
    # bf16's map error; both are a sliver of the work
    clips = _clips(adapter, 1, seed=7)
    embedded: list[torch.Tensor] = []
    original_embed = adapter.embed

    def recording_embed(pixels):
        embedded.append(original_embed(pixels))
        return embedded[-1]

    monkeypatch.setattr(adapter, "embed", recording_embed)
    grounder = _grounder(adapter, precision="bf16")
    grounder.ground_pixels(clips, QUERIES)
    with torch.inference_mode():
        assert torch.equal(embedded[0], original_embed(clips))
        texts = ["a photo of cutting", "onion"]
        expected_text = torch.nn.functional.normalize(adapter.encode_text(texts), dim=-1)
    assert torch.equal(grounder.embed_texts(texts), expected_text)
