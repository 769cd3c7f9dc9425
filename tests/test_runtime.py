"""Runtime options: batching, bf16 autocast, devices."""

from __future__ import annotations

import pytest
import torch

from tests.backbones.viclip_fixtures import TINY, random_model
from tests.tiny_models import tiny_openclip_adapter
from vgem.backbones.viclip.adapter import ViCLIPAdapter
from vgem.errors import SettingsError
from vgem.grounder import Grounder

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
